"""Throughput of a plan: the decode tokens/s its devices and links can sustain.

Each route uses resources per decode token: every stage's device for
``decode step / batch`` seconds (or ``1 / measured tokens/s`` with a profile),
and the channel between each ordered pair of consecutive devices for the hidden
state's bytes over the pair's bottleneck rate, plus the sampled token's way back
to the first stage and to the source. Channels are per ordered device pair and
full duplex: routes crossing the same pair share it, different pairs do not (on
multi-hop networks this ignores physical links that several pairs' paths share).
A resource is busy at most all of the time, so with ``x_r`` tokens/s on route ``r``

    sum_r x_r * t[resource, r] <= 1   for every resource.

Routes of one request class carry its traffic in their ``fraction`` shares. With
request rates given, classes keep the workload's mix (one scale factor);
otherwise the classes' rates are free and the total is maximised. One class (or
one scale factor) has the closed form ``1 / max_resource(t)``; several free
classes are a small LP (HiGHS through scipy). Searching placements that
maximise it is a solver's job.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy.optimize import linprog

from placement.costs import block_costs, stage_decode_s, transfer_costs
from placement.plan import Plan
from placement.problem import Problem

__all__ = ["plan_throughput", "route_resource_seconds"]

Resource = tuple


def route_resource_seconds(problem: Problem, plan: Plan, route_index: int) -> dict[Resource, float]:
    """Seconds each resource spends per decode token on route ``route_index``.

    Keys are ``("device", id)`` and ``("channel", from_id, to_id)``; ``inf``
    means two consecutive devices are not connected.
    """
    topo = problem.topology
    route = plan.routes[route_index]
    req = problem.request(route.request)
    tc = transfer_costs(problem, req)
    shards = {s.id: s for s in plan.shards}
    use: dict[Resource, float] = defaultdict(float)
    path = [shards[sid] for sid in route.path]
    for s in path:
        measured = topo.node(s.device).profile_for(s.model)
        if measured is not None and measured.throughput_tokens_per_s:
            use[("device", s.device)] += 1.0 / measured.throughput_at(s.num_blocks)
        else:
            bc = block_costs(problem, req, s.weight_format)
            use[("device", s.device)] += stage_decode_s(bc, topo.index[s.device], *s.layers) / req.batch
    idx = [topo.index[s.device] for s in path]
    for u, v in zip(idx, idx[1:]):
        if u != v:
            use[("channel", u, v)] += float(tc.hop_token_s[u, v])
    first, last, src = idx[0], idx[-1], topo.index[req.source]
    if last != first:
        use[("channel", last, first)] += float(tc.loop_token_s[last, first])
    if last != src:
        use[("channel", last, src)] += float(tc.return_token_s[last])
    return dict(use)


def plan_throughput(problem: Problem, plan: Plan) -> float:
    """Decode tokens/s ``plan`` can sustain over all request classes (0 if none is routed)."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, route in enumerate(plan.routes):
        by_class[route.request].append(i)
    # Per class: resource seconds per token of the class's traffic, its routes mixed by fraction.
    coeffs: dict[str, dict[Resource, float]] = {}
    for rid, idx in by_class.items():
        total = sum(plan.routes[i].fraction for i in idx)
        mix: dict[Resource, float] = defaultdict(float)
        for i in idx:
            for res, sec in route_resource_seconds(problem, plan, i).items():
                mix[res] += plan.routes[i].fraction / total * sec
        if all(math.isfinite(v) for v in mix.values()):
            coeffs[rid] = mix
    if not coeffs:
        return 0.0
    classes = list(coeffs)
    if len(classes) == 1 or all(problem.request(c).rate_rps for c in classes):
        demand = {c: (problem.request(c).rate_rps or 1.0) * max(problem.request(c).output_tokens, 1) for c in classes}
        load: dict[Resource, float] = defaultdict(float)
        for c in classes:
            for res, sec in coeffs[c].items():
                load[res] += demand[c] * sec
        worst = max(load.values())
        return sum(demand.values()) / worst if worst > 0 else math.inf
    resources = sorted({res for c in classes for res in coeffs[c]}, key=str)
    A = np.array([[coeffs[c].get(res, 0.0) for c in classes] for res in resources])
    result = linprog(-np.ones(len(classes)), A_ub=A, b_ub=np.ones(len(resources)), bounds=(0, None), method="highs")
    return float(-result.fun) if result.status == 0 else 0.0
