"""Queueing under load: the wait for a free slot, SLO attainment and goodput.

With request rates given, each device is one server whose jobs are requests:
a request of class ``c`` arrives at ``lambda_c`` per second (its share of the
class's rate on routes through the device) and takes ``s_c = busy_c / B_c``
seconds of the device (its share of its batch's prefill and decode steps; see
:meth:`~placement.costs.tables.BlockCosts.stage_busy_s`). The device's
utilisation is ``rho = sum_c lambda_c s_c``, and the mean wait before service is
the Pollaczek-Khinchine formula of an M/G/1 queue (Poisson arrivals, each class's
service time deterministic, so ``E[S^2] = sum_c lambda_c s_c^2 / Lambda``):

    W = sum_c lambda_c s_c^2 / (2 (1 - rho)),

which is M/D/1 for one class (``W = rho s / (2 (1 - rho))``). A request waits at
every device of its route in turn (a tandem of such queues), so its route's
wait is the sum of its devices' waits: an upper estimate, since a pipeline's
stages overlap in time. The wait adds to TTFT and end-to-end latency, not to
TPOT (decode steps keep their pace once a request is admitted).

The distribution of the wait, for SLO attainment, is approximated by
``P(W > t) = rho exp(-rho t / W)``: it waits at all with probability ``rho``
(exact for M/G/1) and has the right mean; it is exact for M/M/1. A route's wait
uses its busiest device's ``rho`` and its summed mean.

*Goodput* is the highest total request rate, scaling every class's rate by one
factor, at which at least a given share of requests meets every SLO of its class.

References: L. Kleinrock, *Queueing Systems, Vol. 1* (1975), sec. 5.6 (M/G/1,
Pollaczek-Khinchine); Zhong et al., "DistServe" (OSDI'24), which defines goodput
as the rate at which a target share of requests meets its SLOs.

Examples
--------
>>> waits = device_waits({0: [(1.0, 0.5)]})      # one class, 1 request/s, 0.5 s each: M/D/1
>>> round(waits[0].rho, 3), round(waits[0].mean_wait_s, 3)
(0.5, 0.25)
>>> round(share_within(0.0, waits[0].rho, waits[0].mean_wait_s, limit_s=1.0), 4)
0.9323
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["DeviceQueue", "device_waits", "route_wait", "share_within", "goodput_scale"]


@dataclass(frozen=True)
class DeviceQueue:
    """One device's queue: utilisation and mean wait before service (``inf`` at or above 100%)."""

    rho: float
    mean_wait_s: float


def device_waits(jobs: Mapping[int, Sequence[tuple[float, float]]]) -> dict[int, DeviceQueue]:
    """Each device's :class:`DeviceQueue` from its jobs: ``(arrival rate 1/s, service time s)`` pairs."""
    out = {}
    for d, pairs in jobs.items():
        rho = sum(lam * s for lam, s in pairs)
        second = sum(lam * s * s for lam, s in pairs)
        wait = second / (2.0 * (1.0 - rho)) if rho < 1.0 else math.inf
        out[d] = DeviceQueue(rho, wait)
    return out


def route_wait(queues: Mapping[int, DeviceQueue], devices: Sequence[int]) -> DeviceQueue:
    """The wait of a request that queues at each of ``devices`` in turn: the busiest ``rho``, the summed mean."""
    distinct = list(dict.fromkeys(devices))
    if not distinct:
        return DeviceQueue(0.0, 0.0)
    return DeviceQueue(max(queues[d].rho for d in distinct), sum(queues[d].mean_wait_s for d in distinct))


def share_within(service_s: float, rho: float, mean_wait_s: float, limit_s: float) -> float:
    """Share of requests whose service time plus wait stays within ``limit_s``."""
    slack = limit_s - service_s
    if slack < 0:
        return 0.0
    if rho <= 0 or mean_wait_s <= 0:
        return 1.0
    if not math.isfinite(mean_wait_s):
        return 0.0
    return max(0.0, 1.0 - rho * math.exp(-rho * slack / mean_wait_s))


def goodput_scale(attainment: Callable[[float], float], target: float, saturation: float, tol: float = 1e-4) -> float:
    """Largest factor ``x`` on every request rate with ``attainment(x) >= target``, by bisection.

    ``attainment`` is the share of all requests that meet their SLOs when rates are
    scaled by ``x``; it falls as ``x`` grows, and ``saturation`` is the factor at which
    some device reaches 100% (beyond it queues grow without bound). 0 when even an
    idle system misses the target.

    Examples
    --------
    >>> round(goodput_scale(lambda x: 1.0 - 0.5 * x, target=0.9, saturation=1.0), 3)
    0.2
    """
    if attainment(0.0) < target:
        return 0.0
    lo, hi = 0.0, saturation
    if attainment(hi * (1 - 1e-12)) >= target:
        return hi
    while hi - lo > tol * max(hi, 1e-12):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if attainment(mid) >= target else (lo, mid)
    return lo
