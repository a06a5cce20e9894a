"""The per-node physics of the cost model: roofline times, weights, KV cache and workspace.

This module is the one place where llmplace turns a model, a device and a
request into seconds, bytes and joules. :func:`placement.evaluate` and every
solver use it; solvers read its numpy tables (:class:`BlockCosts`,
:class:`TransferCosts`) once and search over them.

Per node (embedding, decoder block or LM head) and per forward step, time is a
roofline: the larger of compute time and memory time,

    t = max(FLOPs / rate(tokens), bytes / (bandwidth * eta_mem)),
    rate(n) = max(peak * eta_compute(n), vector * eta_compute),

plus a per-block launch overhead. Summing per node rather than per shard keeps
each block's own bottleneck (blocks run one after another) and makes a shard's
time additive in its blocks, which is what lets a DP or an ILP optimise it
exactly. A shard adds one fixed per-step overhead.

- ``eta_compute(n)`` rises with the tokens ``n`` a step multiplies (a matrix
  unit's tiles fill up); with few tokens engines switch to matrix-vector kernels
  on the vector units, so the rate never drops below the unit's fp32 (vector)
  peak ``vector`` times ``eta_compute``. Without this floor a one-token decode
  step would come out compute-bound on a GPU whose ``eta_compute(1)`` is tiny.
- ``peak`` is the unit's figure for the format's compute precision, doubled when
  the engine accumulates fp16 products in fp16 on a device class whose catalog
  figure is the half-rate FP32-accumulate one (:meth:`EngineProfile.peak_scale`).
- The routed experts of a mixture-of-experts block run their own products over
  the tokens routed to each, ``n k / touched(n)``, at that size's efficiency.
- An engine marked ``dequantize_prefill`` (llama.cpp's CUDA prefill) can expand
  quantised block weights to fp16 in memory, which costs each prefill step
  ``streamed x (bpw + 2 bytes) / (bandwidth * eta_mem)`` and makes its products
  read fp16 weights, or multiply the quantised weights directly with
  matrix-vector kernels at the vector rate; per block it takes the faster.

- **Prefill** of ``B`` prompts of ``p`` tokens processes ``n = B p`` tokens in
  ``ceil(n / max_tokens_per_step)`` steps; every step re-reads the weights.
  Attention is causal: ``B * 4 * n_heads * head_dim * p (p + 1) / 2`` FLOPs per
  block. Only the last token of each prompt goes through the LM head.
- **Decode** of one token for ``B`` sequences at the mean context of the
  generation, ``c = p + g / 2``, reads the weights the batch touches (a
  mixture-of-experts block reads only the experts selected) and ``B c`` tokens
  of KV cache per block.
- **Memory** of a shard: weights + KV reservation (sequences x context x KV
  bytes per token, per block) + activation workspace of a prefill step (+ the
  logits if the shard has the head); each device adds its engine's runtime
  overhead once. Memory is in GiB (2**30 bytes), as capacities are marketed.
- **Transfers** take the topology's best path: the prompt's token ids from the
  source to the first shard, ``B p`` activations between consecutive shards at
  prefill and ``B`` per decode step, the sampled token from the last shard back
  to the first (the autoregressive loop) and to the source.

Blocks are indexed ``0 .. L-1``; the embedding's cost is folded into block 0 and
the head's into block ``L-1``, as the shard holding those blocks holds them.
A tied head stores a copy of the embedding matrix unless the same shard holds
the embedding, so :attr:`BlockCosts.tied_head_bytes` is subtracted for a shard
holding every block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models import DeviceSpec, EngineProfile, LLMGraph, Node, NumberFormat, engine
from placement.problem import ModelSpec, RequestClass

__all__ = [
    "GIB", "TOKEN_ID_BYTES", "ACTIVATION_BYTES",
    "ExecutionRates", "execution_rates", "NodeTimes", "node_times", "fold_nodes",
    "workspace_bytes", "kv_bytes_per_block_token", "kv_reservation_bytes", "kv_concurrency", "wave_batches",
    "runtime_bytes",
    "block_weight_bytes", "shard_weight_bytes",
]

GIB = float(2**30)
TOKEN_ID_BYTES = 4
ACTIVATION_BYTES = 2  # activations cross the network in fp16


@dataclass(frozen=True)
class ExecutionRates:
    """How fast one node runs one weight format under its engine."""

    peak_flops: float
    bandwidth_bytes_s: float
    profile: EngineProfile
    precision: str
    unit: str
    vector_flops: float = 0.0  # the unit's fp32 (vector) rate, which matrix-vector kernels use


def execution_rates(node: Node, fmt: NumberFormat) -> ExecutionRates:
    """Effective peak FLOP/s and bandwidth of ``node`` for ``fmt``, with its engine profile.

    The engine chooses the compute unit (``qnn`` runs on a phone's NPU); a node of
    ``count`` accelerators scales by ``count`` times the engine's tensor-parallel
    efficiency. On the cpu unit, ``node.threads`` below the device's ``cpu_cores`` scales
    compute by their share (:meth:`DeviceSpec.cpu_share`); memory bandwidth is not scaled,
    for want of a per-core bandwidth figure in the catalog.
    """
    spec: DeviceSpec = node.spec
    eng = engine(node.engine)
    unit = eng.fallback.unit if eng.fallback.unit in spec.units() else spec.default_unit
    profile = eng.profile(spec.device_class, unit, fmt.family)
    precision = profile.compute_precision or fmt.compute_precision
    scale = node.count * (profile.tp_efficiency if node.count > 1 else 1.0)
    # A CPU engine running fewer threads than cores reaches that share of the cores' peak.
    compute_scale = scale * (spec.cpu_share(node.threads) if unit == "cpu" else 1.0)
    peak = spec.peak_tflops(precision, unit) * profile.peak_scale(spec.device_class, precision)
    vector = dict(dict(spec.compute).get(unit, ())).get("fp32", 0.0)
    return ExecutionRates(
        peak_flops=peak * 1e12 * compute_scale,
        bandwidth_bytes_s=spec.memory_bandwidth_gbs * 1e9 * scale,
        profile=profile,
        precision=precision,
        unit=unit,
        vector_flops=vector * 1e12 * compute_scale,
    )


def runtime_bytes(node: Node, rates: ExecutionRates) -> float:
    """The engine's runtime overhead on ``node`` (context, graphs, allocator slack)."""
    return rates.profile.runtime_overhead_gb * GIB * node.count


def block_weight_bytes(model: ModelSpec, fmt: NumberFormat) -> tuple[np.ndarray, float]:
    """Weights per block ``[L]`` in ``fmt`` (embedding folded into block 0, head and a
    tied head's copy of the embedding into block L-1), and that copy's size."""
    graph = model.graph
    weights = fold_nodes(np.array([n.weight_bytes(fmt) for n in graph.nodes]))
    tied = graph.arch.vocab_size * graph.arch.hidden_size * fmt.bytes_per_value if graph.arch.tie_word_embeddings else 0.0
    weights[-1] += tied
    return weights, tied


def shard_weight_bytes(model: ModelSpec, fmt: NumberFormat, a: int, b: int) -> float:
    """Weight bytes of a shard holding blocks ``[a, b)`` of ``model``."""
    weights, tied = block_weight_bytes(model, fmt)
    total = float(weights[a:b].sum())
    return total - tied if a == 0 and b == model.num_blocks else total


def kv_bytes_per_block_token(model: ModelSpec) -> float:
    """KV-cache bytes one token adds to a block, averaged over the blocks, before any sliding
    window drops it (an upper bound per token; :func:`kv_reservation_bytes` applies windows)."""
    blocks = model.graph.blocks
    return sum(b.kv_values_per_token for b in blocks) / len(blocks) * model.kv_fmt.bytes_per_value


def kv_reservation_bytes(model: ModelSpec, batch: int, context_tokens: int) -> np.ndarray:
    """KV cache each block ``[L]`` keeps for ``batch`` sequences of ``context_tokens`` tokens.

    A block with a sliding window keeps at most the window's tokens (Mistral 7B: 4096;
    Gemma 2: every other block), as engines with a windowed cache do (vLLM's sliding-window
    block tables, llama.cpp's SWA cache, TensorRT-LLM's cyclic KV cache). Latent attention
    keeps its latent (576 values per token for DeepSeek-V2/V3).

    Examples
    --------
    >>> from models import load_model
    >>> from placement.problem import ModelSpec
    >>> m = ModelSpec("gemma-2-9b", load_model("gemma-2-9b"), "q4_k_m")
    >>> kv = kv_reservation_bytes(m, batch=1, context_tokens=8192)
    >>> int(kv[0]), int(kv[1])   # a local block holds 4096 tokens, a global one all 8192
    (33554432, 67108864)
    """
    per_value = model.kv_fmt.bytes_per_value
    return np.array([batch * b.attended_tokens(context_tokens) * b.kv_values_per_token * per_value
                     for b in model.graph.blocks])


def kv_concurrency(model: ModelSpec, fmt: NumberFormat, node: Node, rates: ExecutionRates,
                   request: RequestClass, context_tokens: int) -> int:
    """How many of ``request``'s sequences an engine runs at once with the whole model on ``node``.

    Serving engines size a KV-cache pool when they start (``EngineProfile.kv_memory_fraction``
    of the memory left after weights, workspace and runtime) and admit a sequence only when the
    pool has room for it, so a batch whose cache does not fit runs in waves (vLLM's scheduler,
    TensorRT-LLM's capacity scheduler, TurboMind's block manager). The reservation per sequence
    is its full context: with equal lengths every running sequence grows to it. At least one
    sequence runs; whether it fits at all is the memory check's business. Engines without a pool
    (``kv_memory_fraction`` None, llama.cpp) run the whole batch.

    Examples
    --------
    >>> from models import Node, device_spec, load_model, weight_format
    >>> from placement.problem import ModelSpec, RequestClass
    >>> m = ModelSpec("llama-2-7b", load_model("llama-2-7b"), "fp16")
    >>> node = Node("gpu", device_spec("a100-sxm-80gb"), engine="lmdeploy")
    >>> req = RequestClass("r", "gpu", "llama-2-7b", 2048, 2048, batch=64)
    >>> kv_concurrency(m, weight_format("fp16"), node, execution_rates(node, weight_format("fp16")), req, 4096)
    27
    """
    fraction = rates.profile.kv_memory_fraction
    if fraction is None:
        return request.batch
    L = model.num_blocks
    workspace, head = workspace_bytes(model.graph, request, context_tokens, rates.profile.max_tokens_per_step)
    free = (node.usable_memory_gb * GIB - shard_weight_bytes(model, fmt, 0, L) - workspace - head
            - runtime_bytes(node, rates))
    per_sequence = float(kv_reservation_bytes(model, 1, context_tokens).sum())
    fitting = int(max(free, 0.0) * fraction // per_sequence) if per_sequence > 0 else request.batch
    return max(1, min(request.batch, fitting))


def wave_batches(batch: int, concurrency: int) -> tuple[int, ...]:
    """The batches a run of ``batch`` sequences takes when ``concurrency`` run at once.

    >>> wave_batches(64, 27)
    (27, 27, 10)
    """
    full, rest = divmod(batch, concurrency)
    return (concurrency,) * full + ((rest,) if rest else ())


def workspace_bytes(graph: LLMGraph, request: RequestClass, context_tokens: int,
                    max_tokens_per_step: int) -> tuple[float, float]:
    """Activation workspace of one prefill step, and the extra for the head's logits.

    fp32 buffers for the step's tokens: residual, normed input and attention
    output (3 h), the MLP's up and gate projections (2 I active), and one row of
    attention scores per head over the context (engines without flash attention
    materialise it). The head adds fp32 logits for one token per sequence.
    """
    a = graph.arch
    tokens = min(request.batch * request.prompt_tokens, max_tokens_per_step)
    inter = (a.experts_per_token * a.moe_intermediate_size + a.shared_expert_intermediate_size
             if a.is_moe else a.intermediate_size)
    per_token = 4.0 * (3 * a.hidden_size + 2 * inter + a.num_attention_heads * context_tokens)
    logits = 4.0 * request.batch * a.vocab_size
    return tokens * per_token, logits


def _node_arrays(graph: LLMGraph) -> tuple[np.ndarray, np.ndarray]:
    lin = np.array([n.linear_flops_per_token for n in graph.nodes])
    kv = np.array([n.kv_values_per_token for n in graph.nodes], dtype=float)
    return lin, kv


# Bytes an engine without flash attention moves per attention score: it writes the fp32 scores
# (ggml_mul_mat of K and Q), reads and writes them in the softmax, and reads them again to
# multiply by V (llama.cpp's build_attn without -fa: ggml/src/ggml-cuda softmax.cu, mmq.cu).
SCORE_BYTES = 16
# Tokens a dequantising matrix kernel multiplies per weight tile it expands: ggml's mmq and
# Marlin-style kernels expand a tile once for a block of up to 128 activation rows.
DEQUANT_TILE_TOKENS = 128


def _attention_terms(graph: LLMGraph, prompt_tokens: int, context_tokens: float) -> tuple[np.ndarray, ...]:
    """Per node: prefill attention FLOPs per sequence (causal, windowed), decode attention FLOPs per
    sequence at ``context_tokens``, the context a decode step attends to, and the heads."""
    pre = np.array([n.attn_flops_per_context_token * n.causal_pairs(prompt_tokens) for n in graph.nodes])
    attended = np.array([n.attended_tokens(context_tokens) if n.kind == "block" else 0.0 for n in graph.nodes])
    dec = np.array([n.decode_attn_flops for n in graph.nodes]) * attended
    pairs = np.array([n.causal_pairs(prompt_tokens) if n.kind == "block" else 0.0 for n in graph.nodes])
    return pre, dec, attended, pairs


def _streamed(graph: LLMGraph, tokens: int) -> np.ndarray:
    return np.array([n.streamed_params(tokens) for n in graph.nodes])


def _expert_flops(graph: LLMGraph) -> np.ndarray:
    """Per-token FLOPs of the routed experts in each node (0 for dense nodes)."""
    return np.array([2.0 * n.experts_per_token * n.expert_params for n in graph.nodes])


def _tokens_per_expert(graph: LLMGraph, tokens: float) -> float:
    """Tokens each touched expert multiplies when a step routes ``tokens`` tokens.

    ``tokens`` tokens choosing ``k`` of ``E`` experts touch ``E (1 - (1 - k/E)^tokens)``
    of them, so an expert's matrix product sees ``tokens k / touched`` rows: a
    512-token step of a 128-expert, top-8 model gives each expert about 32 rows,
    and runs at that size's compute efficiency, not the step's.
    """
    a = graph.arch
    if not a.is_moe or tokens <= 0:
        return tokens
    k, e = a.experts_per_token, a.num_experts
    return tokens * k / (e * (1.0 - (1.0 - k / e) ** tokens))


@dataclass(frozen=True)
class NodeTimes:
    prefill_s: np.ndarray  # per node (embed, blocks..., head)
    decode_s: np.ndarray
    prefill_steps: int


def node_times(graph: LLMGraph, fmt: NumberFormat, kv_fmt: NumberFormat, rates: ExecutionRates,
               request: RequestClass) -> NodeTimes:
    """Seconds each node takes to prefill ``request``'s batch and to run one decode step.

    See the module docstring for the roofline. Beyond it:

    - attention is causal and stops at a block's sliding window (``LayerNode.causal_pairs``);
      decode attends to ``min(context, window)`` tokens and reads that much KV cache;
    - an engine without flash attention (``EngineProfile.flash_attention`` false, llama.cpp
      before ``-fa``) materialises the fp32 attention scores: :data:`SCORE_BYTES` per score,
      moved by kernels of their own, so it adds to the block's time rather than overlapping
      (this is what makes 4096+-token prompts slow on such engines);
    - a weight-only quantised format multiplied by an expanding kernel (``compute_precision``
      fp16) spends ``NumberFormat.dequant_ops_per_weight`` vector operations per weight per
      :data:`DEQUANT_TILE_TOKENS` tokens of a step: nothing at batch 1, where decode is bound by
      memory, but a cost fp16 weights do not pay once a large batch makes the step compute-bound;
      on a CPU, ggml's integer dot products pay the unpacking per weight and per token, which
      is why Q4 formats prefill slower than Q8_0 there.
    """
    prof = rates.profile
    B, p, g = request.batch, request.prompt_tokens, request.output_tokens
    lin, kv = _node_arrays(graph)
    is_block = np.array([n.kind == "block" for n in graph.nodes])
    is_head = np.array([n.kind == "head" for n in graph.nodes])
    heads = np.where(is_block, graph.arch.num_attention_heads, 0)
    bpw = fmt.bytes_per_value
    kvb = kv_fmt.bytes_per_value
    bw = rates.bandwidth_bytes_s * prof.eta_mem
    layer_ovh = prof.layer_overhead_ms * 1e-3
    ctx = p + max(g, 1) / 2.0  # decode runs at the mean context of the generation
    attn_pre, attn_dec, attended, pairs = _attention_terms(graph, p, ctx)
    score_bytes = 0.0 if prof.flash_attention else SCORE_BYTES

    # Routed experts run their own, smaller matrix products (see _tokens_per_expert).
    expert = _expert_flops(graph)
    dense = lin - expert
    vector_rate = rates.vector_flops * prof.eta_compute

    def peak(tokens: float) -> float:
        # Few tokens per step waste most of a matrix unit's tiles (compute_efficiency); an
        # engine then runs matrix-vector kernels on the vector units instead, at their rate.
        return max(rates.peak_flops * prof.compute_efficiency(tokens), vector_rate)

    def dequant_s(tokens: float, streamed: np.ndarray) -> np.ndarray:
        ops = fmt.dequant_ops_per_weight * np.where(is_block, streamed, 0.0)
        if rates.unit == "cpu" and prof.compute_precision == "int8":
            # ggml's CPU dot products (vec_dot_q4_0_q8_0 and kin) unpack each weight block again
            # for every activation row they meet, at the integer rate of the dot product itself.
            return tokens * ops / peak(tokens)
        if not fmt.dequant_ops_per_weight or prof.compute_precision is not None or not vector_rate:
            return np.zeros(len(graph.nodes))  # native arithmetic in the format, or no vector figure
        return math.ceil(tokens / DEQUANT_TILE_TOKENS) * ops / vector_rate

    # Prefill.
    n = B * p
    chunk = min(n, prof.max_tokens_per_step)
    steps = math.ceil(n / chunk) if n else 0
    if steps:
        flops = n * dense + B * attn_pre
        streamed = _streamed(graph, chunk)
        mem = steps * streamed * bpw + n * kv * kvb
        mem = np.where(is_head, streamed * bpw, mem)
        t_compute = flops / peak(chunk) + n * expert / peak(_tokens_per_expert(graph, chunk))
        t_compute = np.where(is_head, B * lin / peak(B), t_compute)
        prefill = np.maximum(t_compute + steps * dequant_s(chunk, streamed), mem / bw)
        if prof.dequantize_prefill and bpw < 2.0:
            # The engine may instead expand the quantised block weights to fp16 (read bpw, write
            # 2 bytes per weight) and run the matrix unit on them (read 2 bytes); it takes
            # whichever is faster, as llama.cpp switches to it above a few dozen tokens.
            expand_s = steps * streamed * (bpw + 2.0) / bw
            expanded = np.maximum(t_compute, (mem + steps * streamed * (2.0 - bpw)) / bw) + expand_s
            vector_s = (flops + n * expert) / vector_rate if vector_rate else np.inf
            direct = np.maximum(vector_s, mem / bw)
            prefill = np.where(is_block, np.minimum(direct, expanded), prefill)
        prefill = prefill + B * heads * pairs * score_bytes / bw
        prefill = prefill + np.where(is_block, steps * layer_ovh, 0.0)
    else:
        prefill = np.zeros(len(graph.nodes))

    # Decode of one token per sequence.
    t_compute = (B * dense + B * attn_dec) / peak(B) + B * expert / peak(_tokens_per_expert(graph, B))
    streamed = _streamed(graph, B)
    mem = streamed * bpw + B * attended * kv * kvb
    decode = np.maximum(t_compute + dequant_s(B, streamed), mem / bw)
    decode = decode + B * heads * attended * score_bytes / bw
    decode = decode + np.where(is_block, layer_ovh, 0.0)
    return NodeTimes(prefill, decode, steps)


def fold_nodes(per_node: np.ndarray) -> np.ndarray:
    """Per-node values -> per-block values with embed in block 0 and head in block L-1."""
    blocks = per_node[1:-1].copy()
    blocks[0] += per_node[0]
    blocks[-1] += per_node[-1]
    return blocks
