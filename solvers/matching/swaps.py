"""The swap neighbourhood of a matching: every state one swap away, generated lazily.

The swaps of one model's pipeline: move the boundary between two consecutive
stages; hand a stage's range to a neighbouring stage; exchange the ranges of two
stages; swap two devices' places in the pipeline, or move one device to another
place, each keeping its number of blocks; move a stage's range to a device the
model does not use; split a stage's range with an unused device; let a device
hand its range to a neighbour and split another stage's range. Across models:
two devices trade everything they hold, in every model's pipeline at once (the
one swap that moves blocks of two models together). Moves that break
``constraints.device_order`` are left out.

Each move is ``(kind, model index, *detail)``; :func:`describe` says it in words.

Examples
--------
>>> from_counts([(3, 2), (1, 4)])
[(3, 0, 2), (1, 2, 6)]
"""

from __future__ import annotations

from collections.abc import Iterator

from solvers.matching.scoring import State
from solvers.matching.tables import ModelTables

__all__ = ["neighbourhood", "describe", "from_counts"]

Move = tuple


def from_counts(counts: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Stages from ``(device, number of blocks)`` in pipeline order."""
    out, start = [], 0
    for d, n in counts:
        out.append((d, start, start + n))
        start += n
    return out


def _in_order(mt: ModelTables, stages) -> bool:
    return mt.rank is None or all(mt.rank[x[0]] < mt.rank[y[0]] for x, y in zip(stages, stages[1:]))


def _model_moves(mt: ModelTables, S: list[tuple[int, int, int]]) -> Iterator[tuple[Move, list]]:
    """``(move detail, new stages)`` for one pipeline, in a fixed order."""
    k = len(S)
    used = {d for d, _, _ in S}
    unused = [u for u in mt.candidates if u not in used]
    for i in range(k - 1):  # move a boundary
        (d1, a1, b1), (d2, _, b2) = S[i], S[i + 1]
        for c in range(a1 + 1, b2):
            if c != b1:
                yield ("boundary", d1, d2, b1, c), S[:i] + [(d1, a1, c), (d2, c, b2)] + S[i + 2:]
    for i in range(k):  # hand a stage's range to a neighbour
        d, a, b = S[i]
        if i > 0:
            e, a0, _ = S[i - 1]
            yield ("merge", d, e, a, b), S[:i - 1] + [(e, a0, b)] + S[i + 1:]
        if i < k - 1:
            e, _, b1 = S[i + 1]
            yield ("merge", d, e, a, b), S[:i] + [(e, a, b1)] + S[i + 2:]
    for i in range(k):  # exchange two stages' ranges
        for j in range(i + 1, k):
            new = list(S)
            new[i], new[j] = (S[j][0], S[i][1], S[i][2]), (S[i][0], S[j][1], S[j][2])
            yield ("exchange", S[i][0], S[j][0], S[i][1:], S[j][1:]), new
    counts = [(d, b - a) for d, a, b in S]
    for i in range(k):  # change the pipeline order, each device keeping its number of blocks
        for j in range(k):
            if i < j:
                swapped = list(counts)
                swapped[i], swapped[j] = counts[j], counts[i]
                yield ("order-swap", counts[i][0], counts[j][0]), from_counts(swapped)
            if abs(i - j) > 1:  # next to each other, a move is a swap
                moved = counts[:i] + counts[i + 1:]
                moved.insert(j, counts[i])
                yield ("order-move", counts[i][0], i, j), from_counts(moved)
    for i in range(k):  # move a range to an unused device
        d, a, b = S[i]
        for u in unused:
            yield ("relocate", d, u, a, b), S[:i] + [(u, a, b)] + S[i + 1:]
    for i in range(k):  # split a range with an unused device
        d, a, b = S[i]
        for c in range(a + 1, b):
            for u in unused:
                yield ("split", d, u, a, c), S[:i] + [(u, a, c), (d, c, b)] + S[i + 1:]
                yield ("split", d, u, c, b), S[:i] + [(d, a, c), (u, c, b)] + S[i + 1:]
    for i in range(k if k > 1 else 0):  # a device leaves its place (a neighbour takes its range)
        d, a0, b0 = S[i]                  # and splits another stage's range
        reduced = []
        if i > 0:
            reduced.append(S[:i - 1] + [(S[i - 1][0], S[i - 1][1], b0)] + S[i + 1:])
        if i < k - 1:
            reduced.append(S[:i] + [(S[i + 1][0], a0, S[i + 1][2])] + S[i + 2:])
        for R in reduced:
            for j, (e, a, b) in enumerate(R):
                for c in range(a + 1, b):
                    yield ("reinsert", d, (a0, b0), (a, c)), R[:j] + [(d, a, c), (e, c, b)] + R[j + 1:]
                    yield ("reinsert", d, (a0, b0), (c, b)), R[:j] + [(e, a, c), (d, c, b)] + R[j + 1:]


def _trades(models: list[ModelTables], state: State) -> Iterator[tuple[Move, State]]:
    """Two devices trade everything they hold, in every model's pipeline at once."""
    used = sorted({d for stages in state for d, _, _ in stages})
    devices = sorted(set().union(*(mt.candidates for mt in models)))
    pairs = sorted({(min(d, e), max(d, e)) for d in used for e in devices if e != d})
    for d, e in pairs:
        swap = {d: e, e: d}
        new = tuple(tuple((swap.get(x, x), a, b) for x, a, b in stages) for stages in state)
        if all(all(x in mt.candidates for x, _, _ in stages) and _in_order(mt, stages)
               for mt, stages in zip(models, new)):
            yield ("trade", -1, d, e), new


def neighbourhood(models: list[ModelTables], state: State) -> Iterator[tuple[Move, State]]:
    """Every single swap from ``state``: ``(move, new state)`` in a fixed order."""
    for m, (mt, stages) in enumerate(zip(models, state)):
        for detail, new in _model_moves(mt, list(stages)):
            if _in_order(mt, new):
                yield (detail[0], m, *detail[1:]), state[:m] + (tuple(new),) + state[m + 1:]
    yield from _trades(models, state)


def describe(move: Move, models: list[ModelTables], ids: list[str]) -> str:
    """The swap in words."""
    kind, m, *rest = move
    if kind == "trade":
        d, e = rest
        return f"{ids[d]} and {ids[e]} trade all the blocks they hold"
    model = models[m].id
    if kind == "boundary":
        d1, d2, old, new = rest
        return f"{model}: move the boundary between {ids[d1]} and {ids[d2]} from block {old} to {new}"
    if kind == "merge":
        d, e, a, b = rest
        return f"{model}: hand {ids[d]}'s blocks [{a}, {b}) to {ids[e]}"
    if kind == "exchange":
        d1, d2, r1, r2 = rest
        return f"{model}: exchange {ids[d1]}'s blocks [{r1[0]}, {r1[1]}) and {ids[d2]}'s [{r2[0]}, {r2[1]})"
    if kind == "relocate":
        d, u, a, b = rest
        return f"{model}: move {ids[d]}'s blocks [{a}, {b}) to {ids[u]}"
    if kind == "order-swap":
        d1, d2 = rest
        return f"{model}: {ids[d1]} and {ids[d2]} swap places in the pipeline, each keeping its number of blocks"
    if kind == "order-move":
        d, i, j = rest
        return f"{model}: {ids[d]} moves from stage {i} to stage {j}, keeping its number of blocks"
    if kind == "reinsert":
        d, (a0, b0), (a, b) = rest
        return f"{model}: {ids[d]} hands its blocks [{a0}, {b0}) to a neighbour and takes blocks [{a}, {b})"
    d, u, a, b = rest
    return f"{model}: give blocks [{a}, {b}) of {ids[d]}'s range to {ids[u]}"
