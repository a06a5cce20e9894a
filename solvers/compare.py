"""Run several solvers on one problem and line their answers up.

A solver with several backends (``ilp``) runs once per backend. Each row
reports the solver's status, objective and proven bound, the objective's gap to
the best bound the exact solvers proved over every plan they searched (the tightest
bound of each plan space, then the loosest of those: a bound over pipelines does not
hold for replicated plans), the predicted TTFT / TPOT / energy and the solve time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from placement import Plan, Problem
from solvers.api import SolveParams, SolverUnavailableError, UnsupportedProblemError, applicable_solvers, solve
from solvers.registry import solver_info

__all__ = ["ComparisonRow", "compare", "parse_solver_list"]


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
        expanded = []
        for name, backend in chosen:
            info = solver_info(name)  # raises UnknownSolverError for a typo
            if backend is None and info.backends:
                expanded.extend((name, b) for b in info.backends)
            else:
                expanded.append((name, backend))
        return expanded
    return [(s.name, b) for s in applicable_solvers(problem) for b in (s.backends or (None,))]


def _mean(plan: Plan, problem: Problem, field: str) -> float | None:
    if plan.predicted is None:
        return None
    weights = problem.request_weights()
    return sum(w * getattr(plan.predicted.requests[r], field) for r, w in weights.items())


def compare(problem: Problem, solvers: list[tuple[str, str | None]] | None = None,
            params: SolveParams | None = None) -> list[ComparisonRow]:
    """Solve ``problem`` with each solver (default: every applicable one) and compare.

    Parameters
    ----------
    problem : Problem
    solvers : list of (name, backend or None), optional
        ``None`` runs every applicable registered solver (each backend of multi-backend ones).
    params : SolveParams, optional
        Shared by every run.

    Examples
    --------
    >>> rows = compare(problem, [("greedy", None), ("cloud", None)])   # doctest: +SKIP
    >>> [r.status for r in rows]                                        # doctest: +SKIP
    ['no_solution', 'feasible']
    """
    params = params or SolveParams()
    plans = []
    refused: dict[int, tuple[str, str]] = {}
    for name, backend in _entries(problem, solvers):
        options = {"backend": backend} if backend else {}
        try:
            plans.append((name, backend, solve(problem, name, params, options)))
        except (UnsupportedProblemError, SolverUnavailableError) as exc:
            # A solver named on purpose that cannot take the problem is a row, not the end of the comparison.
            kind = "unavailable" if isinstance(exc, SolverUnavailableError) else "unsupported"
            refused[len(plans) + len(refused)] = (kind, str(exc))
            plans.append((name, backend, None))
    maximise = problem.objective.sense == "max"
    # Bounds hold over their solver's plan space: the tightest within each space, then the loosest of
    # those, which holds over every plan the rows searched (a pipeline bound does not cap replicated plans).
    by_space: dict[str, list[float]] = {}
    for name, _, p in plans:
        if p is not None and p.bound is not None and math.isfinite(p.bound):
            by_space.setdefault(solver_info(name).plan_space.name, []).append(p.bound)
    tightest = [min(b) if maximise else max(b) for b in by_space.values()]
    best_bound = (max(tightest) if maximise else min(tightest)) if tightest else None
    rows = []
    for i, (name, backend, plan) in enumerate(plans):
        if plan is None:
            kind, why = refused[i]
            rows.append(ComparisonRow(name, backend, kind, "-", None, None, None, None, None, None, None, 0.0, (why,)))
            continue
        gap = None
        if best_bound is not None and plan.objective is not None and plan.has_solution:
            gap = abs(plan.objective - best_bound) / max(abs(plan.objective), 1e-12)
        rows.append(ComparisonRow(
            solver=name, backend=backend, status=plan.status.value, termination=plan.termination.value,
            # A heuristic's plan that breaks a limit still shows what it would cost; status says it is no solution.
            objective=plan.objective, bound=plan.bound, gap_to_best_bound=gap,
            ttft_ms=_mean(plan, problem, "ttft_ms"), tpot_ms=_mean(plan, problem, "tpot_ms"),
            energy_j=_mean(plan, problem, "energy_j"),
            throughput_tok_s=plan.predicted.throughput_tok_s if plan.predicted else None,
            solve_time_s=plan.solve_time_s, reasons=plan.reasons,
        ))
    return rows
