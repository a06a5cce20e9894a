"""Dynamic programming: the best contiguous partition of one model over a chain of devices.

The PipeEdge / EdgeShard / SplitLLM family. A plan is a pipeline: distinct
devices ``d1 .. dk``, each holding one contiguous range of blocks, covering
blocks ``0 .. L-1`` in order; every request class of the model routes through it.

**What is optimised.** Every additive objective (``latency``, ``ttft``, ``tpot``,
``energy`` and their weighted mix, averaged over the request classes) is

    first[f] + sum_i stage[d_i, a_i, b_i] + sum_i hop[d_i, d_i+1] + end[l, f]

over the tables of :class:`placement.costs.chains.PipelineViews` (``f`` the first
and ``l`` the last device). ``throughput`` (maximised) is the workload's decode
tokens over its busiest resource, so the DP minimises the largest stage, hop and
closing load. Those loads take each transfer's own busiest resource; when two
transfers of the found pipeline share a physical link or NIC, the true load is
higher, and a branch and bound judges complete pipelines by their true
throughput (the DP's value stays a proven bound).

**Limits.** Memory, load at the classes' ``rate_rps`` and a profile's
``max_layers`` are per stage: a stage breaking one is never used. TTFT / TPOT /
E2E SLOs add up along the chain: the DP first solves without them; if that
optimum meets them it is optimal, else a branch and bound over partial chains
(Pareto dominance on the objective and each SLO, lower bounds on what the
remaining blocks cost) finds the best chain that meets them. That search is
exact but exponential in the worst case; when the time limit stops it, the best
chain found is returned (``feasible``) with the DP's optimum as a proven bound.

**Devices.** Only devices every request source reaches can serve. With
``constraints.device_order``, the pipeline visits a subsequence of that order:
O(n^2 L^2) numpy work. Otherwise every subset and order is searched exactly by
a DP over (used set, last device, first device, blocks placed) for up to
``max_exact_devices`` devices (default 10; O(2^n n^2 L^2) time). Beyond that,
when devices fall into classes of interchangeable ones (same spec, engine,
profiles and links: :func:`placement.costs.symmetry.interchangeable_devices`)
with at most ``max_count_vectors`` count vectors, a branch and bound over *how
many* devices of each class the chain uses (``types`` mode,
:mod:`solvers.dp.types`) starts from the heuristic orders' best chain and is
exact when it finishes; stopped by the time limit it returns its best chain
(``feasible``) with a proven bound and gap. Otherwise the ordered DP runs on a
few orders (largest memory first, fastest first, nearest to the source first)
and the answer is a heuristic one (``feasible``, no bound). ``stats["mode"]``
says which search ran: ``ordered``, ``subsets``, ``types`` or ``orders``.

**Not handled** (refused before solving): several models, a choice of weight
formats, ``throughput`` over several request classes unless every class gives
``rate_rps`` (then throughput is a linear programme over the classes' shares,
not a min-max), and instances whose stage tables would not fit in
:data:`TABLE_BUDGET_BYTES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from placement import Plan, Problem, Proof, Status, Termination, cost_table, evaluate
from placement.costs import GIB, Stage, route_usage
from placement.costs.chains import PipelineViews, additive_terms, objective_coefficients, metric_coefficients, upper_mask
from placement.costs.symmetry import interchangeable_devices
from placement.costs.throughput import mixed_throughput
from solvers.api import UnsupportedProblemError
from solvers.chain import Pipeline, StageSpec, assemble, memory_order
from solvers.deadline import Deadline
from solvers.dp.search import Found, best_chain, best_chain_within, restrict
from solvers.dp.types import best_chain_by_class, count_vectors, relaxed_bound
from solvers.status import relative_gap

__all__ = ["solve_dp", "price_chain", "dp_unsupported", "candidate_devices", "device_classes", "search_mode",
           "relaxed_pipeline_bound", "TABLE_BUDGET_BYTES", "MAX_COUNT_VECTORS"]

TABLE_BUDGET_BYTES = 2 * 2**30  # the dense stage tables dp builds, at most
# [n, L+1, L+1] float tables alive at once while building and searching: the objective's, the one the
# search reads, the load and memory tables and their temporaries, and two per SLO (its own and the copy
# a device order restricts it to).
_TABLES = 8
_TABLES_PER_SLO = 2


def _tables(problem: Problem) -> int:
    return _TABLES + _TABLES_PER_SLO * sum(len(r.slo.items()) for r in problem.workload)
MAX_COUNT_VECTORS = 2**20  # default of option max_count_vectors: the types search's largest state space
_LB_SLACK = 1.0 - 1e-9  # lower bounds are shrunk a hair so rounding never prunes a feasible chain

Chain = list[tuple[int, int, int]]  # (candidate position, start block, end block)


def candidate_devices(problem: Problem) -> tuple[list[int], bool]:
    """Topology indices of the devices every request source reaches, and whether their order is fixed."""
    topo = problem.topology
    reach = set(topo.ids)
    for r in problem.workload:
        reach &= topo.reachable(r.source)
    order = problem.constraints.device_order
    if order:
        return [topo.index[d] for d in order if d in reach], True
    return [i for i, node in enumerate(topo.nodes) if node.id in reach], False


def dp_unsupported(problem: Problem) -> list[str]:
    """What dp cannot take beyond its capability flags (the registry's precondition)."""
    why = []
    if len(problem.models) != 1:
        why.append("more than one model (use ilp or bruteforce)")
        return why
    if problem.objective.name == "throughput" and len(problem.workload) > 1 \
            and not cost_table(problem).rates_given():
        why.append("throughput over several request classes without rate_rps (a linear programme over the "
                   "classes' shares; use bruteforce or ilp)")
    idx, ordered = candidate_devices(problem)
    n, L = len(idx), problem.models[0].num_blocks
    need = _tables(problem) * n * (L + 1) ** 2 * 8
    if ordered or n > 10:  # the ordered DP (a device order, or the heuristic orders): [last, first, blocks]
        need += n * n * (L + 1) * 8
    if need > TABLE_BUDGET_BYTES:
        why.append(f"{n} devices x {L} blocks: its stage tables and states would take {need / GIB:.1f} GB, more "
                   f"than its {TABLE_BUDGET_BYTES / GIB:.0f} GB budget (use matching or greedy, or fewer devices)")
    return why


def subset_search_bytes(n: int, L: int) -> int:
    """Bytes the subset DP keeps: for every subset of ``n`` devices, ``[members, members, L+1]`` floats,
    ``(L+1) * 8 * n (n+1) 2^(n-2)`` in all, twice over for the arrays it builds them from."""
    return 2 * (L + 1) * 8 * n * (n + 1) * 2 ** max(n - 2, 0)


def _subset_search_refusal(n: int, L: int, ordered: bool, max_exact_devices: int, tables: int) -> str | None:
    """Why the subset DP's own states would not fit :data:`TABLE_BUDGET_BYTES` beside the stage tables."""
    if ordered or n > max_exact_devices:
        return None
    need = tables * n * (L + 1) ** 2 * 8 + subset_search_bytes(n, L)
    if need <= TABLE_BUDGET_BYTES:
        return None
    return (f"{n} devices x {L} blocks in its subset search: its tables and states would take {need / GIB:.1f} GB, "
            f"more than its {TABLE_BUDGET_BYTES / GIB:.0f} GB budget (lower -O max_exact_devices for a heuristic "
            f"search, give constraints.device_order, or use matching or greedy)")


# -- the tables the DP searches --------------------------------------------------------------


@dataclass(frozen=True)
class _Search:
    """One model's chain problem over candidate devices: objective tables, limits, SLOs."""

    views: PipelineViews
    objective: tuple  # (stage, hop, first, end, terms)
    allowed: np.ndarray  # [n, L+1, L+1] stages within memory, load and max_layers
    limits: dict[str, np.ndarray]
    slos: list[tuple[str, tuple, float]]  # (label, (stage, hop, first, end, terms) in ms, limit ms)
    throughput: bool
    loads: tuple | None  # (stage, hop, end) decode-token loads for throughput

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(stage, hop, first, end)`` of the quantity the DP minimises, ``inf`` where a stage is not allowed."""
        if self.throughput:
            stage, hop, end = self.loads  # type: ignore[misc]
            first = np.zeros(self.views.n)
        else:
            stage, hop, first, end, _ = self.objective
        return np.where(self.allowed, stage, np.inf), hop, first, end


def _build(problem: Problem, idx: list[int], deadline: Deadline | None = None) -> _Search | None:
    """The search's tables, or ``None`` when ``deadline`` expires while they are built."""
    table = cost_table(problem)
    model = problem.models[0]
    views = PipelineViews(table, model.id, idx)
    objective = views.terms(objective_coefficients(problem, views.requests))
    if deadline is not None and deadline.expired():
        return None
    limits = {"memory": views.memory_ok(), "load": views.load_ok(), "max_layers": views.layers_ok()}
    allowed = limits["memory"] & limits["load"] & limits["max_layers"]
    slos = []
    for k, req in enumerate(views.requests):
        for name, limit in req.slo.items():
            if deadline is not None and deadline.expired():
                return None
            coefs = [(0.0, 0.0, 0.0)] * len(views.requests)
            coefs[k] = metric_coefficients(req, name.replace("_ms", ""))
            slos.append((f"request {req.id}: {name.replace('_ms', '').upper()}", views.terms(coefs), limit))
    throughput = problem.objective.name == "throughput"
    return _Search(views, objective, allowed, limits, slos, throughput, views.token_loads() if throughput else None)


def _lower_bounds(terms, idx: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``[L+1]``: at least what any completion costs once blocks ``[0, b)`` are placed."""
    per_block, per_stage = terms.per_block[idx], terms.per_stage[idx]
    hop = terms.hop[np.ix_(idx, idx)]
    n, L = per_block.shape
    suffix = np.concatenate([np.cumsum(per_block.min(axis=0)[::-1])[::-1], [0.0]])
    more = np.zeros(L + 1)
    hops = hop[~np.eye(n, dtype=bool)]
    more[:L] = per_stage.min() + (hops.min() if hops.size else 0.0)
    return (suffix + more + end.min()) * _LB_SLACK


def _true_load(problem: Problem, search: _Search, chain: Chain) -> float:
    """The busiest resource's load per unit of throughput of ``chain``, resource by resource."""
    table, views = cost_table(problem), search.views
    usage = {}
    for req in views.requests:
        bc = table.blocks(req)
        stages = [Stage(int(views.idx[d]), a, b, bc) for d, a, b in chain]
        use = route_usage(table, req, stages)
        if use is None:
            return math.inf
        usage[req.id] = use
    return views.demand() / mixed_throughput(usage, {r: table.decode_demand(r) for r in usage})


# -- the solver --------------------------------------------------------------------------------


def _heuristic_orders(problem: Problem, search: _Search) -> list[list[int]]:
    """Candidate positions in a few pipeline orders: largest memory, fastest decode, nearest source first."""
    views = search.views
    ids = [problem.topology.nodes[d].id for d in views.idx]
    pos = {d: i for i, d in enumerate(ids)}
    by_memory = [pos[d] for d in memory_order(problem, ids)]
    # Per-device figures only: the terms, not their [n, L+1, L+1] stage tables.
    decode = additive_terms(views.table, views.requests, [(0.0, 1.0, 0.0)] * len(views.requests), views.weight_format)
    speed = decode.stage(views.idx, 0, views.L)
    ttft = additive_terms(views.table, views.requests, [(1.0, 0.0, 0.0)] * len(views.requests), views.weight_format)
    upload = ttft.first[views.idx]
    by_speed = sorted(range(views.n), key=lambda i: (speed[i], ids[i]))
    by_distance = sorted(range(views.n), key=lambda i: (upload[i], ids[i]))
    orders: list[list[int]] = []
    for o in (by_memory, by_speed, by_distance):
        if o not in orders:
            orders.append(o)
    return orders


@dataclass
class _Runner:
    """Runs the DP (or the SLO / true-throughput branch and bound) over every order searched."""

    problem: Problem
    search: _Search
    orders: list[list[int]]
    ordered: bool
    heuristic: bool
    deadline: Deadline

    def run(self, constrained: bool, exact_leaf: bool = False) -> Found:
        best, best_order, complete, states = Found(math.inf, [], True, 0), None, True, 0
        stage, hop, first, end = self.search.tables()
        op = np.maximum if self.search.throughput else np.add
        for order in self.orders:
            if self.deadline.expired():
                complete = False
                break
            tables = restrict((stage, hop, first, end), order) if self.heuristic else (stage, hop, first, end)
            on_order = self.ordered or self.heuristic
            if constrained or exact_leaf:
                found = best_chain_within(*tables, op, self._objective_bounds(order), self._constraints(order),
                                          on_order, self.deadline, leaf=self._leaf(order) if exact_leaf else None)
            else:
                found = best_chain(*tables, op=op, ordered=on_order, deadline=self.deadline)
            complete &= found.complete
            states += found.states
            if found.value < best.value:
                best, best_order = found, order
        chain = [(best_order[d] if self.heuristic else d, a, b) for d, a, b in best.chain] if best_order else []
        return Found(best.value, chain, complete, states)

    def _positions(self, order: list[int]) -> np.ndarray:
        idx = self.search.views.idx
        return idx[np.asarray(order)] if self.heuristic else idx

    def _objective_bounds(self, order: list[int]) -> np.ndarray:
        if self.search.throughput:
            return np.zeros(self.search.views.L + 1)
        _, _, _, end, terms = self.search.objective
        end = restrict((end,), order)[0] if self.heuristic else end
        return _lower_bounds(terms, self._positions(order), end)

    def _constraints(self, order: list[int]) -> list[tuple]:
        out = []
        for _, (stage, hop, first, end, terms), limit in self.search.slos:
            tables = restrict((stage, hop, first, end), order) if self.heuristic else (stage, hop, first, end)
            out.append((*tables, _lower_bounds(terms, self._positions(order), tables[3]), limit))
        return out

    def _leaf(self, order: list[int]):
        def leaf(chain: Chain) -> float:
            mapped = [(order[d] if self.heuristic else d, a, b) for d, a, b in chain]
            return _true_load(self.problem, self.search, mapped)
        return leaf

    def meets_slos(self, chain: Chain) -> bool:
        return all(terms[4].chain_value(self._global(chain)) <= limit for _, terms, limit in self.search.slos)

    def _global(self, chain: Chain) -> Chain:
        idx = self.search.views.idx
        return [(int(idx[d]), a, b) for d, a, b in chain]


def _plan(problem: Problem, search: _Search, chain: Chain) -> tuple[Plan, float]:
    """The plan of ``chain`` and its objective, as ``evaluate`` computes it."""
    topo = problem.topology
    stages = tuple(StageSpec(topo.nodes[search.views.idx[d]].id, a, b) for d, a, b in chain)
    shards, routes = assemble([Pipeline(problem.models[0].id, tuple(r.id for r in search.views.requests), stages)])
    plan = Plan(shards=shards, routes=routes)
    return plan, float(evaluate(problem, plan).objective)


def solve_dp(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """The best contiguous partition of the instance's model over its devices.

    Parameters
    ----------
    problem : Problem
        One model; any number of its request classes (they share the pipeline).
    params : SolveParams
        The DP is deterministic and exact, so ``seed``, ``threads`` and ``rel_gap`` change nothing.
    options : dict
        ``max_exact_devices`` (int): above this many candidate devices without a
        ``device_order``, count interchangeable devices, or search a few orders only;
        ``max_count_vectors`` (int): the largest count-vector space the types mode takes.
    deadline : Deadline

    Returns
    -------
    Plan
        ``optimal`` (bound = objective) when proven, ``infeasible`` with the
        binding limits when no chain meets them, ``feasible`` when stopped by the
        time limit or in heuristic mode, ``no_solution`` when nothing was found.

    Examples
    --------
    >>> from placement import parse_instance, evaluate
    >>> from solvers import solve
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import tiny_instance
    >>> problem = parse_instance(tiny_instance())
    >>> plan = solve(problem, "dp")
    >>> plan.status.value, bool(abs(plan.objective - evaluate(problem, plan).objective) < 1e-9 * plan.objective)
    ('optimal', True)
    """
    why = dp_unsupported(problem)
    if why:
        raise UnsupportedProblemError(f"solver 'dp' does not handle {'; '.join(why)}")
    floor, weights = problem.constraints.quality_floor, cost_table(problem).weights(problem.models[0].id)
    if floor is not None and weights.quality < floor:
        # dp keeps the model's one allowed format, so every route of every plan has its quality.
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, stats={"mode": "none"},
                    proof=Proof.ANY_PLAN, reasons=(f"quality: {weights.weight_format} has quality {weights.quality:.4f} "
                                                   f"< constraints.quality_floor {floor:g}",))
    idx, ordered = candidate_devices(problem)
    if not idx:
        sources = ", ".join(sorted({r.source for r in problem.workload}))
        what = "constraints.device_order lists no device" if ordered else "no device is"
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, stats={"mode": "none"},
                    reasons=(f"network: {what} reachable from every request source ({sources})",),
                    proof=Proof.PLAN_SPACE)
    too_big = _subset_search_refusal(len(idx), problem.models[0].num_blocks, ordered, options["max_exact_devices"],
                                     _tables(problem))
    if too_big:
        raise UnsupportedProblemError(f"solver 'dp' does not handle {too_big}")
    search = _build(problem, idx, deadline)
    if search is None or deadline.expired():
        return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT,
                    reasons=("the time limit ran out while building the stage tables",), stats={"mode": "none"})
    heuristic = not ordered and search.views.n > options["max_exact_devices"]
    orders = _heuristic_orders(problem, search) if heuristic else [list(range(search.views.n))]
    runner = _Runner(problem, search, orders, ordered, heuristic, deadline)
    mode = search_mode(problem, options, search)
    if mode == "types":
        return _answer_types(problem, search, runner, _classes(problem, search))
    return _answer(problem, search, runner, mode, heuristic)


def _classes(problem: Problem, search: _Search) -> list[list[int]]:
    """Candidate positions in classes of interchangeable devices, without those no stage fits."""
    pos = {int(d): i for i, d in enumerate(search.views.idx)}
    usable = search.allowed.reshape(search.views.n, -1).any(axis=1)
    out = []
    for cls in interchangeable_devices(problem):
        members = [pos[d] for d in cls if d in pos and usable[pos[d]]]
        if members:
            out.append(members)
    return out


def device_classes(problem: Problem) -> list[list[str]]:
    """The candidate devices dp's ``types`` mode counts, in classes of interchangeable ones (device ids;
    devices no stage fits are left out)."""
    idx, _ = candidate_devices(problem)
    search = _build(problem, idx)
    return [[problem.topology.nodes[search.views.idx[p]].id for p in cls] for cls in _classes(problem, search)]


def search_mode(problem: Problem, options: dict[str, Any] | None = None, search: _Search | None = None) -> str:
    """How dp searches ``problem``: ``ordered`` (a fixed device order), ``subsets`` (every subset and
    order, up to ``max_exact_devices``), ``types`` (counts of interchangeable devices, up to
    ``max_count_vectors`` count vectors) or ``orders`` (a few orders: a heuristic without a bound).
    The first three are exact when they finish within the time limit."""
    opts = {"max_exact_devices": 10, "max_count_vectors": MAX_COUNT_VECTORS, **(options or {})}
    idx, ordered = candidate_devices(problem)
    if ordered:
        return "ordered"
    if len(idx) <= opts["max_exact_devices"]:
        return "subsets"
    search = search or _build(problem, idx)
    classes = _classes(problem, search)
    merged = sum(len(c) for c in classes) > len(classes)
    return "types" if merged and count_vectors(classes) <= opts["max_count_vectors"] else "orders"


def _answer_types(problem: Problem, search: _Search, runner: _Runner, classes: list[list[int]]) -> Plan:
    """The count-vector search, started from the heuristic orders' best chain, and what it proves."""
    stage, hop, first, end = search.tables()
    op = np.maximum if search.throughput else np.add
    lb = np.zeros(search.views.L + 1) if search.throughput else runner._objective_bounds(list(range(search.views.n)))
    cons = runner._constraints(list(range(search.views.n)))
    heuristic = runner.run(constrained=False)  # types mode runs on the heuristic orders' runner
    incumbent = (heuristic.value, heuristic.chain) if heuristic.chain and runner.meets_slos(heuristic.chain) else None
    found = best_chain_by_class(stage, hop, first, end, op, lb, cons, classes, runner.deadline, incumbent=incumbent)
    stats: dict[str, Any] = {"mode": "types", "devices": search.views.n, "classes": len(classes),
                             "count_vectors": count_vectors(classes), "search_nodes": found.states,
                             "heuristic_start": _plan(problem, search, heuristic.chain)[1] if incumbent else None}
    if found.chain and search.throughput:
        true_load = _true_load(problem, search, found.chain)
        if true_load > found.value * (1 + 1e-9):
            stats["shared_resources"] = True  # the table's bottleneck only bounds the true one: judge leaves by it
            again = best_chain_by_class(stage, hop, first, end, op, lb, cons, classes, runner.deadline,
                                        leaf=runner._leaf(list(range(search.views.n))),
                                        incumbent=(true_load, found.chain))
            stats["search_nodes"] += again.states
            found = Found(again.value, again.chain, again.complete, found.states + again.states,
                          bound=min(found.bound, again.bound) if found.bound is not None else again.bound)
    if not found.complete:
        found = Found(found.value, found.chain, False, found.states,
                      bound=max(found.bound if found.bound is not None else -math.inf,
                                relaxed_bound(stage, hop, first, end, op, classes)))
    stats = {k: v for k, v in stats.items() if v is not None}
    if not found.chain:
        return _no_chain_types(problem, search, runner, found, classes, stats)
    plan, value = _plan(problem, search, found.chain)
    if found.complete:
        return plan.with_(status=Status.OPTIMAL, termination=Termination.CONVERGED, objective=value, bound=value,
                          gap=0.0, stats=stats, proof=Proof.PLAN_SPACE)
    bound = _in_units(search, found.bound)
    gap = relative_gap(value, bound)
    return plan.with_(status=Status.FEASIBLE, termination=Termination.TIME_LIMIT, objective=value, bound=bound,
                      gap=gap, stats=stats)


def relaxed_pipeline_bound(problem: Problem, deadline: Deadline | None = None) -> float | None:
    """A proven bound on the best pipeline's objective, in its units (an upper bound for throughput), from
    the relaxations of dp's types mode (:func:`solvers.dp.types.relaxed_bound`: devices of a class may
    repeat; for a bottleneck, the capacity bound), or ``None`` when dp does not take the instance.

    Examples
    --------
    >>> from placement import load_instance
    >>> from solvers import solve
    >>> problem = load_instance("instances/device-edge-cloud.yaml")
    >>> relaxed_pipeline_bound(problem) <= solve(problem, "dp").objective
    True
    """
    from solvers.registry import solver_info
    if solver_info("dp").unsupported(problem):
        return None
    idx, _ = candidate_devices(problem)
    search = _build(problem, idx, deadline) if idx else None
    if search is None:
        return None
    classes = _classes(problem, search)
    if not classes:
        return None
    stage, hop, first, end = search.tables()
    lower = relaxed_bound(stage, hop, first, end, np.maximum if search.throughput else np.add, classes)
    return _in_units(search, lower)


def _in_units(search: _Search, lower: float | None) -> float | None:
    """A lower bound on the searched quantity in the objective's units (an upper bound for throughput)."""
    if lower is None or not math.isfinite(lower):
        return None
    if search.throughput:
        return search.views.demand() / lower if lower > 0 else None
    return float(lower)


def _no_chain_types(problem: Problem, search: _Search, runner: _Runner, found: Found, classes: list[list[int]],
                    stats: dict[str, Any]) -> Plan:
    if found.complete:
        return _exhausted(_infeasibility(problem, search, False, classes), stats)
    return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT, stats=stats,
                reasons=("no chain meets every limit within the time limit (count-vector search)",))


def _answer(problem: Problem, search: _Search, runner: _Runner, mode: str, heuristic: bool) -> Plan:
    """Relaxed DP, then the searches its answer needs, and the plan with what is proven."""
    relaxed = runner.run(constrained=False)
    stats: dict[str, Any] = {"mode": mode, "devices": search.views.n, "states": relaxed.states,
                             "orders": len(runner.orders)}
    found, bound_value = relaxed, (relaxed.value if relaxed.complete and not heuristic else None)
    if relaxed.chain and search.slos and not runner.meets_slos(relaxed.chain):
        stats["unconstrained_optimum"] = _plan(problem, search, relaxed.chain)[1]
        found = runner.run(constrained=True)
        stats["search_nodes"] = found.states
    if found.chain and search.throughput:
        true_load = _true_load(problem, search, found.chain)
        if true_load > found.value * (1 + 1e-9):
            stats["shared_resources"] = True  # transfers of the pipeline share a link or NIC
            found = runner.run(constrained=bool(search.slos), exact_leaf=True)
            stats["search_nodes"] = stats.get("search_nodes", 0) + found.states
    if not found.chain:
        return _no_chain(problem, search, runner, found, heuristic, stats)
    plan, value = _plan(problem, search, found.chain)
    proven = found.complete and not heuristic
    if proven:
        return plan.with_(status=Status.OPTIMAL, termination=Termination.CONVERGED, objective=value, bound=value,
                          gap=0.0, stats=stats, proof=Proof.PLAN_SPACE)
    bound = None
    if bound_value is not None:
        bound = search.views.demand() / bound_value if search.throughput else float(bound_value)
    gap = relative_gap(value, bound)
    return plan.with_(status=Status.FEASIBLE,
                      termination=Termination.TIME_LIMIT if not found.complete else Termination.HEURISTIC,
                      objective=value, bound=bound, gap=gap, stats=stats)


def _no_chain(problem: Problem, search: _Search, runner: _Runner, found: Found, heuristic: bool,
              stats: dict[str, Any]) -> Plan:
    if found.complete and not heuristic:
        return _exhausted(_infeasibility(problem, search, runner.ordered), stats)
    why = "time limit" if not found.complete else "heuristic device orders"
    return Plan(status=Status.NO_SOLUTION,
                termination=Termination.TIME_LIMIT if not found.complete else Termination.HEURISTIC,
                reasons=(f"no chain meets every limit within the {why} searched",), stats=stats)


def _exhausted(reasons: list[str], stats: dict[str, Any]) -> Plan:
    """The answer of an exact search that finished without a chain: infeasible, with ``reasons``."""
    if reasons:
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, reasons=tuple(reasons),
                    stats=stats, proof=Proof.PLAN_SPACE)
    # Every limit can be met, yet the search found nothing: its values overflowed. Nothing is proven.
    return Plan(status=Status.NO_SOLUTION, termination=Termination.CONVERGED, stats=stats,
                reasons=("every chain's objective value overflows floating point (check the objective's "
                         "weights); nothing is proven",))


def price_chain(problem: Problem, stages: list[tuple[str, int, int]]) -> tuple[float, bool]:
    """The objective of the pipeline ``stages`` (``(device id, start, end)`` triples) as dp searches it,
    and whether it keeps every limit dp checks (memory, load, ``max_layers``, SLOs).

    A device cut off from a source gives ``(inf, False)`` (``0`` for throughput).

    Examples
    --------
    >>> from placement import parse_instance
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import tiny_instance
    >>> value, feasible = price_chain(parse_instance(tiny_instance()), [("phone", 0, 10), ("edge", 10, 22)])
    >>> value > 0, feasible
    (True, True)
    """
    idx, _ = candidate_devices(problem)
    throughput = problem.objective.name == "throughput"
    pos = {d: i for i, d in enumerate(idx)}
    try:
        chain = [(pos[problem.topology.index[d]], a, b) for d, a, b in stages]
    except KeyError:
        return (0.0 if throughput else math.inf), False
    search = _build(problem, idx)
    runner = _Runner(problem, search, [list(range(len(idx)))], True, False, Deadline(math.inf))
    feasible = all(search.allowed[d, a, b] for d, a, b in chain) and runner.meets_slos(chain)
    if throughput:
        return search.views.demand() / _true_load(problem, search, chain), bool(feasible)
    return search.objective[4].chain_value(runner._global(chain)), bool(feasible)


# -- explaining infeasibility ------------------------------------------------------------------


def _gb(x: float) -> str:
    return f"{x / GIB:.2f} GB"


def _infeasibility(problem: Problem, search: _Search, ordered: bool,
                   classes: list[list[int]] | None = None) -> list[str]:
    """Why no chain exists: each limit that alone leaves none, with its numbers (empty: none binds).
    With ``classes``, chains are searched over count vectors (dp's ``types`` mode)."""
    views, limits = search.views, search.limits
    n, L = views.n, views.L
    zero_hop, zero_first, zero_end = np.zeros((n, n)), np.zeros(n), np.zeros((n, n))

    every = _all_positions(classes, n) if classes is not None else None

    def cheapest(stage, hop, first, end, op=np.add, ordered=False) -> Found:
        if every is None:
            return best_chain(stage, hop, first, end, op=op, ordered=ordered)
        return best_chain_by_class(stage, hop, first, end, op, np.zeros(L + 1), [], every)

    def possible(mask: np.ndarray) -> bool:
        return bool(cheapest(np.where(mask, 0.0, np.inf), zero_hop, zero_first, zero_end, ordered=ordered).chain)

    reasons = []
    if not possible(limits["memory"]):
        reasons.append(_memory_reason(problem, search))
    if not possible(limits["load"]):
        load = np.where(upper_mask(L)[None], views.load(), np.inf)
        least = cheapest(load, zero_hop, zero_first, zero_end, op=np.maximum, ordered=ordered)
        reasons.append(f"load: at the workload's request rates every split keeps some device busy at least "
                       f"{least.value:.0%} of the time (more than it can serve)")
    if not possible(limits["max_layers"]):
        most = sum(int(min(m, L)) for m in views.table.max_blocks(views.model)[views.idx])
        reasons.append(f"memory: the reachable devices' profiles allow at most {most} of model {views.model}'s "
                       f"{L} blocks in all (max_layers)")
    if reasons:
        return reasons
    if not possible(search.allowed):
        return [f"memory and load: each of the memory, load and max_layers limits alone leaves a split of model "
                f"{views.model}, but no split meets them all at once"]
    if not search.slos:
        return []
    best = []
    for label, (stage, hop, first, end, _), limit in search.slos:
        f = cheapest(np.where(search.allowed, stage, np.inf), hop, first, end, ordered=ordered)
        best.append(f"{label} {f.value:.1f} ms")
        if f.value > limit:
            reasons.append(f"SLO: {label} is at least {f.value:.1f} ms on every split that fits the devices' "
                           f"limits > SLO {limit:g} ms")
    return reasons or [f"SLO: no split meets the SLOs all at once; each alone can be met (best {', '.join(best)})"]


def _all_positions(classes: list[list[int]], n: int) -> list[list[int]]:
    """``classes`` plus a singleton class for every position they leave out (devices no stage fits)."""
    covered = {p for c in classes for p in c}
    return sorted([list(c) for c in classes] + [[p] for p in range(n) if p not in covered])


def _memory_reason(problem: Problem, search: _Search) -> str:
    views = search.views
    table, L, n = views.table, views.L, views.n
    need = float(views.stage_memory_bytes()[0, L])
    capacity = table.capacity_bytes[views.idx]
    runtime = table.runtime_bytes(views.weight_format)[views.idx]
    names = [problem.topology.nodes[d].id for d in views.idx]
    spans = [b - a for d in range(n) for a in range(L) for b in range(a + 1, L + 1) if search.limits["memory"][d, a, b]]
    cut_off = [node.id for node in problem.topology.nodes if node.id not in names]
    where = f"the {n} device(s) reachable from every source ({', '.join(names)})" + (
        f"; not reachable: {', '.join(cut_off)}" if cut_off else "")
    if float((capacity - runtime).sum()) < need:
        return (f"memory: model {views.model} needs at least {_gb(need)} (weights + KV cache of its request classes "
                f"+ a prefill workspace) but {where} have {_gb(float(capacity.sum()))} usable, "
                f"{_gb(float(runtime.sum()))} of it taken by engine runtimes")
    return (f"memory: {where} have {_gb(float((capacity - runtime).sum()))} usable beyond their engine runtimes, "
            f"enough for model {views.model}'s {_gb(need)} in total, but no split of its {L} blocks into contiguous "
            f"ranges on distinct devices fits every device (each stage needs its own workspace; the most any device "
            f"holds is {max(spans, default=0)} block(s))")
