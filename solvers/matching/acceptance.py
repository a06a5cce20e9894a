"""Deferred acceptance of blocks by devices, then contiguity repair: a matching's first state.

Blocks propose to devices in order of preference; each device keeps the
proposers for which it is comparatively best (the block's cost there minus its
best alternative) up to its memory quota and its profile's ``max_layers``, and
rejects the rest, who propose to their next choice. Preferences carry
externalities (the transfers to where the neighbouring blocks sit, the stage
overhead a block adds when it opens a new stage, under a min-max objective the
load its device already carries), so the game is replayed with the last
matching's externalities until it repeats.

A device then holding several runs of blocks keeps its longest; each other run
joins the neighbouring run it costs least on, so every device holds one
contiguous range and the pipeline order follows the blocks (re-sorted to
``constraints.device_order`` when given).

Examples
--------
>>> contiguous([0, 0, 1, 0, 2, 2], np.zeros((6, 3)))   # device 0's short run joins a neighbour
[[0, 0, 2], [1, 2, 4], [2, 4, 6]]
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from solvers.deadline import Deadline
from solvers.matching.scoring import Stages, State
from solvers.matching.tables import ModelTables

__all__ = ["preference_costs", "deferred_acceptance", "fill_unmatched", "contiguous", "ordered", "initial_state"]

_MAX_REPLAYS = 8


def preference_costs(mt: ModelTables, labels: list[int] | None) -> np.ndarray:
    """Cost ``[L, D]`` of each block on each device given where the other blocks sit (externalities)."""
    pref = mt.preferences
    L, D = mt.num_blocks, len(pref.per_stage)
    cost = pref.per_block.T.copy()
    cost[0] += pref.first
    cost[L - 1] += pref.last
    if labels is None:
        # Nothing is matched yet: spread the stage overhead over the blocks.
        return cost + pref.per_stage / L
    lab = np.asarray(labels)
    for j in range(L):
        left = lab[j - 1] if j > 0 else -1
        right = lab[j + 1] if j < L - 1 else -1
        if left >= 0:
            cost[j] += pref.hop[left, :]
        if right >= 0:
            cost[j] += pref.hop[:, right]
        # Opening a new stage adds its fixed part (the pipeline bubble).
        opens = np.ones(D, dtype=bool)
        if left >= 0:
            opens[left] = False
        if right >= 0:
            opens[right] = False
        cost[j] += np.where(opens, pref.per_stage, 0.0)
    if lab[L - 1] >= 0:
        cost[0] += pref.loop[lab[L - 1], :]
    if lab[0] >= 0:
        cost[L - 1] += pref.loop[:, lab[0]]
    if pref.congestion:
        # A block also pays what its device already carries (its own part excepted).
        carried = np.zeros(D)
        np.add.at(carried, lab, pref.per_block[lab, np.arange(L)])
        cost += carried[None, :] - np.where(lab[:, None] == np.arange(D)[None, :], pref.per_block.T, 0.0)
    return cost


def _ranking(mt: ModelTables, cost: np.ndarray) -> tuple[np.ndarray, list[list[float]], np.ndarray]:
    """Each block's devices in order of preference ``[L, n]``, the devices' view of each block
    (its cost there minus its best alternative, ``[L][n]``) and each device's column (-1: not a candidate)."""
    cand = np.asarray(mt.candidates)
    sub = cost[:, cand]
    order = np.argsort(sub, axis=1, kind="stable")
    rows = np.arange(len(sub))
    best = sub[rows, order[:, 0]]
    second = sub[rows, order[:, 1]] if len(cand) > 1 else best
    alternative = np.where(np.arange(len(cand))[None, :] == order[:, :1], second[:, None], best[:, None])
    column = np.full(cost.shape[1], -1)
    column[cand] = np.arange(len(cand))
    return cand[order], (sub - alternative).tolist(), column


def deferred_acceptance(models: list[ModelTables], capacity: list[float], costs: list[np.ndarray],
                        deadline: Deadline) -> tuple[list[list[int]], int]:
    """One many-to-one deferred acceptance with fixed preferences; returns labels (-1 unmatched) and
    proposal rounds. Stops where it is when the deadline passes (unmatched blocks stay -1)."""
    quota = np.asarray(capacity) - np.max([mt.runtime for mt in models], axis=0)
    rankings = [_ranking(mt, cost) for mt, cost in zip(models, costs)]
    held: dict[int, list[tuple[int, int]]] = defaultdict(list)
    nxt = {(m, j): 0 for m, mt in enumerate(models) for j in range(mt.num_blocks)}
    free = list(nxt)
    rounds = 0
    while free and not deadline.expired():
        rounds += 1
        proposals: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for m, j in free:
            choices = rankings[m][0]
            proposals[int(choices[j, nxt[(m, j)]])].append((m, j))
            nxt[(m, j)] += 1
        free = []
        for d in sorted(proposals):
            def view(item, d=d):
                m, j = item
                return rankings[m][1][j][rankings[m][2][d]], item
            keep, room, count = [], float(quota[d]), defaultdict(int)
            for m, j in sorted(held[d] + proposals[d], key=view):
                mt = models[m]
                need = float(mt.block_bytes[j]) + (mt.stage_bytes if count[m] == 0 else 0.0)
                if need <= room and count[m] < mt.max_blocks[d]:
                    keep.append((m, j))
                    room -= need
                    count[m] += 1
                else:
                    free.append((m, j))
            held[d] = keep
        free = [it for it in free if nxt[it] < len(models[it[0]].candidates)]
    labels = [[-1] * mt.num_blocks for mt in models]
    for d, items in held.items():
        for m, j in items:
            labels[m][j] = d
    return labels, rounds


def fill_unmatched(labels: list[int], cost: np.ndarray, candidates: tuple[int, ...]) -> list[int]:
    """Blocks every device rejected join a neighbour's device (or their cheapest one); the swaps then
    restore the limits."""
    out = list(labels)
    if all(x < 0 for x in out):
        best = min(candidates, key=lambda d: (float(cost[:, d].sum()), d))
        return [best] * len(out)
    for j in range(1, len(out)):
        if out[j] < 0:
            out[j] = out[j - 1]
    for j in range(len(out) - 2, -1, -1):
        if out[j] < 0:
            out[j] = out[j + 1]
    return out


def contiguous(labels: list[int], cost: np.ndarray) -> list[list[int]]:
    """Runs ``[device, start, end]`` in which every device holds one range: a device's shorter runs join
    the adjacent run they cost least on."""
    labels = list(labels)
    while True:
        runs: list[list[int]] = []
        for j, d in enumerate(labels):
            if runs and runs[-1][0] == d:
                runs[-1][2] = j + 1
            else:
                runs.append([d, j, j + 1])
        by_device: dict[int, list[int]] = defaultdict(list)
        for i, (d, _, _) in enumerate(runs):
            by_device[d].append(i)
        repeated = sorted(d for d, idx in by_device.items() if len(idx) > 1)
        if not repeated:
            return runs
        d = repeated[0]
        keep = max(by_device[d], key=lambda i: (runs[i][2] - runs[i][1], -i))
        for i in by_device[d]:
            if i == keep:
                continue
            _, a, b = runs[i]
            options = [runs[k][0] for k in (i - 1, i + 1) if 0 <= k < len(runs)]
            target = min(options, key=lambda e: (float(cost[a:b, e].sum()), e))
            labels[a:b] = [target] * (b - a)


def ordered(runs: list[list[int]], rank: dict[int, int] | None) -> Stages:
    """Stages from runs; with a fixed device order, the devices are re-sorted over the same ranges."""
    if rank is not None:
        devices = sorted((r[0] for r in runs), key=rank.__getitem__)
        runs = [[d, a, b] for d, (_, a, b) in zip(devices, runs)]
    return tuple((d, a, b) for d, a, b in runs)


def initial_state(models: list[ModelTables], capacity: list[float], noise: list[np.ndarray] | None,
                  deadline: Deadline) -> tuple[State, int, int]:
    """Deferred acceptance replayed with the last matching's externalities until it repeats; returns
    the contiguous state, the proposal rounds and the replays."""
    labels: list[list[int]] | None = None
    rounds = replays = 0
    for _ in range(_MAX_REPLAYS):
        costs = [preference_costs(mt, None if labels is None else labels[m]) for m, mt in enumerate(models)]
        if noise is not None:
            costs = [c * n for c, n in zip(costs, noise)]
        found, r = deferred_acceptance(models, capacity, costs, deadline)
        rounds += r
        replays += 1
        found = [fill_unmatched(lab, cost, mt.candidates) for lab, cost, mt in zip(found, costs, models)]
        repeated = found == labels
        labels = found
        if repeated or deadline.expired():
            break
    costs = [preference_costs(mt, labels[m]) for m, mt in enumerate(models)]
    state = tuple(ordered(contiguous(lab, cost), mt.rank) for lab, cost, mt in zip(labels, costs, models))
    return state, rounds, replays
