"""Reductions of the cost table along one route: its times, energy, quality and resource use.

A route is a sequence of :class:`Stage` (device index, block range and the
:class:`~placement.costs.tables.BlockCosts` of its weight format). These functions
are the one place where a route's TTFT, TPOT, end-to-end latency, energy and
per-token resource use are added up; :func:`placement.evaluate` calls them for
every route of a plan, and a solver that scores candidate routes calls them too.

- TTFT = the prompt's upload to the first stage + every stage's prefill + the
  activation hops + the first token's way back from the last stage to the source.
- TPOT = every stage's decode step + the per-step hops + the sampled token's loop
  from the last stage to the first. E2E = TTFT + (g - 1) TPOT.
- Energy per request = devices' active power x busy time and the links' energy
  per bit for the bytes moved, a batch's share each; idle power of the route's
  devices while they wait is reported apart.
- Throughput use, per decode token: each stage's device (a decode step over the
  batch, or its measured seconds per token), every network resource the hops,
  the loop and the return occupy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from placement.costs.tables import BlockCosts, CostTable, TransferCosts
from placement.problem import RequestClass

__all__ = ["Stage", "RouteTimes", "route_times", "route_usage", "route_quality"]


@dataclass(frozen=True)
class Stage:
    """One step of a route: blocks ``[start, end)`` on device index ``device``, priced by ``costs``."""

    device: int
    start: int
    end: int
    costs: BlockCosts


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


def _repeat(times: int, seconds: float) -> float:
    """``times * seconds``, with no steps costing nothing even over a missing path (0 x inf)."""
    return times * seconds if times else 0.0


def route_times(stages: Sequence[Stage], tc: TransferCosts, request: RequestClass) -> RouteTimes:
    """TTFT, TPOT, end-to-end time and energy of ``request`` through ``stages`` (see the module docstring)."""
    first, last = stages[0].device, stages[-1].device
    g, B = request.output_tokens, request.batch
    steps = max(g - 1, 0)
    pre = [float(s.costs.stage_prefill_s(s.device, s.start, s.end)) for s in stages]
    dec = [float(s.costs.stage_decode_s(s.device, s.start, s.end)) for s in stages]
    hops = [(u.device, v.device) for u, v in zip(stages, stages[1:])]
    pre_hop = sum(float(tc.prefill_hop_s[u, v]) for u, v in hops)
    dec_hop = sum(float(tc.decode_hop_s[u, v]) for u, v in hops)
    loop = float(tc.loop_s[last, first])
    transfer_first = float(tc.upload_s[first]) + pre_hop + float(tc.return_s[last])
    ttft = sum(pre) + transfer_first
    tpot = sum(dec) + dec_hop + loop
    e2e = ttft + _repeat(steps, tpot)

    busy = [p + _repeat(steps, d) for p, d in zip(pre, dec)]
    active = sum(float(s.costs.active_power_w[s.device]) * t for s, t in zip(stages, busy)) / B
    idle = sum(float(s.costs.idle_power_w[s.device]) * max(e2e - t, 0.0) for s, t in zip(stages, busy)) / B
    link_j = (
        float(tc.upload_j[first])
        + (sum(float(tc.prefill_hop_j[u, v]) for u, v in hops)
           + steps * (sum(float(tc.decode_hop_j[u, v]) for u, v in hops) + float(tc.loop_j[last, first]))) / B
        + max(g, 1) * float(tc.return_j[last])
    )
    return RouteTimes(
        ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, prefill_s=sum(pre),
        transfer_s=transfer_first + _repeat(steps, dec_hop + loop),
        energy_j=active + link_j, idle_energy_j=idle, stage_busy_s=tuple(busy),
    )


def route_usage(table: CostTable, request: RequestClass | str, stages: Sequence[Stage],
                model: str | None = None) -> dict[int, float] | None:
    """Seconds per decode token each resource (index into ``table.resources``) spends on the route;
    ``None`` when two of its stages, or its last stage and the source, have no network path."""
    use: dict[int, float] = defaultdict(float)
    for s in stages:
        use[s.device] += float(s.costs.stage_token_s(s.device, s.start, s.end))
    first, last = stages[0].device, stages[-1].device
    parts = [table.hop_usage(request, u.device, v.device, model) for u, v in zip(stages, stages[1:])]
    parts += [table.loop_usage(request, last, first, model), table.return_usage(request, last, model)]
    for part in parts:
        if part is None:
            return None
        for resource, seconds in part.items():
            use[resource] += seconds
    return dict(use)


def route_quality(table: CostTable, model: str, shards: Sequence[tuple[str, int, int]]) -> float:
    """Block-weighted mean quality of the weight formats along a route, ``shards`` being
    ``(weight format, start, end)`` triples (see :attr:`models.NumberFormat.quality`)."""
    loss = sum(float(table.weights(model, fmt).quality_loss(a, b)) for fmt, a, b in shards)
    blocks = sum(b - a for _, a, b in shards)
    L = table.problem.model(model).num_blocks
    return 1.0 - loss * L / max(blocks, 1)
