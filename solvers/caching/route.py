"""``route``: the cache is given, route the traffic.

Over the instance's current cache (its ``cache:`` section's whole-model shards), the shares of
every class on every resident instance (and declared cascade) that meets its quality floor and
SLOs are chosen to minimise the objective, within each device's utilisation limit and memory,
the rest declared unserved. This is :mod:`solvers.caching.formulation`'s program with the cache
pinned: a linear program over the shares when every class's KV cache and workspace fit next to
every instance it may use, and otherwise a small mixed-integer program whose binaries choose
which classes reserve room where. So the answer is exact over the routings of that cache
(status ``optimal``, with its bound). A min-cost flow would not be: classes of different prompt
and output lengths take different device time per request, so a device's capacity is not one
flow capacity shared by all of them.

Resident shards that are not whole models (a pipeline stage) are not routed over; the plan
keeps only what it routes (evicting is free).
"""

from __future__ import annotations

import time
from typing import Any

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from placement.costs.caching import CachingView, caching_view
from solvers.caching.formulation import build_program
from solvers.caching.plans import Solution, build_plan
from solvers.deadline import Deadline
from solvers.ilp.backends import solve_milp

__all__ = ["solve_route", "route_cache", "cached_candidates"]


def cached_candidates(problem: Problem, view: CachingView) -> set[int]:
    """Candidates the current cache holds whole."""
    index = problem.topology.index
    out = set()
    for entry in problem.cache or ():
        t = view.candidate(entry.model, entry.weight_format, index[entry.device])
        if t is not None and entry.layers == (0, int(view.num_blocks[t])):
            out.add(t)
    return out


def route_cache(view: CachingView, cache: set[int], params: Any, deadline: Deadline):
    """The best routing over ``cache``: ``(objective, Solution, result)``, or ``None`` when the backend
    found none in time."""
    program = build_program(view, fixed=cache)
    result = solve_milp(program.milp, "highs", time_limit_s=deadline.left(), threads=params.threads,
                        seed=params.seed, rel_gap=params.rel_gap, verbose=params.verbose)
    if result.x is None:
        return None
    direct, cascade = program.shares(result.x)
    return float(result.objective), Solution(direct, cascade), result, program


def solve_route(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Route every class over the current cache (see the module docstring)."""
    started = time.perf_counter()
    view = caching_view(problem)
    cache = cached_candidates(problem, view)
    found = route_cache(view, cache, params, deadline)
    if found is None:
        return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT,
                    reasons=(f"no routing found within {params.time_limit_s:g} s",))
    _, solution, result, program = found
    plan = build_plan(problem, view, solution, keep_cache=True)
    objective = float(evaluate(problem, plan).objective)
    stats = {**program.stats, "plan_space": "routing over the current cache", "resident": len(cache),
             "method": "lp" if program.stats["linear"] else "milp", "time_s": round(time.perf_counter() - started, 4)}
    if result.status != "optimal":
        return plan.with_(status=Status.FEASIBLE, termination=Termination.TIME_LIMIT, objective=objective, stats=stats)
    return plan.with_(status=Status.OPTIMAL, termination=Termination.CONVERGED, objective=objective, bound=objective,
                      gap=0.0, proof=Proof.PLAN_SPACE, stats=stats)
