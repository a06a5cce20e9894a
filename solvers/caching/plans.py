"""Turning a caching solution (resident instances and routing shares) into a :class:`~placement.Plan`.

Every caching solver ends here: instances become whole-model shards, shares become routes
(cascades with ``escalate_to``), and what the routes leave of each class is declared unserved
with its reason (:func:`placement.coverage.declare_unserved`). An instance no route uses is
dropped: it would only take memory (evicting is free), and a class that reserves room on an
instance but sends it nothing reserves none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from placement import Plan, Problem, Route, Shard
from placement.costs.caching import CachingView
from placement.coverage import declare_unserved

__all__ = ["Solution", "build_plan", "SHARE_EPS"]

SHARE_EPS = 1e-9  # shares below this are a solver's rounding, not a route


@dataclass(frozen=True)
class Solution:
    """Shares of class ``c`` on candidate ``t`` (``direct[(c, t)]``) and on cascade option ``p``
    (``cascade[p]``); whatever they leave of a class is unserved."""

    direct: Mapping[tuple[int, int], float] = field(default_factory=dict)
    cascade: Mapping[int, float] = field(default_factory=dict)


def _used(view: CachingView, solution: Solution) -> list[int]:
    used = {t for (c, t), x in solution.direct.items() if x > SHARE_EPS}
    for p, x in solution.cascade.items():
        if x > SHARE_EPS:
            used |= {int(view.cascades.first[p]), int(view.cascades.second[p])}
    return sorted(used, key=lambda t: (int(view.device[t]), view.model[t], view.weight_format[t]))


def build_plan(problem: Problem, view: CachingView, solution: Solution, keep_cache: bool = False) -> Plan:
    """The plan of ``solution``: its instances, routes and declared unserved shares (``keep_cache``: a
    routing over the current cache, see :func:`placement.coverage.declare_unserved`)."""
    shard_of: dict[int, str] = {}
    shards = []
    for t in _used(view, solution):
        sid = f"s{len(shards)}"
        shard_of[t] = sid
        model = problem.model(view.model[t])
        fmt = None if view.weight_format[t] == model.weight_format else view.weight_format[t]
        shards.append(Shard(sid, model.id, problem.topology.nodes[int(view.device[t])].id,
                            (0, model.num_blocks), fmt))
    routes = []
    for c, rid in enumerate(view.requests):
        for (cc, t), x in sorted(solution.direct.items()):
            if cc == c and x > SHARE_EPS:
                routes.append(Route(rid, (shard_of[t],), fraction=min(float(x), 1.0)))
        for p, x in sorted(solution.cascade.items()):
            if int(view.cascades.cls[p]) == c and x > SHARE_EPS:
                routes.append(Route(rid, (shard_of[int(view.cascades.first[p])],), fraction=min(float(x), 1.0),
                                    escalate_to=(shard_of[int(view.cascades.second[p])],)))
    routes = _fit_shares(routes)
    return declare_unserved(problem, Plan(shards=tuple(shards), routes=tuple(routes)), keep_cache)


def _fit_shares(routes: list[Route]) -> list[Route]:
    """Scale a class's fractions down by a solver's rounding when they sum a hair above 1."""
    total: dict[str, float] = {}
    for r in routes:
        total[r.request] = total.get(r.request, 0.0) + (r.fraction or 0.0)
    return [replace(r, fraction=r.fraction / total[r.request]) if total[r.request] > 1 else r for r in routes]
