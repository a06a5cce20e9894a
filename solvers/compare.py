"""Run several solvers on one problem and line their answers up.

A solver with several backends (``ilp``) runs once per backend. Each row
reports the solver's status, objective and proven bound, the objective's gap to
the best bound any exact solver proved, the predicted TTFT / TPOT / energy and
the solve time. Rows are built by :mod:`solvers.bench.rows`, the runner
``llmplace bench`` uses: a solver that raises is an ``error`` row, one that
cannot take the problem an ``unsupported`` row, and the comparison goes on.

With an overall budget, the solvers share it: each gets the budget left divided
by the solvers still to run (no more than the per-solver time limit), the
heuristics first, so that time they do not use goes to the exact solvers.
The best bound is taken per plan space (the tightest bound of each space, then
the loosest of those: a bound over pipelines does not hold for replicated plans).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from placement import Problem
from solvers.api import SolveParams, applicable_solvers
from solvers.bench.progress import Progress
from solvers.bench.rows import solve_row, solver_entries, solver_label, with_gaps
from solvers.registry import solver_info

__all__ = ["ComparisonRow", "compare", "parse_solver_list", "budget_shares"]

_LEAST_S = 1e-3  # a solver reached with the budget spent still gets this long (a heuristic needs no more)


@dataclass(frozen=True)
class ComparisonRow:
    solver: str
    backend: str | None
    status: str
    termination: str
    objective: float | None
    bound: float | None
    gap_to_best_bound: float | None
    ttft_ms: float | None
    tpot_ms: float | None
    energy_j: float | None
    throughput_tok_s: float | None
    solve_time_s: float
    reasons: tuple[str, ...]
    time_limit_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


def parse_solver_list(text: str) -> list[tuple[str, str | None]]:
    """``"dp,ilp:cbc,greedy"`` -> ``[("dp", None), ("ilp", "cbc"), ("greedy", None)]``."""
    out = []
    for item in text.split(","):
        name, _, backend = item.strip().partition(":")
        if name:
            out.append((name, backend or None))
    return out


def _entries(problem: Problem, chosen: list[tuple[str, str | None]] | None) -> list[tuple[str, str | None]]:
    if chosen:
        return solver_entries(chosen)  # raises UnknownSolverError / InvalidOptionError for a typo
    return [(s.name, b) for s in applicable_solvers(problem) for b in (s.backends or (None,))]


def budget_shares(budget_s: float, spent_s: float, runs_left: int, time_limit_s: float) -> float:
    """The time limit of the next run: the budget left over the runs left, at most ``time_limit_s``.

    Examples
    --------
    >>> budget_shares(30.0, 0.0, 3, 60.0)     # three solvers share 30 s
    10.0
    >>> budget_shares(30.0, 2.0, 2, 60.0)     # the first used 2 s: the others get 14 s each
    14.0
    >>> budget_shares(30.0, 31.0, 1, 60.0)    # spent: a last heuristic still runs
    0.001
    """
    return max(_LEAST_S, min(time_limit_s, (budget_s - spent_s) / max(runs_left, 1)))


def _run_order(entries: list[tuple[str, str | None]]) -> list[int]:
    """Heuristics before exact solvers, each group in the given order."""
    return sorted(range(len(entries)), key=lambda i: (solver_info(entries[i][0]).exact, i))


def compare(problem: Problem, solvers: list[tuple[str, str | None]] | None = None,
            params: SolveParams | None = None, budget_s: float | None = None,
            progress: bool | None = False) -> list[ComparisonRow]:
    """Solve ``problem`` with each solver (default: every applicable one) and compare.

    Parameters
    ----------
    problem : Problem
    solvers : list of (name, backend or None), optional
        ``None`` runs every applicable registered solver (each backend of multi-backend ones).
    params : SolveParams, optional
        Shared by every run; ``time_limit_s`` is the most any one run gets.
    budget_s : float, optional
        Seconds for the whole comparison, split over the runs (see the module docstring).
    progress : bool, optional
        Draw a progress bar on stderr (``None``: when stderr is a terminal).

    Examples
    --------
    >>> from placement import load_instance
    >>> rows = compare(load_instance("instances/device-edge-cloud.yaml"), [("greedy", None), ("cloud", None)])
    >>> [(r.solver, r.status) for r in rows]   # the cloud L4 alone cannot hold the 70B model
    [('greedy', 'feasible'), ('cloud', 'no_solution')]
    """
    params = params or SolveParams()
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s}")
    entries = _entries(problem, solvers)
    rows: list[dict[str, Any] | None] = [None] * len(entries)
    started = time.perf_counter()
    with Progress(len(entries), problem.name, enabled=progress) as bar:
        for n, i in enumerate(_run_order(entries)):
            name, backend = entries[i]
            limit, left = params.time_limit_s, ""
            if budget_s is not None:
                spent_s = time.perf_counter() - started
                limit = budget_shares(budget_s, spent_s, len(entries) - n, params.time_limit_s)
                left = f"budget left {max(0.0, budget_s - spent_s):.1f} s"
            bar.running([f"{solver_label(name, backend)} ({limit:.3g} s)"], left)
            rows[i] = {**solve_row(problem, name, backend, replace(params, time_limit_s=limit)), "time_limit_s": limit}
            bar.advance()
    done = with_gaps([r for r in rows if r is not None], problem.objective.sense)
    return [ComparisonRow(
        solver=name, backend=backend, status=r["status"], termination=r["termination"], objective=r["objective"],
        bound=r["bound"], gap_to_best_bound=r["gap_to_best_bound"], ttft_ms=r["ttft_ms"], tpot_ms=r["tpot_ms"],
        energy_j=r["energy_j"], throughput_tok_s=r["throughput_tok_s"], solve_time_s=r["solve_time_s"],
        reasons=tuple(r["reasons"]), time_limit_s=r["time_limit_s"],
    ) for (name, backend), r in zip(entries, done)]
