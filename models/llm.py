"""The LLM as a chain of layer nodes, built from a Hugging Face style ``config.json``.

A model is ``embed -> block.0 -> ... -> block.{L-1} -> head``. Every node carries
what the cost model needs: parameters (total, and active per token for
mixture-of-experts), FLOPs per token, KV-cache values per token and the
activation values it hands to the next node. Byte counts follow from a
:mod:`models.formats` format, so one graph serves every quantisation.

Examples
--------
>>> from models import load_model
>>> m = load_model("llama-3-8b")
>>> round(m.params_total / 1e9, 2), m.num_blocks
(8.03, 32)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx

from models._catalog import catalog_dir
from models.config_fields import unsupported_fields
from models.errors import CatalogError, ConfigError
from models.formats import NumberFormat

__all__ = ["LLMArchitecture", "LayerNode", "LLMGraph", "load_model", "model_ids", "parse_config", "SIZE_FIELDS",
           "mlp_width_defaults"]

# Families whose blocks use a plain (ungated) two-matrix MLP, LayerNorm with bias,
# and biases on every projection.
_GPT_STYLE = {"opt", "gpt2", "gpt_neox", "gptj", "gpt_bigcode", "bloom", "falcon", "phi"}

# The sizes every config must give, each under any of the names families use (Llama's first).
SIZE_FIELDS: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "vocab_size": ("vocab_size",),
    "intermediate_size": ("intermediate_size", "ffn_dim", "n_inner"),  # see mlp_width_defaults
}


def mlp_width_defaults(model_type: str) -> bool:
    """Whether a ``model_type`` may leave ``intermediate_size`` out (GPT-style: 4 x hidden)."""
    return model_type.lower() in _GPT_STYLE
# Families with a bias on q, k and v only.
_QKV_BIAS = {"qwen2", "qwen2_moe", "qwen2_vl"}
# Extra RMSNorms: Gemma-2 normalises before and after both sublayers.
_NORMS_PER_BLOCK = {"gemma2": 4, "gemma3": 4}
# Per-head q/k RMSNorm (weights of size head_dim).
_QK_NORM = {"qwen3", "qwen3_moe", "gemma3"}


@dataclass(frozen=True)
class LLMArchitecture:
    """The fields of a model config that decide its size and cost, normalised.

    Built by :func:`parse_config`; names follow the Llama config where families differ.
    """

    model_type: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    gated_mlp: bool
    layer_norm: bool  # LayerNorm with bias (GPT style) rather than RMSNorm
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    norms_per_block: int
    qk_norm: bool
    num_experts: int  # 0 for a dense model
    experts_per_token: int
    moe_intermediate_size: int
    shared_expert_intermediate_size: int
    learned_positions: int  # rows of a learned position table (0 for RoPE)
    max_position_embeddings: int
    torch_dtype: str
    # Which blocks have routed experts (the others a dense MLP of intermediate_size): empty = all
    # when the model has experts.
    moe_layers: tuple[bool, ...] = ()
    shared_expert_gate: bool = False  # Qwen2-MoE gates its shared expert with a (hidden -> 1) linear
    # Multi-head latent attention (DeepSeek-V2/V3): K and V are rebuilt from a cached latent of
    # kv_lora_rank values plus one shared RoPE key of qk_rope_head_dim.
    kv_lora_rank: int = 0  # 0: ordinary multi-head / grouped-query attention
    q_lora_rank: int = 0  # 0: queries projected directly from the hidden state
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Tokens each block attends back over (a sliding window), 0 for full attention: empty = all full.
    attention_windows: tuple[int, ...] = ()
    final_norm: bool = True

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    def block_is_moe(self, index: int) -> bool:
        """Whether block ``index`` has routed experts."""
        if not self.is_moe:
            return False
        return self.moe_layers[index] if self.moe_layers else True

    def attention_window(self, index: int) -> int:
        """Sliding-window length of block ``index`` in tokens (0: it attends to the whole context)."""
        return self.attention_windows[index] if self.attention_windows else 0


@dataclass(frozen=True)
class LayerNode:
    """One node of the layer chain.

    ``params`` counts every weight the node stores; ``active_params`` those one
    token multiplies (they differ only for mixture-of-experts blocks, whose
    ``expert_params`` are per expert and included in ``params``).
    """

    name: str
    kind: str  # "embed" | "block" | "head"
    index: int  # block index; -1 for embed, L for head
    params: int
    active_params: int
    expert_params: int
    num_experts: int
    experts_per_token: int
    linear_flops_per_token: float
    attn_flops_per_context_token: float
    kv_values_per_token: int
    activation_values_per_token: int
    # Tokens the block attends back over (sliding window); 0 = the whole context. It caps both
    # the KV cache the block keeps and its attention FLOPs.
    attn_window_tokens: int = 0
    # Attention FLOPs per (query, context token) of one decode step, when it differs from
    # prefill's: latent attention multiplies the cached latent directly (weight absorption).
    decode_attn_flops_per_context_token: float | None = None
    attn_params: int = 0  # weights of the attention sublayer (for the sublayer graph)

    def attended_tokens(self, context_tokens: float) -> float:
        """Context tokens one query attends to (and the block keeps KV for) at ``context_tokens``."""
        return min(context_tokens, self.attn_window_tokens) if self.attn_window_tokens else context_tokens

    def causal_pairs(self, prompt_tokens: int) -> float:
        """(query, key) pairs of causal attention over a prompt: ``p (p + 1) / 2``, or with a
        window ``w < p``: ``w (w + 1) / 2 + (p - w) w``."""
        p, w = prompt_tokens, self.attn_window_tokens
        if not w or p <= w:
            return p * (p + 1) / 2.0
        return w * (w + 1) / 2.0 + (p - w) * w

    @property
    def decode_attn_flops(self) -> float:
        """Attention FLOPs per context token of one decode step."""
        if self.decode_attn_flops_per_context_token is None:
            return self.attn_flops_per_context_token
        return self.decode_attn_flops_per_context_token

    def weight_bytes(self, fmt: NumberFormat) -> float:
        """Bytes the node's weights occupy in format ``fmt``."""
        return self.params * fmt.bits_per_weight / 8.0

    def streamed_params(self, tokens: int) -> float:
        """Parameters read from memory by one forward step over ``tokens`` tokens.

        A dense node reads all of its weights once per step. A mixture-of-experts
        block reads its shared part and the experts the step's tokens select; with
        uniform routing the expected number of distinct experts touched by ``tokens``
        tokens choosing ``k`` of ``E`` is ``E * (1 - (1 - k/E) ** tokens)``. The
        embedding table is gathered, not streamed: one row per token.
        """
        if self.kind == "embed":
            return float(min(self.params, tokens * self.activation_values_per_token))
        if self.num_experts == 0:
            # active_params, not params: a tied head streams the embedding matrix it borrows.
            return float(self.active_params)
        shared = self.params - self.num_experts * self.expert_params
        touched = self.num_experts * (1.0 - (1.0 - self.experts_per_token / self.num_experts) ** tokens)
        return shared + touched * self.expert_params


def _pick(cfg: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in cfg and cfg[name] is not None:
            return cfg[name]
    return default


def _positive_int(cfg: Mapping[str, Any], names: tuple[str, ...], default: Any = None) -> int:
    value = _pick(cfg, *names, default=default)
    if value is None:
        raise ConfigError(names[0], "is required (a positive integer)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        raise ConfigError(names[0], f"must be a positive integer, got {value!r}")
    return int(value)


def _nonnegative_int(cfg: Mapping[str, Any], name: str, default: int = 0) -> int:
    value = cfg.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise ConfigError(name, f"must be an integer >= 0, got {value!r}")
    return int(value)


def _moe_layers(cfg: Mapping[str, Any], layers: int, experts: int) -> tuple[bool, ...]:
    """Which blocks have routed experts.

    DeepSeek: block ``i`` does when ``i >= first_k_dense_replace`` and ``i % moe_layer_freq == 0``
    (``modeling_deepseek.py``); Qwen2-/Qwen3-MoE: when ``(i + 1) % decoder_sparse_step == 0`` and
    ``i`` is not in ``mlp_only_layers`` (``modeling_qwen2_moe.py``). The others have a dense MLP.
    """
    if not experts:
        return ()
    first_dense = _nonnegative_int(cfg, "first_k_dense_replace")
    freq = cfg.get("moe_layer_freq", 1)
    if isinstance(freq, bool) or not isinstance(freq, int) or freq < 1:
        raise ConfigError("moe_layer_freq", f"must be a positive integer (every n-th block has experts), got {freq!r}")
    step = _positive_int(cfg, ("decoder_sparse_step",), default=1)
    only_mlp = cfg.get("mlp_only_layers") or []
    if not isinstance(only_mlp, list) or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < layers
                                            for i in only_mlp):
        raise ConfigError("mlp_only_layers", f"must list block indices in 0..{layers - 1}, got {only_mlp!r}")
    flags = tuple(i >= first_dense and i % freq == 0 and (i + 1) % step == 0 and i not in only_mlp
                  for i in range(layers))
    if not any(flags):
        raise ConfigError("first_k_dense_replace", "leaves no block with experts although the model has experts")
    return flags


_WINDOW_KINDS = {"sliding_attention": True, "full_attention": False}


def _attention_windows(cfg: Mapping[str, Any], model_type: str, layers: int) -> tuple[int, ...]:
    """Sliding-window length per block (0 = full attention), as the families' modelling code reads it.

    ``layer_types`` (newer configs) names each block's kind. Otherwise: Gemma 2 alternates,
    even blocks local (``Gemma2DecoderLayer.is_sliding = not layer_idx % 2``); Gemma 3 makes
    every ``sliding_window_pattern``-th block global (default 6); Qwen2 applies the window only
    with ``use_sliding_window`` and from block ``max_window_layers`` on; Mistral and Phi-3 apply
    ``sliding_window`` to every block.
    """
    window = cfg.get("sliding_window")
    kinds = cfg.get("layer_types")
    if window is None or window is False:
        if kinds is not None and any(k == "sliding_attention" for k in kinds if isinstance(k, str)):
            raise ConfigError("sliding_window", "is required (a positive integer) when layer_types has sliding layers")
        return ()
    if isinstance(window, bool) or not isinstance(window, (int, float)) or window != int(window) or window < 1:
        raise ConfigError("sliding_window", f"must be a positive integer (tokens) or null, got {window!r}")
    window = int(window)
    if cfg.get("use_sliding_window") is False:
        return ()
    if kinds is not None:
        if not isinstance(kinds, list) or len(kinds) != layers or any(k not in _WINDOW_KINDS for k in kinds):
            raise ConfigError("layer_types", f"must list {layers} entries, each one of {', '.join(_WINDOW_KINDS)} "
                                             f"(other attention kinds are not modelled), got {kinds!r}")
        return tuple(window if _WINDOW_KINDS[k] else 0 for k in kinds)
    if model_type == "gemma2":
        return tuple(window if i % 2 == 0 else 0 for i in range(layers))
    if model_type.startswith("gemma3"):
        pattern = _positive_int(cfg, ("sliding_window_pattern",), default=6)
        return tuple(0 if (i + 1) % pattern == 0 else window for i in range(layers))
    if cfg.get("use_sliding_window") is True and cfg.get("max_window_layers") is not None:
        first = _nonnegative_int(cfg, "max_window_layers")
        return tuple(window if i >= first else 0 for i in range(layers))
    return (window,) * layers


def _latent_attention(cfg: Mapping[str, Any]) -> dict[str, int]:
    """The multi-head latent attention sizes, or {} for ordinary attention."""
    if cfg.get("kv_lora_rank") is None:
        for name in ("qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "q_lora_rank"):
            if cfg.get(name) is not None:
                raise ConfigError(name, "is a latent-attention size: kv_lora_rank is required with it")
        return {}
    if cfg.get("attention_bias"):
        raise ConfigError("attention_bias", "biases on latent-attention projections are not modelled")
    sizes = {name: _positive_int(cfg, (name,)) for name in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
                                                             "v_head_dim")}
    sizes["q_lora_rank"] = 0 if cfg.get("q_lora_rank") is None else _positive_int(cfg, ("q_lora_rank",))
    return sizes


def parse_config(config: Mapping[str, Any]) -> LLMArchitecture:
    """Normalise a Hugging Face style config dict.

    Handles ``text_config`` nesting (multimodal wrappers), GPT-2 aliases
    (``n_layer``, ``n_embd``, ``n_head``, ``n_inner``), OPT's ``ffn_dim``, GQA
    (missing ``num_key_value_heads`` means multi-head attention), an explicit
    ``head_dim``, MoE fields (``num_local_experts`` | ``num_experts`` |
    ``n_routed_experts``, ``num_experts_per_tok``, ``moe_intermediate_size``,
    ``shared_expert_intermediate_size`` | ``n_shared_experts``) and which blocks
    have experts (``first_k_dense_replace``, ``moe_layer_freq``,
    ``decoder_sparse_step``, ``mlp_only_layers``), multi-head latent attention
    (``kv_lora_rank``, ``q_lora_rank``, ``qk_rope_head_dim``, ``qk_nope_head_dim``,
    ``v_head_dim``) and sliding windows (``sliding_window``, ``use_sliding_window``,
    ``max_window_layers``, ``layer_types``, Gemma's alternation). Every other field
    must be one known not to change size or time (:mod:`models.config_fields`).

    Raises
    ------
    ConfigError
        Naming the field when a required size is missing or not a positive integer,
        or when a field would change the model in a way llmplace does not model.

    Examples
    --------
    >>> a = parse_config({"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
    ...                   "intermediate_size": 128, "vocab_size": 100, "model_type": "gemma2",
    ...                   "sliding_window": 16})
    >>> a.attention_windows
    (16, 0, 16, 0)
    """
    if not isinstance(config, Mapping):
        raise ConfigError("config", f"must be a mapping of config fields, got {type(config).__name__}")
    cfg: dict[str, Any] = dict(config)
    if isinstance(cfg.get("text_config"), Mapping):
        # Wrapper configs keep the language model in text_config; its fields win.
        cfg = {**cfg, **cfg["text_config"]}
    for name, reason in unsupported_fields(cfg):
        raise ConfigError(name, reason)
    model_type = str(cfg.get("model_type", "llama")).lower()

    hidden = _positive_int(cfg, SIZE_FIELDS["hidden_size"])
    layers = _positive_int(cfg, SIZE_FIELDS["num_hidden_layers"])
    heads = _positive_int(cfg, SIZE_FIELDS["num_attention_heads"])
    kv_heads = _positive_int(cfg, ("num_key_value_heads", "n_head_kv", "num_kv_heads"), default=heads)
    if heads % kv_heads:
        raise ConfigError("num_key_value_heads", f"must divide num_attention_heads ({heads}), got {kv_heads}")
    head_dim = _positive_int(cfg, ("head_dim",), default=max(1, hidden // heads))
    gpt_style = model_type in _GPT_STYLE
    intermediate = _positive_int(cfg, SIZE_FIELDS["intermediate_size"], default=4 * hidden if gpt_style else None)
    vocab = _positive_int(cfg, SIZE_FIELDS["vocab_size"])
    projection = cfg.get("word_embed_proj_dim")
    if projection is not None and projection != hidden:
        raise ConfigError("word_embed_proj_dim", f"differs from hidden_size ({hidden}), got {projection!r}: OPT's "
                                                 "project_in / project_out matrices are not modelled")

    experts = int(_pick(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    if experts < 0:
        raise ConfigError("num_local_experts", f"must be >= 0, got {experts}")
    k = int(_pick(cfg, "num_experts_per_tok", "num_experts_per_token", default=2 if experts else 0) or 0)
    if experts and not 0 < k <= experts:
        raise ConfigError("num_experts_per_tok", f"must be in 1..{experts}, got {k}")
    moe_inter = int(_pick(cfg, "moe_intermediate_size", default=intermediate) or intermediate) if experts else 0
    shared_inter = int(_pick(cfg, "shared_expert_intermediate_size", default=0) or 0)
    gated_shared = bool(shared_inter)  # Qwen2-MoE names the width and gates the shared expert
    n_shared = int(_pick(cfg, "n_shared_experts", default=0) or 0)
    if n_shared and not shared_inter:
        shared_inter = n_shared * moe_inter  # DeepSeek: n_shared experts fused into one wider MLP

    # PretrainedConfig defaults tie_word_embeddings to True; Llama-family files set it explicitly.
    tie = bool(_pick(cfg, "tie_word_embeddings", default=True))
    bias_all = gpt_style and bool(_pick(cfg, "enable_bias", "bias", default=True))
    attention_bias = bool(cfg.get("attention_bias", False))
    learned_positions = 0
    max_pos = int(_pick(cfg, "max_position_embeddings", "n_positions", "n_ctx", default=0) or 0)
    if model_type == "opt":
        learned_positions = max_pos + 2  # OPT offsets positions by 2
    elif model_type in ("gpt2", "gpt_bigcode"):
        learned_positions = max_pos
    dtype = str(_pick(cfg, "torch_dtype", "dtype", default="float16")).replace("torch.", "")
    latent = _latent_attention(cfg)

    return LLMArchitecture(
        model_type=model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        gated_mlp=not gpt_style,
        layer_norm=gpt_style,
        qkv_bias=bias_all or attention_bias or model_type in _QKV_BIAS,
        o_bias=bias_all or attention_bias,
        mlp_bias=bias_all or bool(cfg.get("mlp_bias", False)),
        norms_per_block=_NORMS_PER_BLOCK.get(model_type, 2),
        qk_norm=model_type in _QK_NORM,
        num_experts=experts,
        experts_per_token=k,
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=shared_inter,
        learned_positions=learned_positions,
        max_position_embeddings=max_pos,
        torch_dtype=dtype,
        moe_layers=_moe_layers(cfg, layers, experts),
        shared_expert_gate=gated_shared,
        attention_windows=_attention_windows(cfg, model_type, layers),
        final_norm=not bool(cfg.get("_remove_final_layer_norm", False)),
        **latent,
    )


def _mlp_params(arch: LLMArchitecture, inter: int) -> int:
    h = arch.hidden_size
    if arch.gated_mlp:
        return 3 * h * inter + (2 * inter + h if arch.mlp_bias else 0)
    return 2 * h * inter + (inter + h if arch.mlp_bias else 0)


@dataclass(frozen=True)
class _Attention:
    params: int
    kv_values_per_token: int
    prefill_flops_per_context_token: float  # per query
    decode_flops_per_context_token: float


def _attention(arch: LLMArchitecture) -> _Attention:
    """Weights, cached values per token and FLOPs per (query, context token) of one block's attention.

    Grouped-query attention caches K and V of ``n_kv`` heads (``2 n_kv d``) and does
    ``4 n_h d`` FLOPs per pair (scores and weighted values). Latent attention
    (DeepSeek-V2, arXiv:2405.04434 section 2.1) caches the ``kv_lora_rank`` latent and
    one shared RoPE key (``kv_lora_rank + qk_rope_head_dim`` values, 576 for DeepSeek-V2/V3);
    prefill expands K and V (``2 n_h (d_nope + d_rope) + 2 n_h d_v`` per pair), while decode
    multiplies the latent directly with the up-projections absorbed into the query and output
    (``2 n_h (r + d_rope) + 2 n_h r``), as vLLM's MLA backend and FlashMLA do.
    """
    h, nh = arch.hidden_size, arch.num_attention_heads
    if arch.is_mla:
        r, rope, nope, v = arch.kv_lora_rank, arch.qk_rope_head_dim, arch.qk_nope_head_dim, arch.v_head_dim
        q_dim = nh * (nope + rope)
        q = arch.q_lora_rank * (h + 1) + arch.q_lora_rank * q_dim if arch.q_lora_rank else h * q_dim
        params = q + h * (r + rope) + r + r * nh * (nope + v) + nh * v * h
        return _Attention(params, r + rope, 2.0 * nh * (nope + rope) + 2.0 * nh * v,
                          2.0 * nh * (r + rope) + 2.0 * nh * r)
    nkv, hd = arch.num_kv_heads, arch.head_dim
    params = h * nh * hd + 2 * h * nkv * hd + nh * hd * h
    params += (nh * hd + 2 * nkv * hd) if arch.qkv_bias else 0
    params += h if arch.o_bias else 0
    params += 2 * hd if arch.qk_norm else 0
    return _Attention(params, 2 * nkv * hd, 4.0 * nh * hd, 4.0 * nh * hd)


def _block_mlp(arch: LLMArchitecture, moe: bool) -> tuple[int, int, int]:
    """Stored and active parameters of one block's MLP, and the parameters of one routed expert."""
    if not moe:
        dense = _mlp_params(arch, arch.intermediate_size)
        return dense, dense, 0
    h = arch.hidden_size
    expert = _mlp_params(arch, arch.moe_intermediate_size)
    shared = h * arch.num_experts  # router
    if arch.shared_expert_intermediate_size:
        shared += _mlp_params(arch, arch.shared_expert_intermediate_size)
        shared += h if arch.shared_expert_gate else 0
    return shared + arch.num_experts * expert, shared + arch.experts_per_token * expert, expert


def _build_nodes(arch: LLMArchitecture) -> tuple[LayerNode, ...]:
    h = arch.hidden_size
    norm_size = 2 * h if arch.layer_norm else h
    attention = _attention(arch)
    norms = arch.norms_per_block * norm_size
    embed_params = arch.vocab_size * h + arch.learned_positions * h
    final_norm = norm_size if arch.final_norm else 0
    head_params = (0 if arch.tie_word_embeddings else arch.vocab_size * h) + final_norm

    nodes = [
        LayerNode("embed", "embed", -1, embed_params, embed_params, 0, 0, 0, 0.0, 0.0, 0, h),
    ]
    for i in range(arch.num_layers):
        moe = arch.block_is_moe(i)
        mlp, mlp_active, expert = _block_mlp(arch, moe)
        dense_part = attention.params + norms
        nodes.append(
            LayerNode(
                f"block.{i}", "block", i, dense_part + mlp, dense_part + mlp_active, expert,
                arch.num_experts if moe else 0, arch.experts_per_token if moe else 0,
                2.0 * (dense_part + mlp_active), attention.prefill_flops_per_context_token,
                attention.kv_values_per_token, h, attn_window_tokens=arch.attention_window(i),
                decode_attn_flops_per_context_token=attention.decode_flops_per_context_token,
                attn_params=attention.params,
            )
        )
    # A tied head multiplies by the embedding matrix: it has the FLOPs and streams the
    # bytes of a vocab x hidden matrix even though it stores no parameters of its own.
    head_matmul = arch.vocab_size * h
    nodes.append(
        LayerNode(
            "head", "head", arch.num_layers, head_params, head_matmul + final_norm, 0, 0, 0,
            2.0 * head_matmul, 0.0, 0, h,
        )
    )
    return tuple(nodes)


@dataclass(frozen=True)
class LLMGraph:
    """An LLM as a chain of :class:`LayerNode`.

    Attributes
    ----------
    id : str
        Catalog id or the name given by the caller.
    arch : LLMArchitecture
        The normalised config.
    nodes : tuple of LayerNode
        ``embed``, ``block.0`` ... ``block.{L-1}``, ``head``.
    source : str
        Where the config came from.
    hf_repo : str
        The Hugging Face repository the catalog's config was taken from (``""`` for
        a config given inline or in a file).
    """

    id: str
    name: str
    arch: LLMArchitecture
    nodes: tuple[LayerNode, ...]
    source: str = ""
    published_params_b: float | None = None
    published_active_params_b: float | None = None
    # Parts the publisher's active count leaves out (see params_active_counted).
    published_active_excludes: tuple[str, ...] = ()
    hf_repo: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], model_id: str = "custom", name: str | None = None,
                    source: str = "") -> LLMGraph:
        """Build the graph of a config dict."""
        arch = parse_config(config)
        meta = config.get("_llmplace", {}) if isinstance(config, Mapping) else {}
        return cls(
            id=model_id,
            name=name or meta.get("name", model_id),
            arch=arch,
            nodes=_build_nodes(arch),
            source=source or meta.get("config_source", ""),
            published_params_b=meta.get("published_params_b"),
            published_active_params_b=meta.get("published_active_params_b"),
            published_active_excludes=tuple(meta.get("published_active_excludes", ())),
            hf_repo=str(meta.get("hf_repo") or ""),
        )

    @property
    def num_blocks(self) -> int:
        return self.arch.num_layers

    @property
    def embed(self) -> LayerNode:
        return self.nodes[0]

    @property
    def head(self) -> LayerNode:
        return self.nodes[-1]

    @property
    def blocks(self) -> tuple[LayerNode, ...]:
        return self.nodes[1:-1]

    @cached_property
    def params_total(self) -> int:
        """Stored parameters (a tied head adds none)."""
        return sum(n.params for n in self.nodes)

    @cached_property
    def params_active(self) -> int:
        """Parameters one token multiplies: MoE counts the selected experts only.

        The tied embedding matrix is counted once, as published counts do.
        """
        total = sum(n.active_params for n in self.nodes)
        if self.arch.tie_word_embeddings:
            total -= self.arch.vocab_size * self.arch.hidden_size
        return total

    def params_active_counted(self, excludes: tuple[str, ...] = ()) -> int:
        """:attr:`params_active` under a publisher's convention: ``"input_embedding"`` in
        ``excludes`` leaves out the embedding table, which is gathered rather than multiplied
        (DeepSeek's "activated parameters" do; Mixtral's and Qwen3's count it).

        Examples
        --------
        >>> from models import load_model
        >>> g = load_model("deepseek-v2-lite")
        >>> round(g.params_active_counted(("input_embedding",)) / 1e9, 2)
        2.45
        """
        unknown = set(excludes) - {"input_embedding"}
        if unknown:
            raise ValueError(f"unknown part(s) to exclude: {', '.join(sorted(unknown))} (known: input_embedding)")
        total = self.params_active
        if "input_embedding" in excludes and not self.arch.tie_word_embeddings:
            total -= self.embed.params
        return total

    def weight_bytes(self, fmt: NumberFormat) -> float:
        """Bytes of all weights in ``fmt``."""
        return self.params_total * fmt.bits_per_weight / 8.0

    def kv_bytes_per_token(self, kv_fmt: NumberFormat) -> float:
        """KV-cache bytes one token adds across all blocks, before any sliding window drops it.

        Examples
        --------
        >>> from models import load_model, kv_format
        >>> load_model("deepseek-v2-lite").kv_bytes_per_token(kv_format("fp16")) / 27   # 576 values, 2 bytes
        1152.0
        """
        return sum(b.kv_values_per_token for b in self.blocks) * kv_fmt.bytes_per_value

    def kv_bytes(self, kv_fmt: NumberFormat, context_tokens: int) -> float:
        """KV-cache bytes of one sequence of ``context_tokens`` across all blocks: a block with a
        sliding window keeps at most the window's tokens.

        Examples
        --------
        >>> from models import load_model, kv_format
        >>> m = load_model("mistral-7b")
        >>> m.kv_bytes(kv_format("fp16"), 32768) == m.kv_bytes(kv_format("fp16"), 4096)
        True
        """
        return sum(b.attended_tokens(context_tokens) * b.kv_values_per_token for b in self.blocks) \
            * kv_fmt.bytes_per_value

    def to_networkx(self, granularity: str = "block") -> nx.DiGraph:
        """The layer chain as a :class:`networkx.DiGraph`.

        Parameters
        ----------
        granularity : {"block", "sublayer"}
            ``"sublayer"`` splits each block into ``block.i.attn`` and ``block.i.mlp``.

        Examples
        --------
        >>> from models import load_model
        >>> g = load_model("tinyllama-1.1b").to_networkx()
        >>> g.number_of_nodes(), next(iter(g.successors("embed")))
        (24, 'block.0')
        """
        if granularity not in ("block", "sublayer"):
            raise ValueError(f"granularity must be 'block' or 'sublayer', got {granularity!r}")
        g = nx.DiGraph(model=self.id)
        previous = None
        for node in self.nodes:
            attrs = {
                "kind": node.kind,
                "index": node.index,
                "params": node.params,
                "active_params": node.active_params,
                "flops_per_token": node.linear_flops_per_token,
                "attn_flops_per_context_token": node.attn_flops_per_context_token,
                "kv_values_per_token": node.kv_values_per_token,
                "attn_window_tokens": node.attn_window_tokens,
                "activation_values_per_token": node.activation_values_per_token,
            }
            if granularity == "sublayer" and node.kind == "block":
                parts = self._sublayer_split(node)
                for suffix, share in parts:
                    name = f"{node.name}.{suffix}"
                    g.add_node(name, **{**attrs, **share})
                    if previous is not None:
                        g.add_edge(previous, name, activation_values_per_token=node.activation_values_per_token)
                    previous = name
                continue
            g.add_node(node.name, **attrs)
            if previous is not None:
                g.add_edge(previous, node.name, activation_values_per_token=node.activation_values_per_token)
            previous = node.name
        return g

    def _sublayer_split(self, node: LayerNode) -> list[tuple[str, dict[str, Any]]]:
        attn = node.attn_params
        mlp_total = node.params - attn
        mlp_active = node.active_params - attn
        return [
            ("attn", {"params": attn, "active_params": attn, "flops_per_token": 2.0 * attn,
                      "kv_values_per_token": node.kv_values_per_token}),
            ("mlp", {"params": mlp_total, "active_params": mlp_active, "flops_per_token": 2.0 * mlp_active,
                     "attn_flops_per_context_token": 0.0, "kv_values_per_token": 0}),
        ]


def model_ids() -> list[str]:
    """Ids of the models in the catalog."""
    return sorted(p.stem for p in catalog_dir("llms").glob("*.json"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ConfigError("config_file", f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise ConfigError("config_file", f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError("config_file", f"{path} must hold a JSON object")
    return data


_cache: dict[str, LLMGraph] = {}


def load_model(spec: str | Path | Mapping[str, Any], model_id: str | None = None) -> LLMGraph:
    """Build an :class:`LLMGraph` from a catalog id, a config file, or a config dict.

    Parameters
    ----------
    spec : str, Path or mapping
        A catalog id (``"llama-3-8b"``), a path to a ``config.json``, or its dict.
    model_id : str, optional
        The id to give the model (defaults to the catalog id or file stem).

    Raises
    ------
    CatalogError
        For an unknown catalog id.
    ConfigError
        For a config with a missing or invalid field.
    """
    if isinstance(spec, Mapping):
        return LLMGraph.from_config(spec, model_id or str(spec.get("_llmplace", {}).get("id", "custom")))
    path = Path(spec)
    if isinstance(spec, Path) or path.suffix == ".json":
        return LLMGraph.from_config(_read_json(path), model_id or path.stem, source=str(path))
    key = str(spec)
    if key not in _cache:
        file = catalog_dir("llms") / f"{key}.json"
        if not file.is_file():
            raise CatalogError("model", key, model_ids())
        _cache[key] = LLMGraph.from_config(_read_json(file), key)
    graph = _cache[key]
    if model_id and model_id != graph.id:
        return LLMGraph(model_id, graph.name, graph.arch, graph.nodes, graph.source,
                        graph.published_params_b, graph.published_active_params_b, graph.published_active_excludes,
                        graph.hf_repo)
    return graph
