"""The greedy's search, priced and routed by the routing program of its cache.

The routing program of a cache (:func:`~solvers.caching.greedy_routing.route_exactly`) sees what
moving shares one at a time cannot: a share moved onto a new instance can set off a chain of
shares moving between devices whose time is full. Its prices say what that chain is worth
without running it: a class's ``class_price`` is what one more unit share of it costs at the
margin, a device's ``time_price`` what a unit of its busy share is worth. So the *reduced cost*
of serving a unit share of class ``c`` on instance ``t``,

    cost[c, t] - class_price[c] + time_price[device of t] * busy[c, t],

is negative exactly where the program would gain by the option (the simplex method's pricing
rule), and a candidate's *marginal gain* is estimated as a fractional knapsack of its classes'
negative reduced costs over its device's time, less its churn. From the empty cache:

- a round makes the best (up to three) additions of every device at once, reserving room on
  each for the classes whose reduced cost is negative, the most negative first, while memory
  lasts, and routes them in one program; when that does not lower the objective, the best
  single moves are routed one at a time: an addition, more reservations on a resident
  instance, or (``swaps``) a candidate that fits only once the least used instance on its
  device goes. Instances and reservations no share uses are released after every round.
- once no move gains, a *kick* drops one of the few least used instances, bans it, and gives
  the search one round to end lower than the plan it left (then searches on from there): the
  way out of a local optimum that no single move leaves, such as an instance on the wrong one
  of two devices.

Examples
--------
>>> from placement import evaluate, load_instance
>>> from placement.costs.caching import caching_view
>>> from solvers.caching.greedy_state import Serving, ServingOptions
>>> from solvers.caching.plans import build_plan
>>> from solvers.deadline import Deadline
>>> problem = load_instance("instances/portfolio.yaml")
>>> view = caching_view(problem)
>>> found = improve(Serving.empty(ServingOptions.of(view)), Deadline(10), {}, max_rounds=50)
>>> plan = build_plan(problem, view, found.state.solution())
>>> bool(abs(evaluate(problem, plan).objective - found.state.value()) < 1e-9 * abs(found.state.value()))
True
"""

from __future__ import annotations

import numpy as np

from solvers.caching.greedy_moves import cheapest_with
from solvers.caching.greedy_routing import Routed, route_exactly
from solvers.caching.greedy_state import SHARE_TOL, Serving
from solvers.deadline import Deadline

__all__ = ["improve", "kick"]

_TRIES = 2  # single moves routed exactly per round when the batch does not gain, best estimates first
_BATCH_PER_DEVICE = 3  # additions per device in one batch, best estimates first
_KICK_TRIES = 1  # the same, in the search after a kick
_KICK_ROUNDS = 1  # rounds a kick's search has to end lower than the plan it left
_KICK_PER_DEVICE = 1  # additions per device in a kick's batch
_GAIN_TOL = 1e-9


def _reduced_costs(routed: Routed) -> tuple[np.ndarray, np.ndarray]:
    """``[C, T]`` reduced cost of the cheapest option each candidate makes usable, and its busy share."""
    state = routed.state
    view = state.options.view
    cost, busy = cheapest_with(state)
    reduced = cost - routed.class_price[:, None] + routed.time_price[view.device][None, :] * busy
    # A class that already reserved room on a resident instance is priced by the program already.
    reduced[state.reserved & state.cache[None, :]] = np.inf
    return np.where(np.isfinite(reduced), reduced, np.inf), busy


def _estimates(routed: Routed, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimated gain of every candidate (given ``room``: memory left on its device once it is loaded)
    and the per-class reduced costs."""
    state = routed.state
    view = state.options.view
    reduced, busy = _reduced_costs(routed)
    reserve = view.kv_mem_bytes + np.maximum(0.0, view.workspace_mem_bytes - state.workspace[None, :])
    gainful = (reduced < 0) & (reserve <= room[None, :])
    gains = -np.where(state.cache, 0.0, view.churn_cost)
    cols = np.flatnonzero(gainful.any(axis=0))
    if not cols.size:
        return gains, reduced
    # Candidates by rows, classes along them: a fractional knapsack per row, best value per unit time first.
    value = np.where(gainful[:, cols], -reduced[:, cols], 0.0).T
    time = busy[:, cols].T
    per_time = np.where(time > 0, value / np.where(time > 0, time, 1.0), np.inf)
    order = np.argsort(-per_time, axis=1, kind="stable")
    value, time = np.take_along_axis(value, order, 1), np.take_along_axis(time, order, 1)
    # On a saturated device the prices already charge what the move displaces: its whole time is in play.
    device = view.device[cols]
    cap = np.where(routed.time_price[device] > 0, state.time_limit, state.time_left()[device])
    need = time * (value > 0)
    before = np.cumsum(need, axis=1) - need
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(time > 0, np.clip((cap[:, None] - before) / np.where(time > 0, time, 1.0), 0.0, 1.0), 1.0)
    gains[cols] += (share * value).sum(axis=1)
    return gains, reduced


def _with_option(state: Serving, t: int, reduced: np.ndarray, copy: bool = True) -> Serving | None:
    """``state`` (a copy, unless ``copy`` is false) with ``t`` resident and room reserved on it for every
    class whose reduced cost is negative, the most negative first, while memory lasts; ``None`` when
    nothing could be reserved."""
    o = state.options
    view = o.view
    d = int(view.device[t])
    if state.load_bytes(t) > state.free[d]:
        return None
    column = reduced[:, t]
    wanted = np.flatnonzero((column < 0) & ~state.reserved[:, t])
    if not wanted.size:
        return None
    trial = state.copy() if copy else state
    trial.add(t)
    kv, workspace_need = view.kv_mem_bytes[:, t], view.workspace_mem_bytes[:, t]
    free, workspace = float(trial.free[d]), float(trial.workspace[t])
    reserved = []
    for c in wanted[np.argsort(column[wanted], kind="stable")].tolist():
        grow = kv[c] + max(0.0, workspace_need[c] - workspace)
        if grow <= free:
            free -= grow
            workspace = max(workspace, float(workspace_need[c]))
            reserved.append(c)
    trial.free[d], trial.workspace[t] = free, workspace
    trial.reserved[reserved, t] = True
    if reserved and o.has_cascade[t]:
        _reserve_cascades(trial, t, reserved)
    return trial if reserved else None


def _reserve_cascades(state: Serving, t: int, classes: list[int]) -> None:
    """A cascade needs room on both its instances: reserve it on the resident other one too, where it fits."""
    o = state.options
    ks = o.touching(t)
    cascades = ks[o.second[ks] >= 0]
    others = np.where(o.first[cascades] == t, o.second[cascades], o.first[cascades])
    for c in classes:
        for i in others[(o.cls[cascades] == c) & state.cache[others]].tolist():
            if not state.reserved[c, i] and state.reserve_bytes(c, i) <= state.free[int(o.view.device[i])]:
                state.reserve(c, i)


def _drop_candidates(state: Serving) -> np.ndarray:
    """Per device, the resident instance a swap there would drop: the one whose shares cost least."""
    o = state.options
    view = o.view
    use = np.zeros(len(state.cache))
    on = state.share > SHARE_TOL
    np.add.at(use, o.first[on], state.share[on] * np.abs(o.cost[on]))
    drop = np.full(len(state.load), -1)
    for t in sorted(np.flatnonzero(state.cache), key=lambda t: (-use[t], t)):
        drop[int(view.device[t])] = int(t)  # the least used is written last
    return drop


def _moves(routed: Routed) -> tuple[list[tuple[float, int, int | None]], np.ndarray]:
    """Candidate moves ``(estimated gain, instance to add or reserve on, instance to drop or None)``, best
    first, and the reduced costs they were priced with."""
    state = routed.state
    view = state.options.view
    room = state.free[view.device] - state.load_bytes_all()
    drop = _drop_candidates(state)[view.device]
    # What the dropped instance frees: its weights, workspace and its classes' KV cache.
    safe = np.maximum(drop, 0)
    freed = view.weight_mem_bytes[safe] + state.workspace[safe] + (view.kv_mem_bytes * state.reserved).sum(axis=0)[safe]
    swap = (room < 0) & (drop >= 0) & ~state.cache & (room + freed >= 0)
    gains, reduced = _estimates(routed, np.where(swap, room + freed, room))
    moves = [(float(gains[t]), int(t), None) for t in np.flatnonzero((room >= 0) & (gains > 0))]
    moves += [(float(gains[t]), int(t), int(drop[t])) for t in np.flatnonzero(swap & (gains > 0))]
    moves.sort(key=lambda m: (-m[0], m[1]))
    return moves, reduced


def _batch(routed: Routed, moves: list, reduced: np.ndarray, deadline: Deadline, below: float,
           stats: dict, per_device: int) -> Routed | None:
    """The best ``per_device`` additions of every device at once, routed exactly: kept when it costs less
    than ``below``. Early on most devices have good additions of their own, and one program routes them all."""
    view = routed.state.options.view
    chosen: dict[int, list[int]] = {}
    for _, t, drop in moves:
        if drop is None and len(chosen.setdefault(int(view.device[t]), [])) < per_device:
            chosen[int(view.device[t])].append(t)
    if sum(map(len, chosen.values())) < 2:
        return None
    trial = routed.state.copy()
    for ts in chosen.values():
        for t in ts:
            _with_option(trial, t, reduced, copy=False)
    found = route_exactly(trial, deadline, routed.basis)
    stats["routings"] = stats.get("routings", 0) + 1
    if found is not None and found.state.value() < below:
        stats["batches"] = stats.get("batches", 0) + 1
        return found
    return None


def improve(state: Serving, deadline: Deadline, stats: dict, max_rounds: int, swaps: bool = True,
            banned: int | None = None, basis: tuple | None = None, tries: int = _TRIES,
            per_device: int = _BATCH_PER_DEVICE) -> Routed | None:
    """Moves from ``state`` (routed exactly first) while one gains (see the module docstring): additions,
    reservations and (``swaps``) swaps; ``banned``: an instance not to add back. ``None`` when the
    routing program found no routing in the time left."""
    routed = route_exactly(state, deadline, basis)
    if routed is None:
        return None
    routed = Routed(routed.state.compact(), routed.class_price, routed.time_price, routed.basis)
    for _ in range(max_rounds):
        if deadline.expired():
            break
        best = routed.state.value()
        tol = _GAIN_TOL * max(abs(best), 1.0)
        moves, reduced = _moves(routed)
        moves = [m for m in moves if m[1] != banned and (swaps or m[2] is None)]
        kept = _batch(routed, moves, reduced, deadline, best - tol, stats, per_device)
        for gain, t, drop in ([] if kept is not None else moves[:tries]):
            if deadline.expired():
                break
            base = routed.state if drop is None else routed.state.without(drop)
            trial = _with_option(base, t, reduced)
            if trial is None:
                continue
            found = route_exactly(trial, deadline, routed.basis)
            stats["routings"] = stats.get("routings", 0) + 1
            if found is not None and found.state.value() < best - tol:
                kept = found
                stats["swaps" if drop is not None else "moves"] = stats.get("swaps" if drop is not None
                                                                            else "moves", 0) + 1
                break
        if kept is None:
            break
        routed = Routed(kept.state.compact(), kept.class_price, kept.time_price, kept.basis)
    return routed


def kick(routed: Routed, deadline: Deadline, stats: dict, tries: int, max_rounds: int) -> Routed:
    """Drop each of the ``tries`` least used instances in turn and search again from there without it;
    keep the first search that ends lower (a way out of a local optimum that no single move leaves)."""
    for s in _least_used(routed.state)[:tries]:
        if deadline.expired():
            break
        stats["kicks"] = stats.get("kicks", 0) + 1
        below = routed.state.value() - _GAIN_TOL * max(abs(routed.state.value()), 1.0)
        # A kick that pays must pay soon: a short search first, the full one only from a lower plan.
        found = improve(routed.state.without(s), deadline, stats, _KICK_ROUNDS, banned=s, basis=routed.basis,
                        tries=_KICK_TRIES, per_device=_KICK_PER_DEVICE)
        if found is not None and found.state.value() < below:
            found = improve(found.state, deadline, stats, max_rounds, basis=found.basis) or found
            stats["kicks_kept"] = stats.get("kicks_kept", 0) + 1
            return kick(found, deadline, stats, tries, max_rounds)
    return routed


def _least_used(state: Serving) -> list[int]:
    o = state.options
    use = np.zeros(len(state.cache))
    on = state.share > SHARE_TOL
    np.add.at(use, o.first[on], state.share[on])
    return sorted(np.flatnonzero(state.cache).tolist(), key=lambda t: (use[t], t))
