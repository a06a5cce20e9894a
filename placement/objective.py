"""The objective: how a plan's metrics combine into one number, per request and in all.

The objective of a plan is ``sum_t sign_t w_t M_t`` over the objective's terms ``t``
(one metric alone: its value, minimised or maximised as :data:`placement.problem.METRICS`
says; a weighted mix is minimised, and a maximised metric (``quality``) enters it with
a minus sign). The per-request metrics are sums over request classes ``c`` with weights
``W_c`` (:meth:`Problem.request_weights`) and, for a class that declares part of its
requests unserved, over its served share only:

    M_latency = sum_c W_c s_c E2E_c      (s_c: served share, 1 for a class that declares
    M_quality = sum_c W_c s_c score_c     nothing unserved; E2E_c its mean over its routes)
    M_unserved = sum_c W_c (1 - s_c)      M_churn = seconds of weights loaded (not cached now)

An unserved request must not make a plan look cheaper, so unless the objective weighs
``unserved`` itself, each unserved request costs :data:`UNSERVED_COST` per unit of every
per-request term (an unserved request counts as one taking 10^4 s or 1 MJ). Because
all of this is linear in the routes' shares, solvers price a route by
:func:`request_cost` and an unserved share by :func:`unserved_weight`, and their sums
agree with :func:`placement.evaluate`'s objective.

Examples
--------
>>> from placement import load_instance
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> unserved_weight(problem)      # latency objective: 10^7 ms per unserved request
10000000.0
"""

from __future__ import annotations

from placement.costs.routes import RouteTimes
from placement.problem import METRICS, Problem

__all__ = ["objective_value", "request_cost", "unserved_weight", "UNSERVED_COST", "REQUEST_METRICS"]

# What an unserved request costs, per unit weight of each per-request objective term, when the
# objective does not weigh `unserved` itself: far above any request a plan can serve.
UNSERVED_COST = {"latency": 1e7, "ttft": 1e7, "tpot": 1e7, "energy": 1e6, "quality": 0.0}
# Per-request metrics, as a route's times give them (ms, J, points).
REQUEST_METRICS = ("latency", "ttft", "tpot", "energy", "quality")


def _sign(problem: Problem, name: str) -> float:
    """+1 for a term the objective minimises, -1 for a maximised one inside a weighted mix."""
    if len(problem.objective.terms) > 1 and METRICS[name][0] == "max":
        return -1.0
    return 1.0


def objective_value(problem: Problem, per_metric: dict[str, float]) -> float:
    """Combine aggregated metrics (``M_t`` above) into the problem's objective value."""
    total = sum(_sign(problem, name) * weight * per_metric[name] for name, weight in problem.objective.terms)
    names = {name for name, _ in problem.objective.terms}
    if "unserved" not in names and per_metric.get("unserved", 0.0) > 0:
        total += unserved_weight(problem) * per_metric["unserved"]
    return total


def unserved_weight(problem: Problem) -> float:
    """What one unserved request adds to the objective (the objective's ``unserved`` weight, or the
    default :data:`UNSERVED_COST` of its per-request terms)."""
    weights = dict(problem.objective.terms)
    if "unserved" in weights:
        return weights["unserved"]
    return sum(w * UNSERVED_COST.get(name, 0.0) for name, w in weights.items())


def request_cost(problem: Problem, times: RouteTimes, score: float | None) -> float:
    """What one request served with ``times`` (answer score ``score``) adds to the objective,
    before its class's weight. Terms that are not per request (throughput, churn, unserved) add 0.

    Raises
    ------
    ValueError
        If the objective weighs quality and the route has no score.
    """
    values = {"latency": times.e2e_s * 1e3, "ttft": times.ttft_s * 1e3, "tpot": times.tpot_s * 1e3,
              "energy": times.energy_j}
    total = 0.0
    for name, weight in problem.objective.terms:
        if name == "quality":
            if score is None:
                raise ValueError("the objective weighs quality but a route has no benchmark score")
            total += _sign(problem, name) * weight * score
        elif name in values:
            total += weight * values[name]
    return total
