"""Declaring a plan's unserved demand: the share of each class its routes leave, and why.

Solvers that may leave demand unserved build their shards and routes, then call
:func:`declare_unserved`, which measures what the routes carry and gives every class they
do not fully serve an :class:`~placement.plan.Unserved` entry with the reason
:func:`placement.unserved.choose_reason` finds (with its numbers). ``evaluate()`` tests
those reasons again, so a solver that gives up too early is caught, not excused.

Examples
--------
>>> from placement import load_instance, Plan
>>> problem = load_instance("instances/portfolio.yaml")
>>> plan = declare_unserved(problem, Plan())          # nothing resident, nothing routed
>>> sorted({u.reason.value for u in plan.unserved})
['memory', 'quality']
>>> from placement import evaluate                    # but only one class is really a lost cause:
>>> sorted({v.subject for v in evaluate(problem, plan).violations})   # the others' excuses are refuted
['chat-1', 'chat-2', 'expert', 'math']
"""

from __future__ import annotations

from collections import defaultdict

from placement.costs.caching import caching_view
from placement.evaluate import device_state, evaluate, route_shares
from placement.plan import Plan, Unserved
from placement.problem import Problem
from placement.unserved import choose_reason

__all__ = ["declare_unserved", "SHARE_TOL"]

SHARE_TOL = 1e-9  # a class whose routes carry all but this much of it is fully served


def declare_unserved(problem: Problem, plan: Plan, keep_cache: bool = False) -> Plan:
    """``plan`` with an unserved entry (share and reason) for every class its routes do not fully serve;
    ``keep_cache``: the plan routes over the current cache and loads nothing (reason ``cache`` applies)."""
    by_class = defaultdict(list)
    for route in plan.routes:
        by_class[route.request].append(route)
    served = {r.id: sum(route_shares(by_class[r.id])) if by_class[r.id] else 0.0 for r in problem.workload}
    short = [r for r in problem.workload if served[r.id] < 1 - SHARE_TOL]
    if not short:
        return plan.with_(unserved=())
    view = caching_view(problem)
    state = device_state(problem, plan, evaluate(problem, plan.with_(unserved=())).devices)
    entries = []
    for req in short:
        reason, detail = choose_reason(problem, view, state, view.requests.index(req.id), 1.0 - served[req.id], keep_cache)
        entries.append(Unserved(req.id, 1.0 - served[req.id], reason, detail))
    return plan.with_(unserved=tuple(entries))
