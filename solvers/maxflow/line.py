"""The line model: a placement as arcs on the block boundaries ``0 .. L``, and the MILP over it.

When every device can pass tokens to every other and no link can bind, a placement's
max-flow is the flow from boundary ``0`` to boundary ``L`` in the graph whose arcs are the
devices' ranges ``a -> b``, each carrying at most its tokens/s (shards ending where others
start pass tokens to all of them). :func:`line_flow` computes it (OR-Tools max-flow), the
fast score the local search uses where it is exact.

:func:`line_program` is the exact MILP over that model, aggregated over interchangeable
devices (which breaks their symmetry): ``y[g, a, b]`` devices of group ``g`` hold
``[a, b)``, carrying ``f[c, g, a, b]`` tokens/s of class ``c``; flow is conserved at every
boundary, each device is busy at most all of the time, and ``T`` (the classes' total in
their mix) is maximised. Two things make it strong and warm-started:

- every arc's flow is at most its devices' count times the least of its capacity and the
  bound on the class's total (a device never carries more than the whole flow): its LP
  relaxation is then about the fluid bound of :mod:`solvers.maxflow.bounds`, not the
  compute-only one;
- ``T`` must exceed the incumbent by the relative gap asked (a cutoff): the program only
  searches better placements, so "infeasible" proves the incumbent optimal, and any
  solution it returns is better.

With links that can bind, SLOs or request rates it is a relaxation (they only take
throughput away): its bound still holds, and its placements are judged by the exact
routing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from placement.costs.flows import MIN_SHARE
from solvers.ilp.backends import MILP, RowBuilder

__all__ = ["line_flow", "LineProgram", "line_program", "links_never_bind"]

_SCALE_TOP = 2.0 ** 40


def line_flow(space, assignment) -> float:
    """Tokens/s of the mix from boundary 0 to L over the assignment's ranges (compute only)."""
    from ortools.graph.python import max_flow

    arcs = [(rng[0], rng[1], float(space.capacity[i, rng[0], rng[1]])) for i, rng in enumerate(assignment)
            if rng is not None]
    if not arcs:
        return 0.0
    top = max(c for *_, c in arcs)
    if top <= 0:
        return 0.0
    scale = 2.0 ** math.floor(math.log2(_SCALE_TOP / top))
    graph = max_flow.SimpleMaxFlow()
    for a, b, cap in arcs:
        graph.add_arc_with_capacity(a, b, int(cap * scale))
    if space.L not in {b for _, b, _ in arcs} or 0 not in {a for a, _, _ in arcs}:
        return 0.0
    if graph.solve(0, space.L) != graph.OPTIMAL:
        return 0.0
    return graph.optimal_flow() / scale


def links_never_bind(space, upper: float) -> bool:
    """Whether no network resource can bind in any placement of ``space`` serving at most ``upper``
    tokens/s: every pair of candidates has a path, and each resource's use summed over every transfer
    that could cross it (hops, loops, returns; each carrying at most the flow both ends can) stays
    within its capacity. Then the line model is exact."""
    table = space.table
    most = space.best_class_capacity.reshape(space.n, -1).max(axis=1)
    load: dict[int, float] = {}
    for req in space.requests:
        for i in range(space.n):
            u = int(space.idx[i])
            uses = [(table.return_usage(req, u, space.model), min(most[i], upper))]
            for j in range(space.n):
                if i == j:
                    continue
                v = int(space.idx[j])
                flow = min(most[i], most[j], upper)
                uses += [(table.hop_usage(req, u, v, space.model), flow), (table.loop_usage(req, u, v, space.model), flow)]
            for use, flow in uses:
                if use is None:
                    return False
                for r, seconds in use.items():
                    load[r] = load.get(r, 0.0) + seconds * flow
    return bool(max(load.values(), default=0.0) <= 1.0)


@dataclass
class LineProgram:
    """The MILP and how to read a placement back from its solution."""

    milp: MILP
    arcs: list[tuple[int, int, int]]  # (group, a, b) of each y variable, in order
    classes: int

    def assignment(self, space, x: np.ndarray):
        """An assignment with ``round(y)`` devices of each group on each range."""
        out: list = [None] * space.n
        free = {g: list(members) for g, members in enumerate(space.groups)}
        for k, (g, a, b) in enumerate(self.arcs):
            for _ in range(int(round(x[k]))):
                if free[g]:
                    out[free[g].pop(0)] = (a, b)
        return tuple(out)


def line_program(space, upper: float, cutoff: float) -> LineProgram:
    """The line MILP (see the module docstring) with ``cutoff <= T <= upper``."""
    C, L = len(space.requests), space.L
    arcs = []
    for g, members in enumerate(space.groups):
        rep = members[0]
        a, b = np.nonzero(space.ok[rep])
        arcs += [(g, int(x), int(y)) for x, y in zip(a, b)]
    A = len(arcs)
    ny, nf = A, A * C
    nv = ny + nf + 1
    t = nv - 1

    def fcol(c: int, k: int) -> int:
        return ny + c * A + k

    rows = RowBuilder()
    row = rows.pairs

    by_group: dict[int, list[int]] = {}
    for k, (g, a, b) in enumerate(arcs):
        by_group.setdefault(g, []).append(k)
    for g, ks in by_group.items():
        row([(k, 1.0) for k in ks], -np.inf, float(len(space.groups[g])))
    share = space.weights if space.fixed_mix else np.ones(C)
    for k, (g, a, b) in enumerate(arcs):
        rep = space.groups[g][0]
        row([(fcol(c, k), float(space.token_s[c, rep, a, b])) for c in range(C)] + [(k, -1.0)], -np.inf, 0.0)
        for c in range(C):
            most = float(share[c]) * upper
            cap = 1.0 / float(space.token_s[c, rep, a, b])
            if most < cap:
                row([(fcol(c, k), 1.0), (k, -most)], -np.inf, 0.0)
    starts: dict[int, list[int]] = {}
    ends: dict[int, list[int]] = {}
    for k, (g, a, b) in enumerate(arcs):
        starts.setdefault(a, []).append(k)
        ends.setdefault(b, []).append(k)
    for c in range(C):
        for p in range(1, L):
            row([(fcol(c, k), 1.0) for k in ends.get(p, [])] + [(fcol(c, k), -1.0) for k in starts.get(p, [])], 0.0, 0.0)
        firsts = [(fcol(c, k), 1.0) for k in starts.get(0, [])]
        if space.fixed_mix:
            row(firsts + [(t, -float(space.weights[c]))], 0.0, 0.0)
        else:
            row(firsts + [(t, -MIN_SHARE / C)], 0.0, np.inf)
    if not space.fixed_mix:
        row([(fcol(c, k), 1.0) for c in range(C) for k in starts.get(0, [])] + [(t, -1.0)], 0.0, 0.0)
    matrix, lo, hi = rows.matrix(nv)
    c_vec = np.zeros(nv)
    c_vec[t] = -1.0
    var_lo = np.zeros(nv)
    var_hi = np.concatenate([np.array([len(space.groups[g]) for g, _, _ in arcs], dtype=float),
                             np.full(nf, upper), [upper]])
    var_lo[t] = cutoff
    integer = np.zeros(nv, dtype=bool)
    integer[:ny] = True
    milp = MILP(c=c_vec, A=matrix, row_lo=lo, row_hi=hi, var_lo=var_lo, var_hi=var_hi,
                integer=integer, max_ones=space.n)
    return LineProgram(milp, arcs, C)
