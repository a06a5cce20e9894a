"""Searching chains over classes of interchangeable devices (dp's ``types`` mode).

When devices fall into classes whose members every cost treats alike
(:func:`placement.costs.symmetry.interchangeable_devices`), a chain's cost depends
only on the classes of its devices in order. Every chain can then be relabelled so
that the members of each class are used in index order, and the search only ever
extends a chain with the next unused member of a class: its states are *how many*
devices of each class are used (a count vector), not which ones, so a cluster of
42 devices of 7 classes has 606,375 count vectors instead of 2^42 subsets.

:func:`best_chain_by_class` is a depth-first branch and bound over those canonical
chains, exact when it finishes:

- a partial chain is dropped when its cost plus a lower bound on what the remaining
  blocks add cannot beat the best chain found (the incumbent may be given), when a
  limited quantity (an SLO) plus its lower bound exceeds its limit, or when the
  devices left cannot hold the blocks left (each class's longest allowed stage, for
  a bottleneck only the stages below the incumbent's value);
- a partial chain is dominated, and dropped, when another one with the same first
  class, last class and blocks placed uses no more devices of any class and is no
  worse in cost and in every limited quantity.

When the deadline stops it, :func:`relaxed_bound` still proves a bound: the
cheapest *walk* over the classes (classes may repeat without limit), and for a
bottleneck also the capacity bound (the least stage value at which the classes'
longest stages cover every block).

Examples
--------
>>> import numpy as np
>>> from solvers.dp.search import best_chain
>>> rng = np.random.default_rng(0)
>>> per_block = np.repeat(rng.uniform(1, 2, (2, 1, 6)), [3, 2], axis=0)[:, 0]   # two classes: 3 + 2 devices
>>> cum = np.concatenate([np.zeros((5, 1)), per_block.cumsum(axis=1)], axis=1)
>>> ok = np.triu(np.ones((7, 7)), 1) > 0
>>> stage = np.where(ok & (np.arange(7)[None, :] - np.arange(7)[:, None] <= 2), cum[:, None, :] - cum[:, :, None], np.inf)
>>> hop, first, end = np.full((5, 5), 0.5), np.zeros(5), np.zeros((5, 5))
>>> exact = best_chain(stage, hop, first, end)
>>> typed = best_chain_by_class(stage, hop, first, end, np.add, np.zeros(7), [], [[0, 1, 2], [3, 4]])
>>> typed.complete, bool(np.isclose(typed.value, exact.value))
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from solvers.dp.search import Found

__all__ = ["best_chain_by_class", "relaxed_bound", "count_vectors"]


class _NoDeadline:
    def expired(self) -> bool:
        return False


def count_vectors(classes: Sequence[Sequence[int]]) -> int:
    """How many count vectors the classes have: the product of (class size + 1)."""
    return math.prod(len(c) + 1 for c in classes)


def _longest(stage_rep: np.ndarray, below: float) -> np.ndarray:
    """``[C]``: each class's most blocks in one allowed stage whose value is below ``below``."""
    L = stage_rep.shape[1] - 1
    span = np.arange(L + 1)[None, :] - np.arange(L + 1)[:, None]
    ok = np.isfinite(stage_rep) & (stage_rep < below)
    return np.where(ok, span[None], 0).reshape(len(stage_rep), -1).max(axis=1)


class _Dominance:
    """Pareto sets of (cost, limited quantities, counts) per (first class, last class, blocks).

    Once they hold ``budget_bytes``, new entries are not stored (nothing is pruned wrongly: an entry not
    stored only prunes less), and ``full`` says so."""

    def __init__(self, budget_bytes: float):
        self.fronts: dict[tuple, np.ndarray] = {}
        self.stored = 0
        self.budget = budget_bytes
        self.full = False

    def dominated(self, key: tuple, vec: np.ndarray) -> bool:
        front = self.fronts.get(key)
        if front is not None and (front <= vec).all(axis=1).any():
            return True
        if self.stored * vec.nbytes >= self.budget:
            self.full = True
            return False
        if front is None:
            self.fronts[key] = vec[None]
            self.stored += 1
            return False
        kept = front[~(vec <= front).all(axis=1)]
        self.fronts[key] = np.vstack([kept, vec])
        self.stored += len(kept) + 1 - len(front)
        return False


def best_chain_by_class(stage, hop, first, end, op, lb_obj, cons, classes: Sequence[Sequence[int]], deadline=None,
                        leaf: Callable[[list[tuple[int, int, int]]], float] | None = None,
                        incumbent: tuple[float, list[tuple[int, int, int]]] | None = None,
                        memo_budget_bytes: float = 2**30) -> Found:
    """The cheapest chain (as :func:`solvers.dp.search.best_chain_within`), searched over count vectors.

    Parameters
    ----------
    stage, hop, first, end, op, lb_obj, cons, deadline, leaf
        As for :func:`~solvers.dp.search.best_chain_within` (``lb_obj`` zeros for ``max``).
    classes : list of lists of int
        Positions ``0 .. n-1`` in classes of interchangeable devices, each class in index
        order; every position in one class. The tables must treat the members of a class
        alike (the caller's guarantee).
    incumbent : (value, chain), optional
        A chain already known; only strictly better ones are searched for.
    memo_budget_bytes : float
        Most bytes the dominance sets keep (beyond, the search goes on pruning less).

    Returns
    -------
    Found
        ``complete`` when the search finished (the value is then the optimum);
        ``bound`` a proven lower bound on the optimum either way.
    """
    n, L = stage.shape[0], stage.shape[1] - 1
    deadline = deadline or _NoDeadline()
    C = len(classes)
    members = [list(c) for c in classes]
    cls_of = np.empty(n, dtype=int)
    for c, ms in enumerate(members):
        cls_of[ms] = c
    sizes = np.array([len(ms) for ms in members])
    reps = [ms[0] for ms in members]
    K = len(cons)
    c_stage = np.stack([c[0] for c in cons]) if K else np.zeros((0, n, L + 1, L + 1))
    c_hop = np.stack([c[1] for c in cons]) if K else np.zeros((0, n, n))
    c_first = np.stack([c[2] for c in cons]) if K else np.zeros((0, n))
    c_end = np.stack([c[3] for c in cons]) if K else np.zeros((0, n, n))
    c_lb = np.stack([c[4] for c in cons]) if K else np.zeros((0, L + 1))
    limits = np.array([c[5] for c in cons])
    bottleneck = op is np.maximum
    best = [math.inf, []]
    if incumbent is not None and incumbent[1]:
        best = [float(incumbent[0]), list(incumbent[1])]
    stage_rep = stage[reps]
    longest = [_longest(stage_rep, best[0] if bottleneck else math.inf)]
    memo = _Dominance(memo_budget_bytes)
    nodes = 0

    def improve(value: float, chain: list) -> None:
        best[:] = [float(value), list(chain)]
        if bottleneck:
            longest[0] = _longest(stage_rep, best[0])

    # Additive costs: each class's least cost per block in any stage, for a bound that fills the blocks
    # left with the cheapest devices left, each holding at most its longest stage.
    spans = np.maximum(np.arange(L + 1)[None, :] - np.arange(L + 1)[:, None], 1)
    per_block = np.where(np.isfinite(stage_rep), stage_rep / spans[None], np.inf).reshape(C, -1).min(axis=1)
    cheapest = np.argsort(per_block, kind="stable")
    reach = _longest(stage_rep, math.inf)

    def fill(counts: np.ndarray, left: int) -> float:
        total = 0.0
        for c in cheapest:
            if left <= 0:
                break
            take = min(left, int((sizes[c] - counts[c]) * reach[c]))
            if take:
                total += take * per_block[c]
                left -= take
        return total if left <= 0 else math.inf

    def bound(value: float, b: int, counts: np.ndarray | None = None) -> float:
        if bottleneck:
            return value
        extra = lb_obj[b]
        if counts is not None and b < L:
            extra = max(extra, fill(counts, L - b))
        return value + extra

    def children(f, counts, last, b, value, r):
        out = []
        room = int(((sizes - counts) * longest[0]).sum())
        for c in range(C):
            if counts[c] >= sizes[c]:
                continue
            j = members[c][counts[c]]
            hv = op(value, hop[last, j]) if last >= 0 else op(value, first[j])
            hr = r + (c_hop[:, last, j] if last >= 0 else c_first[:, j])
            counts2 = counts.copy()
            counts2[c] += 1
            f2 = c if last < 0 else f
            room2 = room - int(longest[0][c])  # what the devices left after this one can hold
            row = stage[j, b]
            for b2 in np.flatnonzero(np.isfinite(row[b + 1:])) + b + 1:
                b2 = int(b2)
                if b2 < L and room2 < L - b2:
                    continue
                v2 = op(hv, row[b2])
                r2 = hr + c_stage[:, j, b, b2]
                if (r2 + c_lb[:, b2] > limits).any() or bound(v2, b2, counts2) >= best[0]:
                    continue
                if leaf is None and b2 < L and memo.dominated((f2, c, b2), np.concatenate([[v2], r2, counts2])):
                    continue
                out.append((float(v2), j, b2, f2, counts2, r2))
        out.sort(key=lambda t: (t[0], t[1], t[2]))
        return out

    # Depth-first with an explicit stack of pending children (chains can be thousands of stages long).
    stack = [(0.0, -1, 0, -1, np.zeros(C, dtype=int), np.zeros(K), [])]
    complete = True
    while stack:
        nodes += 1
        if nodes % 256 == 0 and deadline.expired():
            complete = False
            break
        value, last, b, f, counts, r, chain = stack.pop()
        if bound(value, b, counts) >= best[0]:
            continue
        if b == L:
            f_dev = members[f][0]
            total, rr = op(value, end[last, f_dev]), r + c_end[:, last, f_dev]
            if (rr <= limits).all() and total < best[0]:
                if leaf is not None:
                    total = leaf(chain)
                if total < best[0]:
                    improve(total, chain)
            continue
        for v2, j, b2, f2, counts2, r2 in reversed(children(f, counts, last, b, value, r)):
            stack.append((v2, j, b2, f2, counts2, r2, chain + [(j, b, b2)]))
    if complete:
        proven = best[0]
    else:
        pending = min((bound(v, b, counts) for v, _, b, _, counts, *_ in stack), default=math.inf)
        proven = min(best[0], pending)
    return Found(best[0], best[1], complete, nodes, bound=proven)


def relaxed_bound(stage, hop, first, end, op, classes: Sequence[Sequence[int]]) -> float:
    """A lower bound on every chain's cost: the cheapest walk over the classes (a class may
    repeat without limit, consecutive members of one class only when it has two), and for a
    bottleneck (``op`` is ``np.maximum``) also the least value at which the classes' longest
    stages, times their sizes, cover every block.

    Examples
    --------
    >>> import numpy as np
    >>> stage = np.full((2, 3, 3), np.inf); stage[:, 0, 1] = stage[:, 1, 2] = 1.0; stage[:, 0, 2] = 3.0
    >>> relaxed_bound(stage, np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.add, [[0, 1]])
    2.0
    """
    reps = [c[0] for c in classes]
    C, L = len(classes), stage.shape[1] - 1
    s = stage[reps]
    h = hop[np.ix_(reps, reps)].astype(float).copy()
    for c, ms in enumerate(classes):
        h[c, c] = hop[ms[0], ms[1]] if len(ms) > 1 else np.inf
    f0 = first[reps]
    e = end[np.ix_(reps, reps)].astype(float).copy()
    for c, ms in enumerate(classes):
        e[c, c] = min(end[ms[0], ms[0]], end[ms[1], ms[0]] if len(ms) > 1 else np.inf)
    # val[k, c, b]: cheapest walk started at class k, now at class c, with b blocks placed.
    val = np.full((C, C, L + 1), np.inf)
    for k in range(C):
        val[k, k] = op(f0[k], s[k, 0])
    best = np.inf
    for b in range(1, L + 1):
        if b < L:
            inc = op(val[:, :, b][:, :, None], h[None]).min(axis=1)  # [k, next]
            nxt = op(inc[:, :, None], s[None, :, b, :])  # [k, next, b2]
            val = np.minimum(val, np.where(np.arange(L + 1)[None, None] > b, nxt, np.inf))
    best = float(op(val[:, :, L], e.T).min())
    if op is np.maximum:
        best = max(best, _capacity_bound(s, np.array([len(c) for c in classes]), L))
    return best


def _capacity_bound(stage_rep: np.ndarray, sizes: np.ndarray, L: int) -> float:
    """The least stage value ``t`` at which classes' longest stages of value <= ``t`` cover ``L`` blocks."""
    values = np.unique(stage_rep[np.isfinite(stage_rep)])
    if not len(values):
        return math.inf
    span = np.arange(L + 1)[None, :] - np.arange(L + 1)[:, None]

    def covers(t: float) -> bool:
        ok = np.isfinite(stage_rep) & (stage_rep <= t)
        longest = np.where(ok, span[None], 0).reshape(len(stage_rep), -1).max(axis=1)
        return int((sizes * longest).sum()) >= L

    lo, hi = 0, len(values) - 1
    if not covers(values[hi]):
        return math.inf
    while lo < hi:
        mid = (lo + hi) // 2
        if covers(values[mid]):
            hi = mid
        else:
            lo = mid + 1
    return float(values[lo])
