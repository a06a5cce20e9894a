"""Max-flow routing: the most decode tokens/s a placement's shards can carry, and the routes that carry them.

Given shards (replicated, overlapping ranges allowed), each request class sees a flow
network: its source feeds the shards that start at block 0, shard ``i`` passes tokens to
shard ``j`` when ``i`` ends where ``j`` starts and a network path joins their devices,
and the shards that end at the last block send the sampled token back to the source
(and, as :mod:`placement.costs.routes` has it, to the route's first shard).

Capacities come from the cost table and nowhere else: a shard's device spends
``BlockCosts.stage_token_s`` seconds per decode token (the device's measured
``profile.throughput_tokens_per_s`` when it has one, else a decode step of the
class's batch over the batch), and every hop, loop and return spends the seconds
per token of :meth:`CostTable.hop_usage` and its siblings on every link and NIC of
its path. Every resource is busy at most all of the time.

Three ways to solve it, picked by :func:`route_shards`:

- ``max-flow``: one class, one shard starting at block 0, and every resource used
  by one element of the network only (a device holding one of the class's shards,
  a link direction or NIC carried by one shard pair). Then it is a pure max-flow
  with node capacities, solved by OR-Tools ``SimpleMaxFlow`` on integers: each
  capacity (tokens/s, capped at the first shard's, which no element can exceed) is
  multiplied by a power of two ``scale`` (the largest becomes about 2**50) and
  rounded *down*, so the flow found never
  exceeds a true capacity, and the true max-flow exceeds it by at most
  ``arcs / scale`` tokens/s (reported as ``rounding_error_tok_s``; below 1e-9
  tokens/s on the published clusters).
- ``lp``: shared capacities (a device holding several shards, a link or NIC carried
  by several shard pairs, several classes, request rates): a linear program over arc
  flows, one commodity per (class, first shard), since the sampled token's loop
  from the last shard to the first uses resources that depend on both. HiGHS
  through :func:`scipy.optimize.linprog`.
- ``path-lp``: a class with SLOs: every route must meet them, so the program's
  variables are the routes that do (enumerated with bounds that prune, at most
  :data:`MAX_PATHS` per class; beyond, the paths of the arc program's flow that meet
  the SLOs are added and the result says ``paths_truncated``).

Classes share the traffic as :func:`placement.evaluate` measures it: in the mix of
their request rates when every class gives one (or there is one class), at the
largest total otherwise (each of the ``C`` classes keeps at least
:data:`MIN_SHARE` / ``C`` of the total, so that the floors together never take
more than :data:`MIN_SHARE` of it). With rates on every class, the devices' load
at those rates (prefill and decode) is kept at most 1 too.

The flow is then split into routes (``Route.rate_tok_s``, ``Route.fraction``), each
of which :func:`placement.evaluate` prices on its own (TTFT, TPOT, energy). Rates are
finally scaled so that no resource is loaded above 1 by rounding.

Examples
--------
>>> from placement import load_instance, Plan, Shard
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> shards = (Shard("s0", "llama-3.1-70b", "edge", (0, 41)), Shard("s1", "llama-3.1-70b", "cloud", (41, 80)))
>>> routing = route_shards(problem, shards)          # the chat class has SLOs: routes that meet them
>>> routing.method, [r.path for r in routing.routes], round(routing.throughput_tok_s, 2)
('path-lp', [('s0', 's1')], 4.67)
>>> [round(route_shards(problem, shards, method=m).throughput_tok_s, 2) for m in ("max-flow", "lp")]
[4.67, 4.67]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from placement.costs.routes import Stage, route_times, route_usage
from placement.costs.tables import CostTable, cost_table
from placement.costs.throughput import combine_usage
from placement.plan import Route, Shard
from placement.problem import Problem, RequestClass

__all__ = ["FlowRouting", "route_shards", "MAX_PATHS", "MIN_SHARE", "METHODS"]

MAX_PATHS = 20_000  # SLO-meeting routes enumerated per class
MIN_SHARE = 1e-3  # without a fixed mix, the least share of the total the C classes keep together (each 1/C)
METHODS = ("auto", "max-flow", "lp", "path-lp")
_SCALE_TOP = 2.0 ** 50  # the largest integer capacity of the max-flow network
_REL_TOL = 1e-9  # flows below this share of the total are rounding, not routes


@dataclass(frozen=True)
class FlowRouting:
    """Routes with rates for a set of shards, and how they were found.

    Attributes
    ----------
    routes : tuple of Route
        Each with ``rate_tok_s`` (decode tokens/s) and ``fraction`` (its share of its class).
    throughput_tok_s : float
        Sum of the routes' rates: the most the shards can carry in the classes' mix.
    method : str
        ``max-flow``, ``lp`` or ``path-lp`` (see the module docstring).
    rounding_error_tok_s : float
        How far below the true max-flow the integer max-flow may lie (0 for the programs).
    unserved : tuple of str
        Classes no chain of the shards can serve (no route reaches the last block, a
        network path is missing, or every route misses an SLO).
    stats : dict
        ``paths`` (routes enumerated, path-lp), ``paths_truncated``, ``commodities``, ``variables``.
    """

    routes: tuple[Route, ...]
    throughput_tok_s: float
    method: str
    rounding_error_tok_s: float = 0.0
    unserved: tuple[str, ...] = ()
    stats: dict = field(default_factory=dict)


# -- the network of one class ----------------------------------------------------------------


@dataclass
class _ClassNet:
    """One class's shard graph: which shard may follow which, and what each step uses."""

    req: RequestClass
    shards: list[Shard]
    stages: list[Stage]
    token_s: list[float]  # device seconds per decode token, per shard
    busy_s: list[float]  # device seconds per batch (prefill + decode steps), per shard
    firsts: list[int]
    hops: dict[int, list[tuple[int, dict[int, float]]]]
    returns: dict[int, dict[int, float]]  # last shard -> usage of the token's way to the source
    loops: dict[tuple[int, int], dict[int, float]]  # (last, first) -> usage of the sampled token's loop

    def ends(self, i: int, first: int) -> dict[int, float] | None:
        """Usage of the closing transfers of a route from ``first`` ending at ``i`` (None: impossible)."""
        if i not in self.returns or (i, first) not in self.loops:
            return None
        return combine_usage([(1.0, self.returns[i]), (1.0, self.loops[(i, first)])])


def _class_net(table: CostTable, req: RequestClass, shards: Sequence[Shard]) -> _ClassNet:
    index = table.topology.index
    L = table.problem.model(req.model).num_blocks
    tc = table.transfers(req)
    mine = [s for s in shards if s.model == req.model]
    stages = [Stage(index[s.device], s.layers[0], s.layers[1], table.blocks(req, s.model, s.weight_format))
              for s in mine]
    token_s = [float(st.costs.stage_token_s(st.device, st.start, st.end)) for st in stages]
    busy_s = [float(st.costs.stage_busy_s(st.device, st.start, st.end)) for st in stages]
    by_start: dict[int, list[int]] = defaultdict(list)
    for i, st in enumerate(stages):
        by_start[st.start].append(i)
    hops: dict[int, list[tuple[int, dict[int, float]]]] = {}
    for i, st in enumerate(stages):
        nexts = []
        for j in by_start.get(st.end, []):
            use = table.hop_usage(req, st.device, stages[j].device, req.model)
            if use is not None:
                nexts.append((j, use))
        hops[i] = nexts
    returns = {i: use for i, st in enumerate(stages) if st.end == L
               and (use := table.return_usage(req, st.device, req.model)) is not None}
    firsts = [i for i in by_start.get(0, []) if math.isfinite(float(tc.upload_s[stages[i].device]))]
    loops = {(l, f): use for l in returns for f in firsts
             if (use := table.loop_usage(req, stages[l].device, stages[f].device, req.model)) is not None}
    net = _ClassNet(req, mine, stages, token_s, busy_s, firsts, hops, returns, loops)
    return _pruned(net)


def _pruned(net: _ClassNet) -> _ClassNet:
    """Drop the shards no route of the class can pass: unreachable from a first shard, or
    reaching no last shard that can close a loop to one."""
    ahead: set[int] = set()
    todo = list(net.firsts)
    while todo:
        i = todo.pop()
        if i not in ahead:
            ahead.add(i)
            todo.extend(j for j, _ in net.hops[i])
    behind = {l for (l, _f) in net.loops}
    changed = True
    while changed:  # the graph is acyclic (blocks only go forward): a few sweeps settle it
        changed = False
        for i, nexts in net.hops.items():
            if i not in behind and any(j in behind for j, _ in nexts):
                behind.add(i)
                changed = True
    keep = ahead & behind
    net.firsts = [f for f in net.firsts if f in keep and any((l, f) in net.loops for l in keep)]
    net.hops = {i: [(j, u) for j, u in nexts if j in keep] for i, nexts in net.hops.items() if i in keep}
    net.returns = {i: u for i, u in net.returns.items() if i in keep}
    net.loops = {k: u for k, u in net.loops.items() if k[0] in keep and k[1] in net.firsts}
    return net


# -- paths ---------------------------------------------------------------------------------------


def _meets_slo(req: RequestClass, times) -> bool:
    return all(getattr(times, name.replace("_ms", "_s")) * 1e3 <= limit for name, limit in req.slo.items())


def _lower_bounds(net: _ClassNet, table: CostTable) -> tuple[dict[int, float], dict[int, float]]:
    """Per shard, the least decode-step and prefill seconds from it (included) to the end of a route."""
    tc = table.transfers(net.req)
    order = sorted(net.hops, key=lambda i: -net.stages[i].start)
    dec: dict[int, float] = {}
    pre: dict[int, float] = {}
    for i in order:
        st = net.stages[i]
        d = float(st.costs.stage_decode_s(st.device, st.start, st.end))
        p = float(st.costs.stage_prefill_s(st.device, st.start, st.end))
        best_d = 0.0 if i in net.returns else math.inf
        best_p = float(tc.return_s[st.device]) if i in net.returns else math.inf
        for j, _ in net.hops[i]:
            v = net.stages[j].device
            best_d = min(best_d, float(tc.decode_hop_s[st.device, v]) + dec[j])
            best_p = min(best_p, float(tc.prefill_hop_s[st.device, v]) + pre[j])
        dec[i], pre[i] = d + best_d, p + best_p
    return dec, pre


def _slo_paths(net: _ClassNet, table: CostTable, limit: int) -> tuple[list[tuple[int, ...]], bool]:
    """Routes of the class that meet its SLOs (at most ``limit``; True when more were left out)."""
    req, tc = net.req, table.transfers(net.req)
    dec_lb, pre_lb = _lower_bounds(net, table)
    slo = dict(req.slo.items())
    steps = max(req.output_tokens - 1, 0)
    found: list[tuple[int, ...]] = []

    def hopeless(ttft_s: float, tpot_s: float) -> bool:
        bounds = {"ttft_ms": ttft_s, "tpot_ms": tpot_s, "e2e_ms": ttft_s + steps * tpot_s}
        return any(bounds[k] * 1e3 > v * (1 + 1e-12) for k, v in slo.items())

    def visit(path: list[int], ttft_s: float, tpot_s: float) -> bool:
        i = path[-1]
        if hopeless(ttft_s + pre_lb[i], tpot_s + dec_lb[i]):
            return True
        st = net.stages[i]
        here_t = ttft_s + float(st.costs.stage_prefill_s(st.device, st.start, st.end))
        here_d = tpot_s + float(st.costs.stage_decode_s(st.device, st.start, st.end))
        if (i, path[0]) in net.loops:
            times = route_times([net.stages[k] for k in path], tc, req)
            if _meets_slo(req, times):
                if len(found) >= limit:
                    return False
                found.append(tuple(path))
        for j, _ in net.hops[i]:
            v = net.stages[j].device
            path.append(j)
            more = visit(path, here_t + float(tc.prefill_hop_s[st.device, v]),
                         here_d + float(tc.decode_hop_s[st.device, v]))
            path.pop()
            if not more:
                return False
        return True

    complete = True
    for f in net.firsts:
        if not visit([f], float(tc.upload_s[net.stages[f].device]), 0.0):
            complete = False
            break
    return found, not complete


# -- the linear programs -----------------------------------------------------------------------


@dataclass
class _Column:
    """One variable of the routing program: a flow on an arc of one commodity, or on a whole route."""

    cls: int
    usage: dict[int, float]  # resource -> seconds per token
    busy: dict[int, float]  # device -> busy seconds per batch per token of flow (the load at request rates)
    counts: bool  # part of its class's total (a source arc, or a route)
    arc: tuple | None = None  # (commodity, "src" | "hop" | "end", i, j)
    path: tuple[int, ...] | None = None


def _arc_columns(c: int, net: _ClassNet) -> tuple[list[_Column], list[tuple[tuple, dict[int, float]]]]:
    """Arc-flow columns of class ``c``, one commodity per first shard, and their conservation rows
    (row key -> {column offset: coefficient})."""
    cols: list[_Column] = []
    rows: dict[tuple, dict[int, float]] = defaultdict(dict)

    def node_use(j: int) -> tuple[dict[int, float], dict[int, float]]:
        d = net.stages[j].device
        return {d: net.token_s[j]}, {d: net.busy_s[j]}

    for f in net.firsts:
        reach, todo = set(), [f]
        while todo:
            i = todo.pop()
            if i not in reach:
                reach.add(i)
                todo.extend(j for j, _ in net.hops.get(i, []))
        use, busy = node_use(f)
        rows[(c, f, f)][len(cols)] = 1.0
        cols.append(_Column(c, use, busy, True, arc=(f, "src", None, f)))
        for i in sorted(reach):
            for j, hop in net.hops.get(i, []):
                use, busy = node_use(j)
                rows[(c, f, i)][len(cols)] = -1.0
                rows[(c, f, j)][len(cols)] = 1.0
                cols.append(_Column(c, combine_usage([(1.0, use), (1.0, hop)]), busy, False, arc=(f, "hop", i, j)))
            end = net.ends(i, f)
            if end is not None:
                rows[(c, f, i)][len(cols)] = -1.0
                cols.append(_Column(c, end, {}, False, arc=(f, "end", i, None)))
    return cols, list(rows.items())


def _path_columns(c: int, net: _ClassNet, table: CostTable, paths: Sequence[tuple[int, ...]]) -> list[_Column]:
    cols = []
    for path in paths:
        stages = [net.stages[k] for k in path]
        use = route_usage(table, net.req, stages, net.req.model)
        busy: dict[int, float] = defaultdict(float)
        for k in path:
            busy[net.stages[k].device] += net.busy_s[k]
        cols.append(_Column(c, use or {}, dict(busy), True, path=tuple(path)))
    return cols


@dataclass
class _Program:
    columns: list[_Column]
    conservation: list[tuple[tuple, dict[int, float]]]


def _mix(table: CostTable, nets: Sequence[_ClassNet]) -> tuple[np.ndarray | None, bool]:
    """Each class's share of the total when the mix is fixed (None when it is free), and whether the
    devices' load at the request rates is a limit of the program (every class gives a rate)."""
    reqs = [n.req for n in nets]
    fixed = len(reqs) == 1 or table.rates_given(reqs)
    if not fixed:
        return None, False
    demand = np.array([table.decode_demand(r) for r in reqs])
    return demand / demand.sum(), table.rates_given(reqs)


def _solve_program(table: CostTable, nets: Sequence[_ClassNet], prog: _Program) -> np.ndarray | None:
    """Column values maximising the total (fixed mix) or the sum (free mix); None if HiGHS fails."""
    cols = prog.columns
    n = len(cols)
    shares, load_limited = _mix(table, nets)
    nv = n + 1  # the last variable is the total T
    ub_r, ub_c, ub_v = [], [], []
    resources: dict[int, int] = {}
    for j, col in enumerate(cols):
        for r, u in col.usage.items():
            if u:
                ub_r.append(resources.setdefault(r, len(resources)))
                ub_c.append(j)
                ub_v.append(u)
    rows_ub = len(resources)
    b_ub = [1.0] * rows_ub
    if load_limited and shares is not None:
        devices: dict[int, int] = {}
        for j, col in enumerate(cols):
            coef = table.load_per_busy_s(nets[col.cls].req) / shares[col.cls]
            for d, busy in col.busy.items():
                if busy:
                    ub_r.append(rows_ub + devices.setdefault(d, len(devices)))
                    ub_c.append(j)
                    ub_v.append(coef * busy)
        for k in range(len(devices)):
            ub_r.append(rows_ub + k)
            ub_c.append(n)
            ub_v.append(-1.0)
        rows_ub += len(devices)
        b_ub += [0.0] * len(devices)
    eq_r, eq_c, eq_v = [], [], []
    for k, (_, coefs) in enumerate(prog.conservation):
        for j, v in coefs.items():
            eq_r.append(k)
            eq_c.append(j)
            eq_v.append(v)
    rows_eq = len(prog.conservation)
    # Class totals: sum of counting columns = share x T (fixed mix), or >= MIN_SHARE / C x T (free mix).
    for c in range(len(nets)):
        counted = [j for j, col in enumerate(cols) if col.cls == c and col.counts]
        if shares is not None:
            eq_r += [rows_eq] * len(counted) + [rows_eq]
            eq_c += counted + [n]
            eq_v += [1.0] * len(counted) + [-float(shares[c])]
            rows_eq += 1
        else:
            ub_r += [rows_ub] * len(counted) + [rows_ub]
            ub_c += counted + [n]
            ub_v += [-1.0] * len(counted) + [MIN_SHARE / len(nets)]
            b_ub.append(0.0)
            rows_ub += 1
    if shares is None:  # T is the sum of the classes' totals
        counted = [j for j, col in enumerate(cols) if col.counts]
        eq_r += [rows_eq] * len(counted) + [rows_eq]
        eq_c += counted + [n]
        eq_v += [1.0] * len(counted) + [-1.0]
        rows_eq += 1
    cost = np.zeros(nv)
    cost[n] = -1.0
    A_ub = sp.csr_matrix((ub_v, (ub_r, ub_c)), shape=(rows_ub, nv)) if rows_ub else None
    A_eq = sp.csr_matrix((eq_v, (eq_r, eq_c)), shape=(rows_eq, nv)) if rows_eq else None
    result = linprog(cost, A_ub=A_ub, b_ub=np.array(b_ub) if rows_ub else None, A_eq=A_eq,
                     b_eq=np.zeros(rows_eq) if rows_eq else None, bounds=(0, None), method="highs")
    if result.status != 0:
        return None
    return np.maximum(result.x[:n], 0.0)


def _arc_paths(cols: Sequence[_Column], x: np.ndarray) -> list[tuple[int, tuple[int, ...], float]]:
    """Split arc flows into routes ``(class, shard path, rate)``: per commodity, follow the widest
    arcs from the first shard to an end, take the smallest flow along, repeat."""
    by_commodity: dict[tuple[int, int], dict] = defaultdict(lambda: {"src": 0.0, "hop": {}, "end": {}})
    for col, value in zip(cols, x):
        if col.arc is None or value <= 0:
            continue
        f, kind, i, j = col.arc
        flows = by_commodity[(col.cls, f)]
        if kind == "src":
            flows["src"] += value
        elif kind == "hop":
            flows["hop"][(i, j)] = flows["hop"].get((i, j), 0.0) + value
        else:
            flows["end"][i] = flows["end"].get(i, 0.0) + value
    total = float(sum(f["src"] for f in by_commodity.values()))
    tol = _REL_TOL * max(total, 1.0)
    out = []
    for (c, f), flows in sorted(by_commodity.items()):
        out += [(c, path, rate) for path, rate in _peel(f, flows["src"], flows["hop"], flows["end"], tol)]
    return out


def _peel(first: int, supply: float, hop: dict, end: dict, tol: float) -> list[tuple[tuple[int, ...], float]]:
    """Decompose one commodity's flow into paths (the graph is acyclic, so this ends)."""
    out = []
    out_arcs: dict[int, list[int]] = defaultdict(list)
    for (i, j) in hop:
        out_arcs[i].append(j)
    while supply > tol:
        path, rate, i = [first], supply, first
        while True:
            options = [(hop[(i, j)], j) for j in out_arcs[i] if hop[(i, j)] > tol]
            stop = end.get(i, 0.0)
            if stop > tol and (not options or stop >= max(options)[0]):
                rate = min(rate, stop)
                break
            if not options:
                return out  # what is left is rounding
            value, j = max(options)
            rate = min(rate, value)
            path.append(j)
            i = j
        for a, b in zip(path, path[1:]):
            hop[(a, b)] -= rate
        end[path[-1]] -= rate
        supply -= rate
        out.append((tuple(path), rate))
    return out


# -- the integer max-flow ----------------------------------------------------------------------------


def _exclusive(net: _ClassNet) -> bool:
    """Whether every resource serves one element of the network (then it is a pure max-flow)."""
    if len(net.firsts) != 1:
        return False
    owners: dict[int, int] = defaultdict(int)
    for i in net.hops:
        owners[net.stages[i].device] += 1
    f = net.firsts[0]
    arcs = [hop for i in net.hops for _, hop in net.hops[i]] + [net.ends(i, f) for i in net.returns]
    for use in arcs:
        for r in (use or {}):
            owners[r] += 1
    return all(v <= 1 for v in owners.values())


def _capacity(use: dict[int, float] | None) -> float:
    """Tokens/s one element carries at most: the least of its resources' 1 / seconds per token."""
    worst = max((u for u in (use or {}).values() if u > 0), default=0.0)
    return 1.0 / worst if worst > 0 else math.inf


def _arc_ends(kind: str, at: int, to: int | None, sink: int) -> tuple[int, int]:
    """The max-flow graph's arc of an element: shard ``k`` is the arc ``2k -> 2k + 1``; a hop leaves the
    tail of shard ``at`` for the head of shard ``to``; an end leaves it for the sink.

    >>> _arc_ends("node", 1, None, 9), _arc_ends("hop", 1, 3, 9), _arc_ends("end", 1, None, 9)
    ((2, 3), (3, 6), (3, 9))
    """
    if kind == "node":
        return 2 * at, 2 * at + 1
    if kind == "hop":
        return 2 * at + 1, 2 * to
    return 2 * at + 1, sink


def _max_flow(net: _ClassNet) -> tuple[list[tuple[tuple[int, ...], float]], float]:
    """Routes and the rounding error bound of the pure max-flow of one class (OR-Tools, integers)."""
    from ortools.graph.python import max_flow

    f = net.firsts[0]
    nodes = sorted(net.hops)
    elements = [("node", i, None, 1.0 / net.token_s[i]) for i in nodes]
    elements += [("hop", i, j, _capacity(use)) for i in nodes for j, use in net.hops[i]]
    elements += [("end", i, None, _capacity(net.ends(i, f))) for i in nodes if net.ends(i, f) is not None]
    # No element carries more than the first shard does: capping every capacity there loses nothing
    # and keeps the integer scale fine for the elements that bind.
    ceiling = elements[nodes.index(f)][3]
    elements = [(kind, i, j, min(cap, ceiling)) for kind, i, j, cap in elements]
    finite = [cap for *_, cap in elements]
    top = max(finite, default=1.0)
    scale = 2.0 ** math.floor(math.log2(_SCALE_TOP / top))
    unbounded = int(sum(math.floor(cap * scale) for cap in finite)) + 1
    graph = max_flow.SimpleMaxFlow()
    pos = {i: k for k, i in enumerate(nodes)}
    src, sink = 2 * len(nodes), 2 * len(nodes) + 1
    arcs = []
    for kind, i, j, cap in elements:
        units = int(math.floor(cap * scale)) if math.isfinite(cap) else unbounded
        tail, head = _arc_ends(kind, pos[i], None if j is None else pos[j], sink)
        arcs.append((graph.add_arc_with_capacity(tail, head, units), kind, i, j))
    graph.add_arc_with_capacity(src, 2 * pos[f], unbounded)
    if graph.solve(src, sink) != graph.OPTIMAL:
        raise RuntimeError("OR-Tools max-flow did not solve the routing network")
    hop = {(i, j): float(graph.flow(a)) for a, kind, i, j in arcs if kind == "hop"}
    end = {i: float(graph.flow(a)) for a, kind, i, _ in arcs if kind == "end"}
    supply = float(graph.optimal_flow())
    paths = _peel(f, supply, hop, end, 0.5)  # integers: anything below one unit is nothing
    return [(path, rate / scale) for path, rate in paths], len(elements) / scale


# -- the routing ----------------------------------------------------------------------------------------


def _feasible_rates(table: CostTable, nets: Sequence[_ClassNet], found: list[tuple[int, tuple[int, ...], float]]
                    ) -> list[tuple[int, tuple[int, ...], float]]:
    """The routes' rates, scaled down (if at all) so that no resource is loaded above 1 by rounding."""
    total = sum(rate for *_, rate in found)
    found = [(c, p, rate) for c, p, rate in found if rate > _REL_TOL * max(total, 1.0)]
    parts = []
    for c, path, rate in found:
        use = route_usage(table, nets[c].req, [nets[c].stages[k] for k in path], nets[c].req.model)
        parts.append((rate, use or {}))
    worst = max(combine_usage(parts).values(), default=0.0)
    scale = 1.0 / worst if worst > 1.0 else 1.0
    return [(c, p, rate * scale) for c, p, rate in found]


def route_shards(problem: Problem, shards: Sequence[Shard], method: str = "auto",
                 max_paths: int = MAX_PATHS) -> FlowRouting:
    """Route every request class over ``shards`` at the most tokens/s they can carry.

    Parameters
    ----------
    problem : Problem
    shards : sequence of Shard
        Any shards of the problem's models (replicated and overlapping ranges allowed).
    method : str
        ``auto`` (default: see the module docstring), or force one: ``path-lp`` (routes
        meeting the SLOs), ``lp`` or ``max-flow`` (arc flows; these two leave SLOs
        unchecked, and ``max-flow`` applies only where the network is a pure max-flow).
    max_paths : int
        Routes enumerated per class with SLOs.

    Returns
    -------
    FlowRouting
    """
    if method not in METHODS:
        raise ValueError(f"unknown routing method {method!r} (expected one of {', '.join(METHODS)})")
    table = cost_table(problem)
    nets_all = [_class_net(table, req, shards) for req in problem.workload]
    unserved = [n.req.id for n in nets_all if not n.loops]
    nets = [n for n in nets_all if n.loops]
    if not nets:
        return FlowRouting((), 0.0, "none", unserved=tuple(unserved))
    with_slo = method == "path-lp" or (method == "auto" and any(n.req.slo.items() for n in nets))
    _, load_limited = _mix(table, nets)
    stats: dict = {}
    if not with_slo and method in ("auto", "max-flow") and len(nets) == 1 and not load_limited \
            and _exclusive(nets[0]):
        paths, error = _max_flow(nets[0])
        found = [(0, path, rate) for path, rate in paths]
        return _finish(table, nets, found, "max-flow", error, unserved, {"commodities": 1})
    if method == "max-flow":
        raise ValueError("the network is not a pure max-flow (shared resources, several classes or first shards, "
                         "rates or SLOs): route it with lp")
    if not with_slo:
        columns, conservation = [], []
        for c, net in enumerate(nets):
            cols, rows = _arc_columns(c, net)
            offset = len(columns)
            columns += cols
            conservation += [(key, {offset + j: v for j, v in coefs.items()}) for key, coefs in rows]
        x = _solve_program(table, nets, _Program(columns, conservation))
        found = _arc_paths(columns, x) if x is not None else []
        stats.update(commodities=sum(len(n.firsts) for n in nets), variables=len(columns))
        return _finish(table, nets, found, "lp", 0.0, unserved, stats)
    return _route_paths(table, nets, unserved, max_paths)


def _route_paths(table: CostTable, nets: list[_ClassNet], unserved: list[str], max_paths: int) -> FlowRouting:
    columns: list[_Column] = []
    truncated = False
    counts = []
    for c, net in enumerate(nets):
        if net.req.slo.items():
            paths, cut = _slo_paths(net, table, max_paths)
            if cut:
                truncated = True
                paths = list(dict.fromkeys(paths + _decomposed_slo_paths(table, net)))
        else:
            paths, cut = _all_paths(net, max_paths)
            truncated |= cut
        counts.append(len(paths))
        columns += _path_columns(c, net, table, paths)
    served = {col.cls for col in columns}
    if len(served) < len(nets):  # every route of a class misses its SLO
        unserved += [n.req.id for c, n in enumerate(nets) if c not in served]
        keep = sorted(served)
        renumber = {c: k for k, c in enumerate(keep)}
        nets = [nets[c] for c in keep]
        for col in columns:
            col.cls = renumber[col.cls]
    if not columns:
        return FlowRouting((), 0.0, "path-lp", unserved=tuple(unserved), stats={"paths": 0})
    x = _solve_program(table, nets, _Program(columns, []))
    found = [] if x is None else [(col.cls, col.path, float(v)) for col, v in zip(columns, x) if v > 0]
    return _finish(table, nets, found, "path-lp", 0.0, unserved,
                   {"paths": sum(counts), "paths_truncated": truncated, "variables": len(columns)})


def _all_paths(net: _ClassNet, limit: int) -> tuple[list[tuple[int, ...]], bool]:
    found: list[tuple[int, ...]] = []

    def visit(path: list[int]) -> bool:
        i = path[-1]
        if (i, path[0]) in net.loops:
            if len(found) >= limit:
                return False
            found.append(tuple(path))
        for j, _ in net.hops[i]:
            path.append(j)
            if not visit(path):
                return False
            path.pop()
        return True

    complete = all(visit([f]) for f in net.firsts)
    return found, not complete


def _decomposed_slo_paths(table: CostTable, net: _ClassNet) -> list[tuple[int, ...]]:
    """The routes of the class's arc-flow optimum (SLOs ignored) that meet its SLOs."""
    cols, rows = _arc_columns(0, net)
    x = _solve_program(table, [net], _Program(cols, rows))
    if x is None:
        return []
    tc = table.transfers(net.req)
    return [path for _, path, _ in _arc_paths(cols, x)
            if _meets_slo(net.req, route_times([net.stages[k] for k in path], tc, net.req))]


def _finish(table: CostTable, nets: Sequence[_ClassNet], found, method: str, error: float, unserved: list[str],
            stats: dict) -> FlowRouting:
    found = _feasible_rates(table, nets, found)
    totals: dict[int, float] = defaultdict(float)
    for c, _, rate in found:
        totals[c] += rate
    routes = tuple(Route(nets[c].req.id, tuple(nets[c].shards[k].id for k in path), rate_tok_s=rate,
                         fraction=min(rate / totals[c], 1.0))
                   for c, path, rate in sorted(found, key=lambda item: (item[0], -item[2], item[1])))
    served = {nets[c].req.id for c in totals}
    lost = [n.req.id for n in nets if n.req.id not in served]
    return FlowRouting(routes, float(sum(totals.values())), method, error, tuple(unserved + lost), stats)
