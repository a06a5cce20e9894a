"""Reductions of benchmark rows: per instance, per solver, the optimum, heuristic ratios, Pareto fronts.

Rows are the dicts of a results file (see :mod:`solvers.bench.tasks`). Every
function here reads rows only, so a report can be rebuilt from any results
file, whichever machines or executors produced it.

Examples
--------
>>> rows = [
...     {"family": "f", "family_seed": 0, "instance": "a", "instance_sha256": "x", "label": "dp", "solver": "dp",
...      "exact": True, "status": "optimal", "objective": 10.0, "objective_sense": "min"},
...     {"family": "f", "family_seed": 0, "instance": "a", "instance_sha256": "x", "label": "greedy",
...      "solver": "greedy", "exact": False, "status": "feasible", "objective": 12.5, "objective_sense": "min"},
... ]
>>> ratios = heuristic_ratios(rows)
>>> [(r.label, r.ratio) for r in ratios]
[('greedy', 1.25)]

Each heuristic is held to the optimum of the plan space it searches: a replicated
optimum (``maxflow``'s, or ``auto``'s when it picked maxflow) is no yardstick for a
pipeline heuristic.

>>> rows += [{**rows[0], "label": "auto", "solver": "auto", "picked": "maxflow", "plan_space": "ranges",
...           "objective": 4.0}]
>>> optima(rows)
{'pipeline': 10.0, 'ranges': 4.0}
>>> [(r.label, r.ratio) for r in heuristic_ratios(rows)]
[('greedy', 1.25)]
>>> pareto_front([(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (1.5, 5.0)])
[(1.0, 5.0), (2.0, 3.0)]
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from solvers.bench.rows import REFUSED, WITH_PLAN, row_plan_space
from solvers.bench.tasks import row_key

__all__ = ["instance_id", "latest", "by_instance", "optimum", "optima", "heuristic_ratios", "Ratio", "ratio_summary",
           "pareto_front", "percentile", "ran"]

WITHIN = 1.10  # "within 10 % of the optimum", the matching benchmark's target


def instance_id(row: dict[str, Any]) -> tuple:
    """What makes two rows the same instance: its family, seed, name and digest."""
    return (row.get("family"), row.get("family_seed"), row.get("instance"), row.get("instance_sha256"))


def latest(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run (the last one written, if a file holds a run twice), in file order."""
    keep: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        keep[row_key(r)] = r
    return list(keep.values())


def ran(row: dict[str, Any]) -> bool:
    """Whether the solver ran (not refused for the instance)."""
    return row.get("status") not in REFUSED


def by_instance(rows: Iterable[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[instance_id(r)].append(r)
    return dict(out)


def optima(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per plan space searched (see :func:`solvers.bench.rows.row_plan_space`), the best objective a
    solver proved optimal over that space on one instance; spaces without such a row are left out.
    An optimum is a claim about its own plan space only: a larger space may beat it."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("status") == "optimal" and r.get("objective") is not None:
            values[row_plan_space(r)].append(r["objective"])
    best = max if rows and rows[0].get("objective_sense") == "max" else min
    return {space: best(v) for space, v in values.items()}


def optimum(rows: list[dict[str, Any]], plan_space: str | None = None) -> float | None:
    """The proven optimum over ``plan_space`` on one instance (``None`` if no row proved one); without
    a plan space, the best of every space's optimum (the best plan proven optimal in its own space)."""
    found = optima(rows)
    if plan_space is not None:
        return found.get(plan_space)
    if not found:
        return None
    return (max if rows[0].get("objective_sense") == "max" else min)(found.values())


@dataclass(frozen=True)
class Ratio:
    """How many times worse than the optimum a heuristic's plan is on one instance (``inf``: no plan
    that keeps the limits, though one exists). 1.0 is optimal."""

    label: str
    family: str
    family_seed: int
    instance: str
    ratio: float


def heuristic_ratios(rows: Iterable[dict[str, Any]]) -> list[Ratio]:
    """The ratio of every heuristic (non-exact solver) row to its instance's proven optimum over the
    heuristic's own plan space (a heuristic whose space has no proven optimum on the instance is left out).

    The ratio is ``objective / optimum`` when minimising and ``optimum / objective``
    for throughput, so it reads the same way for every objective.
    """
    out = []
    for group in by_instance(rows).values():
        found = optima(group)
        maximise = group[0].get("objective_sense") == "max"
        for r in group:
            if r.get("exact") or not ran(r) or r.get("status") == "error":
                continue
            best = found.get(row_plan_space(r))
            if best is None:
                continue
            if r.get("status") in WITH_PLAN and r.get("objective") is not None:
                obj = r["objective"]
                value = (best / obj if obj > 0 else math.inf) if maximise else (obj / best if best > 0 else 1.0)
            else:
                value = math.inf
            out.append(Ratio(r["label"], r.get("family", ""), r.get("family_seed", 0), r.get("instance", ""), value))
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(ordered[lo]) or math.isinf(ordered[hi]):
        return ordered[hi]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ratio_summary(ratios: list[Ratio]) -> dict[str, Any]:
    """Compared, mean and worst ratio (over instances with a plan), within 10 %, optimal, missed."""
    found = [r.ratio for r in ratios if math.isfinite(r.ratio)]
    worst = max(ratios, key=lambda r: r.ratio) if ratios else None
    return {
        "compared": len(ratios),
        "mean": statistics.fmean(found) if found else math.nan,
        "worst": worst.ratio if worst else math.nan,
        "worst_instance": f"{worst.instance} (seed {worst.family_seed})" if worst else "",
        "within": sum(r.ratio <= WITHIN for r in ratios),
        "optimal": sum(r.ratio <= 1 + 1e-9 for r in ratios),
        "missed": sum(math.isinf(r.ratio) for r in ratios),
    }


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both coordinates (both minimised), by the first coordinate."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(set(points)):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front
