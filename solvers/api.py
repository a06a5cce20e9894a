"""``solve(problem, solver=..., params=SolveParams(...), options={...})``.

Every solver is called the same way and returns a :class:`~placement.Plan`.
``solve`` checks the solver exists, imports and supports the problem, and that
its options are valid; starts one :class:`~solvers.deadline.Deadline` for the
whole call; checks whether the problem is infeasible on its face (not enough
memory anywhere, an SLO below what any device could do); runs the solver; and
attaches the cost model's predictions, with the status the evidence supports
(:mod:`solvers.status`). It never overwrites an objective a solver reports: the
conformance battery checks that it equals ``evaluate()``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from placement import Plan, Problem, Proof, Status, Termination
from placement.problem import require_problem
from placement.feasibility import infeasibility_reasons
from solvers.deadline import Deadline
from solvers.options import InvalidOptionError, validate_options
from solvers.registry import SolverInfo, registered, solver_info
from solvers.status import predicted_metrics, settle

__all__ = ["SolveParams", "solve", "MAX_THREADS", "MAX_TIME_LIMIT_S", "MAX_SEED", "SolverUnavailableError",
           "UnsupportedProblemError", "InvalidOptionError", "applicable_solvers", "DEFAULT_SOLVER"]

DEFAULT_SOLVER = "auto"


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
        Wall-clock limit for the whole call, in (0, ``MAX_TIME_LIMIT_S``]; a solver stopped
        by it returns its best plan (status ``feasible``, termination ``time_limit``) with its gap,
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


def _check_backend(info: SolverInfo, backend: str | None) -> None:
    missing = info.backend_missing(backend)
    if missing:
        usable = [b for b in info.option("backend").choices if not info.backend_missing(b)]
        raise SolverUnavailableError(
            f"solver {info.name!r}: backend {backend!r} needs {', '.join(missing)}, which cannot be imported "
            f"here (backends that can: {', '.join(usable) or 'none'})")


def solve(problem: Problem, solver: str = DEFAULT_SOLVER, params: SolveParams | None = None,
          options: dict[str, Any] | None = None) -> Plan:
    """Solve ``problem`` with ``solver`` and return a new :class:`Plan` with predicted metrics.

    Parameters
    ----------
    problem : Problem
    solver : str
        A registered name (``llmplace solvers`` lists them); ``auto`` (default)
        picks the exact solver that handles the instance.
    params : SolveParams, optional
    options : dict, optional
        The solver's own settings (e.g. ``{"backend": "highs"}``), checked against
        its declared options. ``precheck`` (default True) runs the face-value
        infeasibility checks first.

    Raises
    ------
    UnknownSolverError, SolverUnavailableError, UnsupportedProblemError, InvalidOptionError

    Examples
    --------
    >>> from placement import load_instance
    >>> from solvers import solve
    >>> plan = solve(load_instance("instances/device-edge-cloud.yaml"), "dp")
    >>> plan.status.value, plan.gap
    ('optimal', 0.0)
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
    params = params if params is not None else SolveParams()
    given = dict(options or {})
    settings = validate_options(info.name, info.options, given)
    _check_backend(info, settings.get("backend"))
    precheck = settings.pop("precheck")
    deadline = Deadline(params.time_limit_s)
    # A model-caching instance is never infeasible: what cannot be served is declared unserved, with its
    # reason, and the face-value checks (one model per class) do not hold for it.
    if precheck and not problem.portfolio_features():
        reasons = infeasibility_reasons(problem)
        if reasons:
            proven = Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, reasons=tuple(reasons),
                          proof=Proof.ANY_PLAN)
            return _finish(problem, info, params, given, deadline, proven)
    plan = info.load()(problem, params, settings, deadline)
    return _finish(problem, info, params, given, deadline, plan)


def _finish(problem: Problem, info: SolverInfo, params: SolveParams, options: dict[str, Any], deadline: Deadline,
            plan: Plan) -> Plan:
    predicted = predicted_metrics(problem, plan)
    changes: dict[str, Any] = {
        "solver": info.name, "params": {**params.to_dict(), **options},
        "solve_time_s": deadline.elapsed(), "objective_name": problem.objective.name,
        "objective_unit": problem.objective.unit, "predicted": predicted,
    }
    if predicted is not None and plan.objective is None and plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        changes["objective"] = predicted.objective  # a constructive heuristic reports what its plan costs
    changes.update(settle(info, problem, plan, predicted))
    # A solver that hands over to another (auto) names the space its plan was searched in.
    changes["stats"] = {"plan_space": info.plan_space.name, **plan.stats}
    return plan.with_(**changes)
