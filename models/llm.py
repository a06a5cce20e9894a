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

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0


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


def parse_config(config: Mapping[str, Any]) -> LLMArchitecture:
    """Normalise a Hugging Face style config dict.

    Handles ``text_config`` nesting (multimodal wrappers), GPT-2 aliases
    (``n_layer``, ``n_embd``, ``n_head``, ``n_inner``), OPT's ``ffn_dim``, GQA
    (missing ``num_key_value_heads`` means multi-head attention), an explicit
    ``head_dim``, and MoE fields (``num_local_experts`` | ``num_experts``,
    ``num_experts_per_tok``, ``moe_intermediate_size``,
    ``shared_expert_intermediate_size``).

    Raises
    ------
    ConfigError
        Naming the field when a required size is missing or not a positive integer.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("config", f"must be a mapping of config fields, got {type(config).__name__}")
    cfg: dict[str, Any] = dict(config)
    if isinstance(cfg.get("text_config"), Mapping):
        # Wrapper configs keep the language model in text_config; its fields win.
        cfg = {**cfg, **cfg["text_config"]}
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

    experts = int(_pick(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    if experts < 0:
        raise ConfigError("num_local_experts", f"must be >= 0, got {experts}")
    k = int(_pick(cfg, "num_experts_per_tok", "num_experts_per_token", default=2 if experts else 0) or 0)
    if experts and not 0 < k <= experts:
        raise ConfigError("num_experts_per_tok", f"must be in 1..{experts}, got {k}")
    moe_inter = int(_pick(cfg, "moe_intermediate_size", default=intermediate) or intermediate) if experts else 0
    shared_inter = int(_pick(cfg, "shared_expert_intermediate_size", default=0) or 0)
    n_shared = int(_pick(cfg, "n_shared_experts", default=0) or 0)
    if n_shared and not shared_inter:
        shared_inter = n_shared * moe_inter

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
    )


def _mlp_params(arch: LLMArchitecture, inter: int) -> int:
    h = arch.hidden_size
    if arch.gated_mlp:
        return 3 * h * inter + (2 * inter + h if arch.mlp_bias else 0)
    return 2 * h * inter + (inter + h if arch.mlp_bias else 0)


def _build_nodes(arch: LLMArchitecture) -> tuple[LayerNode, ...]:
    h, nh, nkv, hd = arch.hidden_size, arch.num_attention_heads, arch.num_kv_heads, arch.head_dim
    norm_size = 2 * h if arch.layer_norm else h
    attn = h * nh * hd + 2 * h * nkv * hd + nh * hd * h
    attn += (nh * hd + 2 * nkv * hd) if arch.qkv_bias else 0
    attn += h if arch.o_bias else 0
    attn += 2 * hd if arch.qk_norm else 0
    norms = arch.norms_per_block * norm_size

    if arch.is_moe:
        expert = _mlp_params(arch, arch.moe_intermediate_size)
        shared = arch.hidden_size * arch.num_experts  # router
        if arch.shared_expert_intermediate_size:
            shared += _mlp_params(arch, arch.shared_expert_intermediate_size) + h  # + shared-expert gate
        dense_part = attn + norms + shared
        block_params = dense_part + arch.num_experts * expert
        block_active = dense_part + arch.experts_per_token * expert
    else:
        expert = 0
        block_params = block_active = attn + norms + _mlp_params(arch, arch.intermediate_size)

    kv_values = 2 * nkv * hd
    attn_coeff = 4.0 * nh * hd
    embed_params = arch.vocab_size * h + arch.learned_positions * h
    head_params = (0 if arch.tie_word_embeddings else arch.vocab_size * h) + norm_size

    nodes = [
        LayerNode("embed", "embed", -1, embed_params, embed_params, 0, 0, 0, 0.0, 0.0, 0, h),
    ]
    for i in range(arch.num_layers):
        nodes.append(
            LayerNode(
                f"block.{i}", "block", i, block_params, block_active, expert,
                arch.num_experts, arch.experts_per_token,
                2.0 * block_active, attn_coeff, kv_values, h,
            )
        )
    # A tied head multiplies by the embedding matrix: it has the FLOPs and streams the
    # bytes of a vocab x hidden matrix even though it stores no parameters of its own.
    head_matmul = arch.vocab_size * h
    nodes.append(
        LayerNode(
            "head", "head", arch.num_layers, head_params, head_matmul + norm_size, 0, 0, 0,
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

    def weight_bytes(self, fmt: NumberFormat) -> float:
        """Bytes of all weights in ``fmt``."""
        return self.params_total * fmt.bits_per_weight / 8.0

    def kv_bytes_per_token(self, kv_fmt: NumberFormat) -> float:
        """KV-cache bytes one token adds across all blocks."""
        return self.num_blocks * self.blocks[0].kv_values_per_token * kv_fmt.bytes_per_value

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
        a = self.arch
        h, nh, nkv, hd = a.hidden_size, a.num_attention_heads, a.num_kv_heads, a.head_dim
        attn = h * nh * hd * 2 + 2 * h * nkv * hd
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
                        graph.published_params_b, graph.published_active_params_b, graph.hf_repo)
    return graph
