"""One solver run on one problem as one row, and the gap of each row to the best bound.

``llmplace compare`` and ``llmplace bench`` build their rows here, so a solver
that raises is an ``error`` row in both (never the end of the run), a solver
that cannot take the problem is an ``unsupported`` (or ``unavailable``) row, and
the gap to the best known bound is computed one way.

Examples
--------
>>> from placement import load_instance
>>> from solvers import SolveParams
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> rows = [solve_row(problem, "dp", None, SolveParams()), solve_row(problem, "greedy", None, SolveParams())]
>>> rows = with_gaps(rows, problem.objective.sense)
>>> [(r["status"], r["gap_to_best_bound"] == 0, r["best_bound"] == rows[0]["objective"]) for r in rows]
[('optimal', True, True), ('feasible', False, True)]
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Iterable
from typing import Any

from placement import Plan, Problem
from solvers.api import SolveParams, SolverUnavailableError, UnsupportedProblemError, solve
from solvers.options import InvalidOptionError
from solvers.registry import UnknownSolverError, registered, solver_info

__all__ = ["solve_row", "solver_entries", "plan_row", "refused_row", "error_row", "with_gaps", "best_bound", "solver_label",
           "searched_plan_space", "row_plan_space", "WITH_PLAN", "REFUSED"]

WITH_PLAN = ("optimal", "feasible")  # statuses whose plan keeps every limit
REFUSED = ("unsupported", "unavailable")  # the solver did not run


def solver_label(solver: str, backend: str | None) -> str:
    """``ilp`` + ``cbc`` -> ``"ilp:cbc"``; a solver without backends is its name."""
    return f"{solver}:{backend}" if backend else solver


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _mean(plan: Plan, problem: Problem, field: str) -> float | None:
    """The request-weighted mean of one per-request metric (the objective's weighting)."""
    if plan.predicted is None:
        return None
    weights = problem.request_weights()
    return _finite(sum(w * getattr(plan.predicted.requests[r], field) for r, w in weights.items()))


def _registered_space(solver: str | None) -> str | None:
    try:
        return solver_info(solver).plan_space.name if solver else None
    except UnknownSolverError:
        return None


def searched_plan_space(plan: Plan) -> str | None:
    """The plan space ``plan`` was searched in: the one the solve recorded in ``stats["plan_space"]``
    (``auto``'s is its pick's, ``ilp``'s on a caching instance the cache space), else that of the solver
    ``auto`` picked, else its solver's registered one.

    Examples
    --------
    >>> from placement import load_instance
    >>> from solvers import solve
    >>> searched_plan_space(solve(load_instance("instances/helix/single24.yaml"), "auto"))
    'ranges'
    """
    return plan.stats.get("plan_space") or _registered_space(plan.stats.get("picked")) or \
        _registered_space(plan.solver)


def row_plan_space(row: dict[str, Any]) -> str:
    """The plan space a row's run searched: that of the solver it ``picked`` (rows written before the
    runner recorded the searched space say ``auto``'s own), else its ``plan_space``, else its solver's."""
    return _registered_space(row.get("picked")) or row.get("plan_space") or _registered_space(row.get("solver")) \
        or "unknown"


def plan_row(problem: Problem, plan: Plan, wall_time_s: float) -> dict[str, Any]:
    """What a solved plan contributes to a row: statuses, objective, bound, predictions, times."""
    return {
        "status": plan.status.value, "termination": plan.termination.value, "proof": plan.proof.value,
        # A heuristic's plan that breaks a limit still shows what it would cost; status says it is no solution.
        "objective": _finite(plan.objective), "bound": _finite(plan.bound), "gap": _finite(plan.gap),
        "ttft_ms": _mean(plan, problem, "ttft_ms"), "tpot_ms": _mean(plan, problem, "tpot_ms"),
        "e2e_ms": _mean(plan, problem, "e2e_ms"), "energy_j": _mean(plan, problem, "energy_j"),
        "throughput_tok_s": _finite(plan.predicted.throughput_tok_s) if plan.predicted else None,
        "solve_time_s": plan.solve_time_s, "wall_time_s": wall_time_s,
        "picked": plan.stats.get("picked"),
        # Searched, not registered: auto's plan is a plan of the space of the solver it picked.
        **({"plan_space": space} if (space := searched_plan_space(plan)) else {}),
        "shards": [[s.model, s.device, s.layers[0], s.layers[1], s.weight_format] for s in plan.shards],
        "reasons": list(plan.reasons[:5]), "error": None,
    }


def refused_row(kind: str, why: str) -> dict[str, Any]:
    """A solver that did not run: ``unsupported`` (it cannot take the problem) or ``unavailable``."""
    return {"status": kind, "termination": "-", "proof": "none", "objective": None, "bound": None, "gap": None,
            "ttft_ms": None, "tpot_ms": None, "e2e_ms": None, "energy_j": None, "throughput_tok_s": None,
            "solve_time_s": 0.0, "wall_time_s": 0.0, "picked": None, "shards": [], "reasons": [why], "error": None}


def error_row(exc: BaseException, wall_time_s: float) -> dict[str, Any]:
    """A solver (or an instance) that raised: the exception in one line, and where it was raised."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    message = f"{type(exc).__name__}: {exc}{at}"
    return {**refused_row("error", message), "termination": "error", "wall_time_s": wall_time_s, "error": message}


def solve_row(problem: Problem, solver: str, backend: str | None, params: SolveParams) -> dict[str, Any]:
    """Solve ``problem`` with one solver (and backend) and return its row; never raises for a solver's failure.

    A solver that cannot take the problem gives an ``unsupported`` row (``unavailable``
    when its backend does not import), one that raises an ``error`` row with the
    exception; the caller checks solver names and backends before (a typo is the
    caller's error, not a row).
    """
    options = {"backend": backend} if backend else {}
    started = time.perf_counter()
    try:
        plan = solve(problem, solver, params, options)
    except UnsupportedProblemError as exc:
        return refused_row("unsupported", str(exc))
    except SolverUnavailableError as exc:
        return refused_row("unavailable", str(exc))
    except Exception as exc:  # a solver that raises is a row, never the end of a comparison or a benchmark
        return error_row(exc, time.perf_counter() - started)
    return plan_row(problem, plan, time.perf_counter() - started)


def best_bound(rows: Iterable[dict[str, Any]], sense: str) -> float | None:
    """The best proven bound over every plan the ``rows`` searched: the tightest bound within each
    plan space searched (see :func:`row_plan_space`), then the loosest of those (a bound over
    pipelines does not hold for replicated plans, which may beat it).

    Examples
    --------
    >>> rows = [{"solver": "dp", "bound": 10.0}, {"solver": "ilp", "bound": 12.0},
    ...         {"solver": "auto", "picked": "maxflow", "plan_space": "ranges", "bound": 30.0}]
    >>> best_bound(rows, "max")   # pipelines: at most 10; replicated shards: at most 30
    30.0
    """
    by_space: dict[str, list[float]] = {}
    for r in rows:
        if r.get("bound") is not None and math.isfinite(r["bound"]):
            by_space.setdefault(row_plan_space(r), []).append(r["bound"])
    if not by_space:
        return None
    tightest = [min(b) if sense == "max" else max(b) for b in by_space.values()]
    return max(tightest) if sense == "max" else min(tightest)


def with_gaps(rows: list[dict[str, Any]], sense: str, other_bounds: Iterable[dict[str, Any]] = ()
              ) -> list[dict[str, Any]]:
    """``rows`` with ``best_bound`` and ``gap_to_best_bound`` (``|objective - best| / |objective|``) added.

    The best bound is taken over ``rows`` and ``other_bounds`` (rows of the same
    problem from earlier runs); a row gets a gap only when its plan keeps every limit.
    """
    best = best_bound([*rows, *other_bounds], sense)
    out = []
    for r in rows:
        gap = None
        if best is not None and r.get("objective") is not None and r.get("status") in WITH_PLAN:
            gap = abs(r["objective"] - best) / max(abs(r["objective"]), 1e-12)
        out.append({**r, "best_bound": best, "gap_to_best_bound": gap})
    return out


def solver_entries(chosen: list[tuple[str, str | None]] | None = None) -> list[tuple[str, str | None]]:
    """``(solver, backend)`` pairs to run: ``chosen`` checked and each multi-backend solver named without a
    backend expanded to every backend; ``None``: every registered solver, each backend.

    Raises
    ------
    UnknownSolverError
        For a name that is not registered.
    InvalidOptionError
        For a backend the solver does not have.

    Examples
    --------
    >>> solver_entries([("dp", None), ("ilp", None)])
    [('dp', None), ('ilp', 'highs'), ('ilp', 'cbc'), ('ilp', 'cpsat'), ('ilp', 'scip')]
    """
    wanted = chosen if chosen is not None else [(s.name, None) for s in registered()]
    out: list[tuple[str, str | None]] = []
    for name, backend in wanted:
        info = solver_info(name)  # raises UnknownSolverError for a typo
        if backend is not None and backend not in info.backends:
            have = f"backends {', '.join(info.backends)}" if info.backends else "no backends"
            raise InvalidOptionError(f"solver {name}: unknown backend {backend!r} (it has {have})")
        pairs = [(name, b) for b in info.backends] if backend is None and info.backends else [(name, backend)]
        out.extend(p for p in pairs if p not in out)
    return out
