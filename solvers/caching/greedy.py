"""``cache-greedy``: greedy additions on marginal gain, priced and routed by the routing program; local moves.

The search reads every number from the caching view, gathered once into option arrays
(:class:`~solvers.caching.greedy_state.ServingOptions`), and keeps a feasible plan at every step
(:class:`~solvers.caching.greedy_state.Serving`: resident instances, every class's shares, each
device's time and memory left).

- *Greedy additions, priced by the routing program* (the default): the current cache is routed
  exactly (:func:`~solvers.caching.greedy_routing.route_exactly`, a simplex started from the
  last basis), and its prices give every candidate's marginal gain at once: a fractional
  knapsack of the negative reduced costs of the classes it would serve, over its device's
  time (:mod:`solvers.caching.greedy_local`). The best additions of every device are made
  together and routed; when that does not gain, the best single ones are tried. Instances and
  reservations no share uses are released after every step, so memory goes where it serves.
- *Local moves* (option ``local_moves``): swaps (a candidate that fits only once a resident
  instance on its device goes), and, once no move gains, kicks: each of the few least used
  instances is dropped in turn, and the search, given one round to end lower without it, goes
  on from there when it does.
- Without the routing program (``exact_routing`` off), the additions are the water-filling
  greedy's (:func:`~solvers.caching.greedy_moves.water_filling`): gains from a knapsack of the
  classes' moves over the time left, time freed on full devices valued, and the shares moved
  by that greedy alone; ``local_moves`` then tries dropping each instance.

It proves nothing: status ``feasible``, no bound. Deterministic: ties break by index. The
deadline is checked in every loop (the simplex also has a pivot limit, past which HiGHS routes).
"""

from __future__ import annotations

from typing import Any

from placement import Plan, Problem, Status, Termination
from placement.costs.caching import caching_view
from solvers.caching.greedy_local import improve, kick
from solvers.caching.greedy_moves import water_filling
from solvers.caching.greedy_state import Serving, ServingOptions
from solvers.caching.plans import build_plan
from solvers.deadline import Deadline

__all__ = ["solve_cache_greedy"]

_ROUNDS = 200  # rounds of moves at most (each adds or swaps instances; far more than any cache holds)
_KICKS = 3  # least used instances dropped in turn once no move gains


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
        state = routed.state if routed is not None else water_filling(state, deadline, stats, False)
    else:
        stats["search"] = "water-filling"
        state = water_filling(state, deadline, stats, options.get("local_moves", True))
    stats.update(plan_space="cache", candidates=int(view.fits.sum()), options=serving.size,
                 instances=int(state.used().sum()), search_time_s=round(deadline.elapsed(), 6))
    if deadline.expired() and not state.used().any():
        # Declaring every class unserved "for want of memory" would be a false reason: time ran out.
        return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT, stats=stats,
                    reasons=(f"the time limit ran out after {deadline.elapsed():.2f} s, before the search "
                             "placed any instance",))
    plan = build_plan(problem, view, state.solution())
    stopped = Termination.TIME_LIMIT if deadline.expired() else Termination.HEURISTIC
    return plan.with_(status=Status.FEASIBLE, termination=stopped, stats=stats)
