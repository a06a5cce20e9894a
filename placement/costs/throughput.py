"""Throughput: the decode tokens/s a plan's resources can carry.

Every device and every network resource (a link direction, a NIC; see
:attr:`models.Topology.resources`) is busy at most all of the time. A route uses
``u[r]`` seconds of resource ``r`` per decode token (:func:`placement.costs.routes.route_usage`),
so with ``x_k`` tokens/s on route ``k``

    sum_k x_k * u_k[r] <= 1   for every resource r.

Transfers between devices that are not neighbours occupy every link of their
path and the NIC of every device that relays them, so routes whose paths share a
physical link share its capacity.

Three questions, one module:

- :func:`mixed_throughput`: the classes keep a fixed mix (their request rates, or a
  single class): the closed form ``sum(demand) / max_r sum_c demand_c u_c[r]``;
- :func:`free_throughput`: the classes' rates are free: the LP
  ``max sum_c x_c s.t. sum_c x_c u_c[r] <= 1, x >= 0`` (HiGHS through scipy);
  :func:`free_throughput_bound` bounds it from above without solving it, for
  searches that only need to know whether a plan can beat another;
- :func:`rated_loads`: routes that carry given rates (``Route.rate_tok_s``): the load
  of every resource, which must stay at most 1.

:func:`placement.evaluate` picks the right one for a plan. Searching placements
that maximise it is a solver's job.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linprog

__all__ = ["mixed_throughput", "free_throughput", "free_throughput_bound", "rated_loads", "combine_usage", "Usage"]

Usage = Mapping[int, float]  # resource index -> seconds per decode token


def combine_usage(parts: Sequence[tuple[float, Usage]]) -> dict[int, float]:
    """``sum_k weight_k * usage_k``: a class's use per token when its routes take shares ``weight_k``."""
    out: dict[int, float] = defaultdict(float)
    for weight, usage in parts:
        for resource, seconds in usage.items():
            out[resource] += weight * seconds
    return dict(out)


def mixed_throughput(usage: Mapping[str, Usage], demand: Mapping[str, float]) -> float:
    """Tokens/s when every class keeps its share ``demand[c] / sum(demand)`` of the traffic.

    Examples
    --------
    >>> mixed_throughput({"a": {0: 0.01, 1: 0.002}}, {"a": 1.0})   # the device binds: 100 tok/s
    100.0
    """
    load: dict[int, float] = defaultdict(float)
    for c, use in usage.items():
        for resource, seconds in use.items():
            load[resource] += demand[c] * seconds
    worst = max(load.values(), default=0.0)
    total = sum(demand[c] for c in usage)
    return total / worst if worst > 0 else math.inf


def free_throughput(usage: Mapping[str, Usage]) -> float:
    """Most total tokens/s over classes whose rates are free (an LP; 0 if it fails).

    Examples
    --------
    >>> round(free_throughput({"a": {0: 0.01}, "b": {0: 0.01, 1: 0.02}}), 6)  # share device 0
    100.0
    """
    classes = list(usage)
    resources = sorted({r for c in classes for r in usage[c]})
    if not resources:
        return math.inf
    A = np.array([[usage[c].get(r, 0.0) for c in classes] for r in resources])
    result = linprog(-np.ones(len(classes)), A_ub=A, b_ub=np.ones(len(resources)), bounds=(0, None),
                     method="highs")
    return float(-result.fun) if result.status == 0 else 0.0


def free_throughput_bound(usage: Mapping[str, Usage]) -> float:
    """An upper bound on :func:`free_throughput` from points of its LP's dual, without solving it
    (``inf`` when none is found).

    A resource every class uses caps the total at ``1 / min_c u_c[r]``. With two classes, every pair
    of resources whose two rows can both be tight gives a dual point too, and the least of these is
    the LP's optimum (a dual vertex has at most two resources in its support).

    Examples
    --------
    >>> usage = {"a": {0: 0.01, 1: 0.004}, "b": {0: 0.002, 1: 0.02}}
    >>> round(free_throughput_bound(usage), 6), round(free_throughput(usage), 6)
    (125.0, 125.0)
    """
    classes = list(usage)
    resources = sorted({r for c in classes for r in usage[c]})
    if not resources:
        return math.inf
    A = np.array([[usage[c].get(r, 0.0) for c in classes] for r in resources])
    shared = np.all(A > 0, axis=1)
    bound = float(np.min(1.0 / A[shared].min(axis=1))) if shared.any() else math.inf
    if len(classes) == 2 and len(resources) > 1:
        r, s = np.triu_indices(len(resources), k=1)
        det = A[r, 0] * A[s, 1] - A[s, 0] * A[r, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            yr, ys = (A[s, 1] - A[s, 0]) / det, (A[r, 0] - A[r, 1]) / det
        ok = (det != 0) & (yr >= 0) & (ys >= 0)
        if ok.any():
            bound = min(bound, float(np.min(yr[ok] + ys[ok])))
    return bound


def rated_loads(routes: Sequence[tuple[float, Usage]]) -> dict[int, float]:
    """Share of time each resource is busy when route ``k`` carries ``rate_k`` tokens/s."""
    return combine_usage(routes)
