"""Searching cost tables for the cheapest chain of stages (the engine of :mod:`solvers.dp`).

A chain is a sequence of distinct devices ``d1 .. dk`` holding blocks ``[0, b1)``,
``[b1, b2)``, ..., ``[b(k-1), L)``. Its cost combines, with ``op`` (``+`` for
additive costs, ``max`` for a bottleneck),

    first[d1], stage[d_i, a_i, b_i] for each stage, hop[d_i, d_i+1] for each hop, end[dk, d1].

:func:`best_chain` finds the cheapest chain exactly: over a fixed device order
(a subsequence of ``0 .. n-1``) in O(n^2 L^2) numpy work per device, or over
every subset and order by a DP on (used set, last device, first device, blocks
placed) in O(2^n n^2 L^2). :func:`best_chain_within` adds limits on other
additive quantities (SLOs) by branch and bound. Both know nothing of models or
devices: :mod:`solvers.dp` builds the tables from the cost model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Found", "best_chain", "best_chain_within", "restrict"]


class _Timeout(Exception):
    pass


class _NoDeadline:
    def expired(self) -> bool:
        return False


_NEVER = _NoDeadline()


@dataclass(frozen=True)
class Found:
    """The cheapest chain a search found."""

    value: float  # inf when no chain was found
    chain: list[tuple[int, int, int]]  # (candidate position, start, end)
    complete: bool  # the search finished (the value is the optimum)
    states: int
    bound: float | None = None  # a proven lower bound on the optimum, when the search knows one


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _incoming(val: np.ndarray, members: list[int], j: int, hop: np.ndarray, op) -> np.ndarray:
    """``[f, b]``: best value of a chain over ``members`` that ends at ``b`` and then hops to ``j``."""
    return op(val, hop[members, j][:, None, None]).min(axis=0)


def best_chain(stage: np.ndarray, hop: np.ndarray, first: np.ndarray, end: np.ndarray, op=np.add,
               ordered: bool = False, deadline=None) -> Found:
    """The cheapest chain: ``op``-combine of ``first``, stages, hops and ``end``, minimised.

    Parameters
    ----------
    stage : ndarray [n, L+1, L+1]
        Cost of device ``d`` holding blocks ``[a, b)`` (``inf`` where not allowed).
    hop : ndarray [n, n]
        Cost of the hop from ``u`` to ``v``.
    first : ndarray [n]
        Cost of starting at ``f``.
    end : ndarray [n, n]
        Cost of closing a chain that ends at ``l`` and started at ``f``: ``end[l, f]``.
    op : ufunc
        ``np.add`` for additive costs, ``np.maximum`` for a bottleneck (costs >= 0).
    ordered : bool
        Devices appear in index order (a subsequence of ``0 .. n-1``); else any
        subset in any order.
    deadline : Deadline, optional
        When it expires, the best chain so far is returned (``complete`` False).

    Returns
    -------
    Found
        The value, the chain as ``(device, start, end)`` triples, and whether the
        search finished.

    Examples
    --------
    >>> import numpy as np
    >>> per_block = np.array([[1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.1, 0.1]])
    >>> cum = np.concatenate([np.zeros((2, 1)), per_block.cumsum(axis=1)], axis=1)
    >>> stage = np.where(np.triu(np.ones((5, 5)), 1) > 0, cum[:, None, :] - cum[:, :, None], np.inf)
    >>> found = best_chain(stage, np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), op=np.maximum)
    >>> found.chain, round(found.value, 6)
    ([(1, 0, 4)], 0.4)
    """
    deadline = deadline or _NEVER
    if ordered:
        return _dp_ordered(stage, hop, first, end, op, deadline)
    return _dp_subsets(stage, hop, first, end, op, deadline)


def _dp_ordered(stage, hop, first, end, op, deadline) -> Found:
    n, L = stage.shape[0], stage.shape[1] - 1
    val = np.full((n, n, L + 1), np.inf)  # [last, first, blocks placed]
    best, where, complete = np.inf, None, True
    for j in range(n):
        if deadline.expired():
            complete = False
            break
        inc = _incoming(val[:j], list(range(j)), j, hop, op) if j else np.full((n, L + 1), np.inf)
        inc[j, 0] = first[j]
        val[j] = op(inc[:, :, None], stage[j][None]).min(axis=1)
        closing = op(val[j, :, L], end[j, :])
        f = int(np.argmin(closing))
        if closing[f] < best:
            best, where = float(closing[f]), (j, f)
    if where is None:
        return Found(math.inf, [], complete, n)
    chain, (j, f), b2 = [], where, L
    while True:
        if j == f:
            chain.append((j, 0, b2))
            break
        inc = _incoming(val[:j, f:f + 1], list(range(j)), j, hop, op)[0]
        b = int(np.argmin(op(inc, stage[j][:, b2])))
        last = int(np.argmin(op(val[:j, f, b], hop[:j, j])))
        chain.append((j, b, b2))
        j, b2 = last, b
    return Found(best, chain[::-1], complete, n)


def _dp_subsets(stage, hop, first, end, op, deadline) -> Found:
    n, L = stage.shape[0], stage.shape[1] - 1
    # val[mask][i, k, b]: chains over the devices in mask, ending at its i-th member with b blocks
    # placed, started at its k-th member.
    val: dict[int, np.ndarray] = {}
    best, where, complete = np.inf, None, True

    def consider(mask: int, members: list[int], j: int, row: np.ndarray, starts: list[int]) -> None:
        nonlocal best, where
        closing = op(row[:, L], end[j, starts])
        k = int(np.argmin(closing))
        if closing[k] < best:
            best, where = float(closing[k]), (mask, j, starts[k])

    for j in range(n):
        arr = np.full((1, 1, L + 1), np.inf)
        arr[0, 0] = op(first[j], stage[j, 0])
        val[1 << j] = arr
        consider(1 << j, [j], j, arr[0], [j])
    for mask in range(1, 1 << n):
        if mask not in val:
            continue
        if deadline.expired():
            complete = False
            break
        members = _bits(mask)
        if len(members) >= L:  # every stage holds a block: no room for another
            continue
        arr = val[mask]
        for j in range(n):
            if mask >> j & 1:
                continue
            inc = _incoming(arr, members, j, hop, op)
            if not np.isfinite(inc).any():
                continue
            new = op(inc[:, :, None], stage[j][None]).min(axis=1)  # [start, b]
            mask2 = mask | 1 << j
            members2 = _bits(mask2)
            arr2 = val.get(mask2)
            if arr2 is None:
                arr2 = val[mask2] = np.full((len(members2), len(members2), L + 1), np.inf)
            arr2[members2.index(j), [members2.index(m) for m in members]] = new
            consider(mask2, members2, j, new, members)
    if where is None:
        return Found(math.inf, [], complete, len(val))
    chain, (mask, j, f), b2 = [], where, L
    while True:
        if mask == 1 << j:
            chain.append((j, 0, b2))
            break
        prev = mask ^ 1 << j
        pm = _bits(prev)
        arr, k = val[prev], pm.index(f)
        inc = _incoming(arr[:, k:k + 1], pm, j, hop, op)[0]
        b = int(np.argmin(op(inc, stage[j][:, b2])))
        last = pm[int(np.argmin(op(arr[:, k, b], hop[pm, j])))]
        chain.append((j, b, b2))
        mask, j, b2 = prev, last, b
    return Found(best, chain[::-1], complete, len(val))


# -- chains under SLOs (branch and bound) ---------------------------------------------------


def best_chain_within(stage, hop, first, end, op, lb_obj, cons, ordered, deadline=None,
                      leaf: Callable[[list[tuple[int, int, int]]], float] | None = None) -> Found:
    """The cheapest chain whose other additive quantities stay within their limits.

    Depth-first branch and bound, cheapest extension first. A partial chain is
    dropped when a quantity plus a lower bound on what the remaining blocks add
    exceeds its limit, when its cost plus ``lb_obj`` cannot beat the best chain
    found, or when another partial chain in the same state (first, used set,
    last device, blocks placed) is no worse in cost and in every quantity. Exact
    unless the deadline stops it (then ``complete`` is False).

    Parameters
    ----------
    stage, hop, first, end, op, ordered, deadline
        As for :func:`best_chain`; ``stage`` is ``inf`` where a stage is not allowed.
    lb_obj : ndarray [L+1]
        Lower bound on the cost the remaining blocks add once ``b`` are placed (zeros for ``max``).
    cons : list of (stage_k, hop_k, first_k, end_k, lb_k, limit_k)
        One additive quantity per limit, its lower bounds ``[L+1]`` and its limit (may be empty).
    leaf : callable, optional
        The true cost of a complete chain, when the tables' combination only bounds it from
        below (a bottleneck over resources that several of a chain's transfers share).
        Complete chains are then judged by it, partial chains pruned by their table cost
        (still a lower bound), and the dominance test, which would not hold, is skipped.
    """
    n, L = stage.shape[0], stage.shape[1] - 1
    deadline = deadline or _NEVER
    K = len(cons)
    if K:
        c_stage = np.stack([c[0] for c in cons])
        c_hop = np.stack([c[1] for c in cons])
        c_first = np.stack([c[2] for c in cons])
        c_end = np.stack([c[3] for c in cons])
        c_lb = np.stack([c[4] for c in cons])
    else:
        c_stage, c_hop = np.zeros((0, n, L + 1, L + 1)), np.zeros((0, n, n))
        c_first, c_end, c_lb = np.zeros((0, n)), np.zeros((0, n, n)), np.zeros((0, L + 1))
    limits = np.array([c[5] for c in cons])
    best = [math.inf, None]
    memo: dict[tuple, list[np.ndarray]] = {}
    nodes = [0]

    def bound(value: float, b: int) -> float:
        return value + lb_obj[b] if op is np.add else value

    def dominated(key: tuple, vec: np.ndarray) -> bool:
        seen = memo.setdefault(key, [])
        if any((o <= vec).all() for o in seen):
            return True
        seen[:] = [o for o in seen if not (vec <= o).all()]
        seen.append(vec)
        return False

    def children(f, mask, last, b, value, r):
        out = []
        nexts = range(last + 1, n) if ordered else (j for j in range(n) if not mask >> j & 1)
        for j in nexts:
            hv = op(value, hop[last, j]) if last >= 0 else op(value, first[j])
            hr = r + (c_hop[:, last, j] if last >= 0 else c_first[:, j])
            for b2 in range(b + 1, L + 1):
                s = stage[j, b, b2]
                if not np.isfinite(s):
                    continue
                v2, r2 = op(hv, s), hr + c_stage[:, j, b, b2]
                if (r2 + c_lb[:, b2] > limits).any() or bound(v2, b2) >= best[0]:
                    continue
                f2 = j if last < 0 else f
                mask2 = mask | 1 << j
                key = (f2, j, b2) if ordered else (f2, mask2, j, b2)
                if leaf is None and dominated(key, np.concatenate([[v2], r2])):
                    continue
                out.append((v2, j, b2, f2, mask2, r2))
        out.sort(key=lambda t: (t[0], t[1], t[2]))
        return out

    def visit(f, mask, last, b, value, r, chain):
        nodes[0] += 1
        if nodes[0] % 256 == 0 and deadline.expired():
            raise _Timeout
        if bound(value, b) >= best[0]:
            return
        if b == L:
            total, rr = op(value, end[last, f]), r + c_end[:, last, f]
            if (rr <= limits).all() and total < best[0]:
                if leaf is not None:
                    total = leaf(list(chain))
                if total < best[0]:
                    best[:] = [float(total), list(chain)]
            return
        for v2, j, b2, f2, mask2, r2 in children(f, mask, last, b, value, r):
            chain.append((j, b, b2))
            visit(f2, mask2, j, b2, v2, r2, chain)
            chain.pop()

    complete = True
    try:
        visit(-1, 0, -1, 0, 0.0, np.zeros(K), [])
    except _Timeout:
        complete = False
    return Found(best[0], best[1] or [], complete, nodes[0])


def restrict(tables: tuple, order: list[int]) -> tuple:
    """``(stage, hop, first, end)``-like tables over the devices ``order`` only, re-indexed ``0 .. k-1``."""
    o = np.array(order, dtype=int)
    out = []
    for t in tables:
        if t.ndim == 1:
            out.append(t[o])
        elif t.ndim == 2:
            out.append(t[np.ix_(o, o)])
        else:
            out.append(t[o])
    return tuple(out)
