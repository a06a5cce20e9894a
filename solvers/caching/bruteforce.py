"""``cache-bruteforce``: every cache, every set of reservations, each routed by a linear program.

The oracle the caching solvers are checked against on tiny portfolios. It enumerates

- every *cache*: for each device, every subset of the candidate instances (whole models in a
  format, :mod:`placement.costs.caching`) whose weights and runtime fit it, combined over devices;
- for each cache, every *maximal* set of reservations (which classes keep KV cache and workspace
  on which resident instance) that fits memory: a smaller set only removes routing options;
  and caches in which some instance holds no reservation are skipped (it would serve nothing);

and routes each (cache, reservations) pair by a linear program over the shares (HiGHS through
:func:`scipy.optimize.linprog`, written here from the view's coefficients, independently of the
MILP): every class's shares and unserved share add to 1, each device within its utilisation
limit. The best pair (first found on ties) becomes the plan, judged by ``evaluate()``. Instances
beyond ``max_caches`` candidate caches are refused rather than run for hours.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.optimize import linprog

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from placement.costs.caching import CachingView, caching_view
from solvers.api import UnsupportedProblemError
from solvers.caching.plans import Solution, build_plan
from solvers.deadline import Deadline

__all__ = ["solve_cache_bruteforce", "count_caches", "best_routing", "routing_optimum"]

_CHECK_EVERY = 16


def _useful(view: CachingView) -> np.ndarray:
    useful = view.eligible.any(axis=0)
    if len(view.cascades):
        useful[view.cascades.first] = True
        useful[view.cascades.second] = True
    return np.flatnonzero(view.fits & useful)


def _device_subsets(view: CachingView, candidates: np.ndarray) -> list[list[tuple[int, ...]]]:
    """Per device, every subset of its candidates whose weights and runtime fit it."""
    out = []
    for d in range(len(view.capacity_bytes)):
        mine = [int(t) for t in candidates if view.device[t] == d]
        subsets = []
        for k in range(len(mine) + 1):
            for combo in itertools.combinations(mine, k):
                need = sum(view.weight_mem_bytes[t] for t in combo) + max(
                    (view.runtime_mem_bytes[t] for t in combo), default=0.0)
                if need <= view.capacity_bytes[d]:
                    subsets.append(combo)
        out.append(subsets)
    return out


def count_caches(problem: Problem) -> int:
    """How many caches :func:`solve_cache_bruteforce` enumerates."""
    view = caching_view(problem)
    return int(np.prod([len(s) for s in _device_subsets(view, _useful(view))], dtype=float))


def _pairs_on(view: CachingView, cache: tuple[int, ...]) -> list[tuple[int, int]]:
    """Reservations a class could make on the cache: eligible pairs and cascade ends."""
    resident = set(cache)
    pairs = {(int(c), t) for t in cache for c in np.flatnonzero(view.eligible[:, t])}
    cas = view.cascades
    for p in range(len(cas)):
        if int(cas.first[p]) in resident and int(cas.second[p]) in resident:
            pairs |= {(int(cas.cls[p]), int(cas.first[p])), (int(cas.cls[p]), int(cas.second[p]))}
    return sorted(pairs)


def _fits(view: CachingView, cache: tuple[int, ...], chosen: list[tuple[int, int]]) -> bool:
    for d in {int(view.device[t]) for t in cache}:
        on = [t for t in cache if view.device[t] == d]
        total = sum(view.weight_mem_bytes[t] for t in on) + max(view.runtime_mem_bytes[t] for t in on)
        for t in on:
            mine = [c for c, k in chosen if k == t]
            total += sum(view.kv_mem_bytes[c, t] for c in mine) + max((view.workspace_mem_bytes[c, t] for c in mine),
                                                                      default=0.0)
        if total > view.capacity_bytes[d]:
            return False
    return True


def _maximal_reservations(view: CachingView, cache: tuple[int, ...], cover: bool = True):
    """Every maximal set of reservations on ``cache`` that fits memory (and, with ``cover``, gives each
    instance one)."""
    pairs = _pairs_on(view, cache)
    if _fits(view, cache, pairs):  # the usual case: every reservation fits at once
        if not cover or {t for _, t in pairs} == set(cache):
            yield pairs
        return
    found: list[set] = []
    for k in range(len(pairs), 0, -1):
        for chosen in itertools.combinations(pairs, k):
            if any(set(chosen) <= f for f in found) or not _fits(view, cache, list(chosen)):
                continue
            found.append(set(chosen))
            if not cover or {t for _, t in chosen} == set(cache):
                yield list(chosen)


def best_routing(view: CachingView, cache: tuple[int, ...], reserved: list[tuple[int, int]]
                 ) -> tuple[float, Solution] | None:
    """The cheapest routing over ``cache`` with the classes' reservations ``reserved`` (an LP)."""
    have = set(reserved)
    direct = [(c, t) for c, t in reserved if view.eligible[c, t]]
    cas = view.cascades
    options = [p for p in range(len(cas)) if (int(cas.cls[p]), int(cas.first[p])) in have
               and (int(cas.cls[p]), int(cas.second[p])) in have]
    C = len(view.requests)
    n = len(direct) + len(options) + C
    cost = np.concatenate([[view.class_weight[c] * view.cost[c, t] for c, t in direct],
                           [view.class_weight[cas.cls[p]] * cas.cost[p] for p in options],
                           view.class_weight * view.unserved_cost])
    A_eq = np.zeros((C, n))
    for j, (c, _) in enumerate(direct):
        A_eq[c, j] = 1.0
    for j, p in enumerate(options):
        A_eq[cas.cls[p], len(direct) + j] = 1.0
    A_eq[np.arange(C), len(direct) + len(options) + np.arange(C)] = 1.0
    rows = []
    if view.rates:
        for d in sorted({int(view.device[t]) for t in cache}):
            row = np.zeros(n)
            for j, (c, t) in enumerate(direct):
                row[j] = view.busy[c, t] if view.device[t] == d else 0.0
            for j, p in enumerate(options):
                row[len(direct) + j] = (cas.busy_first[p] if view.device[cas.first[p]] == d else 0.0) + \
                                       (cas.busy_second[p] if view.device[cas.second[p]] == d else 0.0)
            rows.append(row)
    result = linprog(cost, A_ub=np.array(rows) if rows else None,
                     b_ub=np.full(len(rows), view.max_utilization) if rows else None,
                     A_eq=A_eq, b_eq=np.ones(C), bounds=(0, 1), method="highs")
    if result.status != 0:
        return None
    x = result.x
    value = float(result.fun) + float(sum(view.churn_cost[t] for t in cache))
    return value, Solution({pair: float(x[j]) for j, pair in enumerate(direct)},
                           {p: float(x[len(direct) + j]) for j, p in enumerate(options)})


def solve_cache_bruteforce(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Enumerate caches and reservations, route each exactly, keep the best (see the module docstring).

    Raises
    ------
    UnsupportedProblemError
        When the instance has more than ``max_caches`` caches.
    """
    view = caching_view(problem)
    subsets = _device_subsets(view, _useful(view))
    total = int(np.prod([len(s) for s in subsets], dtype=float))
    if total > options["max_caches"]:
        raise UnsupportedProblemError(
            f"solver 'cache-bruteforce' would enumerate {total:,} caches, more than max_caches="
            f"{options['max_caches']:,}; use cache-ilp or raise max_caches")
    best = (np.inf, Solution())
    checked, timed_out = 0, False
    for combo in itertools.product(*subsets):
        if checked % _CHECK_EVERY == 0 and deadline.expired():
            timed_out = True
            break
        checked += 1
        cache = tuple(t for part in combo for t in part)
        for reserved in _maximal_reservations(view, cache) if cache else [[]]:
            found = best_routing(view, cache, reserved)
            if found is not None and (best[0] == np.inf or found[0] < best[0] - 1e-9 * max(abs(best[0]), 1.0)):
                best = found
    plan = build_plan(problem, view, best[1])
    objective = float(evaluate(problem, plan).objective)
    stats = {"plan_space": "cache", "caches_checked": checked, "caches_total": total}
    if timed_out:
        return plan.with_(status=Status.FEASIBLE, termination=Termination.TIME_LIMIT, objective=objective, stats=stats)
    return plan.with_(status=Status.OPTIMAL, termination=Termination.CONVERGED, objective=objective, bound=objective,
                      gap=0.0, proof=Proof.PLAN_SPACE, stats=stats)


def routing_optimum(problem: Problem) -> Plan:
    """The best routing over the instance's current cache, by enumeration (the ``route`` solver's oracle)."""
    from solvers.caching.route import cached_candidates

    view = caching_view(problem)
    cache = tuple(sorted(cached_candidates(problem, view)))
    best = (np.inf, Solution())
    for reserved in _maximal_reservations(view, cache, cover=False) if cache else [[]]:
        found = best_routing(view, cache, reserved)
        if found is not None and (best[0] == np.inf or found[0] < best[0] - 1e-9 * max(abs(best[0]), 1.0)):
            best = found
    plan = build_plan(problem, view, best[1], keep_cache=True)
    objective = float(evaluate(problem, plan).objective)
    return plan.with_(status=Status.OPTIMAL, termination=Termination.CONVERGED, objective=objective, bound=objective,
                      gap=0.0, proof=Proof.PLAN_SPACE)
