"""The LLM graph: parameter counts against published figures, config parsing, graph shape."""

from __future__ import annotations

import json

import pytest

from models import ConfigError, load_model, model_ids, parse_config, weight_format

REQUIRED = """llama-7b llama-2-7b llama-2-13b llama-2-70b llama-3-8b llama-3-70b llama-3.1-8b llama-3.1-70b
llama-3.2-1b llama-3.2-3b tinyllama-1.1b mistral-7b mixtral-8x7b qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b qwen2.5-72b
qwen3-30b-a3b gemma-2-2b gemma-2-9b phi-3-mini opt-13b opt-30b opt-66b deepseek-coder-6.7b""".split()


def test_catalog_has_every_required_model():
    assert set(REQUIRED) <= set(model_ids())


@pytest.mark.parametrize("model_id", model_ids())
def test_total_parameters_match_published(model_id):
    g = load_model(model_id)
    assert g.published_params_b, f"{model_id} has no published parameter count"
    assert g.params_total / 1e9 == pytest.approx(g.published_params_b, rel=0.01)


@pytest.mark.parametrize("model_id, tolerance", [("mixtral-8x7b", 0.01), ("qwen3-30b-a3b", 0.02)])
def test_active_parameters_of_moe_models(model_id, tolerance):
    # Qwen3's "3.3B activated" is rounded: counting router and both embeddings gives 3.35 B.
    g = load_model(model_id)
    assert g.params_active / 1e9 == pytest.approx(g.published_active_params_b, rel=tolerance)
    assert g.params_active < g.params_total / 3


def test_named_examples_from_the_issue():
    assert round(load_model("llama-3-8b").params_total / 1e9, 2) == 8.03
    mix = load_model("mixtral-8x7b")
    assert round(mix.params_total / 1e9, 1) == 46.7 and round(mix.params_active / 1e9, 1) == 12.9


def test_gqa_shrinks_the_kv_cache():
    fp16 = weight_format("fp16")
    mha = load_model("llama-2-7b").kv_bytes_per_token(fp16)
    gqa = load_model("llama-3-8b").kv_bytes_per_token(fp16)
    assert mha == 2 * 4096 * 2 * 32  # K and V of 4096 values, 2 bytes each, 32 layers
    assert gqa == mha / 4  # 8 KV heads instead of 32


def test_tied_embeddings_store_no_head_matrix():
    g = load_model("qwen2.5-0.5b")
    assert g.arch.tie_word_embeddings
    assert g.head.params < g.arch.hidden_size * 10  # just the final norm
    assert g.head.streamed_params(1) >= g.arch.vocab_size * g.arch.hidden_size  # but it reads the borrowed matrix


def test_moe_reads_only_touched_experts():
    block = load_model("mixtral-8x7b").blocks[0]
    one = block.streamed_params(1)
    many = block.streamed_params(512)
    assert one < 0.35 * block.params  # 2 of 8 experts
    assert many == pytest.approx(block.params, rel=1e-3)  # a long prompt touches them all


def test_text_config_gpt2_aliases_and_dtype():
    nested = {"model_type": "llava", "text_config": {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                                                      "num_attention_heads": 4, "intermediate_size": 128,
                                                      "vocab_size": 100, "dtype": "bfloat16"}}
    arch = parse_config(nested)
    assert (arch.hidden_size, arch.num_layers, arch.num_kv_heads, arch.torch_dtype) == (64, 2, 4, "bfloat16")
    gpt2 = parse_config({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257,
                         "n_positions": 1024})
    assert (gpt2.num_layers, gpt2.intermediate_size, gpt2.learned_positions) == (12, 3072, 1024)
    g = load_model({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257,
                    "n_positions": 1024})
    assert g.params_total / 1e6 == pytest.approx(124.4, rel=0.01)  # GPT-2 small


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="hidden_size"):
        parse_config({"num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8})
    with pytest.raises(ConfigError, match="num_key_value_heads"):
        parse_config({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3,
                      "intermediate_size": 8, "vocab_size": 10})


def test_config_file_and_networkx_graph(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                                "intermediate_size": 128, "vocab_size": 100}))
    g = load_model(path)
    assert g.id == "config" and g.num_blocks == 3
    nxg = g.to_networkx()
    assert list(nxg.nodes) == ["embed", "block.0", "block.1", "block.2", "head"]
    assert nxg.nodes["block.1"]["kv_values_per_token"] == 2 * 4 * 16
    sub = g.to_networkx("sublayer")
    assert "block.0.attn" in sub and sub.has_edge("block.0.attn", "block.0.mlp")
    assert sum(d["params"] for n, d in sub.nodes(data=True)) == sum(d["params"] for n, d in nxg.nodes(data=True))
