"""Queueing: the Pollaczek-Khinchine wait and the tail approximation, against a simulated queue."""

from __future__ import annotations

import math

import numpy as np
import pytest

from placement.costs.queueing import device_waits, goodput_scale, route_wait, share_within


def _simulate(rates_and_services, n=80_000, seed=0) -> np.ndarray:
    """Waits of a FIFO single server with Poisson arrivals of several classes (Lindley's recursion)."""
    rng = np.random.default_rng(seed)
    lam = sum(r for r, _ in rates_and_services)
    gaps = rng.exponential(1.0 / lam, n)
    probs = np.array([r / lam for r, _ in rates_and_services])
    service = np.array([s for _, s in rates_and_services])[rng.choice(len(probs), n, p=probs)]
    waits = np.zeros(n)
    for i in range(1, n):
        waits[i] = max(0.0, waits[i - 1] + service[i - 1] - gaps[i])
    return waits


@pytest.mark.parametrize("jobs", [[(1.0, 0.5)], [(0.8, 0.3), (0.5, 0.9)], [(3.0, 0.25)]])
def test_mean_wait_matches_a_simulated_queue(jobs):
    q = device_waits({0: jobs})[0]
    waits = _simulate(jobs)
    assert q.rho == pytest.approx(sum(r * s for r, s in jobs))
    assert waits.mean() == pytest.approx(q.mean_wait_s, rel=0.06)
    # The tail approximation: P(wait > t) within a few points of the simulated share.
    for t in (0.0, q.mean_wait_s, 3 * q.mean_wait_s):
        approx = q.rho * math.exp(-q.rho * t / q.mean_wait_s)
        assert abs(approx - float((waits > t).mean())) < 0.06, (t, approx, (waits > t).mean())


def test_a_saturated_device_waits_forever():
    q = device_waits({0: [(2.0, 0.5)]})[0]
    assert q.rho == 1.0 and math.isinf(q.mean_wait_s)
    assert share_within(0.1, q.rho, q.mean_wait_s, limit_s=10.0) == 0.0


def test_a_route_waits_at_each_of_its_devices():
    queues = device_waits({0: [(1.0, 0.2)], 1: [(1.0, 0.5)]})
    both = route_wait(queues, [0, 1, 1])
    assert both.rho == pytest.approx(0.5)
    assert both.mean_wait_s == pytest.approx(queues[0].mean_wait_s + queues[1].mean_wait_s)


def test_goodput_is_the_largest_scale_that_keeps_the_target():
    def attainment(x: float) -> float:
        q = device_waits({0: [(x, 0.5)]})[0]
        return share_within(0.3, q.rho, q.mean_wait_s, limit_s=1.0)
    x = goodput_scale(attainment, target=0.9, saturation=2.0)
    assert attainment(x) >= 0.9 - 1e-9 and attainment(x * 1.001) < 0.9
    assert goodput_scale(attainment, target=0.9, saturation=2.0) < 2.0
    assert goodput_scale(lambda x: 0.5, target=0.9, saturation=2.0) == 0.0
