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
- A cascade (:func:`cascade_times`): every request takes the first route; a share ``e``
  is then sent on by the source to the second route, whose answer is kept. An escalated
  request's TTFT is the first route's whole answer plus the second's TTFT, its E2E the
  sum of both, its energy both; TPOT is the kept answer's. The class's mean takes the two
  paths by their shares; its SLOs hold on each path. The second route's upload and
  transfers are its own (the prompt goes out again from the source), so the added
  transfer is counted too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from placement.costs.tables import BlockCosts, CostTable, TransferCosts
from placement.problem import RequestClass

__all__ = ["Stage", "RouteTimes", "CascadeTimes", "route_times", "route_usage", "route_quality", "route_score",
           "cascade_times", "cascade_score", "cascade_usage"]


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
    queue_s: float = 0.0  # the mean wait for a free slot, included in TTFT and E2E (with queueing)

    def waiting(self, wait_s: float) -> RouteTimes:
        """These times with a mean wait of ``wait_s`` before the first stage admits the request."""
        return replace(self, ttft_s=self.ttft_s + wait_s, e2e_s=self.e2e_s + wait_s, queue_s=self.queue_s + wait_s)


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


def route_score(table: CostTable, model: str, shards: Sequence[tuple[str, int, int]], benchmark: str | None
                ) -> float | None:
    """Benchmark score of a route's answers: the block-weighted mean of its shards' formats' scores
    (``None`` without a benchmark or a score)."""
    L = table.problem.model(model).num_blocks
    total = 0.0
    for fmt, a, b in shards:
        score = table.quality_score(model, fmt, benchmark)
        if score is None:
            return None
        total += score * (b - a) / L
    return total


@dataclass(frozen=True)
class CascadeTimes:
    """A cascade's times: ``mean`` over its requests, and ``escalated``, the path of a request the
    first model passes on (a non-escalated request's path is the first route's own times)."""

    mean: RouteTimes
    escalated: RouteTimes


def cascade_times(first: RouteTimes, second: RouteTimes, escalate_share: float) -> CascadeTimes:
    """Times of a cascade whose first route passes ``escalate_share`` of its requests on to the second.

    Examples
    --------
    >>> a = RouteTimes(0.1, 0.01, 1.0, 0.05, 0.02, 2.0, 0.5, (1.0,))
    >>> b = RouteTimes(0.4, 0.05, 5.0, 0.3, 0.02, 20.0, 1.0, (5.0,))
    >>> c = cascade_times(a, b, 0.25)
    >>> c.escalated.ttft_s, c.escalated.e2e_s, c.mean.e2e_s, c.mean.energy_j
    (1.4, 6.0, 2.25, 7.0)
    """
    e = escalate_share
    escalated = RouteTimes(
        ttft_s=first.e2e_s + second.ttft_s, tpot_s=second.tpot_s, e2e_s=first.e2e_s + second.e2e_s,
        prefill_s=first.prefill_s + second.prefill_s, transfer_s=first.transfer_s + second.transfer_s,
        energy_j=first.energy_j + second.energy_j, idle_energy_j=first.idle_energy_j + second.idle_energy_j,
        stage_busy_s=first.stage_busy_s + second.stage_busy_s)

    def mix(name: str) -> float:
        return (1 - e) * getattr(first, name) + e * getattr(escalated, name)
    mean = RouteTimes(
        ttft_s=mix("ttft_s"), tpot_s=mix("tpot_s"), e2e_s=mix("e2e_s"), prefill_s=mix("prefill_s"),
        transfer_s=mix("transfer_s"), energy_j=mix("energy_j"), idle_energy_j=mix("idle_energy_j"),
        stage_busy_s=first.stage_busy_s + tuple(e * t for t in second.stage_busy_s))
    return CascadeTimes(mean, escalated)


def cascade_score(first: float | None, second: float | None, escalate_share: float) -> float | None:
    """Score of a cascade's answers: the kept answers' scores by their shares. Escalation that picks the
    questions the first model gets wrong does better than this mix, so it understates the quality."""
    if first is None or second is None:
        return None
    return (1 - escalate_share) * first + escalate_share * second


def cascade_usage(first: dict[int, float] | None, second: dict[int, float] | None, escalate_share: float
                  ) -> dict[int, float] | None:
    """Resource seconds per decode token of a cascade's request: the first route's, and the second's for
    the escalated share (``None`` when either has no network path)."""
    if first is None or second is None:
        return None
    out = dict(first)
    for resource, seconds in second.items():
        out[resource] = out.get(resource, 0.0) + escalate_share * seconds
    return out
