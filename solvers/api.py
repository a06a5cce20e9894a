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

from dataclasses import asdict, dataclass
from typing import Any

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from placement.feasibility import infeasibility_reasons
from solvers.deadline import Deadline
from solvers.options import InvalidOptionError, validate_options
from solvers.registry import SolverInfo, registered, solver_info
from solvers.status import settle

__all__ = ["SolveParams", "solve", "SolverUnavailableError", "UnsupportedProblemError", "InvalidOptionError",
           "applicable_solvers", "DEFAULT_SOLVER"]

DEFAULT_SOLVER = "auto"


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
        Wall-clock limit for the whole call; a solver stopped by it returns its
        best plan (status ``feasible``, termination ``time_limit``) with its gap,
        or ``no_solution``.
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
    if not isinstance(problem, Problem):
        raise TypeError(f"solve() needs a Problem (see placement.load_instance), got {type(problem).__name__}")
    info = solver_info(solver)
    _check(info, problem)
    params = params if params is not None else SolveParams()
    if not isinstance(params, SolveParams):
        raise TypeError(f"params must be a SolveParams, got {type(params).__name__}")
    given = dict(options or {})
    settings = validate_options(info.name, info.options, given)
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
    # A plan that declares its demand unserved is a plan too, shards or not (model caching).
    predicted = evaluate(problem, plan) if plan.shards or plan.unserved else None
    changes: dict[str, Any] = {
        "solver": info.name, "params": {**params.to_dict(), **options},
        "solve_time_s": deadline.elapsed(), "objective_name": problem.objective.name,
        "objective_unit": problem.objective.unit, "predicted": predicted,
    }
    if predicted is not None and plan.objective is None and plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        changes["objective"] = predicted.objective  # a constructive heuristic reports what its plan costs
    changes.update(settle(info, problem, plan, predicted))
    return plan.with_(**changes)
