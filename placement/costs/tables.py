"""Cost tables: the roofline's per-node times folded into per-block arrays, and transfers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models import formats
from placement.costs.roofline import (
    ACTIVATION_BYTES, GIB, TOKEN_ID_BYTES, block_weight_bytes, execution_rates, fold_nodes, kv_reservation_bytes,
    node_times, runtime_bytes, workspace_bytes,
)
from placement.problem import Problem, RequestClass

__all__ = [
    "BlockCosts", "TransferCosts", "Stage", "RouteTimes",
    "block_costs", "transfer_costs", "stage_prefill_s", "stage_decode_s", "stage_memory_bytes", "route_times",
]

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
        times = node_times(graph, fmt, model.kv_fmt, rates, req)
        prefill[d] = fold_nodes(times.prefill_s)
        decode[d] = fold_nodes(times.decode_s)
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
    kv = kv_reservation_bytes(model, req.batch, ctx)
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
