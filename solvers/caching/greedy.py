"""``cache-greedy``: lazy greedy on marginal gain, then local moves, then exact routing of the cache found.

The value of a cache ``S`` (a set of resident whole-model instances) is the objective of
routing the classes over it; here it is estimated fast by *water-filling*: the routing
options over ``S`` (a class on one instance, or on a cascade's two) are taken in the order of
what a share of them gains over leaving it unserved (a class's cheapest option first), each
carrying as much of its class as the devices' time (``max_utilization``) and memory (the
class's KV cache and workspace on the instance) allow; the rest is unserved. Starting from an
empty cache (instances cached now are just cheaper: they cost no load):

1. *lazy greedy* (Minoux's accelerated greedy): every candidate's gain is kept as an upper
   bound in a heap; the top one is re-valued against the current cache and added when it is
   still the best and gains, until no addition gains;
2. *local moves*, while the time limit allows: drop an instance that no longer pays, or swap an
   instance for another candidate on the same device;
3. the cache found is routed exactly (:mod:`solvers.caching.route`'s program: an LP, or a small
   MILP when reservations compete for memory); the better of that and the water-filling is kept.

It proves nothing: status ``feasible``, no bound. Deterministic: ties break by candidate order.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from placement import Plan, Problem, Status, Termination, evaluate
from placement.costs.caching import CachingView, caching_view
from solvers.caching.plans import Solution, build_plan
from solvers.caching.route import route_cache
from solvers.deadline import Deadline

__all__ = ["solve_cache_greedy", "WaterFilling"]

_GAIN_TOL = 1e-9  # relative: a gain smaller than this share of the objective is none


@dataclass(frozen=True)
class _Option:
    cls: int
    cost: float  # objective per unit share (class weight included)
    busy: tuple[tuple[int, float], ...]  # (device, busy share per unit share)
    instances: tuple[int, ...]  # candidates it reserves room on
    key: tuple  # ("direct", t) or ("cascade", p)


class WaterFilling:
    """Routing over a cache by taking options cheapest first (see the module docstring)."""

    def __init__(self, view: CachingView):
        self.view = view
        self.weight = view.class_weight
        options: list[_Option] = []
        for c, t in zip(*np.nonzero(view.eligible & view.fits[None, :])):
            options.append(_Option(int(c), float(view.class_weight[c] * view.cost[c, t]),
                                   ((int(view.device[t]), float(view.busy[c, t])),), (int(t),), ("direct", int(t))))
        cas = view.cascades
        for p in range(len(cas)):
            i, j, c = int(cas.first[p]), int(cas.second[p]), int(cas.cls[p])
            if not (view.fits[i] and view.fits[j]):
                continue
            busy: dict[int, float] = {}
            for d, b in ((int(view.device[i]), float(cas.busy_first[p])), (int(view.device[j]), float(cas.busy_second[p]))):
                busy[d] = busy.get(d, 0.0) + b
            options.append(_Option(c, float(view.class_weight[c] * cas.cost[p]), tuple(busy.items()), (i, j),
                                   ("cascade", p)))
        # Largest gain over leaving the share unserved first: a class's cheapest option first, and
        # classes by how much their requests weigh.
        options.sort(key=lambda o: (-(view.class_weight[o.cls] * view.unserved_cost - o.cost), o.key))
        self.options = options
        self.by_instance: dict[int, list[int]] = {}
        for k, o in enumerate(options):
            for t in o.instances:
                self.by_instance.setdefault(t, []).append(k)

    def fits(self, cache: set[int], t: int) -> bool:
        """Whether instance ``t``'s weights and runtime fit its device next to ``cache``'s."""
        view = self.view
        d = int(view.device[t])
        on = [k for k in cache if int(view.device[k]) == d] + [t]
        need = view.weight_mem_bytes[on].sum() + view.runtime_mem_bytes[on].max()
        return bool(need <= view.capacity_bytes[d])

    def route(self, cache: set[int]) -> tuple[float, Solution]:
        """The objective of water-filling over ``cache``, and its shares."""
        view = self.view
        D = len(view.capacity_bytes)
        free = np.array(view.capacity_bytes, dtype=float)
        runtime = np.zeros(D)
        for t in cache:
            d = int(view.device[t])
            free[d] -= view.weight_mem_bytes[t]
            runtime[d] = max(runtime[d], view.runtime_mem_bytes[t])
        free -= runtime
        workspace = {t: 0.0 for t in cache}
        reserved: set[tuple[int, int]] = set()
        load = np.zeros(D)
        left = np.ones(len(view.requests))
        limit = view.max_utilization
        chosen = sorted({k for t in cache for k in self.by_instance.get(t, ())})
        direct: dict[tuple[int, int], float] = {}
        cascade: dict[int, float] = {}
        total = 0.0
        for k in chosen:
            o = self.options[k]
            if left[o.cls] <= 0 or not all(t in cache for t in o.instances):
                continue
            extra = {}
            for t in o.instances:
                if (o.cls, t) not in reserved:
                    d = int(view.device[t])
                    grow = view.kv_mem_bytes[o.cls, t] + max(0.0, view.workspace_mem_bytes[o.cls, t] - workspace[t])
                    extra[d] = extra.get(d, 0.0) + grow
            if any(grow > free[d] for d, grow in extra.items()):
                continue
            share = left[o.cls]
            for d, b in o.busy:
                if b > 0:
                    share = min(share, (limit - load[d]) / b)
            if share <= 1e-12:
                continue
            for d, grow in extra.items():
                free[d] -= grow
            for t in o.instances:
                if (o.cls, t) not in reserved:
                    reserved.add((o.cls, t))
                    workspace[t] = max(workspace[t], view.workspace_mem_bytes[o.cls, t])
            for d, b in o.busy:
                load[d] += share * b
            left[o.cls] -= share
            total += share * o.cost
            if o.key[0] == "direct":
                direct[(o.cls, o.key[1])] = share
            else:
                cascade[o.key[1]] = share
        total += float(np.sum(view.class_weight * np.maximum(left, 0.0))) * view.unserved_cost
        total += float(sum(view.churn_cost[t] for t in cache))
        return total, Solution(direct, cascade)


def _gain(filling: WaterFilling, cache: set[int], base: float, t: int) -> float:
    return base - filling.route(cache | {t})[0]


def _lazy_greedy(filling: WaterFilling, candidates: list[int], deadline: Deadline) -> tuple[set[int], float, int]:
    cache: set[int] = set()
    base = filling.route(cache)[0]
    heap = [(-_gain(filling, cache, base, t), t) for t in candidates]
    heapq.heapify(heap)
    evaluations = len(candidates)
    while heap and not deadline.expired():
        _, t = heapq.heappop(heap)
        if not filling.fits(cache, t):
            continue
        gain = _gain(filling, cache, base, t)
        evaluations += 1
        if heap and gain < -heap[0][0]:
            heapq.heappush(heap, (-gain, t))  # no longer the best: its bound drops to what it gains now
            continue
        if gain <= _GAIN_TOL * max(abs(base), 1.0):
            break
        cache.add(t)
        base -= gain
    return cache, base, evaluations


def _local_moves(filling: WaterFilling, cache: set[int], value: float, candidates: list[int],
                 deadline: Deadline) -> tuple[set[int], float, int]:
    """Drop an instance that does not pay, or swap one for a candidate on its device, until neither helps."""
    view = filling.view
    moves = 0
    improved = True
    while improved and not deadline.expired():
        improved = False
        for t in sorted(cache):
            trial = filling.route(cache - {t})[0]
            if trial < value - _GAIN_TOL * max(abs(value), 1.0):
                cache, value, improved, moves = cache - {t}, trial, True, moves + 1
                break
            for s in candidates:
                if deadline.expired():
                    break
                if s in cache or view.device[s] != view.device[t] or not filling.fits(cache - {t}, s):
                    continue
                trial = filling.route((cache - {t}) | {s})[0]
                if trial < value - _GAIN_TOL * max(abs(value), 1.0):
                    cache, value, improved, moves = (cache - {t}) | {s}, trial, True, moves + 1
                    break
            if improved:
                break
    return cache, value, moves


def solve_cache_greedy(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Lazy greedy caching, local moves, then exact routing of the cache (see the module docstring).

    Parameters
    ----------
    options : dict
        ``local_moves`` (bool): run the drop and swap moves; ``exact_routing`` (bool): route the
        final cache with the routing program instead of water-filling alone.
    """
    view = caching_view(problem)
    filling = WaterFilling(view)
    useful = view.eligible.any(axis=0)
    if len(view.cascades):
        useful[view.cascades.first] = True
        useful[view.cascades.second] = True
    candidates = [int(t) for t in np.flatnonzero(view.fits & useful)]
    cache, value, evaluations = _lazy_greedy(filling, candidates, deadline)
    moves = 0
    if options.get("local_moves", True):
        cache, value, moves = _local_moves(filling, cache, value, candidates, deadline)
    filled_value, solution = filling.route(cache)
    routing = "water-filling"
    if options.get("exact_routing", True) and cache and not deadline.expired():
        exact = route_cache(view, cache, params, deadline)
        if exact is not None and exact[0] < filled_value:
            solution, routing = exact[1], "exact"
    plan = build_plan(problem, view, solution)
    stats = {"plan_space": "cache", "candidates": len(candidates), "evaluations": evaluations, "local_moves": moves,
             "routing": routing, "instances": len(cache)}
    return plan.with_(status=Status.FEASIBLE, termination=Termination.HEURISTIC, stats=stats,
                      objective=float(evaluate(problem, plan).objective))
