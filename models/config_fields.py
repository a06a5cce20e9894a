"""Which ``config.json`` fields change a model's size or time, and which do not.

A field llmplace does not read could change the answer silently (a vision tower's
weights, a latent-attention rank, a layer pattern), so every field of a config is
in one of three sets:

- :data:`READ_FIELDS`: read by :func:`models.llm.parse_config`; they decide
  parameter counts, FLOPs or the KV cache;
- :data:`NO_SIZE_EFFECT_FIELDS`: known not to change the size of any weight or
  KV entry nor the work per token, each with the reason;
- :data:`REFUSED_FIELDS`: known to change size or time in a way llmplace does not
  model; a config that sets them is refused, with the reason.

**The rule for any other field.** A field in none of the three sets is refused
when its name *looks size-related*: one of its ``_``-separated words is in
:data:`SIZE_WORDS` (``num_mtp_layers``, ``expert_layer_period``,
``vision_hidden_size``) and its value is not ``null``. Any other unknown field
(``my_note``, ``use_return_dict``) is accepted: a name without a size word does
not describe a shape. Adding support for a field means moving it to
:data:`READ_FIELDS` and modelling it; confirming it is harmless means adding it
to :data:`NO_SIZE_EFFECT_FIELDS` with the reason.

Examples
--------
>>> unsupported_fields({"hidden_size": 8, "num_mtp_layers": 2, "my_note": "x"})
[('num_mtp_layers', "unknown config field that looks size-related (its name has 'num', 'layers'): llmplace cannot tell what it changes, so the config is refused rather than sized without it; remove it if it does not change the model's size or time")]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["READ_FIELDS", "NO_SIZE_EFFECT_FIELDS", "REFUSED_FIELDS", "SIZE_WORDS", "unsupported_fields"]

READ_FIELDS = frozenset({
    "model_type", "text_config",
    # sizes
    "hidden_size", "n_embd", "d_model", "num_hidden_layers", "n_layer", "num_layers", "num_attention_heads", "n_head",
    "num_key_value_heads", "n_head_kv", "num_kv_heads", "head_dim", "intermediate_size", "ffn_dim", "n_inner",
    "vocab_size", "max_position_embeddings", "n_positions", "n_ctx", "tie_word_embeddings", "word_embed_proj_dim",
    "_remove_final_layer_norm",
    # biases
    "attention_bias", "mlp_bias", "bias", "enable_bias",
    # mixture of experts, and which layers have experts
    "num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok", "num_experts_per_token",
    "moe_intermediate_size", "shared_expert_intermediate_size", "n_shared_experts", "first_k_dense_replace",
    "moe_layer_freq", "decoder_sparse_step", "mlp_only_layers",
    # multi-head latent attention (DeepSeek-V2/V3)
    "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
    # sliding-window attention
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types", "sliding_window_pattern",
    # precision of the published weights
    "torch_dtype", "dtype",
})

_NO_WEIGHTS = "changes no weight or KV shape and no work per token"
_TRAINING = "used only in training"
_NUMERICS = "a numerical detail of an existing operation: no weights, no KV, no extra matrix products"
_BOOKKEEPING = "bookkeeping of the file or the tokenizer"

NO_SIZE_EFFECT_FIELDS: dict[str, str] = {
    **{k: _BOOKKEEPING for k in (
        "architectures", "auto_map", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id",
        "pad_token_id", "sep_token_id", "decoder_start_token_id", "tokenizer_class", "use_cache", "prefix",
        "return_dict", "is_decoder", "output_attentions", "output_hidden_states", "_llmplace",
        "cache_implementation", "pretraining_tp",
    )},
    **{k: _TRAINING for k in (
        "initializer_range", "init_std", "attention_dropout", "dropout", "activation_dropout", "embd_pdrop",
        "resid_pdrop", "attn_pdrop", "hidden_dropout", "layerdrop", "router_aux_loss_coef", "aux_loss_alpha",
        "seq_aux", "output_router_logits", "router_jitter_noise", "router_z_loss_coef",
    )},
    **{k: _NUMERICS for k in (
        "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "rope_scaling", "rope_parameters",
        "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar", "norm_topk_prob",
        "routed_scaling_factor", "scoring_func", "topk_method", "do_layer_norm_before",
        "layer_norm_elementwise_affine", "use_mrope",
    )},
    "hidden_act": "the activation function; whether the MLP is gated is decided by the model family",
    "hidden_activation": "the activation function; whether the MLP is gated is decided by the model family",
    "activation_function": "the activation function; whether the MLP is gated is decided by the model family",
    "partial_rotary_factor": "how many of a head's dimensions are rotated: " + _NO_WEIGHTS,
    "rotary_pct": "how many of a head's dimensions are rotated: " + _NO_WEIGHTS,
    "original_max_position_embeddings": "the pre-training context of RoPE scaling: " + _NO_WEIGHTS,
    "max_sequence_length": "a context limit of the tokenizer or trainer: " + _NO_WEIGHTS,
    "n_group": "group-limited routing (DeepSeek): restricts which experts a token may choose, not how many; "
               "every expert stays equally likely, so the experts a step touches are unchanged",
    "topk_group": "group-limited routing (DeepSeek): restricts which experts a token may choose, not how many",
    "ep_size": "expert parallelism of the training or serving run, not the model",
    "num_nextn_predict_layers": "multi-token-prediction modules (DeepSeek-V3) serve speculative decoding only, "
                                "which llmplace does not model; published totals (671 B) exclude them",
    "output_projection": "OPT's flag for an LM head, which every causal LM here has",
}

REFUSED_FIELDS: dict[str, str] = {
    "quantization_config": "a pre-quantised checkpoint: llmplace sizes weights from weight_format, so give the "
                           "format there (e.g. w4a16 for AWQ/GPTQ) and remove quantization_config",
    "vision_config": "a vision encoder's weights and image tokens are not modelled; give the language model's "
                     "config (its text_config) alone",
    "audio_config": "an audio encoder's weights are not modelled; give the language model's config alone",
}

# Words that, in a field's name, say it describes a shape or a count of something.
SIZE_WORDS = frozenset({
    "size", "sizes", "dim", "dims", "num", "n", "rank", "layer", "layers", "head", "heads", "expert", "experts",
    "window", "group", "groups", "freq", "step", "replace", "topk", "width", "depth", "vocab", "kv", "lora",
    "inter", "intermediate", "ffn", "hidden", "embd", "embed", "embedding", "embeddings", "proj", "block",
    "blocks", "sparse", "dense", "moe", "mlp", "attn", "attention", "chunk", "ratio", "channels", "states",
    "nextn", "bits", "quant", "quantization", "period", "offset", "interleave", "shared", "conv", "ssm", "mamba",
    "linear", "latent", "compress", "tokens",
})


def _size_words(name: str) -> list[str]:
    return [w for w in name.lower().lstrip("_").split("_") if w in SIZE_WORDS]


def unsupported_fields(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Fields of ``config`` that llmplace must refuse, each with the reason (see the module docstring)."""
    out = []
    for name, value in config.items():
        if name in READ_FIELDS or name in NO_SIZE_EFFECT_FIELDS or value is None:
            continue
        if name in REFUSED_FIELDS:
            out.append((name, REFUSED_FIELDS[name]))
            continue
        words = _size_words(name)
        if words:
            out.append((name, "unknown config field that looks size-related (its name has "
                              f"{', '.join(repr(w) for w in words)}): llmplace cannot tell what it changes, so the "
                              "config is refused rather than sized without it; remove it if it does not change "
                              "the model's size or time"))
    return out
