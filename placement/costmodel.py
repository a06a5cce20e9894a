"""The cost model: time, memory and energy of shards, transfers and routes.

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models import DeviceSpec, EngineProfile, LLMGraph, Node, NumberFormat, engine
from models import formats
from placement.problem import ModelSpec, Problem, RequestClass

__all__ = [
    "GIB", "TOKEN_ID_BYTES", "ACTIVATION_BYTES",
    "ExecutionRates", "execution_rates", "BlockCosts", "TransferCosts", "Stage",
    "block_costs", "transfer_costs", "stage_prefill_s", "stage_decode_s", "stage_memory_bytes",
    "route_times", "RouteTimes", "workspace_bytes", "kv_bytes_per_block_token", "runtime_bytes",
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
    efficiency.
    """
    spec: DeviceSpec = node.spec
    eng = engine(node.engine)
    unit = eng.fallback.unit if eng.fallback.unit in spec.units() else spec.default_unit
    profile = eng.profile(spec.device_class, unit, fmt.family)
    precision = profile.compute_precision or fmt.compute_precision
    scale = node.count * (profile.tp_efficiency if node.count > 1 else 1.0)
    peak = spec.peak_tflops(precision, unit) * profile.peak_scale(spec.device_class, precision)
    vector = dict(dict(spec.compute).get(unit, ())).get("fp32", 0.0)
    return ExecutionRates(
        peak_flops=peak * 1e12 * scale,
        bandwidth_bytes_s=spec.memory_bandwidth_gbs * 1e9 * scale,
        profile=profile,
        precision=precision,
        unit=unit,
        vector_flops=vector * 1e12 * scale,
    )


def runtime_bytes(node: Node, rates: ExecutionRates) -> float:
    """The engine's runtime overhead on ``node`` (context, graphs, allocator slack)."""
    return rates.profile.runtime_overhead_gb * GIB * node.count


def block_weight_bytes(model: ModelSpec, fmt: NumberFormat) -> tuple[np.ndarray, float]:
    """Weights per block ``[L]`` in ``fmt`` (embedding folded into block 0, head and a
    tied head's copy of the embedding into block L-1), and that copy's size."""
    graph = model.graph
    weights = _fold(np.array([n.weight_bytes(fmt) for n in graph.nodes]))
    tied = graph.arch.vocab_size * graph.arch.hidden_size * fmt.bytes_per_value if graph.arch.tie_word_embeddings else 0.0
    weights[-1] += tied
    return weights, tied


def shard_weight_bytes(model: ModelSpec, fmt: NumberFormat, a: int, b: int) -> float:
    """Weight bytes of a shard holding blocks ``[a, b)`` of ``model``."""
    weights, tied = block_weight_bytes(model, fmt)
    total = float(weights[a:b].sum())
    return total - tied if a == 0 and b == model.num_blocks else total


def kv_bytes_per_block_token(model: ModelSpec) -> float:
    """KV-cache bytes one token adds to one block."""
    return model.graph.blocks[0].kv_values_per_token * model.kv_fmt.bytes_per_value


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


def _node_arrays(graph: LLMGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lin = np.array([n.linear_flops_per_token for n in graph.nodes])
    attn = np.array([n.attn_flops_per_context_token for n in graph.nodes])
    kv = np.array([n.kv_values_per_token for n in graph.nodes], dtype=float)
    return lin, attn, kv


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
class _NodeTimes:
    prefill_s: np.ndarray  # per node (embed, blocks..., head)
    decode_s: np.ndarray
    prefill_steps: int


def _node_times(graph: LLMGraph, fmt: NumberFormat, kv_fmt: NumberFormat, rates: ExecutionRates,
                request: RequestClass) -> _NodeTimes:
    prof = rates.profile
    B, p, g = request.batch, request.prompt_tokens, request.output_tokens
    lin, attn, kv = _node_arrays(graph)
    is_block = np.array([n.kind == "block" for n in graph.nodes])
    is_head = np.array([n.kind == "head" for n in graph.nodes])
    bpw = fmt.bytes_per_value
    kvb = kv_fmt.bytes_per_value
    bw = rates.bandwidth_bytes_s * prof.eta_mem
    layer_ovh = prof.layer_overhead_ms * 1e-3

    # Routed experts run their own, smaller matrix products (see _tokens_per_expert).
    expert = _expert_flops(graph)
    dense = lin - expert

    def peak(tokens: float) -> float:
        # Few tokens per step waste most of a matrix unit's tiles (compute_efficiency); an
        # engine then runs matrix-vector kernels on the vector units instead, at their rate.
        return max(rates.peak_flops * prof.compute_efficiency(tokens), rates.vector_flops * prof.eta_compute)

    # Prefill.
    n = B * p
    chunk = min(n, prof.max_tokens_per_step)
    steps = math.ceil(n / chunk) if n else 0
    if steps:
        flops = n * dense + B * attn * (p * (p + 1) / 2.0)
        streamed = _streamed(graph, chunk)
        mem = steps * streamed * bpw + n * kv * kvb
        mem = np.where(is_head, streamed * bpw, mem)
        t_compute = flops / peak(chunk) + n * expert / peak(_tokens_per_expert(graph, chunk))
        t_compute = np.where(is_head, B * lin / peak(B), t_compute)
        prefill = np.maximum(t_compute, mem / bw)
        if prof.dequantize_prefill and bpw < 2.0:
            # The engine may instead expand the quantised block weights to fp16 (read bpw, write
            # 2 bytes per weight) and run the matrix unit on them (read 2 bytes); it takes
            # whichever is faster, as llama.cpp switches to it above a few dozen tokens.
            expand_s = steps * streamed * (bpw + 2.0) / bw
            expanded = np.maximum(t_compute, (mem + steps * streamed * (2.0 - bpw)) / bw) + expand_s
            vector_s = (flops + n * expert) / (rates.vector_flops * prof.eta_compute) if rates.vector_flops else np.inf
            direct = np.maximum(vector_s, mem / bw)
            prefill = np.where(is_block, np.minimum(direct, expanded), prefill)
        prefill = prefill + np.where(is_block, steps * layer_ovh, 0.0)
    else:
        prefill = np.zeros(len(graph.nodes))

    # Decode, at the mean context of the generation.
    ctx = p + max(g, 1) / 2.0
    t_compute = (B * dense + B * attn * ctx) / peak(B) + B * expert / peak(_tokens_per_expert(graph, B))
    mem = _streamed(graph, B) * bpw + B * ctx * kv * kvb
    decode = np.maximum(t_compute, mem / bw) + np.where(is_block, layer_ovh, 0.0)
    return _NodeTimes(prefill, decode, steps)


def _fold(per_node: np.ndarray) -> np.ndarray:
    """Per-node values -> per-block values with embed in block 0 and head in block L-1."""
    blocks = per_node[1:-1].copy()
    blocks[0] += per_node[0]
    blocks[-1] += per_node[-1]
    return blocks


@dataclass(frozen=True)
class BlockCosts:
    """Costs of one model, for one request class, in one weight format, on every node.

    Arrays are indexed ``[device, block]`` (device order = ``topology.nodes``).
    A stage ``(d, a, b)`` costs ``sum(prefill_s[d, a:b]) + prefill_overhead_s[d]``
    to prefill, and likewise to decode; see :func:`stage_memory_bytes` for memory.

    Attributes
    ----------
    prefill_s, decode_s : ndarray [D, L]
        Seconds per block for the request's prefill and for one decode step.
    prefill_overhead_s, decode_overhead_s : ndarray [D]
        Fixed seconds a stage pays per prefill and per decode step.
    weight_bytes : ndarray [L]
        Weights per block (embedding in block 0, head and a tied head's copy in L-1).
    kv_bytes : ndarray [L]
        KV reservation per block for the request's sequences.
    tied_head_bytes : float
        Subtract when one shard holds every block (a tied head then shares the embedding).
    workspace_bytes, head_workspace_bytes : float
        Prefill activation workspace of any stage; extra logits for the stage holding the head.
    runtime_bytes : ndarray [D]
        Engine runtime overhead, once per device that holds any shard.
    capacity_bytes : ndarray [D]
        Usable memory (capacity - reserved) x (1 - headroom).
    max_blocks : ndarray [D]
        Most blocks a device may hold by its measured profile (``inf`` without one).
    active_power_w, idle_power_w : ndarray [D]
    calibrated : ndarray [D] of bool
        Whether the device's efficiencies come from a calibrated profile.
    """

    model: str
    request: str
    weight_format: str
    prefill_s: np.ndarray
    decode_s: np.ndarray
    prefill_overhead_s: np.ndarray
    decode_overhead_s: np.ndarray
    weight_bytes: np.ndarray
    kv_bytes: np.ndarray
    tied_head_bytes: float
    workspace_bytes: float
    head_workspace_bytes: float
    runtime_bytes: np.ndarray
    capacity_bytes: np.ndarray
    max_blocks: np.ndarray
    active_power_w: np.ndarray
    idle_power_w: np.ndarray
    calibrated: np.ndarray

    @property
    def num_blocks(self) -> int:
        return self.prefill_s.shape[1]

    @property
    def num_devices(self) -> int:
        return self.prefill_s.shape[0]

    def cumulative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefix sums ``[D, L+1]`` of prefill and decode times and ``[L+1]`` of weights + KV,
        for O(1) stage costs in a DP."""
        zero = np.zeros((self.num_devices, 1))
        cp = np.concatenate([zero, np.cumsum(self.prefill_s, axis=1)], axis=1)
        cd = np.concatenate([zero, np.cumsum(self.decode_s, axis=1)], axis=1)
        cm = np.concatenate([[0.0], np.cumsum(self.weight_bytes + self.kv_bytes)])
        return cp, cd, cm


def block_costs(problem: Problem, request: RequestClass | str, weight_format: str | None = None) -> BlockCosts:
    """The :class:`BlockCosts` of ``request``'s model in ``weight_format`` (default: the model's).

    Cached on the problem: solvers and :func:`evaluate` share one table.
    """
    req = problem.request(request) if isinstance(request, str) else request
    model = problem.model(req.model)
    fmt_id = weight_format or model.weight_format
    key = ("block_costs", req.id, fmt_id)
    cache = problem._cache
    if key in cache:
        return cache[key]

    fmt = formats.weight_format(fmt_id)
    graph = model.graph
    topo = problem.topology
    D, L = len(topo.nodes), graph.num_blocks
    prefill = np.zeros((D, L))
    decode = np.zeros((D, L))
    pre_ovh = np.zeros(D)
    dec_ovh = np.zeros(D)
    runtime = np.zeros(D)
    capacity = np.zeros(D)
    max_blocks = np.full(D, np.inf)
    calibrated = np.zeros(D, dtype=bool)
    ctx = problem.context_tokens(req)
    workspace, head_ws = 0.0, 0.0
    for d, node in enumerate(topo.nodes):
        rates = execution_rates(node, fmt)
        prof = rates.profile
        times = _node_times(graph, fmt, model.kv_fmt, rates, req)
        prefill[d] = _fold(times.prefill_s)
        decode[d] = _fold(times.decode_s)
        pre_ovh[d] = times.prefill_steps * prof.step_overhead_ms * 1e-3
        dec_ovh[d] = prof.step_overhead_ms * 1e-3
        measured = node.profile_for(model.id)
        if measured is not None:
            if measured.prefill_ms_per_layer is not None:
                prefill[d] = measured.prefill_ms_per_layer * 1e-3
                pre_ovh[d] = 0.0
            if measured.decode_ms_per_layer is not None:
                decode[d] = measured.decode_ms_per_layer * 1e-3
                dec_ovh[d] = 0.0
            if measured.max_layers is not None:
                max_blocks[d] = measured.max_layers
        runtime[d] = runtime_bytes(node, rates)
        capacity[d] = node.usable_memory_gb * GIB * (1.0 - problem.constraints.memory_headroom)
        calibrated[d] = prof.calibrated or measured is not None
        ws, hws = workspace_bytes(graph, req, ctx, prof.max_tokens_per_step)
        workspace, head_ws = max(workspace, ws), max(head_ws, hws)

    weights, tied = block_weight_bytes(model, fmt)
    kv = np.full(L, req.batch * ctx * kv_bytes_per_block_token(model))
    result = BlockCosts(
        model=model.id, request=req.id, weight_format=fmt_id,
        prefill_s=prefill, decode_s=decode, prefill_overhead_s=pre_ovh, decode_overhead_s=dec_ovh,
        weight_bytes=weights, kv_bytes=kv, tied_head_bytes=tied,
        workspace_bytes=workspace, head_workspace_bytes=head_ws,
        runtime_bytes=runtime, capacity_bytes=capacity, max_blocks=max_blocks,
        active_power_w=np.array([n.spec.power_active_w * n.count for n in topo.nodes]),
        idle_power_w=np.array([n.spec.power_idle_w * n.count for n in topo.nodes]),
        calibrated=calibrated,
    )
    cache[key] = result
    return result


@dataclass(frozen=True)
class TransferCosts:
    """Transfer seconds and joules of one request class between every pair of devices.

    ``upload_s[d]``: the prompt's token ids from the source to ``d``.
    ``return_s[d]``: one token from ``d`` back to the source.
    ``prefill_hop_s[u, v]``: the batch's prompt activations from ``u`` to ``v``.
    ``decode_hop_s[u, v]``: one decode step's activations.
    ``loop_s[u, v]``: the sampled tokens from the last stage ``u`` to the first ``v``.
    The ``*_j`` arrays are the links' energy for the same transfers.

    For throughput, each ordered device pair is one channel: ``hop_token_s[u, v]``,
    ``loop_token_s[u, v]`` and ``return_token_s[d]`` are the seconds one decode
    token's bytes occupy it (bytes / the best path's bottleneck rate).
    """

    upload_s: np.ndarray
    return_s: np.ndarray
    prefill_hop_s: np.ndarray
    decode_hop_s: np.ndarray
    loop_s: np.ndarray
    upload_j: np.ndarray
    return_j: np.ndarray
    prefill_hop_j: np.ndarray
    decode_hop_j: np.ndarray
    loop_j: np.ndarray
    hop_token_s: np.ndarray
    loop_token_s: np.ndarray
    return_token_s: np.ndarray


def transfer_costs(problem: Problem, request: RequestClass | str) -> TransferCosts:
    """The :class:`TransferCosts` of ``request`` (cached on the problem)."""
    req = problem.request(request) if isinstance(request, str) else request
    key = ("transfer_costs", req.id)
    cache = problem._cache
    if key in cache:
        return cache[key]
    topo = problem.topology
    graph = problem.model(req.model).graph
    src = topo.index[req.source]
    act = graph.arch.hidden_size * ACTIVATION_BYTES
    up_b = req.prompt_tokens * TOKEN_ID_BYTES
    pre_b = req.batch * req.prompt_tokens * act
    dec_b = req.batch * act
    loop_b = req.batch * TOKEN_ID_BYTES
    ret_b = TOKEN_ID_BYTES
    result = TransferCosts(
        upload_s=topo.transfer_time_s(up_b)[src].copy(),
        return_s=topo.transfer_time_s(ret_b)[:, src].copy(),
        prefill_hop_s=topo.transfer_time_s(pre_b),
        decode_hop_s=topo.transfer_time_s(dec_b),
        loop_s=topo.transfer_time_s(loop_b),
        upload_j=topo.transfer_energy_j(up_b)[src].copy(),
        return_j=topo.transfer_energy_j(ret_b)[:, src].copy(),
        prefill_hop_j=topo.transfer_energy_j(pre_b),
        decode_hop_j=topo.transfer_energy_j(dec_b),
        loop_j=topo.transfer_energy_j(loop_b),
        hop_token_s=_per_token(act, topo.bottleneck_bytes_per_s(dec_b)),
        loop_token_s=_per_token(TOKEN_ID_BYTES, topo.bottleneck_bytes_per_s(loop_b)),
        return_token_s=_per_token(TOKEN_ID_BYTES, topo.bottleneck_bytes_per_s(ret_b))[:, src].copy(),
    )
    cache[key] = result
    return result


def _per_token(nbytes: float, rate: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, nbytes / rate, np.inf)


# -- stages and routes --------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One step of a route: blocks ``[start, end)`` on device index ``device``."""

    device: int
    start: int
    end: int
    costs: BlockCosts


def stage_prefill_s(bc: BlockCosts, d: int, a: int, b: int) -> float:
    """Seconds to prefill blocks ``[a, b)`` on device ``d``."""
    return float(bc.prefill_s[d, a:b].sum() + bc.prefill_overhead_s[d])


def stage_decode_s(bc: BlockCosts, d: int, a: int, b: int) -> float:
    """Seconds per decode step of blocks ``[a, b)`` on device ``d``."""
    return float(bc.decode_s[d, a:b].sum() + bc.decode_overhead_s[d])


def stage_memory_bytes(bc: BlockCosts, a: int, b: int, kv: bool = True) -> float:
    """Bytes a stage holding blocks ``[a, b)`` needs, before the device's runtime overhead."""
    total = float(bc.weight_bytes[a:b].sum()) + bc.workspace_bytes
    if kv:
        total += float(bc.kv_bytes[a:b].sum())
    if b == bc.num_blocks:
        total += bc.head_workspace_bytes
        if a == 0:
            total -= bc.tied_head_bytes
    return total


def _repeat(times: int, seconds: float) -> float:
    """``times * seconds``, with no steps costing nothing even over a missing path (0 x inf)."""
    return times * seconds if times else 0.0


@dataclass(frozen=True)
class RouteTimes:
    """Seconds and joules of one request along one route (per request, not per batch)."""

    ttft_s: float
    tpot_s: float
    e2e_s: float
    prefill_s: float
    transfer_s: float
    energy_j: float
    idle_energy_j: float
    stage_busy_s: tuple[float, ...]  # per stage, per batch: prefill + (g - 1) decode steps


def route_times(stages: Sequence[Stage], tc: TransferCosts, request: RequestClass) -> RouteTimes:
    """TTFT, TPOT, end-to-end time and energy of ``request`` through ``stages``.

    TTFT = upload + sum of stage prefills + activation hops + the first token's way back.
    TPOT = sum of stage decode steps + per-step hops + the token's loop from the last
    stage to the first. E2E = TTFT + (g - 1) TPOT. Energy is per request: a batch's
    device time and link bytes are shared by its ``B`` sequences.
    """
    first, last = stages[0].device, stages[-1].device
    g, B = request.output_tokens, request.batch
    steps = max(g - 1, 0)
    pre = [stage_prefill_s(s.costs, s.device, s.start, s.end) for s in stages]
    dec = [stage_decode_s(s.costs, s.device, s.start, s.end) for s in stages]
    hops = list(zip(stages, stages[1:]))
    pre_hop = sum(tc.prefill_hop_s[u.device, v.device] for u, v in hops)
    dec_hop = sum(tc.decode_hop_s[u.device, v.device] for u, v in hops)
    loop = tc.loop_s[last, first]
    transfer_first = tc.upload_s[first] + pre_hop + tc.return_s[last]
    ttft = sum(pre) + transfer_first
    tpot = sum(dec) + dec_hop + loop
    e2e = ttft + _repeat(steps, tpot)

    busy = [p_ + _repeat(steps, d_) for p_, d_ in zip(pre, dec)]
    active = sum(s.costs.active_power_w[s.device] * t for s, t in zip(stages, busy)) / B
    idle_j = sum(s.costs.idle_power_w[s.device] * max(e2e - t, 0.0) for s, t in zip(stages, busy)) / B
    link_j = (
        tc.upload_j[first]
        + (sum(tc.prefill_hop_j[u.device, v.device] for u, v in hops)
           + steps * (sum(tc.decode_hop_j[u.device, v.device] for u, v in hops) + tc.loop_j[last, first])) / B
        + max(g, 1) * tc.return_j[last]
    )
    return RouteTimes(
        ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, prefill_s=sum(pre),
        transfer_s=transfer_first + _repeat(steps, dec_hop + loop),
        energy_j=active + link_j, idle_energy_j=idle_j, stage_busy_s=tuple(busy),
    )
