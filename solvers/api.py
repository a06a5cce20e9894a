"""``solve(problem, solver=..., params=SolveParams(...), options={...})``.

Every solver is called the same way and returns a :class:`~placement.Plan`.
``solve`` checks the solver exists, imports, and supports the problem; checks
whether the problem is infeasible on its face (not enough memory anywhere, an
SLO below what any device could do); times the solver; and attaches the cost
model's predictions to the plan. It never overwrites the solver's objective:
the conformance suite checks that it equals ``evaluate()``.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from placement import Plan, Problem, Status, Termination, evaluate
from placement.problem import require_problem
from placement.feasibility import infeasibility_reasons
from solvers.registry import SolverInfo, registered, solver_info

__all__ = ["SolveParams", "solve", "MAX_THREADS", "MAX_TIME_LIMIT_S", "MAX_SEED", "PROVEN_FOR_ANY_PLAN", "SolverUnavailableError", "UnsupportedProblemError", "applicable_solvers"]


# stats["proven_by"] of an infeasible plan whose reasons hold for every plan, replicated ones
# included (the checks of placement.feasibility), not only for the solver's own plan space.
PROVEN_FOR_ANY_PLAN = "face-value checks"


class SolverUnavailableError(RuntimeError):
    """The solver's backend cannot be imported here."""


class UnsupportedProblemError(ValueError):
    """The solver does not handle a feature of the problem; the message names solvers that do."""


# What every backend takes: HiGHS, CP-SAT and SCIP take 32-bit seeds, SCIP at most 64 threads;
# a limit beyond 115 days is no limit.
MAX_THREADS = 64
MAX_TIME_LIMIT_S = 1e7
MAX_SEED = 2**31 - 1


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 30 else f"{text[:12]}... ({len(text)} characters)"


def _real(name: str, value: Any, low: float, high: float, low_open: bool, high_open: bool, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < low or value == low and low_open or value > high or value == high and high_open:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: must be {what} in {interval}, got {_shown(value)}")
    return float(value)


def _whole(name: str, value: Any, low: int, high: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name}: must be a whole number from {low} to {high}{why}, got {_shown(value)}")
    return int(value)


@dataclass(frozen=True)
class SolveParams:
    """Settings every solver honours, checked when made (the command line's options are these).

    Parameters
    ----------
    time_limit_s : float
        Wall-clock limit, in (0, ``MAX_TIME_LIMIT_S``]; a solver stopped by it returns
        its best plan (status ``feasible``, termination ``time_limit``) with its gap,
        or ``no_solution``.
    threads : int
        Worker threads for backends that use them, 1 to ``MAX_THREADS``.
    seed : int
        Seed for randomised solvers and backends, 0 to ``MAX_SEED`` (2**31 - 1); a
        fixed seed gives the same plan.
    rel_gap : float
        Relative optimality gap at which exact solvers may stop, in [0, 1).
    verbose : bool
        Let the backend print its log.

    Raises
    ------
    ValueError
        Naming the field first (``threads: must be ...``) when a value is out of range
        or of the wrong type (``threads=1.5``, ``time_limit_s=nan``, ``seed=2**40``).

    Examples
    --------
    >>> SolveParams(time_limit_s=float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: time_limit_s: must be a number of seconds in (0, 1e+07], got nan
    >>> SolveParams(threads=1.5)
    Traceback (most recent call last):
    ...
    ValueError: threads: must be a whole number from 1 to 64, got 1.5
    """

    time_limit_s: float = 60.0
    threads: int = 1
    seed: int = 0
    rel_gap: float = 1e-6
    verbose: bool = False

    def __post_init__(self) -> None:
        checked = {
            "time_limit_s": _real("time_limit_s", self.time_limit_s, 0, MAX_TIME_LIMIT_S, True, False,
                                  "a number of seconds"),
            "threads": _whole("threads", self.threads, 1, MAX_THREADS),
            "seed": _whole("seed", self.seed, 0, MAX_SEED, " (backends take 32-bit seeds)"),
            "rel_gap": _real("rel_gap", self.rel_gap, 0, 1, False, True, "a number"),
        }
        if not isinstance(self.verbose, bool):
            raise ValueError(f"verbose: must be true or false, got {_shown(self.verbose)}")
        for name, value in checked.items():  # numpy numbers become plain ones, exactly
            object.__setattr__(self, name, value)

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
    require_problem(problem)
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a solver name (a str), got {type(solver).__name__}")
    if params is not None and not isinstance(params, SolveParams):
        raise TypeError(f"params must be a solvers.SolveParams, got {type(params).__name__}")
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping of option names to values, got {type(options).__name__}")
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
