"""``maxflow``: the placement of replicated, overlapping shards that serves the most tokens/s.

**Plan space** (:data:`solvers.registry.RANGES`): one model; each device holds at most one
contiguous range of its blocks (a range fits the device's memory with the KV cache of
every request class, and its profile's ``max_layers``); replicas and overlaps allowed;
the classes are routed over the shards by max-flow
(:func:`placement.costs.flows.route_shards`), every route meeting its class's SLOs, the
devices' load at the request rates (when every class gives one) at most 1.

**How.** (a) A combinatorial search (:mod:`solvers.maxflow.search`): stage layouts by
bottleneck thresholds, then local search over boundaries, replicas and swaps, scored by
the exact routing (or the line model's max-flow where that is exact). (b) An exact MILP
on an open backend (HiGHS, CBC or SCIP through :func:`solvers.ilp.backends.solve_milp`),
warm-started from (a) by a cutoff (it must beat the incumbent): by default (``milp=auto``,
:func:`_program`) the route MILP (:mod:`solvers.maxflow.paths`) on at most
:data:`_ROUTE_MILP_DEVICES` devices where every candidate route can be listed, else the line
MILP (:mod:`solvers.maxflow.line`), exact when no link can bind and there are no SLOs or
rates, a relaxation otherwise, when it has at most :data:`_LINE_MILP_MOST` range variables,
else none (the search takes all the time). Upper bounds: the fluid bound
(:mod:`solvers.maxflow.bounds`, always; tighter than the compute-only bound), the cover
bound (:mod:`solvers.maxflow.cover`, when its covers can be listed) and the MILP's.

The plan says which step found it (``stats["found_by"]``), every bound
(``stats["bounds"]``), the gap, and is ``optimal`` when a bound meets it.
"""

from __future__ import annotations

import random
from typing import Any

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from placement.costs.flows import route_shards
from solvers.deadline import Deadline
from solvers.ilp.backends import solve_milp
from solvers.maxflow.bounds import compute_bound, fluid_bound
from solvers.maxflow.cover import affordable, cover_bound
from solvers.maxflow.line import line_program, links_never_bind
from solvers.maxflow.paths import candidate_routes, route_program
from solvers.maxflow.regions import region_layouts
from solvers.maxflow.search import Scorer, copy_layouts, iterated_search, mixed_stage_layouts, stage_layouts
from solvers.maxflow.space import Space, build_space

__all__ = ["solve_maxflow", "maxflow_unsupported"]

_EPS = 1e-7  # a MILP must beat the incumbent by this share (and a bound within it proves optimality)


TABLE_BUDGET_BYTES = 2 * 2**30  # the range tables the search keeps, at most


def maxflow_unsupported(problem: Problem) -> list[str]:
    """What maxflow cannot take beyond its capability flags: instances whose range tables (every device x
    every range, per class, and three more) would not fit in :data:`TABLE_BUDGET_BYTES`."""
    if len(problem.models) != 1:
        return []
    n, L = len(problem.topology.nodes), problem.models[0].num_blocks
    need = n * (L + 1) ** 2 * 8 * (len(problem.workload) + 3)
    if need > TABLE_BUDGET_BYTES:
        return [f"{n} devices x {L} blocks: its range tables would take {need / 2**30:.1f} GB, more than its "
                f"{TABLE_BUDGET_BYTES / 2**30:.0f} GB budget (use dp, matching or greedy)"]
    return []


class _Best:
    """The incumbent: an assignment, its plan and throughput, and which step found it."""

    def __init__(self) -> None:
        self.value = 0.0
        self.assignment = None
        self.plan: Plan | None = None
        self.found_by = "none"

    def offer(self, space: Space, assignment, found_by: str) -> bool:
        """Keep ``assignment`` if its exact plan keeps every limit and serves more."""
        plan, value = _plan(space, assignment)
        if plan is None or value <= self.value * (1 + 1e-12):
            return False
        self.value, self.assignment, self.plan, self.found_by = value, assignment, plan, found_by
        return True


def _plan(space: Space, assignment) -> tuple[Plan | None, float]:
    """The plan of an assignment: its used shards and max-flow routes, if it keeps every limit."""
    shards = space.shards(assignment)
    if not shards:
        return None, 0.0
    routing = route_shards(space.problem, shards)
    if routing.unserved or not routing.routes:
        return None, 0.0
    used = {sid for r in routing.routes for sid in r.path}
    plan = Plan(shards=tuple(s for s in shards if s.id in used), routes=routing.routes)
    metrics = evaluate(space.problem, plan)
    if not metrics.feasible:
        return None, 0.0
    return plan, metrics.objective


def _no_slo_no_rates(space: Space) -> bool:
    return not any(r.slo.items() for r in space.requests) and not any(
        space.table.load_per_busy_s(r) for r in space.requests)


def solve_maxflow(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    space = build_space(problem)
    rng = random.Random(params.seed)
    stats: dict[str, Any] = {"devices": space.n, "groups": len(space.groups), "regions": len(set(space.regions))}
    if space.n == 0:
        why = [f"no device may hold blocks of {problem.models[0].id} and reach every request source"]
        why += [f"{d}: {reason}" for d, reason in space.excluded.items()]
        return Plan(status=Status.NO_SOLUTION, termination=Termination.CONVERGED, reasons=tuple(why), stats=stats)
    compute, fluid = compute_bound(space), fluid_bound(space)
    bounds = {"compute_only": compute, "fluid": fluid}
    plain = _no_slo_no_rates(space)
    line_exact = plain and links_never_bind(space, fluid)
    stats.update(line_model_exact=line_exact)
    best = _Best()
    program = _program(space, options)
    stats["milp_plan"] = program
    _search(space, options, deadline, rng, line_exact and len(space.requests) == 1, bounds, best, stats,
            share=options["search_share"] if program != "none" else 1.0)
    _cover(space, options, deadline, best, bounds)
    proven = _milp(space, options, params, deadline, line_exact, best, bounds, stats) if program != "none" \
        else min(bounds.values()) <= 0
    return _answer(space, best, bounds, proven, deadline.expired() or stats.get("time_limited", False), stats,
                   params)


_LINE_MILP_MOST = 4_000  # integer variables beyond which auto does not try the line MILP (it finds nothing in time)
_ROUTE_MILP_DEVICES = 12  # auto lists candidate routes up to this many devices


def _program(space: Space, options: dict[str, Any]) -> str:
    """The exact program to run after the search: route, line, or none (the search takes all the time)."""
    mode = options["milp"]
    if mode != "auto":
        return {"off": "none"}.get(mode, mode)
    if space.n <= _ROUTE_MILP_DEVICES:
        return "route"
    arcs = sum(int(space.ok[members[0]].sum()) for members in space.groups)
    return "line" if arcs <= _LINE_MILP_MOST else "none"


def _cover(space: Space, options: dict[str, Any], deadline: Deadline, best: _Best, bounds: dict[str, float]) -> None:
    """The cover bound above the incumbent (when its covers can be listed)."""
    if deadline.expired() or best.plan is None or min(bounds.values()) <= best.value * (1 + _EPS):
        return
    bound, _ = cover_bound(space, best.value, min(bounds.values()), deadline, options["backend"], _EPS)
    if bound is not None:
        bounds["cover"] = min(bound, bounds.get("cover", bound))


def _search(space: Space, options: dict[str, Any], deadline: Deadline, rng: random.Random, line_scores: bool,
            bounds: dict[str, float], best: _Best, stats: dict[str, Any], share: float) -> None:
    """(a): layouts (region by region, mixed stages, one-group stages, short copies), then local search
    from the best of them, within ``share`` of the time left; it stops early once a bound meets the plan."""
    share = Deadline(deadline.left() * share)
    scorer = Scorer(space, line_scores, share)
    rate, kinds = _layouts(space, options, bounds["fluid"], rng, scorer)
    layouts = [(label, a) for label, found in kinds.items() for a in found]
    scored = scorer.ranked(layouts, _round_robin([len(found) for found in kinds.values()]))
    stats.update(stage_rate=rate, layouts=len(layouts), layouts_scored=len(scored))
    starts = scored[: options["starts"]]
    for _, _, label, assignment in starts:
        if best.offer(space, assignment, label):
            break  # the best layout that keeps every limit
    _cover(space, options, share, best, bounds)
    for k, (value, _, label, assignment) in enumerate(starts):
        if share.expired() or min(bounds.values()) <= best.value * (1 + _EPS):
            break
        best.offer(space, assignment, label)
        # Each start gets its share of what is left; the last one keeps kicking until the search's time is up.
        budget = Deadline(share.left() / (len(starts) - k))
        found, got, steps = iterated_search(space, assignment, scorer, rng, budget,
                                            accept=lambda cand: _plan(space, cand)[0] is not None,
                                            target=min(bounds.values()) / (1 + _EPS),
                                            max_stall=0 if stats["milp_plan"] == "route" else options["kicks"])
        if got > value * (1 + 1e-9):
            best.offer(space, found, f"local search from the {label}")
    stats.update(evaluations=scorer.evaluations)


def _layouts(space: Space, options: dict[str, Any], fluid: float, rng: random.Random,
             scorer: Scorer) -> tuple[float, dict[str, list[tuple]]]:
    """The stage-layout rate and the layouts of each kind, in the order their scores break ties.

    The stage layouts come first (the mixed stages start from their rate), then the others. Once
    the scorer's deadline passes, each builder stops with what it has (one layout at least, when it can
    lay any) and the later ones run only while no layout laid so far serves every class.
    """
    deadline = scorer.deadline
    rate, stages = stage_layouts(space, fluid, rng, deadline)
    kinds: dict[str, list[tuple]] = {"region layout": [], "mixed stages": [], "stage layout": stages,
                                     "short copies": []}

    def wanted() -> bool:
        return not deadline.expired() or not any(scorer(a) > 0 for found in kinds.values() for a in found)
    if wanted():
        kinds["region layout"] = region_layouts(space, fluid, deadline)
    if rate > 0 and wanted():
        kinds["mixed stages"] = mixed_stage_layouts(space, rate, fluid, deadline, options["backend"])
    if wanted():
        kinds["short copies"] = copy_layouts(space, deadline=deadline)
    return rate, kinds


def _round_robin(counts: list[int]) -> list[int]:
    """Indices into the concatenation of lists of these lengths, taking each list's first, then each
    one's second, ...: the order to score layouts in, so that a tight limit still tries every kind.

    >>> _round_robin([2, 0, 3, 1])
    [0, 2, 5, 1, 3, 4]
    """
    starts = [sum(counts[:j]) for j in range(len(counts))]
    return [starts[j] + i for i in range(max(counts, default=0)) for j in range(len(counts)) if i < counts[j]]


def _milp(space: Space, options: dict[str, Any], params: Any, deadline: Deadline, line_exact: bool,
          best: _Best, bounds: dict[str, float], stats: dict[str, Any]) -> bool:
    """(b): the exact program warm-started by a cutoff; True when it proves that nothing in the plan space
    beats the incumbent, or, without one, that nothing serves every class (only from exact statements: no
    candidate route, or no throughput at all; never from an infeasible program cut off above zero)."""
    mode = options["milp"]
    upper = min(bounds.values())
    if upper <= 0:
        stats["milp"] = "skipped: the devices cannot hold every block at once (memory, max_layers)"
        return True  # nothing can flow: the bound proves it
    if mode == "off" or deadline.expired() or upper <= best.value * (1 + _EPS):
        return False
    routes = candidate_routes(space, options["max_routes"], deadline) if stats["milp_plan"] == "route" else None
    if routes is None and mode == "route":
        stats["milp"] = f"skipped: more than {options['max_routes']} candidate routes"
        return False
    incumbent = best.plan is not None
    # Without an incumbent, a cutoff a little above zero still steers the backend towards serving plans.
    cutoff = best.value * (1 + _EPS) if incumbent else upper * 1e-9
    if routes is not None:
        if not routes:
            stats["milp"] = "route MILP: no candidate route"
            return True
        prog = route_program(space, routes, upper, cutoff)
        kind, exact = "route MILP", True
    else:
        prog = line_program(space, upper, cutoff)
        kind, exact = "line MILP", line_exact
    if not affordable(prog.milp, options["backend"], deadline):
        stats["milp"] = f"{kind}: skipped, no time left to set it up on {options['backend']}"
        return False
    result = solve_milp(prog.milp, options["backend"], time_limit_s=max(deadline.left(), 0.01),
                        threads=params.threads, seed=params.seed, rel_gap=max(params.rel_gap, _EPS))
    stats["milp"] = {"program": kind, "status": result.status, "variables": prog.milp.num_vars,
                     "rows": prog.milp.num_rows, "exact": exact, **{k: v for k, v in result.stats.items()
                                                                     if k in ("nodes", "backend_time_s")}}
    stats["time_limited"] = bool(result.time_limited)
    if result.x is not None:
        best.offer(space, prog.assignment(space, result.x), kind)
    if result.status == "infeasible":
        # Nothing beats the cutoff in the program, hence (exact or a relaxation) in the plan space: with an
        # incumbent, it is optimal. Without one, plans serving less than the cutoff were cut off, not ruled
        # out: a bound, not a proof that nothing serves.
        bounds[kind] = cutoff
        return incumbent
    if result.bound is not None:
        bounds[kind] = max(cutoff, -result.bound)
    return exact and result.status == "optimal"


def _answer(space: Space, best: _Best, bounds: dict[str, float], proven: bool, timed_out: bool,
            stats: dict[str, Any], params: Any) -> Plan:
    stats["bounds"] = {k: round(v, 6) for k, v in bounds.items()}
    stats["found_by"] = best.found_by
    if best.plan is None:
        if proven:
            why = (f"no placement of one range per device serves every request class of {space.model} within its "
                   "limits (memory, SLOs, load at the request rates)")
            if min(bounds.values()) <= 0:
                held = int(sum(max((b - a for a, b in space.ranges(i)), default=0) for i in range(space.n)))
                why = (f"memory: the {space.n} candidate devices hold at most {held} of {space.model}'s {space.L} "
                       "blocks at once (each one range within its memory and max_layers)")
            return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, proof=Proof.PLAN_SPACE,
                        reasons=(why,), stats=stats)
        why = "no placement found whose shards serve every request class within the limits"
        least = min(bounds.values())
        if least < bounds["fluid"]:
            which = next(k for k, v in bounds.items() if v <= least)
            why += f"; none serves more than {least:.3g} tok/s ({which})"
        return Plan(status=Status.NO_SOLUTION,
                    termination=Termination.TIME_LIMIT if timed_out else Termination.HEURISTIC,
                    reasons=(why,), stats=stats)
    value = best.value
    bound = max(min(bounds.values()), value)
    gap = (bound - value) / max(value, 1e-12)
    proven = gap <= max(params.rel_gap, 10 * _EPS)
    least = min(bounds.values())
    which = next(k for k, v in bounds.items() if v <= least * (1 + 1e-9))  # the simplest of equal bounds
    notes = (f"found by {best.found_by}; bound {bound:,.2f} tok/s ({which}; compute-only {bounds['compute_only']:,.2f},"
             f" fluid {bounds['fluid']:,.2f}), gap {100 * gap:.3g}%",)
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    termination = Termination.CONVERGED if proven else (Termination.TIME_LIMIT if timed_out else Termination.HEURISTIC)
    return best.plan.with_(status=status, termination=termination, objective=value, bound=bound, gap=gap,
                           proof=Proof.PLAN_SPACE if proven else Proof.NONE, stats=stats, reasons=notes)
