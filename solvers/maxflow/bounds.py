"""Upper bounds on the tokens/s any placement of the space serves, from device capacities alone.

Every token of the mix passes every one of the ``L`` blocks, so at throughput ``T`` the
devices carry ``T x L`` token-blocks per second. A device holding ``k`` blocks carries at
most ``k x cap(k)`` of them, where ``cap`` is its tokens/s on the range:

- :func:`compute_bound`: ``T <= sum_d max_range k cap / L``, the compute-only bound (the
  LP relaxation of a placement program is about this weak);
- :func:`fluid_bound`: no device carries more than the whole flow ``T``, so
  ``T L <= sum_d max_range k min(cap, T)``. The largest ``T`` that satisfies it is the
  bound; it charges a device whose capacity exceeds the flow only for the flow, which
  makes it far tighter where fast devices would otherwise count for the slow ones
  (on the 24-node Helix cluster it equals the best placement: 2045.64 tokens/s,
  against a compute-only bound of 2804). ``g(T) / T`` does not increase with ``T``, so
  bisection finds it.

With several classes a device's capacity is its best class's (a bound for any mix).
Both ignore links, SLOs and request rates, which only lower what a placement serves.

Examples
--------
>>> from placement import load_instance
>>> from solvers.maxflow.space import build_space
>>> space = build_space(load_instance("instances/helix/single24.yaml"))
>>> round(compute_bound(space), 2), round(fluid_bound(space), 2)
(2803.86, 2045.64)
"""

from __future__ import annotations

import numpy as np

__all__ = ["compute_bound", "fluid_bound"]

_SLACK = 1e-9


def _lengths(L: int) -> np.ndarray:
    a = np.arange(L + 1)[:, None]
    b = np.arange(L + 1)[None, :]
    return np.maximum(b - a, 0).astype(float)


def compute_bound(space) -> float:
    """``sum_d max_range k cap / L`` (tokens/s)."""
    if space.n == 0:
        return 0.0
    blocks = space.best_class_capacity * _lengths(space.L)[None]
    return float(blocks.reshape(space.n, -1).max(axis=1).sum() / space.L)


def fluid_bound(space, rel_tol: float = 1e-12) -> float:
    """The largest ``T`` with ``sum_d max_range k min(cap, T) >= T L`` (tokens/s; see the module docstring)."""
    if space.n == 0:
        return 0.0
    cap = space.best_class_capacity.reshape(space.n, -1)
    k = np.broadcast_to(_lengths(space.L).reshape(1, -1), cap.shape)
    useful = cap > 0
    caps = [cap[i][useful[i]] for i in range(space.n)]
    ks = [k[i][useful[i]] for i in range(space.n)]

    def enough(t: float) -> bool:
        # Generous by 1e-9: where g(T) = T L holds with equality (a placement that fills every device
        # exactly), rounding must not push the bound below the plans that attain it.
        carried = sum(float(np.max(kk * np.minimum(cc, t))) for cc, kk in zip(caps, ks) if len(cc))
        return carried >= t * space.L * (1 - _SLACK)

    hi = compute_bound(space)
    lo = 0.0
    if hi <= 0 or sum(float(kk.max()) for kk in ks if len(kk)) < space.L:
        return 0.0  # the devices cannot hold every block at once: no flow at all
    if enough(hi):
        return hi
    for _ in range(200):
        if hi - lo <= rel_tol * hi:
            break
        mid = 0.5 * (lo + hi)
        if enough(mid):
            lo = mid
        else:
            hi = mid
    return hi
