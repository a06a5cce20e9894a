"""``cache-greedy``: lazy greedy on marginal gain, then exact routing of the cache found.

The search keeps a feasible plan at every step: a cache (resident whole-model instances), the
share of every class on each routing option over it (a class on one instance, or a cascade's
two), the share left unserved, and what each device has left of its time
(``max_utilization``) and memory. The *marginal gain* of adding instance ``t`` is what moving
shares onto it saves: shares of a class leave unserved demand or a dearer option for ``t``,
best saving per second of ``t``'s device time first (a fractional knapsack over the device's
time left, each class paying its KV cache and workspace on ``t`` once), less ``t``'s load
(churn). Moving a share can only help, so the plan's value never gets worse, and a gain is
computed from ``t``'s classes alone.

1. *lazy greedy* (Minoux's accelerated greedy), twice: moves prioritised by Vogel's regret (a
   class with nowhere else to go first), and by plain saving; the better run is kept.: gains are kept as bounds in a heap; the top one
   is re-valued against the current plan and added when it is still the best and gains; the
   time its moves free on other devices is then offered to unserved demand there. Gains are not
   submodular (an instance can gain more once others fill their devices), so every candidate is
   re-valued before the search stops. Demand still unserved is then *repaired*: other classes'
   shares are moved off a device that would serve it to their options elsewhere, when that gains.
2. the cache found is routed exactly (:mod:`solvers.caching.route`'s program: an LP, or a small
   MILP when reservations compete for memory) and kept when that is cheaper; while demand that
   could be served is still unserved, the instance that gains most when routed exactly with the
   cache (of the dozen cheapest for the unserved classes) is added.

It proves nothing: status ``feasible``, no bound. Deterministic: ties break by candidate order.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from placement import Plan, Problem, Status, Termination, evaluate
from placement.costs.caching import CachingView, caching_view
from solvers.caching.plans import Solution, build_plan
from solvers.caching.route import route_cache
from solvers.deadline import Deadline

__all__ = ["solve_cache_greedy", "GreedyState"]

_GAIN_TOL = 1e-9  # relative: a gain smaller than this share of the objective is none
_SHARE_TOL = 1e-12


@dataclass(frozen=True)
class _Option:
    """A way to serve class ``cls``: on ``instances`` (one, or a cascade's two), at ``cost`` per unit
    share (class weight included), keeping ``busy`` of each device's time per unit share."""

    cls: int
    cost: float
    busy: tuple[tuple[int, float], ...]
    instances: tuple[int, ...]
    key: tuple


@dataclass
class GreedyState:
    """A feasible plan under construction (see the module docstring)."""

    view: CachingView
    cache: set[int] = field(default_factory=set)
    share: dict[int, float] = field(default_factory=dict)  # option index -> share
    unserved: np.ndarray = None  # type: ignore[assignment]
    load: np.ndarray = None  # type: ignore[assignment]
    free: np.ndarray = None  # type: ignore[assignment]
    runtime: np.ndarray = None  # type: ignore[assignment]
    workspace: dict[int, float] = field(default_factory=dict)
    reserved: set[tuple[int, int]] = field(default_factory=set)
    by_class: dict[int, dict[int, float]] = field(default_factory=dict)  # class -> {option: share}

    def __post_init__(self) -> None:
        view = self.view
        D = len(view.capacity_bytes)
        self.unserved = np.ones(len(view.requests))
        self.load = np.zeros(D)
        self.free = np.array(view.capacity_bytes, dtype=float)
        self.runtime = np.zeros(D)

    def value(self, options: list[_Option]) -> float:
        view = self.view
        return (sum(options[k].cost * x for k, x in self.share.items())
                + float(np.sum(view.class_weight * self.unserved)) * view.unserved_cost
                + float(sum(view.churn_cost[t] for t in self.cache)))

    def room_for(self, t: int) -> float:
        """Memory left on ``t``'s device once ``t`` is resident (negative: it does not fit)."""
        view = self.view
        d = int(view.device[t])
        if t in self.cache:
            return float(self.free[d])
        return float(self.free[d] - view.weight_mem_bytes[t] - max(0.0, view.runtime_mem_bytes[t] - self.runtime[d]))


class _Search:
    def __init__(self, view: CachingView, regret: bool = True):
        self.view = view
        self.regret = regret
        self.options: list[_Option] = []
        for c, t in zip(*np.nonzero(view.eligible & view.fits[None, :])):
            self.options.append(_Option(int(c), float(view.class_weight[c] * view.cost[c, t]),
                                        ((int(view.device[t]), float(view.busy[c, t])),), (int(t),),
                                        ("direct", int(t))))
        cas = view.cascades
        for p in range(len(cas)):
            i, j, c = int(cas.first[p]), int(cas.second[p]), int(cas.cls[p])
            if view.fits[i] and view.fits[j]:
                busy: dict[int, float] = {}
                for d, b in ((int(view.device[i]), float(cas.busy_first[p])),
                             (int(view.device[j]), float(cas.busy_second[p]))):
                    busy[d] = busy.get(d, 0.0) + b
                self.options.append(_Option(c, float(view.class_weight[c] * cas.cost[p]), tuple(busy.items()),
                                            (i, j), ("cascade", p)))
        self.on: dict[int, list[int]] = {}
        for k, o in enumerate(self.options):
            for t in o.instances:
                self.on.setdefault(t, []).append(k)
        self.unserved_cost = view.class_weight * view.unserved_cost
        # What serving a share of a class anywhere but on a given device would cost at best: its
        # cheapest option on another device (the regret of not serving it here; unserved without one).
        D = len(view.capacity_bytes)
        best = np.tile(self.unserved_cost[:, None], (1, D))  # cheapest option of each class on each device
        for o in self.options:
            for d, _ in o.busy:
                best[o.cls, d] = min(best[o.cls, d], o.cost)
        # Cheapest elsewhere: the best over the other devices (the smallest and second smallest do it).
        order = np.sort(best, axis=1)
        lowest = best == order[:, :1]
        self.elsewhere = np.where(lowest & (np.sum(lowest, axis=1, keepdims=True) == 1),
                                  order[:, 1:2] if D > 1 else self.unserved_cost[:, None], order[:, :1])
        self.elsewhere = np.minimum(self.elsewhere, self.unserved_cost[:, None])

    def _time_left(self, state: GreedyState, d: int) -> float:
        return state.view.max_utilization - float(state.load[d]) if state.view.rates else np.inf

    def moves(self, state: GreedyState, t: int) -> tuple[float, float, list[tuple[int, int | None, float]]]:
        """What adding (or, resident, using more of) instance ``t`` saves, as a priority and for real,
        and the moves that save it: ``(option onto, option or None (unserved) from, share)``.

        Moves are taken by saving per second of device time, where an unserved share's saving counts
        only what the class could not get elsewhere (its cheapest option on another device): a class
        with nowhere else to go gets the time first (Vogel's regret)."""
        view = self.view
        room = state.room_for(t)
        if room < 0:
            return -np.inf, -np.inf, []
        d_t = int(view.device[t])
        time_left = (view.max_utilization - state.load) if view.rates else np.full(len(state.load), np.inf)
        items = []
        for k in self.on.get(t, ()):
            o = self.options[k]
            if not all(i in state.cache or i == t for i in o.instances):
                continue
            sources = [(None, float(self.unserved_cost[o.cls]), float(self.elsewhere[o.cls, d_t]),
                        float(state.unserved[o.cls]))]
            sources += [(j, self.options[j].cost, self.options[j].cost, x)
                        for j, x in state.by_class.get(o.cls, {}).items() if j != k and x > _SHARE_TOL]
            for j, cost, regret, x in sources:
                saving = cost - o.cost
                priority = min(cost, regret) - o.cost if self.regret else saving
                if saving > 0 and x > _SHARE_TOL:
                    busy = max((b for _, b in o.busy), default=0.0)
                    items.append((-max(priority, 0.0) / busy if busy > 0 else -max(priority, 0.0) - np.inf * 0,
                                  -saving, k, j, x, max(priority, 0.0)))
        items.sort(key=lambda item: (*item[:3], -1 if item[3] is None else item[3]))
        gain = 0.0 if t in state.cache else -float(view.churn_cost[t])
        priority_gain = gain
        taken: dict[int | None, float] = {}
        reserved = set(state.reserved)
        workspace = {i: state.workspace.get(i, 0.0) for i in {t} | state.cache}
        memory = {d: float(x) for d, x in enumerate(state.free)}
        memory[int(view.device[t])] = room
        moves = []
        time_left = time_left.copy()
        for _, neg_saving, k, j, x, priority in items:
            o = self.options[k]
            left = x - taken.get(j, 0.0)
            if left <= _SHARE_TOL:
                continue
            need = {}
            for i in o.instances:
                if (o.cls, i) not in reserved:
                    d = int(view.device[i])
                    need[d] = need.get(d, 0.0) + view.kv_mem_bytes[o.cls, i] + max(
                        0.0, view.workspace_mem_bytes[o.cls, i] - workspace[i])
            if any(need[d] > memory[d] for d in need):
                continue
            amount = left
            for d, b in o.busy:
                if b > 0:
                    amount = min(amount, time_left[d] / b)
            if amount <= _SHARE_TOL:
                continue
            for d, grow in need.items():
                memory[d] -= grow
            for i in o.instances:
                if (o.cls, i) not in reserved:
                    reserved.add((o.cls, i))
                    workspace[i] = max(workspace[i], view.workspace_mem_bytes[o.cls, i])
            for d, b in o.busy:
                time_left[d] -= amount * b
            taken[j] = taken.get(j, 0.0) + amount
            gain += -neg_saving * amount
            priority_gain += priority * amount
            moves.append((k, j, amount))
        return priority_gain, gain, moves

    def apply(self, state: GreedyState, t: int, moves: list[tuple[int, int | None, float]]) -> None:
        view = self.view
        if t not in state.cache:
            d = int(view.device[t])
            state.free[d] -= view.weight_mem_bytes[t] + max(0.0, view.runtime_mem_bytes[t] - state.runtime[d])
            state.runtime[d] = max(state.runtime[d], view.runtime_mem_bytes[t])
            state.cache.add(t)
            state.workspace[t] = 0.0
        for k, j, amount in moves:
            o = self.options[k]
            for i in o.instances:
                if (o.cls, i) not in state.reserved:
                    state.reserved.add((o.cls, i))
                    d = int(view.device[i])
                    grow = view.kv_mem_bytes[o.cls, i] + max(0.0, view.workspace_mem_bytes[o.cls, i] -
                                                             state.workspace.get(i, 0.0))
                    state.free[d] -= grow
                    state.workspace[i] = max(state.workspace.get(i, 0.0), view.workspace_mem_bytes[o.cls, i])
            state.share[k] = state.share.get(k, 0.0) + amount
            state.by_class.setdefault(o.cls, {})[k] = state.share[k]
            for d, b in o.busy:
                state.load[d] += amount * b
            if j is None:
                state.unserved[o.cls] -= amount
            else:
                state.share[j] -= amount
                state.by_class[o.cls][j] = state.share[j]
                for d, b in self.options[j].busy:
                    state.load[d] -= amount * b

    def _room(self, state: GreedyState, option: int, memory: dict[int, float], reserved: set) -> dict[int, float]:
        """Memory option ``option`` still needs per device (its class's first reservations there)."""
        view, o = self.view, self.options[option]
        need: dict[int, float] = {}
        for i in o.instances:
            if (o.cls, i) not in reserved:
                d = int(view.device[i])
                need[d] = need.get(d, 0.0) + view.kv_mem_bytes[o.cls, i] + max(
                    0.0, view.workspace_mem_bytes[o.cls, i] - state.workspace.get(i, 0.0))
        return need

    def displacement(self, state: GreedyState, d: int, time_needed: float, keep: int):
        """The cheapest way to free ``time_needed`` of device ``d``'s time: other classes' shares on ``d``
        moved to their resident options elsewhere that have time and room left. Returns the added cost
        and the moves ``(from option, to option, share)``, or ``None`` when that much cannot be freed."""
        view = self.view
        time_left = {e: self._time_left(state, e) for e in range(len(view.capacity_bytes))}
        memory = {e: float(x) for e, x in enumerate(state.free)}
        reserved = set(state.reserved)
        offers = []
        for j, x in state.share.items():
            oj = self.options[j]
            bj = dict(oj.busy).get(d, 0.0)
            if x <= _SHARE_TOL or oj.cls == keep or bj <= 0:
                continue
            for t in state.cache:
                for k in self.on.get(t, ()):
                    ok = self.options[k]
                    if ok.cls != oj.cls or k == j or d in dict(ok.busy) or \
                            not all(i in state.cache for i in ok.instances):
                        continue
                    offers.append(((ok.cost - oj.cost) / bj, j, k, x, bj))
        offers.sort(key=lambda item: item[:3])
        freed, cost, moves = 0.0, 0.0, []
        moved: dict[int, float] = {}
        for per_time, j, k, x, bj in offers:
            if freed >= time_needed - _SHARE_TOL:
                break
            left = x - moved.get(j, 0.0)
            ok = self.options[k]
            need = self._room(state, k, memory, reserved)
            if left <= _SHARE_TOL or any(need[e] > memory[e] for e in need):
                continue
            amount = min(left, (time_needed - freed) / bj)
            for e, b in ok.busy:
                if b > 0:
                    amount = min(amount, time_left[e] / b)
            if amount <= _SHARE_TOL:
                continue
            for e, grow in need.items():
                memory[e] -= grow
            reserved |= {(ok.cls, i) for i in ok.instances}
            for e, b in ok.busy:
                time_left[e] -= amount * b
            moved[j] = moved.get(j, 0.0) + amount
            freed += amount * bj
            cost += per_time * amount * bj
            moves.append((k, j, amount))
        return (cost, moves) if freed >= time_needed - 1e-9 else None

    def repair(self, state: GreedyState, candidates: list[int], deadline: Deadline) -> int:
        """Serve what is left unserved by making room on a device that would serve it: move other
        classes' shares off it to their options elsewhere, then add the share (and the instance).
        Taken when it gains; returns how many repairs were made."""
        view = self.view
        repairs = 0
        for c in np.argsort(-view.class_weight * state.unserved, kind="stable"):
            while state.unserved[c] > 1e-9 and not deadline.expired():
                best = None
                for t in candidates:
                    k = next((k for k in self.on.get(t, ()) if self.options[k].cls == c
                              and self.options[k].key == ("direct", t)), None)
                    if k is None or state.room_for(t) < 0:
                        continue
                    d, busy = self.options[k].busy[0]
                    amount = float(state.unserved[c])
                    need = amount * busy - self._time_left(state, d) if view.rates else 0.0
                    plan = self.displacement(state, d, need, c) if need > 0 else (0.0, [])
                    if plan is None:
                        continue
                    gain = amount * (self.unserved_cost[c] - self.options[k].cost) - plan[0] - \
                        (0.0 if t in state.cache else float(view.churn_cost[t]))
                    if gain > 0 and (best is None or gain > best[0]):
                        best = (gain, t, k, amount, plan[1])
                if best is None:
                    break
                _, t, k, amount, displaced = best
                before = state.value(self.options)
                trial = _copy(state)
                for move in displaced:
                    self.apply(trial, self.options[move[0]].instances[0], [move])
                _, gain, moves = self.moves(trial, t)
                self.apply(trial, t, moves)
                if trial.value(self.options) >= before - _GAIN_TOL * max(abs(before), 1.0):
                    break
                _assign(state, trial)
                repairs += 1
        return repairs

    def refill(self, state: GreedyState) -> None:
        """Offer the time moves freed on resident instances to what is still unserved or dearer."""
        for t in sorted(state.cache):
            _, gain, moves = self.moves(state, t)
            if gain > 0 and moves:
                self.apply(state, t, moves)


def _copy(state: GreedyState) -> GreedyState:
    out = GreedyState(state.view)
    _assign(out, state)
    return out


def _assign(target: GreedyState, source: GreedyState) -> None:
    target.cache, target.share = set(source.cache), dict(source.share)
    target.unserved, target.load = source.unserved.copy(), source.load.copy()
    target.free, target.runtime = source.free.copy(), source.runtime.copy()
    target.workspace, target.reserved = dict(source.workspace), set(source.reserved)
    target.by_class = {c: dict(shares) for c, shares in source.by_class.items()}


def _lazy_greedy(search: _Search, state: GreedyState, candidates: list[int], deadline: Deadline) -> int:
    def fresh() -> list:
        heap = [(-search.moves(state, t)[0], t) for t in candidates if t not in state.cache]
        heapq.heapify(heap)
        return heap

    heap, is_fresh = fresh(), True
    evaluations = len(heap)
    while heap and not deadline.expired():
        _, t = heapq.heappop(heap)
        priority, gain, moves = search.moves(state, t)
        evaluations += 1
        if heap and priority < -heap[0][0]:
            heapq.heappush(heap, (-priority, t))  # no longer the best: its bound drops to what it gains now
            continue
        if not gain > _GAIN_TOL * max(abs(state.value(search.options)), 1.0):
            if is_fresh:
                break
            heap, is_fresh = fresh(), True  # gains may have risen since they were last valued
            evaluations += len(heap)
            continue
        search.apply(state, t, moves)
        search.refill(state)
        is_fresh = False
    return evaluations


_MAX_TRIES = 12  # candidates routed exactly per round when demand is still unserved


def _unserved_classes(view: CachingView, solution: Solution) -> list[int]:
    served = np.zeros(len(view.requests))
    for (c, _), x in solution.direct.items():
        served[c] += x
    for p, x in solution.cascade.items():
        served[int(view.cascades.cls[p])] += x
    return [int(c) for c in np.flatnonzero(served < 1 - 1e-6) if view.eligible[c].any()]


def _serve_the_rest(view: CachingView, search: _Search, cache: set[int], value: float, solution: Solution,
                    params: Any, deadline: Deadline):
    """While servable demand is still unserved, add the instance that, routed exactly with the cache,
    gains most. Candidates: those that would serve an unserved class (cheapest first), and those on
    devices the cache leaves idle that could take over other classes, freeing busy devices for it."""
    added = 0
    while not deadline.expired():
        short = _unserved_classes(view, solution)
        if not short:
            break
        used_devices = {int(view.device[t]) for t in cache}
        direct, relief = [], []
        for t in sorted(search.on):
            d = int(view.device[t])
            on = [k for k in cache if int(view.device[k]) == d] + [t]
            if t in cache or view.weight_mem_bytes[on].sum() + view.runtime_mem_bytes[on].max() > view.capacity_bytes[d]:
                continue
            if any(view.eligible[c, t] for c in short):
                direct.append((min(view.cost[c, t] for c in short if view.eligible[c, t]), t))
            elif d not in used_devices:
                relief.append((-float(view.class_weight[view.eligible[:, t]].sum()), t))
        tries = sorted(direct)[:_MAX_TRIES // 2] + sorted(relief)[:_MAX_TRIES // 2]
        best = None
        for _, t in tries:
            if deadline.expired():
                break
            found = route_cache(view, cache | {t}, params, deadline)
            if found is not None and found[0] < value - _GAIN_TOL * max(abs(value), 1.0) and \
                    (best is None or found[0] < best[0]):
                best = (found[0], found[1], t)
        if best is None:
            break
        value, solution = best[0], best[1]
        cache = cache | {best[2]}
        added += 1
    return cache, value, solution, added


def _solution(search: _Search, state: GreedyState) -> Solution:
    direct, cascade = {}, {}
    for k, x in state.share.items():
        if x > _SHARE_TOL:
            kind, index = search.options[k].key
            if kind == "direct":
                direct[(search.options[k].cls, index)] = x
            else:
                cascade[index] = x
    return Solution(direct, cascade)


def solve_cache_greedy(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Lazy greedy caching, then exact routing of the cache (see the module docstring).

    Parameters
    ----------
    options : dict
        ``exact_routing`` (bool): route the final cache with the routing program, keeping it when
        cheaper than the greedy's own routing.
    """
    view = caching_view(problem)
    runs = []
    for regret in (True, False):  # Vogel's regret first; plain savings second, kept when better
        if runs and deadline.expired():
            break
        search = _Search(view, regret)
        state = GreedyState(view)
        candidates = sorted(search.on)
        evaluations = _lazy_greedy(search, state, candidates, deadline)
        repairs = search.repair(state, candidates, deadline) if state.unserved.max(initial=0.0) > 1e-9 else 0
        runs.append((state.value(search.options), regret, search, state, evaluations, repairs))
    value, regret, search, state, evaluations, repairs = min(runs, key=lambda run: run[:2])
    solution, routing = _solution(search, state), "greedy"
    used = {t for t in state.cache if any(x > _SHARE_TOL for k, x in state.share.items()
                                          if t in search.options[k].instances)}
    added = 0
    if options.get("exact_routing", True) and used and not deadline.expired():
        exact = route_cache(view, used, params, deadline)
        if exact is not None and exact[0] < value - _GAIN_TOL * max(abs(value), 1.0):
            value, solution, routing = exact[0], exact[1], "exact"
        used, value, solution, added = _serve_the_rest(view, search, used, value, solution, params, deadline)
        routing = "exact" if added else routing
    plan = build_plan(problem, view, solution)
    stats = {"plan_space": "cache", "candidates": len(candidates), "evaluations": evaluations, "repairs": repairs,
             "priority": "regret" if regret else "saving",
             "routing": routing, "instances": len(used), "added_for_unserved": added}
    return plan.with_(status=Status.FEASIBLE, termination=Termination.HEURISTIC, stats=stats,
                      objective=float(evaluate(problem, plan).objective))
