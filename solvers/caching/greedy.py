"""``cache-greedy``: greedy on marginal gain over the caching view's arrays, local moves, exact routing.

The search keeps a feasible plan at every step (:class:`~solvers.caching.greedy_state.Serving`:
the resident instances, every class's shares, each device's time and memory left) and reads
every number from the caching view, gathered once into option arrays.

1. *Greedy additions.* Every candidate's gain is estimated at once, on arrays
   (:func:`~solvers.caching.greedy_moves.estimated_gains`: a fractional knapsack of the
   classes' moves over its device's time left); the best few are valued exactly
   (:func:`~solvers.caching.greedy_moves.moves_onto`) and the first that gains is added, its
   moves made, and the time they free on other devices filled. A move off a saturated device
   is prioritised by the time it frees there; when the moves gain only through that, they are
   kept only if filling the freed time makes the pair of steps gain.
2. *Local moves* (option ``local_moves``): drop an instance (its classes move to what is left,
   or become unserved), or swap it for another candidate on its device, each valued by
   re-running the greedy fill over the changed cache; an improving move is kept, until none is.
3. *Exact routing* (option ``exact_routing``): the cache found is routed by one linear program
   over the room its classes reserved (:mod:`solvers.caching.greedy_routing`), kept when
   cheaper. Without request rates no device's time binds, and every class simply goes to its
   cheapest reserved option.

It proves nothing: status ``feasible``, no bound. Deterministic: ties break by index. The
deadline is checked in every loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from placement import Plan, Problem, Status, Termination
from placement.costs.caching import caching_view
from solvers.caching.greedy_moves import apply, estimated_gains, moves_onto
from solvers.caching.greedy_local import improve, kick, without as _without
from solvers.caching.greedy_state import Serving, ServingOptions
from solvers.caching.plans import build_plan
from solvers.deadline import Deadline

__all__ = ["solve_cache_greedy"]

_GAIN_TOL = 1e-9  # relative: a gain smaller than this share of the objective is none
_TRIES = 8  # candidates valued exactly per step, best estimates first
_FILL_TRIES = 4
_FILL_ROUNDS_PER_CLASS = 4
_ROUNDS = 200  # rounds of moves at most (each adds or swaps an instance; far more than any cache holds)
_KICKS = 3


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


def _water_filling(state: Serving, deadline: Deadline, stats: dict, drops: bool) -> Serving:
    """The greedy additions by water-filling alone; with ``drops``, then every instance dropped in turn
    (its shares filled elsewhere), kept when that gains."""
    for key in ("estimates", "evaluations", "additions", "reliefs"):
        stats.setdefault(key, 0)
    state = _greedy(state, deadline, stats)
    for s in (np.flatnonzero(state.used()).tolist() if drops else ()):
        if deadline.expired():
            break
        trial = _without(state, s)
        _fill(trial, np.ones(len(trial.load), dtype=bool), deadline, stats)
        trial = _greedy(trial, deadline, stats)
        if trial.value() < state.value() - _tol(state):
            stats["drops"] = stats.get("drops", 0) + 1
            state = trial
    return state


def solve_cache_greedy(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Greedy caching priced by the exact routing, and local moves (see the module docstring).

    Parameters
    ----------
    options : dict
        ``local_moves`` (bool): swap and drop instances once additions stop gaining;
        ``exact_routing`` (bool): price and route every step by the routing program (else
        water-filling alone).
    """
    view = caching_view(problem)
    serving = ServingOptions.of(view)
    stats = {"routings": 0}
    state = Serving.empty(serving)
    if options.get("exact_routing", True):
        stats["search"] = "priced by the routing program"
        routed = improve(state, deadline, stats, _ROUNDS, swaps=options.get("local_moves", True))
        if routed is not None and options.get("local_moves", True):
            routed = kick(routed, deadline, stats, _KICKS, _ROUNDS)
        state = routed.state if routed is not None else _water_filling(state, deadline, stats, False)
    else:
        stats["search"] = "water-filling"
        state = _water_filling(state, deadline, stats, options.get("local_moves", True))
    plan = build_plan(problem, view, state.solution())
    stats.update(plan_space="cache", candidates=int(view.fits.sum()), options=serving.size,
                 instances=int(state.used().sum()))
    return plan.with_(status=Status.FEASIBLE, termination=Termination.HEURISTIC, stats=stats)
