"""The cover bound: an integer program whose infeasibility at ``T`` proves no placement serves ``T``.

At throughput ``T``, every block is crossed by the whole flow, so the devices holding a
block carry ``T`` there between them, each at most ``min(cap, T)``. Write ``rho = min(1,
cap / T)`` for a device holding ``k`` blocks (its best capacity at that length, over
positions and classes): the devices on each block have ``rho`` summing to at least 1
(a *cover*), and a device holding ``k`` blocks lies in at most ``k`` covers.

So at ``T``, some choice of lengths ``z[g, k]`` (devices of group ``g`` holding ``k``
blocks) and of how many blocks ``x[s]`` each minimal cover ``s`` (a multiset of
(group, length) items whose ``rho`` sum to at least 1, none to spare) covers must cover
all ``L`` blocks:

    sum_s x[s] >= L,   sum_s mult(s, g, k) x[s] <= k z[g, k],   sum_k z[g, k] <= |g|.

Unlike the fluid bound (:mod:`solvers.maxflow.bounds`), which lets a device's spare
capacity on one block make up for a shortfall on another, a cover counts whole devices
per block, so a stack of two slow devices wastes what exceeds ``T``. Infeasible at
``T`` proves every placement serves less than ``T`` (links, SLOs and rates only take
throughput away); bisection between the incumbent and the fluid bound gives the bound.
On the 10-node Helix cluster it proves the 286.59 tokens/s placement optimal (the
fluid bound is 340.7).

Covers are enumerated; when there would be more than ``max_covers`` (many slow devices,
each a small share of ``T``), the bound is not computed.

Examples
--------
>>> from placement import load_instance
>>> from solvers.deadline import Deadline
>>> from solvers.maxflow.space import build_space
>>> space = build_space(load_instance("instances/helix/quality10.yaml"))
>>> cover_feasible(space, 286.59 * (1 + 1e-7), Deadline(30)), cover_feasible(space, 286.59, Deadline(30))
(False, True)
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from solvers.deadline import Deadline
from solvers.ilp.backends import MILP, RowBuilder, solve_milp

__all__ = ["cover_feasible", "cover_bound", "affordable", "MAX_COVERS"]

MAX_COVERS = 5_000
_TOL = 1e-12  # a cover short of 1 by rounding still counts (more covers only weaken the bound)


def _items(space, rate: float) -> list[tuple[int, int, float, int]]:
    """``(group, k, rho, group size)`` of every length a group may hold."""
    out = []
    for g, members in enumerate(space.groups):
        cap = space.best_class_capacity[members[0]]
        for k in range(1, space.L + 1):
            diag = np.diagonal(cap, offset=k)
            best = float(diag.max()) if diag.size else 0.0
            if best > 0:
                out.append((g, k, min(1.0, best / rate), len(members)))
    return out


def affordable(milp: MILP, backend: str, deadline: Deadline) -> bool:
    """Whether ``backend`` can take ``milp`` before ``deadline``: CBC and SCIP get their models through
    Python (PuLP, OR-Tools' wrapper) at a few microseconds a coefficient, HiGHS through scipy's arrays;
    a program whose set-up alone would overrun the limit is not started."""
    per_nonzero = 2e-7 if backend == "highs" else 5e-6
    setup = 0.05 + milp.A.nnz * per_nonzero + (0.3 if backend == "cbc" else 0.0)  # CBC runs as a subprocess
    return deadline.left() > 2 * setup


def _covers(items: list[tuple[int, int, float, int]], limit: int, deadline: Deadline | None = None
            ) -> list[dict[int, int]] | None:
    """Minimal covers as {item: multiplicity} (None when there are more than ``limit``).

    Items join a cover in order of decreasing ``rho``, so the last one is the smallest: a
    cover is recorded as soon as it reaches 1, which makes it minimal (without its smallest
    item it was below 1). A group's devices are distinct, so a cover holds at most its size.
    """
    order = sorted(range(len(items)), key=lambda i: (-items[i][2], i))
    devices = sum({g: size for g, _, _, size in items}.values())
    out: list[dict[int, int]] = []
    used: dict[int, int] = defaultdict(int)

    def grow(start: int, chosen: list[int], total: float) -> bool:
        for pos in range(start, len(order)):
            i = order[pos]
            g, _, r, size = items[i]
            if used[g] >= size:
                continue
            if total + r >= 1.0 - _TOL:
                out.append(dict(Counter([*chosen, i])))
                if len(out) > limit or (deadline is not None and len(out) % 512 == 0 and deadline.expired()):
                    return False
                continue
            if total + r * (devices - len(chosen)) < 1.0 - _TOL:
                break  # the items left are no larger: none completes a cover from here
            used[g] += 1
            chosen.append(i)
            more = grow(pos, chosen, total + r)
            chosen.pop()
            used[g] -= 1
            if not more:
                return False
        return True

    return out if grow(0, [], 0.0) else None


def cover_feasible(space, rate: float, deadline: Deadline, backend: str = "highs",
                   max_covers: int = MAX_COVERS) -> bool | None:
    """Whether the cover program admits ``rate`` (None: too many covers, or no answer in time)."""
    items = _items(space, rate)
    covers = _covers(items, max_covers, deadline)
    if covers is None:
        return None
    if not covers:
        return False
    S, I = len(covers), len(items)
    nv = S + I  # x[s] (blocks each cover covers), then z[item] (devices holding that length)
    rows = RowBuilder()
    row = rows.pairs

    row([(s, 1.0) for s in range(S)], float(space.L), np.inf)
    members: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for s, cover in enumerate(covers):
        for i, mult in cover.items():
            members[i].append((s, float(mult)))
    for i, (g, k, _, _) in enumerate(items):
        row(members[i] + [(S + i, -float(k))], -np.inf, 0.0)
    by_group: dict[int, list[int]] = defaultdict(list)
    for i, (g, _, _, _) in enumerate(items):
        by_group[g].append(i)
    for g, members in by_group.items():
        row([(S + i, 1.0) for i in members], -np.inf, float(len(space.groups[g])))
    matrix, lo, hi = rows.matrix(nv)
    milp = MILP(c=np.zeros(nv), A=matrix, row_lo=lo, row_hi=hi, var_lo=np.zeros(nv),
                var_hi=np.concatenate([np.full(S, float(space.L)), [float(size) for *_, size in items]]),
                integer=np.ones(nv, dtype=bool))
    if not affordable(milp, backend, deadline):
        return None
    result = solve_milp(milp, backend, time_limit_s=max(deadline.left(), 0.01))
    if result.status == "infeasible":
        return False
    if result.status in ("optimal", "feasible"):
        return True
    return None


def cover_bound(space, low: float, high: float, deadline: Deadline, backend: str = "highs",
                rel_tol: float = 1e-7) -> tuple[float | None, bool]:
    """The least ``T`` in ``(low, high]`` the cover program rules out, and whether it rules out
    ``low (1 + rel_tol)`` itself (then a placement serving ``low`` is optimal). ``(None, False)``
    when it cannot be computed."""
    first = low * (1 + rel_tol)
    ok = cover_feasible(space, first, deadline, backend)
    if ok is None:
        return None, False
    if ok is False:
        return first, True
    lo, hi = first, high
    for _ in range(40):
        if deadline.expired() or hi - lo <= rel_tol * hi:
            break
        mid = 0.5 * (lo + hi)
        got = cover_feasible(space, mid, deadline, backend)
        if got is None:
            break
        if got:
            lo = mid
        else:
            hi = mid
    return hi, False
