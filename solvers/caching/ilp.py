"""``cache-ilp`` (and ``ilp`` on a model-caching instance): joint caching and routing solved exactly.

The program of :mod:`solvers.caching.formulation` goes to an open backend (HiGHS by default,
CBC or SCIP); the proven bound is the backend's, in the objective's own units, since the
program's objective is the plan's. A backend whose feasibility tolerance leaves a plan a hair
past a memory or time limit (CBC's) re-solves with the limits drawn in by a growing margin
(up to three times); the bound of the first solve is kept, as it is the proof. ``optimal`` is
a claim about the plan space
:data:`solvers.registry.CACHE` (whole-model instances). CP-SAT takes one continuous
variable per row at most, and every class's shares are one row of several: it is refused.

Examples
--------
>>> from placement import load_instance
>>> from solvers import solve
>>> plan = solve(load_instance("instances/portfolio.yaml"), "cache-ilp")
>>> plan.status.value, plan.gap
('optimal', 0.0)
"""

from __future__ import annotations

import time
from typing import Any

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from placement.costs.caching import caching_view
from solvers.api import UnsupportedProblemError
from solvers.caching.formulation import MARGIN, build_program
from solvers.caching.plans import Solution, build_plan
from solvers.deadline import Deadline
from solvers.ilp.backends import solve_milp
from solvers.status import relative_gap

__all__ = ["solve_cache_ilp", "CACHE_BACKENDS"]

CACHE_BACKENDS = ("highs", "cbc", "scip")


def solve_cache_ilp(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Solve the caching program with ``options["backend"]`` under ``deadline``.

    Returns
    -------
    Plan
        ``optimal`` with its bound when the backend proves it (within ``rel_gap``); ``feasible``
        with bound and gap when the time limit stopped it; ``no_solution`` when it found nothing.
    """
    backend = options.get("backend", "highs")
    if backend not in CACHE_BACKENDS:
        raise UnsupportedProblemError(
            f"the model-caching program has rows with several continuous shares, which backend {backend} cannot "
            f"hold; use backend {', '.join(CACHE_BACKENDS)}")
    started = time.perf_counter()
    view = caching_view(problem)
    program = build_program(view)
    build_s = time.perf_counter() - started

    def run(program):
        return solve_milp(program.milp, backend, time_limit_s=deadline.left(), threads=params.threads,
                          seed=params.seed, rel_gap=params.rel_gap, verbose=params.verbose)
    result = first = run(program)
    rounds = 0
    while result.x is not None and rounds < 3 and not deadline.expired() and not _keeps_limits(problem, view, program,
                                                                                               result):
        rounds += 1
        program = build_program(view, margin=MARGIN * 100 ** rounds)
        result = run(program)
    stats = {**program.stats, **result.stats, "build_time_s": round(build_s, 4), "plan_space": "cache",
             "tighten_rounds": rounds}
    common = dict(backend=backend, stats={k: v for k, v in stats.items() if v is not None})
    if result.x is None:
        status = Status.ERROR if result.status in ("error", "infeasible") else Status.NO_SOLUTION
        why = result.message or f"no plan found within {params.time_limit_s:g} s"
        if result.status == "infeasible":  # every class may be left unserved: the program always has a solution
            why = f"backend {backend} reported the caching program infeasible, which it never is: {why}"
        return Plan(status=status, termination=Termination.TIME_LIMIT if result.time_limited else Termination.ERROR,
                    reasons=(why,), **common)
    direct, cascade = program.shares(result.x)
    plan = build_plan(problem, view, Solution(direct, cascade))
    objective = float(evaluate(problem, plan).objective)
    bound = None
    if first.bound is not None:  # the program minimises sign x objective: its bound, back in the objective's sense
        bound = view.sign * float(first.bound)
        bound = min(bound, objective) if view.sign > 0 else max(bound, objective)
    gap = relative_gap(objective, bound)
    if result.status == "optimal" and gap is not None and gap <= max(params.rel_gap, 1e-9):
        status, term = Status.OPTIMAL, Termination.CONVERGED if gap <= 1e-9 else Termination.GAP_REACHED
        if gap <= 1e-9:
            bound, gap = objective, 0.0
    else:
        status, term = Status.FEASIBLE, Termination.TIME_LIMIT if result.time_limited else Termination.GAP_REACHED
    return plan.with_(status=status, termination=term, objective=objective, bound=bound, gap=gap,
                      proof=Proof.PLAN_SPACE if status is Status.OPTIMAL else Proof.NONE, **common)


def _keeps_limits(problem: Problem, view, program, result) -> bool:
    direct, cascade = program.shares(result.x)
    return evaluate(problem, build_plan(problem, view, Solution(direct, cascade))).feasible
