"""The route MILP: the exact program of the plan space, for instances small enough to list every route.

A candidate route of class ``c`` is a sequence of distinct candidate devices with
ranges tiling ``[0, L)``, every range ``ok``, every transfer with a network path, and
(when the class has SLOs) its TTFT, TPOT and end-to-end time within them. Then

    max T  s.t.  sum_(a, b) y[i, a, b] <= 1                 (a device holds one range)
                 x[r] <= U[r] y[i, a, b]   for each stage of route r (its ranges are held)
                 sum_r use[r, q] x[r] <= 1  for every resource q (devices, links, NICs)
                 the classes' totals in their mix (or their sum), the load at the rates,

with ``y`` binary and ``x`` (tokens/s on each route) continuous, is exactly the best
placement and routing: any routing of a placement is a combination of its routes, and
the resource rows are those of :func:`placement.costs.flows.route_shards`. ``U[r]`` is
what the route carries alone, capped by the fluid bound. ``T`` must beat the incumbent
by the gap asked (the warm start: a cutoff), so "infeasible" proves the incumbent
optimal.

:func:`candidate_routes` gives up (None) beyond ``max_routes`` routes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from placement.costs.flows import MIN_SHARE
from placement.costs.routes import Stage, route_times, route_usage
from solvers.ilp.backends import MILP, RowBuilder

__all__ = ["candidate_routes", "RouteProgram", "route_program", "MAX_ROUTES"]

MAX_ROUTES = 20_000
NODES_PER_ROUTE = 50  # partial routes tried per route allowed, before the listing gives up


@dataclass(frozen=True)
class _Route:
    cls: int
    stages: tuple[tuple[int, int, int], ...]  # (position, a, b)
    usage: dict
    busy: dict  # device -> busy seconds per batch


def candidate_routes(space, max_routes: int = MAX_ROUTES, deadline=None) -> list[_Route] | None:
    """Every candidate route of every class (see the module docstring), or None beyond ``max_routes``
    (or beyond ``NODES_PER_ROUTE x max_routes`` partial routes tried, or past ``deadline``)."""
    table = space.table
    out: list[_Route] = []
    longest = [max((b - a for a, b in space.ranges(i)), default=0) for i in range(space.n)]
    budget = [NODES_PER_ROUTE * max_routes]
    for c, req in enumerate(space.requests):
        bc = table.blocks(req)
        tc = table.transfers(req)
        slo = req.slo.items()
        starts: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i in range(space.n):
            for a, b in space.ranges(i):
                starts[a].append((i, b))

        def stage(i: int, a: int, b: int) -> Stage:
            return Stage(int(space.idx[i]), a, b, bc)

        def visit(chain: list[tuple[int, int, int]], used: set[int], reach: int) -> bool:
            budget[0] -= 1
            if budget[0] < 0 or (deadline is not None and budget[0] % 1024 == 0 and deadline.expired()):
                return False
            i, a, b = chain[-1]
            if b + reach < space.L:
                return True  # the devices left cannot hold the blocks left
            if b == space.L:
                stages = [stage(*s) for s in chain]
                usage = route_usage(table, req, stages, space.model)
                if usage is not None and (not slo or all(
                        getattr(route_times(stages, tc, req), name.replace("_ms", "_s")) * 1e3 <= limit
                        for name, limit in slo)):
                    busy: dict[int, float] = defaultdict(float)
                    for st in stages:
                        busy[st.device] += float(bc.stage_busy_s(st.device, st.start, st.end))
                    out.append(_Route(c, tuple(chain), usage, dict(busy)))
                    if len(out) > max_routes:
                        return False
                return True
            for j, e in starts.get(b, []):
                if j in used or table.hop_usage(req, int(space.idx[i]), int(space.idx[j]), space.model) is None:
                    continue
                chain.append((j, b, e))
                used.add(j)
                more = visit(chain, used, reach - longest[j])
                used.discard(j)
                chain.pop()
                if not more:
                    return False
            return True

        total = sum(longest)
        for i, b in starts.get(0, []):
            if not visit([(i, 0, b)], {i}, total - longest[i]):
                return None
    return out


@dataclass
class RouteProgram:
    milp: MILP
    ranges: list[tuple[int, int, int]]  # (position, a, b) of each y, in order
    routes: list[_Route]

    def assignment(self, space, x: np.ndarray):
        out: list = [None] * space.n
        for k, (i, a, b) in enumerate(self.ranges):
            if x[k] > 0.5:
                out[i] = (a, b)
        return tuple(out)


def route_program(space, routes: list[_Route], upper: float, cutoff: float) -> RouteProgram:
    """The route MILP (see the module docstring) with ``cutoff <= T <= upper``."""
    ranges = sorted({s for r in routes for s in r.stages})
    pos = {s: k for k, s in enumerate(ranges)}
    Y, R, C = len(ranges), len(routes), len(space.requests)
    nv = Y + R + 1
    t = nv - 1
    rows = RowBuilder()
    row = rows.pairs

    by_device: dict[int, list[int]] = defaultdict(list)
    for k, (i, _, _) in enumerate(ranges):
        by_device[i].append(k)
    for ks in by_device.values():
        row([(k, 1.0) for k in ks], -np.inf, 1.0)
    for r, route in enumerate(routes):
        worst = max(route.usage.values(), default=0.0)
        alone = min(1.0 / worst if worst > 0 else math.inf, upper)
        for s in route.stages:
            row([(Y + r, 1.0), (pos[s], -alone)], -np.inf, 0.0)
    resources: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r, route in enumerate(routes):
        for q, u in route.usage.items():
            if u:
                resources[q].append((Y + r, u))
    for entries in resources.values():
        row(entries, -np.inf, 1.0)
    if space.fixed_mix:
        for c in range(C):
            row([(Y + r, 1.0) for r, route in enumerate(routes) if route.cls == c] + [(t, -float(space.weights[c]))],
                0.0, 0.0)
        if space.table.rates_given(list(space.requests)):
            # The devices' load at the request rates, with shares by the routes' rates (as evaluate has it).
            loads: dict[int, list[tuple[int, float]]] = defaultdict(list)
            for r, route in enumerate(routes):
                for device, busy in route.busy.items():
                    loads[device].append((Y + r, _load_coefficient(space, route.cls) * busy))
            for entries in loads.values():
                row(entries + [(t, -1.0)], -np.inf, 0.0)
    else:
        for c in range(C):
            row([(Y + r, 1.0) for r, route in enumerate(routes) if route.cls == c] + [(t, -MIN_SHARE / C)], 0.0,
                np.inf)
        row([(Y + r, 1.0) for r in range(R)] + [(t, -1.0)], 0.0, 0.0)
    matrix, lo, hi = rows.matrix(nv)
    c_vec = np.zeros(nv)
    c_vec[t] = -1.0
    var_lo = np.zeros(nv)
    var_lo[t] = cutoff
    var_hi = np.concatenate([np.ones(Y), np.full(R, upper), [upper]])
    integer = np.zeros(nv, dtype=bool)
    integer[:Y] = True
    return RouteProgram(MILP(c=c_vec, A=matrix, row_lo=lo, row_hi=hi, var_lo=var_lo,
                             var_hi=var_hi, integer=integer, max_ones=space.n), ranges, routes)


def _load_coefficient(space, c: int) -> float:
    """The load at class ``c``'s request rate per busy second of one token/s of its flow, over ``T``:
    the table's load per busy second over the class's share."""
    return space.table.load_per_busy_s(space.requests[c]) / float(space.weights[c])
