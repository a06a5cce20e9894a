"""The LLM graph: parameter counts against published figures, config parsing, graph shape."""

from __future__ import annotations

import json

import pytest

from models import ConfigError, kv_format, load_model, model_ids, parse_config, weight_format

REQUIRED = """llama-7b llama-2-7b llama-2-13b llama-2-70b llama-3-8b llama-3-70b llama-3.1-8b llama-3.1-70b
llama-3.2-1b llama-3.2-3b tinyllama-1.1b mistral-7b mixtral-8x7b qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b qwen2.5-72b
qwen3-30b-a3b gemma-2-2b gemma-2-9b phi-3-mini opt-13b opt-30b opt-66b deepseek-coder-6.7b
deepseek-v2-lite""".split()


def test_catalog_has_every_required_model():
    assert set(REQUIRED) <= set(model_ids())


@pytest.mark.parametrize("model_id", model_ids())
def test_total_parameters_match_published(model_id):
    g = load_model(model_id)
    assert g.published_params_b, f"{model_id} has no published parameter count"
    assert g.params_total / 1e9 == pytest.approx(g.published_params_b, rel=0.01)


@pytest.mark.parametrize("model_id, tolerance", [("mixtral-8x7b", 0.01), ("qwen3-30b-a3b", 0.02),
                                                 ("deepseek-v2-lite", 0.025)])
def test_active_parameters_of_moe_models(model_id, tolerance):
    # Qwen3's "3.3B activated" is rounded: counting router and both embeddings gives 3.35 B.
    # DeepSeek's "2.4B activated" leaves out the input embedding lookup: 2.45 B.
    g = load_model(model_id)
    counted = g.params_active_counted(g.published_active_excludes)
    assert counted / 1e9 == pytest.approx(g.published_active_params_b, rel=tolerance)
    assert g.params_active < g.params_total / 3


def test_deepseek_v2_lite_latent_attention_and_dense_first_block():
    g = load_model("deepseek-v2-lite")
    assert round(g.params_total / 1e9, 1) == 15.7
    assert round(g.params_active_counted(("input_embedding",)) / 1e9, 1) in (2.4, 2.5)  # 2.451 B
    # KV per token per block: the 512-value latent plus the 64-value shared RoPE key, not 2 x 16 x 192.
    assert {b.kv_values_per_token for b in g.blocks} == {576}
    assert g.kv_bytes_per_token(kv_format("fp16")) == 27 * 576 * 2
    # Block 0 is a dense MLP of width 10944; blocks 1-26 hold 64 experts (+2 shared), 6 routed per token.
    dense, moe = g.blocks[0], g.blocks[1]
    assert dense.num_experts == 0 and dense.params == dense.active_params
    assert moe.num_experts == 64 and moe.experts_per_token == 6
    assert moe.expert_params == 3 * 2048 * 1408
    assert dense.attn_params == moe.attn_params == (2048 * 16 * 192 + 2048 * 576 + 512 + 512 * 16 * 256
                                                    + 16 * 128 * 2048)
    assert moe.params > 7 * dense.params
    # Decode multiplies the cached latent directly (absorbed up-projections): more FLOPs per cached
    # token than prefill's expanded heads, whose K and V are rebuilt once per token.
    assert moe.decode_attn_flops == 2 * 16 * 576 + 2 * 16 * 512
    assert moe.attn_flops_per_context_token == 2 * 16 * 192 + 2 * 16 * 128


def test_sliding_windows_cap_the_kv_cache():
    fp16 = kv_format("fp16")
    mistral = load_model("mistral-7b")
    assert {b.attn_window_tokens for b in mistral.blocks} == {4096}
    assert mistral.kv_bytes(fp16, 32768) == mistral.kv_bytes(fp16, 4096) == 4096 * mistral.kv_bytes_per_token(fp16)
    assert mistral.kv_bytes(fp16, 1000) == 1000 * mistral.kv_bytes_per_token(fp16)
    gemma = load_model("gemma-2-9b")
    # Gemma 2 alternates: even blocks local (4096-token window), odd blocks global.
    assert [b.attn_window_tokens for b in gemma.blocks[:4]] == [4096, 0, 4096, 0]
    per_block = 2 * 8 * 256 * 2
    assert gemma.kv_bytes(fp16, 8192) == 21 * 8192 * per_block + 21 * 4096 * per_block
    # Causal attention pairs stop growing quadratically beyond the window.
    local = gemma.blocks[0]
    assert local.causal_pairs(4096) == 4096 * 4097 / 2
    assert local.causal_pairs(8192) == 4096 * 4097 / 2 + 4096 * 4096
    assert gemma.blocks[1].causal_pairs(8192) == 8192 * 8193 / 2
    # Qwen2.5 ships a window with use_sliding_window false: no cap.
    assert {b.attn_window_tokens for b in load_model("qwen2.5-7b").blocks} == {0}


_TINY = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128,
         "vocab_size": 100}


def test_which_blocks_have_experts():
    moe = {**_TINY, "model_type": "qwen2_moe", "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32}
    assert parse_config({**moe, "decoder_sparse_step": 2}).moe_layers == (False, True, False, True)
    assert parse_config({**moe, "mlp_only_layers": [0, 3]}).moe_layers == (False, True, True, False)
    deepseek = {**_TINY, "model_type": "deepseek_v2", "n_routed_experts": 8, "num_experts_per_tok": 2,
                "moe_intermediate_size": 32, "first_k_dense_replace": 1, "moe_layer_freq": 2}
    assert parse_config(deepseek).moe_layers == (False, False, True, False)
    with pytest.raises(ConfigError, match="moe_layer_freq"):
        parse_config({**deepseek, "moe_layer_freq": [1, 0, 1, 0]})
    with pytest.raises(ConfigError, match="first_k_dense_replace"):
        parse_config({**deepseek, "first_k_dense_replace": 4})


def test_layer_types_and_window_fields():
    kinds = ["sliding_attention", "full_attention", "full_attention", "sliding_attention"]
    arch = parse_config({**_TINY, "sliding_window": 32, "layer_types": kinds})
    assert arch.attention_windows == (32, 0, 0, 32)
    assert parse_config({**_TINY, "model_type": "qwen2", "sliding_window": 32, "use_sliding_window": True,
                         "max_window_layers": 2}).attention_windows == (0, 0, 32, 32)
    with pytest.raises(ConfigError, match="layer_types"):
        parse_config({**_TINY, "sliding_window": 32, "layer_types": ["linear_attention"] * 4})
    with pytest.raises(ConfigError, match="sliding_window"):
        parse_config({**_TINY, "sliding_window": -1})


def test_fields_that_change_size_are_never_ignored():
    # Unknown fields whose names describe a shape are refused, naming the field.
    for field in ("num_mtp_layers", "expert_layer_period", "vision_hidden_size"):
        with pytest.raises(ConfigError, match=field):
            parse_config({**_TINY, field: 2})
    with pytest.raises(ConfigError, match="quantization_config.*weight_format"):
        parse_config({**_TINY, "quantization_config": {"bits": 4}})
    with pytest.raises(ConfigError, match="vision_config"):
        parse_config({"model_type": "llava", "text_config": _TINY, "vision_config": {"hidden_size": 1024}})
    with pytest.raises(ConfigError, match="word_embed_proj_dim"):
        parse_config({**_TINY, "model_type": "opt", "word_embed_proj_dim": 32})
    with pytest.raises(ConfigError, match="kv_lora_rank"):
        parse_config({**_TINY, "qk_rope_head_dim": 16})
    # Fields known not to change size, unknown fields without a size word, and nulls are accepted.
    arch = parse_config({**_TINY, "partial_rotary_factor": 0.5, "attn_logit_softcapping": 50.0, "n_group": 8,
                         "topk_group": 4, "my_note": "kept", "num_mtp_layers": None})
    assert arch.hidden_size == 64


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
