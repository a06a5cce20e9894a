"""Solvers: interchangeable algorithms that turn a Problem into a Plan.

    from solvers import solve, SolveParams
    plan = solve(problem, solver="greedy", params=SolveParams(time_limit_s=30))

Every solver is listed in a registry with its capabilities; its module is
imported only when it runs. ``solvers`` imports ``placement`` and ``models``.
"""

from solvers.api import (
    DEFAULT_SOLVER, InvalidOptionError, SolveParams, SolverUnavailableError, UnsupportedProblemError,
    applicable_solvers, solve,
)
from solvers.deadline import Deadline
from solvers.options import Option
from solvers.registry import Capabilities, SolverInfo, UnknownSolverError, registered, solver_info
from solvers import catalog as _catalog  # noqa: F401  (registers the solvers)

__all__ = [
    "solve", "SolveParams", "DEFAULT_SOLVER", "applicable_solvers", "registered", "solver_info",
    "SolverInfo", "Capabilities", "Option", "Deadline",
    "UnknownSolverError", "SolverUnavailableError", "UnsupportedProblemError", "InvalidOptionError",
]
