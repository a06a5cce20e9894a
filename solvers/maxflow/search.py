"""The combinatorial search: stage layouts by bottleneck thresholds, then local search over overlaps.

**Stage layouts.** For a target throughput ``F``, a stage of ``m`` interchangeable devices
holding the same ``k`` blocks carries ``F`` when one device carries ``F / m``, i.e. when
``k <= K(F / m)``, the most blocks the device holds at that rate. For each group of
interchangeable devices, a DP over how many devices go into each stage gives the most
blocks the group covers at ``F``; ``F`` is feasible when the groups together cover the
model. Bisection on ``F`` gives the best such layout; its stages are laid along the
blocks in several orders (region by region where links may bind, with the widest stages
at region boundaries) and trimmed to the model's length.

**Local search.** From the best layouts, moves that keep the shards aligned (shift a
boundary that several shards share), replicate a range on another device, drop a
device, move a shard end onto another boundary, or swap two devices' ranges; a move is
kept when it raises the score. The score is the exact routing's throughput
(:func:`placement.costs.flows.route_shards`), or the line model's max-flow where that is
exact (links that cannot bind, one class, no SLOs or rates); where it is not, the line
flow (an upper bound on the exact one for one class) first discards the moves that
cannot improve. When no move improves, a few random moves kick the best assignment
and the search starts again from there, for as long as the time allows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from placement.costs.flows import route_shards
from solvers.deadline import Deadline
from solvers.maxflow.line import line_flow

__all__ = ["Scorer", "stage_layouts", "local_search", "iterated_search", "copy_layouts", "mixed_stage_layouts"]


@dataclass
class Scorer:
    """Scores assignments: exactly (routing), or by the line model where it is exact.

    ``deadline`` bounds :meth:`ranked`, which scores candidate layouts until it passes.
    """

    space: object
    line_exact: bool
    deadline: Deadline
    evaluations: int = 0
    cache: dict = field(default_factory=dict)

    def __call__(self, assignment) -> float:
        key = tuple(assignment)
        if key in self.cache:
            return self.cache[key]
        self.evaluations += 1
        if self.line_exact:
            value = line_flow(self.space, assignment)
        else:
            value = self.routed(assignment)
        self.cache[key] = value
        return value

    def ranked(self, layouts: Sequence[tuple[str, tuple]], order: Sequence[int]) -> list[tuple[float, int, str, tuple]]:
        """``(score, index, label, assignment)`` of the labelled ``layouts`` scored in ``order`` (indices)
        until the deadline passes and one of them serves every class; best first, ties by index.

        One routing costs tens of milliseconds on a few dozen devices, so a tight limit scores only the
        first few layouts of ``order``, but never stops before one serves: a plan when one is cheap.
        """
        scored = []
        serves = False
        for k in order:
            if serves and self.deadline.expired():
                break
            label, assignment = layouts[k]
            scored.append((self(assignment), k, label, assignment))
            serves = serves or scored[-1][0] > 0
        return sorted(scored, key=lambda t: (-t[0], t[1]))

    def routed(self, assignment) -> float:
        shards = self.space.shards(assignment)
        if not shards:
            return 0.0
        routing = route_shards(self.space.problem, shards)
        return 0.0 if routing.unserved else routing.throughput_tok_s

    def optimistic(self, assignment) -> float:
        """An upper bound on the score (the line flow, one class), or inf when none is cheap."""
        if self.line_exact or len(self.space.requests) != 1:
            return math.inf
        return line_flow(self.space, assignment)


# -- stage layouts --------------------------------------------------------------------------------


def _group_lengths(space) -> list[np.ndarray]:
    """Per group: the best capacity of a range of each length ``k`` (index k; 0 where none fits)."""
    L = space.L
    out = []
    for members in space.groups:
        cap = space.capacity[members[0]]
        best = np.zeros(L + 1)
        for k in range(1, L + 1):
            diag = np.diagonal(cap, offset=k)
            best[k] = float(diag.max()) if diag.size else 0.0
        out.append(best)
    return out


def _most_blocks(best: np.ndarray, rate: float) -> int:
    """The most blocks one device holds while carrying ``rate`` tokens/s (0 if none)."""
    ks = np.flatnonzero(best >= rate * (1 - 1e-12))
    return int(ks.max()) if ks.size else 0


def _group_plan(best: np.ndarray, count: int, F: float) -> tuple[int, list[tuple[int, int]]]:
    """Most blocks ``count`` devices of one group cover at ``F``, and the stages ``(m, k)`` that do."""
    value = [0] * (count + 1)
    choice: list[tuple[int, int] | None] = [None] * (count + 1)
    for n in range(1, count + 1):
        value[n], choice[n] = value[n - 1], None
        for m in range(1, n + 1):
            k = _most_blocks(best, F / m)
            if k and value[n - m] + k > value[n]:
                value[n], choice[n] = value[n - m] + k, (m, k)
    stages, n = [], count
    while n > 0:
        if choice[n] is None:
            n -= 1
            continue
        m, k = choice[n]  # type: ignore[misc]
        stages.append((m, k))
        n -= m
    return value[count], stages


def _stages_at(space, lengths: list[np.ndarray], F: float) -> tuple[int, list[tuple[int, int, int]]]:
    total, stages = 0, []
    for g, members in enumerate(space.groups):
        covered, plan = _group_plan(lengths[g], len(members), F)
        total += covered
        stages += [(g, m, k) for m, k in plan]
    return total, stages


def _best_rate(space, lengths: list[np.ndarray], upper: float) -> float:
    lo, hi = 0.0, upper
    if _stages_at(space, lengths, hi)[0] >= space.L:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _stages_at(space, lengths, mid)[0] >= space.L:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * max(hi, 1.0):
            break
    return lo


def _trim(stages: list[list[int]], lengths: list[np.ndarray], L: int, order: list[int] | None = None) -> None:
    """Shorten stages until they cover exactly ``L`` blocks, each time the one that keeps the most capacity
    (on a tie, the first in ``order``: stage positions, all of them in turn by default)."""
    total = sum(s[2] for s in stages)
    order = range(len(stages)) if order is None else order
    while total > L:
        best, pick = -1.0, None
        for j in order:
            g, m, k = stages[j]
            if k > 1:
                cap = m * float(lengths[g][k - 1])
                if cap > best:
                    best, pick = cap, j
        if pick is None:
            return
        stages[pick][2] -= 1
        total -= 1


def _lay(space, stages: list[tuple[int, dict[int, int]]]):
    """The assignment of stages (``(blocks, {group: devices})``) laid in order along the blocks (None if
    a range does not fit)."""
    free = {g: list(members) for g, members in enumerate(space.groups)}
    out: list = [None] * space.n
    start = 0
    for k, members in stages:
        rng = (start, start + k)
        for g, m in members.items():
            for _ in range(m):
                i = free[g].pop(0)
                if not space.ok[i, rng[0], rng[1]]:
                    return None
                out[i] = rng
        start += k
    return tuple(out) if start == space.L else None


def _orders(space, stages: list[tuple[int, int, int]], rng: random.Random) -> list[list[tuple[int, int, int]]]:
    """Orders to lay the stages in: by capacity, and region by region (every order of the regions)."""
    import itertools

    region = {g: space.regions[members[0]] for g, members in enumerate(space.groups)}
    base = sorted(stages, key=lambda s: (-s[1], s[0], -s[2]))
    orders = [base, base[::-1]]
    regions = sorted({region[g] for g, _, _ in stages})
    if len(regions) > 1:
        perms = list(itertools.permutations(regions))
        rng.shuffle(perms)
        for perm in perms[:24]:
            seq = []
            for r in perm:
                inside = [s for s in base if region[s[0]] == r]
                # the widest stages at the region's two ends, where transfers cross between regions
                inside.sort(key=lambda s: -s[1])
                seq += [inside[0], *inside[2:], inside[1]] if len(inside) > 2 else inside
            orders.append(seq)
    for _ in range(4):
        shuffled = list(base)
        rng.shuffle(shuffled)
        orders.append(shuffled)
    return orders


def stage_layouts(space, upper: float, rng: random.Random,
                  deadline: Deadline | None = None) -> tuple[float, list[tuple]]:
    """The best stage-layout rate and its assignments in several orders (see the module docstring); once
    ``deadline`` passes, only the assignments laid so far (at least one, when any can be laid)."""
    lengths = _group_lengths(space)
    out = []
    rate = _best_rate(space, lengths, upper)
    for factor in (1.0, 0.97, 0.9, 0.8):
        total, stages = _stages_at(space, lengths, rate * factor)
        if total < space.L:
            continue
        for order in _orders(space, stages, rng):
            if out and deadline is not None and deadline.expired():
                return rate, out
            laid = [list(s) for s in order]
            _trim(laid, lengths, space.L)
            assignment = _lay(space, [(k, {g: m}) for g, m, k in laid])
            if assignment is not None and assignment not in out:
                out.append(assignment)
    return rate, out


# -- local search -----------------------------------------------------------------------------------


def _boundaries(assignment) -> list[int]:
    return sorted({x for rng in assignment if rng is not None for x in rng})


def _moves(space, assignment, rng: random.Random) -> list[tuple]:
    """Neighbouring assignments (see the module docstring), in a seeded random order."""
    L, n = space.L, space.n
    out = []
    cur = list(assignment)
    points = _boundaries(assignment)
    for p in points:
        if p in (0, L):
            continue
        for delta in (-1, 1, -2, 2):
            q = p + delta
            if not 0 < q < L:
                continue
            nxt = []
            for r in cur:
                if r is None:
                    nxt.append(None)
                    continue
                a, b = (q if r[0] == p else r[0]), (q if r[1] == p else r[1])
                nxt.append((a, b) if a < b else "bad")
            if "bad" not in nxt and all(r is None or space.ok[i, r[0], r[1]] for i, r in enumerate(nxt)):
                out.append(tuple(nxt))
    ranges = sorted({r for r in cur if r is not None})
    for i in range(n):
        options = [r for r in ranges if r != cur[i] and space.ok[i, r[0], r[1]]]
        if cur[i] is not None:
            options.append(None)
            a, b = cur[i]
            options += [(a, q) for q in points if a < q != b and space.ok[i, a, q]]
            options += [(q, b) for q in points if q < b and q != a and space.ok[i, q, b]]
        for r in options:
            nxt = list(cur)
            nxt[i] = r
            out.append(tuple(nxt))
    groups = {i: g for g, members in enumerate(space.groups) for i in members}
    linked = len(set(space.regions)) > 1  # devices of one group differ by their links
    for i in range(n):
        for j in range(i + 1, n):
            if (linked or groups[i] != groups[j]) and cur[i] != cur[j]:
                ri, rj = cur[j], cur[i]
                if (ri is None or space.ok[i, ri[0], ri[1]]) and (rj is None or space.ok[j, rj[0], rj[1]]):
                    nxt = list(cur)
                    nxt[i], nxt[j] = ri, rj
                    out.append(tuple(nxt))
    rng.shuffle(out)
    return out


def local_search(space, start, score: Scorer, rng: random.Random, deadline: Deadline,
                 accept: Callable[[tuple], bool] | None = None) -> tuple[tuple, float, int]:
    """Improve ``start`` by first-improvement moves until none improves or time is up.

    Returns the assignment, its score and the number of improving moves. ``accept``
    (optional) vets an improvement before it is kept (e.g. evaluate() on the plan).
    """
    current, value = tuple(start), score(start)
    steps = 0
    improved = True
    while improved and not deadline.expired():
        improved = False
        for cand in _moves(space, current, rng):
            if deadline.expired():
                break
            if score.optimistic(cand) <= value * (1 + 1e-9):
                continue
            got = score(cand)
            if got > value * (1 + 1e-9) and (accept is None or accept(cand)):
                current, value = cand, got
                steps += 1
                improved = True
                break
    return current, value, steps


def iterated_search(space, start, score: Scorer, rng: random.Random, deadline: Deadline,
                    accept: Callable[[tuple], bool] | None = None, target: float = math.inf,
                    max_stall: int = 300) -> tuple[tuple, float, int]:
    """Local search, then until time is up, the score reaches ``target`` (a bound) or ``max_stall`` kicks
    in a row found nothing better: kick the best assignment by a few random moves and search again from
    there, keeping what beats it (iterated local search; seeded, so repeatable).

    Returns the best assignment, its score and the number of kicks that improved it.
    """
    best, best_value, _ = local_search(space, start, score, rng, deadline, accept)
    kicks = improved = stalled = 0
    while not deadline.expired() and stalled < max_stall and best_value < target:
        kicks += 1
        stalled += 1
        cand = best
        for _ in range(rng.randint(2, 4)):
            moves = _moves(space, cand, rng)
            if not moves:
                break
            cand = moves[0]
        found, value, _ = local_search(space, cand, score, rng, deadline)
        if value > best_value * (1 + 1e-9) and (accept is None or accept(found)):
            best, best_value = found, value
            improved += 1
            stalled = 0
    return best, best_value, improved


# -- copies: disjoint short pipelines ----------------------------------------------------------------


def _split(space, devices: list[int]) -> list[tuple[int, int]] | None:
    """A contiguous split of the blocks over ``devices`` (in order) that balances their capacities: the
    highest rate at which each device, in turn, takes as many blocks as it carries at that rate."""
    L = space.L

    def lay(rate: float) -> list[tuple[int, int]] | None:
        out, start = [], 0
        for i in devices:
            if start == L:
                break
            ends = [b for b in range(start + 1, L + 1) if space.ok[i, start, b] and space.capacity[i, start, b] >= rate]
            if not ends:
                return None
            out.append((start, max(ends)))
            start = max(ends)
        return out if start == L else None

    lo, hi = 0.0, float(space.capacity[devices].max(initial=0.0))
    if lay(lo) is None:
        return None
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if lay(mid) is None:
            hi = mid
        else:
            lo = mid
    return lay(lo)


def copy_layouts(space, most: int = 6, deadline: Deadline | None = None) -> list[tuple]:
    """Assignments of disjoint copies of the model, each a short pipeline of ``k`` devices (k = 1 .. most):
    devices by capacity, dealt round-robin into copies so that the copies are alike, each split to
    balance its devices. Under an SLO that long pipelines miss, these are where the search starts. Once
    ``deadline`` passes, only those laid so far (at least one, when any can be laid)."""
    strength = space.capacity.reshape(space.n, -1).max(axis=1) * np.array(
        [max((b - a for a, b in space.ranges(i)), default=0) for i in range(space.n)])
    order = sorted(range(space.n), key=lambda i: (-strength[i], i))
    out = []
    for k in range(1, most + 1):
        copies = len(order) // k
        if copies == 0 or (out and deadline is not None and deadline.expired()):
            break
        assignment: list = [None] * space.n
        for c in range(copies):
            members = order[c::copies][:k]
            split = _split(space, members)
            if split is None:
                continue
            for i, rng in zip(members, split):
                assignment[i] = rng
        if any(r is not None for r in assignment) and tuple(assignment) not in out:
            out.append(tuple(assignment))
    return out


# -- mixed stages: devices of several groups on one range ------------------------------------------


def _stage_program(space, lengths: list[np.ndarray], rate: float, deadline: Deadline, backend: str):
    """The most blocks stages of mixed groups cover at ``rate`` (each stage's devices on one range of
    ``k`` blocks, their capacities at ``k`` summing to the rate), and those stages; None when the stage
    kinds are too many to list or the program has no answer in time."""
    import scipy.sparse as sp

    from solvers.ilp.backends import MILP, solve_milp
    from solvers.maxflow.cover import _covers, affordable

    sizes = [len(m) for m in space.groups]
    kinds: list[tuple[int, dict[int, int]]] = []
    for k in range(1, space.L + 1):
        items = [(g, k, min(1.0, float(lengths[g][k]) / rate), sizes[g]) for g in range(len(space.groups))
                 if lengths[g][k] > 0]
        covers = _covers(items, 2000, deadline)
        if covers is None:
            return None
        kinds += [(k, {items[i][0]: m for i, m in cover.items()}) for cover in covers]
    if not kinds:
        return 0, []
    rows, cols, vals = [], [], []
    for s, (_, members) in enumerate(kinds):
        for g, m in members.items():
            rows.append(g)
            cols.append(s)
            vals.append(float(m))
    G, S = len(space.groups), len(kinds)
    milp = MILP(c=-np.array([float(k) for k, _ in kinds]), A=sp.csr_matrix((vals, (rows, cols)), shape=(G, S)),
                row_lo=np.full(G, -np.inf), row_hi=np.array(sizes, dtype=float), var_lo=np.zeros(S),
                var_hi=np.full(S, float(space.L)), integer=np.ones(S, dtype=bool))
    if not affordable(milp, backend, deadline):
        return None
    result = solve_milp(milp, backend, time_limit_s=max(min(deadline.left(), 5.0), 0.01))
    if result.x is None:
        return None
    stages = [(k, members) for (k, members), u in zip(kinds, np.round(result.x)) for _ in range(int(u))]
    return int(sum(k for k, _ in stages)), stages


def mixed_stage_layouts(space, low: float, high: float, deadline: Deadline, backend: str = "highs") -> list[tuple]:
    """Layouts of mixed stages at the best rate a bisection between ``low`` (a rate the one-group stages
    reach) and ``high`` finds (see :func:`_stage_program`)."""
    lengths = _group_lengths(space)
    best = None
    lo, hi = low, high
    for _ in range(30):
        if deadline.expired() or hi - lo <= 1e-6 * hi:
            break
        mid = 0.5 * (lo + hi)
        got = _stage_program(space, lengths, mid, deadline, backend)
        if got is None:
            break
        covered, stages = got
        if covered >= space.L:
            lo, best = mid, stages
        else:
            hi = mid
    if best is None:
        return []
    out = []
    for order in (sorted(best, key=lambda s: -sum(s[1].values())), sorted(best, key=lambda s: s[0])):
        assignment = _lay_mixed(space, [(k, dict(m)) for k, m in order], lengths, lo)
        if assignment is not None:
            out.append(assignment)
    return out


def _lay_mixed(space, stages: list[tuple[int, dict[int, int]]], lengths, rate: float):
    """Lay mixed stages along the blocks, shortening the ones with the most spare capacity to fit ``L``."""
    ks = [k for k, _ in stages]
    total = sum(ks)
    while total > space.L:
        spare = [(sum(m * float(lengths[g][ks[j] - 1]) for g, m in stages[j][1].items()), j)
                 for j in range(len(stages)) if ks[j] > 1]
        if not spare:
            return None
        ks[max(spare)[1]] -= 1
        total -= 1
    return _lay(space, [(k, members) for k, (_, members) in zip(ks, stages)])
