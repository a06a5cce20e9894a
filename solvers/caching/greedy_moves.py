"""The water-filling greedy: what adding (or using more of) an instance gains, for every candidate at once
and exactly for one, and the additions it makes by that alone (no routing program).

A class's share can move onto an option of instance ``t`` from wherever it is now: unserved, or
another option. Per unit share that saves the difference of their costs and takes the option's
busy share of ``t``'s device, so the best moves onto ``t`` are a fractional knapsack over the
device's time left, best saving per unit of time first.

Time on a *saturated* device has a value of its own: the best saving per unit of time some
class could make there if it had any (:func:`time_values`, the stand-in for the routing
program's price of that time). A share moved off a saturated device frees that time, so a
move's *priority* counts it; its *gain* never does. That lets a class that can go elsewhere
make way for one that cannot: the freed time is then filled, and the pair of steps is kept
only when together they gain.

- :func:`estimated_gains`: every candidate's gain at once, on arrays: each class moves from its
  dearest current share (or its unserved share) onto the candidate's cheapest option for it
  (alone, or a cascade whose other instance is resident); memory per class counted alone.
- :func:`moves_onto`: the exact moves onto one instance, from every current share of every
  class, with memory counted as the reservations are made.
- :func:`water_filling`: additions by these until none gains (the search without the routing
  program; :mod:`solvers.caching.greedy_local` reuses :func:`cheapest_with`).
"""

from __future__ import annotations

import numpy as np

from solvers.caching.greedy_state import SHARE_TOL, Serving
from solvers.deadline import Deadline

__all__ = ["water_filling", "estimated_gains", "moves_onto", "apply", "time_values", "cheapest_with", "Moves"]

Moves = list  # [(option onto, option from or -1 for unserved, share)]
_SATURATED = 1e-9  # a device with less time left than this is full
_GAIN_TOL = 1e-9  # relative: a gain smaller than this share of the objective is none
_TRIES = 8  # candidates valued exactly per step, best estimates first
_FILL_TRIES = 4
_FILL_ROUNDS_PER_CLASS = 4


def _sources(state: Serving) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class, the share the estimate moves: its unserved share, or else its dearest option's;
    returns its cost per unit share, its amount and the option (-1: unserved)."""
    o = state.options
    cost, amount = o.unserved_cost.copy(), state.unserved.copy()
    source = np.full(len(cost), -1, dtype=np.int64)
    for c, active in enumerate(state.active):
        if amount[c] <= SHARE_TOL and active:
            k = max(active, key=lambda j: (o.cost[j], -j))
            cost[c], amount[c], source[c] = o.cost[k], active[k], k
    return cost, amount, source


def cheapest_with(state: Serving) -> tuple[np.ndarray, np.ndarray]:
    """``[C, T]``: the cheapest option of class ``c`` that instance ``t`` makes usable (alone, or a
    cascade whose other instance is resident), and its busy share of ``t``'s device."""
    o = state.options
    cost, busy = o.direct_cost.copy(), o.direct_busy.copy()
    cascades = np.flatnonzero(o.second >= 0)
    if not cascades.size:
        return cost, busy
    other_in = state.cache[o.second[cascades]]
    first_in = state.cache[o.first[cascades]]
    # With the other instance resident, a cascade is usable once t (its first, or its second) is.
    on_first, on_second = cascades[other_in], cascades[first_in]
    ends = np.concatenate([o.first[on_first], o.second[on_second]])
    ks = np.concatenate([on_first, on_second])
    busy_t = np.concatenate([o.busy1[on_first], np.where(o.dev2[on_second] < 0, o.busy1[on_second],
                                                         o.busy2[on_second])])
    if not ks.size:
        return cost, busy
    T = cost.shape[1]
    key = o.cls[ks] * T + ends
    order = np.lexsort((ks, o.cost[ks], key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    c, t, k = o.cls[ks[first]], ends[first], ks[first]
    better = o.cost[k] < cost[c, t]
    cost[c[better], t[better]] = o.cost[k[better]]
    busy[c[better], t[better]] = busy_t[first][better]
    return cost, busy


def time_values(state: Serving, saving: np.ndarray, busy: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per device, what a unit of its time is worth when it has none left: the best saving per unit
    of time of a usable move onto one of its instances (0 on devices with time left)."""
    view = state.options.view
    D = len(state.load)
    values = np.zeros(D)
    if not view.rates:
        return values
    per_time = np.where(usable & (busy > 0), saving / np.where(busy > 0, busy, 1.0), 0.0).max(axis=0, initial=0.0)
    np.maximum.at(values, view.device, per_time)
    return np.where(state.time_left() <= _SATURATED, values, 0.0)


def _freed_value(state: Serving, k: int, values: np.ndarray) -> float:
    o = state.options
    return sum(values[d] * b for d, b in o.devices_of(k)) if values is not None else 0.0


def estimated_gains(state: Serving, use_time_values: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate's estimated gain (``-inf``: it cannot be loaded) and the devices' time values.

    The gain is by priority (freed time counted, see the module docstring) less the instance's
    churn when it is not resident."""
    o = state.options
    view = o.view
    source_cost, amount, source = _sources(state)
    cost, busy = cheapest_with(state)
    room = state.free[view.device] - state.load_bytes_all()
    reserve = np.where(state.reserved, 0.0, view.kv_mem_bytes + np.maximum(0.0, view.workspace_mem_bytes -
                                                                           state.workspace[None, :]))
    saving = source_cost[:, None] - cost
    fits = (reserve <= room[None, :]) & (room >= 0)[None, :] & (amount > SHARE_TOL)[:, None] & np.isfinite(cost)
    usable = fits & (saving > 0)
    values = time_values(state, np.where(usable, saving, 0.0), busy, usable) if use_time_values else None
    bonus = np.zeros(len(source))
    if values is not None and values.any():
        bonus = np.array([_freed_value(state, int(k), values) if k >= 0 else 0.0 for k in source])
    priority = np.where(fits, saving + bonus[:, None], 0.0)
    usable = fits & (priority > 0)
    priority = np.where(usable, priority, 0.0)
    per_time = np.where(busy > 0, priority / np.where(busy > 0, busy, 1.0), np.inf)
    order = np.argsort(np.where(usable, -per_time, np.inf), axis=0, kind="stable")
    take = np.take_along_axis
    p_s, b_s = take(priority, order, 0), take(busy, order, 0)
    q_s = amount[order] * take(usable, order, 0)
    time_left = state.time_left()[view.device]
    need = b_s * q_s
    before = np.cumsum(need, axis=0) - need
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(b_s > 0, np.clip((time_left[None, :] - before) / np.where(b_s > 0, b_s, 1.0), 0.0, q_s), q_s)
    gains = (share * p_s).sum(axis=0) - np.where(state.cache, 0.0, view.churn_cost)
    return np.where(room >= 0, gains, -np.inf), values if values is not None else np.zeros(len(state.load))


def moves_onto(state: Serving, t: int, values: np.ndarray | None = None) -> tuple[float, float, Moves]:
    """The moves onto instance ``t``'s options and what they gain: ``(gain, priority, moves)``.

    ``values``: the devices' time values (:func:`time_values`), counted in the priority only."""
    o = state.options
    view = o.view
    d_t = int(view.device[t])
    free = state.free.copy()
    free[d_t] -= state.load_bytes(t)
    if free[d_t] < 0:
        return -np.inf, -np.inf, []
    items = []
    for k in o.touching(t):
        k = int(k)
        if not all(i == t or state.cache[i] for i in o.instances_of(k)):
            continue
        c = int(o.cls[k])
        busy = o.busy1[k] + o.busy2[k]
        sources = [(-1, float(o.unserved_cost[c]), 0.0)] if state.unserved[c] > SHARE_TOL else []
        sources += [(j, float(o.cost[j]), _freed_value(state, j, values)) for j in state.active[c] if j != k]
        for j, cost, freed in sources:
            saving = cost - o.cost[k]
            if saving + freed > 0:
                priority = saving + freed
                items.append((-priority / busy if busy > 0 else -np.inf, -priority, k, j, saving, priority))
    items.sort()
    time_left = state.time_left()
    reserved, workspace = {}, state.workspace.copy()
    taken: dict[tuple[int, int], float] = {}
    gain = priority_gain = 0.0 if state.cache[t] else -float(view.churn_cost[t])
    moves: Moves = []
    for _, _, k, j, saving, priority in items:
        c = int(o.cls[k])
        left = (state.unserved[c] if j < 0 else state.share[j]) - taken.get((c, j), 0.0)
        if left <= SHARE_TOL:
            continue
        grow = {}
        for i in o.instances_of(k):
            if not state.reserved[c, i] and (c, i) not in reserved:
                d = int(view.device[i])
                grow[d] = grow.get(d, 0.0) + view.kv_mem_bytes[c, i] + max(0.0, view.workspace_mem_bytes[c, i] -
                                                                              workspace[i])
        if any(grow[d] > free[d] for d in grow):
            continue
        net = _net_busy(o, k, j)
        amount = left
        for d, b in net.items():
            if b > 0:
                amount = min(amount, time_left[d] / b)
        if amount <= SHARE_TOL:
            continue
        for d, g in grow.items():
            free[d] -= g
        for i in o.instances_of(k):
            if not state.reserved[c, i]:
                reserved[(c, i)] = True
                workspace[i] = max(workspace[i], view.workspace_mem_bytes[c, i])
        for d, b in net.items():
            time_left[d] -= amount * b
        taken[(c, j)] = taken.get((c, j), 0.0) + amount
        gain += saving * amount
        priority_gain += priority * amount
        moves.append((k, j, amount))
    return gain, priority_gain, moves


def _net_busy(o, k: int, j: int) -> dict[int, float]:
    """Busy share per unit share that moving from option ``j`` (-1: unserved) onto ``k`` adds on each
    device: a share leaving ``j`` frees its time, on ``k``'s device too when they share it."""
    net: dict[int, float] = {}
    for d, b in o.devices_of(k):
        net[d] = net.get(d, 0.0) + b
    if j >= 0:
        for d, b in o.devices_of(j):
            net[d] = net.get(d, 0.0) - b
    return net


def apply(state: Serving, t: int, moves: Moves) -> None:
    """Make ``t`` resident and move the shares."""
    state.add(t)
    for k, j, amount in moves:
        state.move(k, j, amount)


def _tol(state: Serving) -> float:
    return _GAIN_TOL * max(abs(state.value()), 1.0)


def _fill(state: Serving, devices: np.ndarray, deadline: Deadline, stats: dict) -> None:
    """Offer the time left on ``devices`` (a mask) to shares that gain by moving there, resident
    instances or new ones, until nothing gains."""
    view = state.options.view
    on = devices[view.device]
    # Each round moves shares onto an instance until a device's time or a class's share runs out; a bound
    # on the rounds keeps a slowly converging exchange between two options from running on.
    for _ in range(_FILL_ROUNDS_PER_CLASS * len(state.unserved) + _FILL_TRIES):
        if deadline.expired():
            return
        gains, _ = estimated_gains(state, use_time_values=False)
        gains[~on] = -np.inf
        for t in np.argsort(-gains, kind="stable")[:_FILL_TRIES]:
            if not gains[t] > 0:
                break
            gain, _, moves = moves_onto(state, int(t), None)
            stats["evaluations"] += 1
            if moves and gain > _tol(state):
                apply(state, int(t), moves)
                break
        else:
            return
        if not gains.max(initial=-np.inf) > 0:
            return


def _step(state: Serving, deadline: Deadline, stats: dict) -> Serving | None:
    """One greedy addition (or a relief and its refill); the new state, or ``None`` when nothing gains."""
    gains, values = estimated_gains(state)
    stats["estimates"] += 1
    for t in np.argsort(-gains, kind="stable")[:_TRIES]:
        if deadline.expired() or not gains[t] > 0:
            return None
        t = int(t)
        gain, priority, moves = moves_onto(state, t, values)
        stats["evaluations"] += 1
        if not moves or not priority > _tol(state):
            continue
        trial = state.copy()
        before = trial.load.copy()
        apply(trial, t, moves)
        freed = trial.load < before - 1e-12
        if freed.any():
            _fill(trial, freed, deadline, stats)
        if trial.value() < state.value() - _tol(state):
            stats["reliefs" if gain <= _tol(state) else "additions"] += 1
            return trial
    return None


def _greedy(state: Serving, deadline: Deadline, stats: dict) -> Serving:
    while not deadline.expired():
        better = _step(state, deadline, stats)
        if better is None:
            break
        state = better
    return state


def water_filling(state: Serving, deadline: Deadline, stats: dict, drops: bool) -> Serving:
    """The greedy additions by water-filling alone; with ``drops``, then every instance dropped in turn
    (its shares filled elsewhere), kept when that gains."""
    for key in ("estimates", "evaluations", "additions", "reliefs"):
        stats.setdefault(key, 0)
    state = _greedy(state, deadline, stats)
    for s in (np.flatnonzero(state.used()).tolist() if drops else ()):
        if deadline.expired():
            break
        trial = state.without(s)
        _fill(trial, np.ones(len(trial.load), dtype=bool), deadline, stats)
        trial = _greedy(trial, deadline, stats)
        if trial.value() < state.value() - _tol(state):
            stats["drops"] = stats.get("drops", 0) + 1
            state = trial
    return state
