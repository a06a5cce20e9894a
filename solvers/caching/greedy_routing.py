"""Exact routing of the greedy's cache, with the room its classes reserved: one linear program.

Over the options whose instances are resident and on which their class has reserved its KV
cache and workspace (:class:`~solvers.caching.greedy_state.Serving`), the shares that cost
least: every class's shares and its unserved share add up to 1, and every device's busy share
stays within ``constraints.max_utilization`` (the same rows, scaled the same way, as
:mod:`solvers.caching.formulation`). Memory needs no row: the reservations already fit. The
columns are gathered from the option arrays, so building the program costs a few array
operations; HiGHS (through :func:`scipy.optimize.linprog`) solves it.

When nothing limits the time (no request rates), the program needs no solver: every class goes
to its cheapest reserved option (:func:`cheapest_routing`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from solvers.caching.greedy_simplex import RoutingProgram
from solvers.caching.greedy_state import SHARE_TOL, Serving
from solvers.deadline import Deadline

__all__ = ["route_exactly", "route_by_highs", "cheapest_routing", "routable", "Routed"]


@dataclass(frozen=True)
class Routed:
    """A cache routed exactly, and the program's prices: what one more unit share of each class would
    cost (``class_price``), and what a unit of each device's busy share is worth (``time_price``, 0 on
    devices with time left)."""

    state: Serving
    class_price: np.ndarray
    time_price: np.ndarray
    basis: tuple | None = None


def routable(state: Serving) -> np.ndarray:
    """Options whose instances are resident and reserved by their class."""
    o = state.options
    second = np.maximum(o.second, 0)
    return (state.cache[o.first] & state.reserved[o.cls, o.first] &
            np.where(o.second >= 0, state.cache[second] & state.reserved[o.cls, second], True))


def _with_shares(state: Serving, share: np.ndarray) -> Serving:
    """``state`` with its shares replaced (cache and reservations kept)."""
    o = state.options
    out = state.copy()
    share = np.where(share > SHARE_TOL, share, 0.0)
    out.share = share
    out.unserved = np.maximum(0.0, 1.0 - np.bincount(o.cls, weights=share, minlength=len(state.unserved)))
    out.load = (np.bincount(o.dev1, weights=share * o.busy1, minlength=len(state.load)) +
                np.bincount(np.maximum(o.dev2, 0), weights=np.where(o.dev2 >= 0, share * o.busy2, 0.0),
                            minlength=len(state.load)))
    out.active = [dict() for _ in state.unserved]
    for k in np.flatnonzero(share):
        out.active[int(o.cls[k])][int(k)] = float(share[k])
    return out


def cheapest_routing(state: Serving) -> Serving:
    """Every class wholly on its cheapest routable option (when cheaper than leaving it unserved):
    the best routing when no device's time is limited."""
    o = state.options
    cols = np.flatnonzero(routable(state))
    share = np.zeros(o.size)
    if cols.size:
        order = cols[np.lexsort((cols, o.cost[cols], o.cls[cols]))]
        first = order[np.r_[True, o.cls[order][1:] != o.cls[order][:-1]]]
        first = first[o.cost[first] < o.unserved_cost[o.cls[first]]]
        share[first] = 1.0
    return _with_shares(state, share)


def route_exactly(state: Serving, deadline: Deadline, basis: tuple | None = None) -> Routed | None:
    """The cheapest routing of ``state``'s cache and reservations, or ``None`` when none was found in
    the time left. ``basis``: a previous program's (:class:`Routed`), to start from."""
    o = state.options
    if o.view.rates:
        cols = np.flatnonzero(routable(state))
        program = RoutingProgram(o.cls[cols], o.cost[cols], o.dev1[cols], o.busy1[cols], o.unserved_cost,
                                 state.time_limit, len(state.load), o.dev2[cols], o.busy2[cols], labels=cols.tolist())
        found = program.solve(basis)
        if found is not None:
            share = np.zeros(o.size)
            share[cols] = np.clip(found.shares, 0.0, 1.0)
            return Routed(_with_shares(state, share), found.class_price, found.time_price, found.basis)
    return route_by_highs(state, deadline)


def route_by_highs(state: Serving, deadline: Deadline) -> Routed | None:
    """:func:`route_exactly` by HiGHS (its fallback, and its check in the tests)."""
    from scipy.optimize import linprog

    o = state.options
    view = o.view
    if not view.rates:
        routed = cheapest_routing(state)
        price = o.unserved_cost.copy()
        for c, active in enumerate(routed.active):
            for k in active:
                price[c] = o.cost[k]
        return Routed(routed, price, np.zeros(len(state.load)))
    cols = np.flatnonzero(routable(state))
    C, D, n = len(state.unserved), len(state.load), len(cols)
    costs = np.concatenate([o.cost[cols], o.unserved_cost])
    classes = sp.csr_matrix((np.ones(n + C), (np.concatenate([o.cls[cols], np.arange(C)]), np.arange(n + C))),
                            shape=(C, n + C))
    two = o.dev2[cols] >= 0
    limit = view.max_utilization  # rows scaled to 1, as the caching program's
    time = sp.csr_matrix((np.concatenate([o.busy1[cols], o.busy2[cols][two]]) / limit,
                          (np.concatenate([o.dev1[cols], o.dev2[cols][two]]), np.r_[np.arange(n), np.flatnonzero(two)])),
                         shape=(D, n + C))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns of options it passes on unchecked
        result = linprog(costs, A_ub=time, b_ub=np.full(D, state.time_limit / limit), A_eq=classes, b_eq=np.ones(C),
                         bounds=(0, None), method="highs",
                         options={"time_limit": max(deadline.left(), 0.01), "primal_feasibility_tolerance": 1e-9})
    if result.status != 0 or result.x is None:
        return None
    share = np.zeros(o.size)
    share[cols] = np.clip(result.x[:n], 0.0, 1.0)
    return Routed(_with_shares(state, share), np.asarray(result.eqlin.marginals, dtype=float),
                  np.maximum(0.0, -np.asarray(result.ineqlin.marginals, dtype=float)) / limit)
