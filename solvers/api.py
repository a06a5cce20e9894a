"""``solve(problem, solver=..., params=SolveParams(...), options={...})``.

Every solver is called the same way and returns a :class:`~placement.Plan`.
``solve`` checks the solver exists, imports, and supports the problem; checks
whether the problem is infeasible on its face (not enough memory anywhere, an
SLO below what any device could do); times the solver; and attaches the cost
model's predictions to the plan. It never overwrites the solver's objective:
the conformance suite checks that it equals ``evaluate()``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from placement import Plan, Problem, Status, Termination, evaluate
from placement.feasibility import infeasibility_reasons
from solvers.registry import SolverInfo, registered, solver_info

__all__ = ["SolveParams", "solve", "PROVEN_FOR_ANY_PLAN", "SolverUnavailableError", "UnsupportedProblemError", "applicable_solvers"]


# stats["proven_by"] of an infeasible plan whose reasons hold for every plan, replicated ones
# included (the checks of placement.feasibility), not only for the solver's own plan space.
PROVEN_FOR_ANY_PLAN = "face-value checks"


class SolverUnavailableError(RuntimeError):
    """The solver's backend cannot be imported here."""


class UnsupportedProblemError(ValueError):
    """The solver does not handle a feature of the problem; the message names solvers that do."""


@dataclass(frozen=True)
class SolveParams:
    """Settings every solver honours.

    Parameters
    ----------
    time_limit_s : float
        Wall-clock limit; a solver stopped by it returns its best plan (status
        ``feasible``, termination ``time_limit``) with its gap, or ``no_solution``.
    threads : int
        Worker threads for backends that use them.
    seed : int
        Seed for randomised solvers and backends; a fixed seed gives the same plan.
    rel_gap : float
        Relative optimality gap at which exact solvers may stop.
    verbose : bool
        Let the backend print its log.
    """

    time_limit_s: float = 60.0
    threads: int = 1
    seed: int = 0
    rel_gap: float = 1e-6
    verbose: bool = False

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0, got {self.time_limit_s}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not 0 <= self.rel_gap < 1:
            raise ValueError(f"rel_gap must be in [0, 1), got {self.rel_gap}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def applicable_solvers(problem: Problem) -> list[SolverInfo]:
    """Registered solvers whose capabilities cover ``problem`` and whose backends import."""
    return [s for s in registered() if s.available() and not s.unsupported(problem)]


def _check(info: SolverInfo, problem: Problem) -> None:
    if not info.available():
        raise SolverUnavailableError(
            f"solver {info.name!r} needs {', '.join(info.requires)}, which cannot be imported here")
    why = info.unsupported(problem)
    if why:
        able = [s.name for s in applicable_solvers(problem)]
        raise UnsupportedProblemError(
            f"solver {info.name!r} does not handle {', '.join(why)}; "
            + (f"solvers that do: {', '.join(able)}" if able else "no registered solver does"))


def solve(problem: Problem, solver: str = "greedy", params: SolveParams | None = None,
          options: dict[str, Any] | None = None) -> Plan:
    """Solve ``problem`` with ``solver`` and return a new :class:`Plan` with predicted metrics.

    Parameters
    ----------
    problem : Problem
    solver : str
        A registered name (``llmplace solvers`` lists them).
    params : SolveParams, optional
    options : dict, optional
        Solver-specific settings (e.g. ``{"backend": "highs"}``). ``precheck``
        (default True) runs the face-value infeasibility checks first.

    Raises
    ------
    UnknownSolverError, SolverUnavailableError, UnsupportedProblemError

    Examples
    --------
    >>> from placement import load_instance
    >>> from solvers import solve
    >>> plan = solve(load_instance("instances/device-edge-cloud.yaml"), "greedy")  # doctest: +SKIP
    >>> plan.status                                                                 # doctest: +SKIP
    <Status.FEASIBLE: 'feasible'>
    """
    info = solver_info(solver)
    _check(info, problem)
    params = params or SolveParams()
    options = dict(options or {})
    unknown = set(options) - set(info.options) - {"precheck"}
    if unknown:
        known = ", ".join(sorted({*info.options, "precheck"}))
        raise UnsupportedProblemError(f"solver {info.name!r} has no option(s) {', '.join(sorted(unknown))} "
                                      f"(options: {known})")
    precheck = bool(options.pop("precheck", True))
    started = time.perf_counter()
    if precheck:
        reasons = infeasibility_reasons(problem)
        if reasons:
            return _finish(problem, info, params, options, started,
                           Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED,
                                reasons=tuple(reasons), stats={"proven_by": PROVEN_FOR_ANY_PLAN}))
    plan = info.load()(problem, params, options)
    return _finish(problem, info, params, options, started, plan)


def _pipeline_complete(problem: Problem) -> bool:
    """Whether a plan with one pipeline per model is as good as any plan for ``problem``.

    True when every model serves one request class without a request rate: a
    feasible plan's every route is then a feasible pipeline on its own (SLOs hold
    per route, dropping shards frees memory), so a solver that finds no feasible
    pipeline has proven the instance infeasible. Several classes (different
    sources or SLOs) or rates (replicas can share the load) break that.
    """
    return all(len(problem.requests_for(m.id)) <= 1 for m in problem.models) and \
        not any(r.rate_rps for r in problem.workload)


def _finish(problem: Problem, info: SolverInfo, params: SolveParams, options: dict[str, Any], started: float,
            plan: Plan) -> Plan:
    elapsed = time.perf_counter() - started
    predicted = evaluate(problem, plan) if plan.shards else None
    changes: dict[str, Any] = {
        "solver": info.name, "params": {**params.to_dict(), **options},
        "solve_time_s": elapsed, "objective_name": problem.objective.name, "objective_unit": problem.objective.unit,
        "predicted": predicted,
    }
    if plan.status is Status.INFEASIBLE and info.plan_space == "pipeline" and not _pipeline_complete(problem) \
            and plan.stats.get("proven_by") != PROVEN_FOR_ANY_PLAN:
        # No single pipeline works, but plans that replicate shards (a copy per source, replicas that
        # share the load or serve classes with different SLOs) were not searched: nothing is proven.
        changes["status"] = Status.NO_SOLUTION
        changes["reasons"] = ("no single pipeline per model meets the limits; plans that replicate shards "
                              "were not searched", *plan.reasons)
    if predicted is not None:
        if plan.objective is None and plan.status in (Status.OPTIMAL, Status.FEASIBLE):
            changes["objective"] = predicted.objective  # a constructive heuristic reports what its plan costs
        if plan.status in (Status.OPTIMAL, Status.FEASIBLE) and not predicted.feasible:
            # A heuristic's plan that breaks a limit is not a solution; keep it for inspection.
            changes["status"] = Status.NO_SOLUTION if not info.exact else Status.ERROR
            changes["reasons"] = tuple(plan.reasons) + predicted.violations
    return plan.with_(**changes)
