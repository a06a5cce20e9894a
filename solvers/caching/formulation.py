"""Joint caching and routing as one mixed-integer program, built from the caching view.

Over the candidates ``t`` that fit their device (:mod:`placement.costs.caching`):

- ``y[t]`` (binary): instance ``t`` is resident;
- ``z[c, t]`` (binary): class ``c`` reserves its KV cache and workspace on ``t``;
- ``x[c, t]`` (share): of class ``c``'s requests served on ``t``; ``v[p]`` on cascade option ``p``;
  ``u[c]`` unserved; ``w[t]``: the workspace ``t`` keeps (the largest of its classes'), in MiB;
- ``r[d, l]`` (binary): device ``d`` pays its engine runtime up to level ``l`` (several formats
  on one device pay the largest runtime once).

Rows: each class's shares sum to 1; ``x <= z <= y`` (a cascade needs ``z`` on both its
instances); ``w[t] >= workspace[c, t] z[c, t]``; per device, weights + KV + workspaces +
runtime within its usable memory, and, at the request rates, its busy share within
``constraints.max_utilization``; ``y[t] <= r[d, l]`` for every level at or below ``t``'s runtime.
The objective is the plan's objective exactly (:mod:`placement.objective`): each class's
weight times the cost per request of each share, the unserved weight for ``u``, and each
load's churn for ``y`` of an instance not cached now.

The workspace is counted in MiB, not bytes: HiGHS and SCIP treat matrix entries below 1e-9 as
zero, and one byte of a 1.6 GB device is 6e-10 of it (a workspace column in bytes was dropped from
the memory rows, and plans came back past the memory they claimed); in shares of the device, a
backend's absolute feasibility tolerance (CBC's 1e-7) is hundreds of bytes.
Limit rows are scaled to 1 and kept a hair (:data:`MARGIN`) inside, so a backend's
feasibility tolerance cannot carry a plan past what ``evaluate()`` allows (a backend whose
tolerance is looser gets a wider margin: see :mod:`solvers.caching.ilp`). A ``fixed`` cache
(the routing-only solver) pins ``y`` and, when every class's reservation fits together,
``z`` too: the program is then a linear program.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from placement.costs.caching import CachingView
from solvers.ilp.backends import MILP, RowBuilder

__all__ = ["CacheProgram", "build_program", "MARGIN"]

MARGIN = 1e-9  # limit rows end this far inside their limit (evaluate allows as much beyond)
_MIB = 2.0 ** 20  # the workspace variables' unit (bytes)


@dataclass
class CacheProgram:
    """The program and how to read its variables back."""

    milp: MILP
    candidates: np.ndarray  # t of each y column
    pairs: np.ndarray  # [(c, t)] of each z / x column
    options: np.ndarray  # cascade option p of each v column
    offsets: dict[str, int]
    stats: dict = field(default_factory=dict)

    def shares(self, x: np.ndarray) -> tuple[dict[tuple[int, int], float], dict[int, float]]:
        o = self.offsets
        direct = {(int(c), int(t)): float(v) for (c, t), v in zip(self.pairs, x[o["x"]:o["x"] + len(self.pairs)])}
        cascade = {int(p): float(v) for p, v in zip(self.options, x[o["v"]:o["v"] + len(self.options)])}
        return direct, cascade

    def resident(self, x: np.ndarray) -> list[int]:
        o = self.offsets
        return [int(t) for t, v in zip(self.candidates, x[o["y"]:o["y"] + len(self.candidates)]) if v > 0.5]


def _candidates(view: CachingView, fixed: set[int] | None) -> np.ndarray:
    if fixed is not None:
        return np.array(sorted(fixed), dtype=np.int64)
    useful = view.eligible.any(axis=0)
    if len(view.cascades):
        useful[view.cascades.first] = True
        useful[view.cascades.second] = True
    return np.flatnonzero(view.fits & useful)


def build_program(view: CachingView, fixed: set[int] | None = None, margin: float = MARGIN) -> CacheProgram:
    """The program of the view's instance; ``fixed``: the resident instances, when the cache is given;
    ``margin``: how far inside its limit each memory and time row ends."""
    cand = _candidates(view, fixed)
    in_k = np.zeros(view.num_candidates, dtype=bool)
    in_k[cand] = True
    opts = np.array([p for p in range(len(view.cascades))
                     if in_k[view.cascades.first[p]] and in_k[view.cascades.second[p]]], dtype=np.int64)
    direct = [(c, t) for t in cand for c in np.flatnonzero(view.eligible[:, t])]
    need = set(direct)
    need |= {(int(view.cascades.cls[p]), int(view.cascades.first[p])) for p in opts}
    need |= {(int(view.cascades.cls[p]), int(view.cascades.second[p])) for p in opts}
    pairs = np.array(sorted(need), dtype=np.int64).reshape(-1, 2)
    xpairs = np.array(sorted(direct), dtype=np.int64).reshape(-1, 2)
    C, K, Z, X, P = len(view.requests), len(cand), len(pairs), len(xpairs), len(opts)
    devices = sorted({int(view.device[t]) for t in cand})
    levels = [(d, lv) for d in devices for lv in np.unique(view.runtime_mem_bytes[cand[view.device[cand] == d]]) if lv > 0]
    off = {"y": 0, "z": K, "x": K + Z, "v": K + Z + X, "u": K + Z + X + P, "w": K + Z + X + P + C}
    off["r"] = off["w"] + K
    n = off["r"] + len(levels)
    ycol = {int(t): off["y"] + k for k, t in enumerate(cand)}
    zcol = {(int(c), int(t)): off["z"] + k for k, (c, t) in enumerate(pairs)}
    rows = RowBuilder()
    c_vec = np.zeros(n)
    W = view.class_weight
    for k, (c, t) in enumerate(xpairs):  # shares served directly: x <= z, priced per request
        j = off["x"] + k
        rows.row([j, zcol[(c, t)]], [1.0, -1.0], -np.inf, 0.0)
        c_vec[j] = W[c] * view.cost[c, t]
    for k, p in enumerate(opts):  # cascades: v <= z on both instances
        j = off["v"] + k
        c, i, t2 = int(view.cascades.cls[p]), int(view.cascades.first[p]), int(view.cascades.second[p])
        rows.row([j, zcol[(c, i)]], [1.0, -1.0], -np.inf, 0.0)
        rows.row([j, zcol[(c, t2)]], [1.0, -1.0], -np.inf, 0.0)
        c_vec[j] = W[c] * view.cascades.cost[p]
    for c in range(C):  # every class's shares add up to all of it
        cols = [off["x"] + k for k, (cc, _) in enumerate(xpairs) if cc == c]
        cols += [off["v"] + k for k, p in enumerate(opts) if view.cascades.cls[p] == c]
        rows.row(cols + [off["u"] + c], [1.0] * (len(cols) + 1), 1.0, 1.0)
        c_vec[off["u"] + c] = W[c] * view.unserved_cost
    for (c, t), j in zcol.items():  # a reservation needs its instance, and sets its workspace
        rows.row([j, ycol[t]], [1.0, -1.0], -np.inf, 0.0)
        kt = int(np.searchsorted(cand, t))
        rows.row([j, off["w"] + kt], [view.workspace_mem_bytes[c, t] / _MIB, -1.0], -np.inf, 0.0)
    for k, t in enumerate(cand):
        c_vec[off["y"] + k] = view.churn_cost[t]
    for li, (d, level) in enumerate(levels):  # runtime levels
        for t in cand[(view.device[cand] == d) & (view.runtime_mem_bytes[cand] >= level)]:
            rows.row([ycol[int(t)], off["r"] + li], [1.0, -1.0], -np.inf, 0.0)
    _device_rows(view, rows, cand, pairs, xpairs, opts, levels, off, ycol, zcol, devices, margin)
    A, lo, hi = rows.matrix(n)
    integer = np.zeros(n, dtype=bool)
    integer[off["y"]:off["x"]] = True
    integer[off["r"]:] = True
    var_lo, var_hi = np.zeros(n), np.ones(n)
    var_hi[off["w"]:off["r"]] = [max(view.workspace_mem_bytes[:, t].max(initial=0.0) / _MIB, 1.0) for t in cand]
    if fixed is not None:
        var_lo[off["y"]:off["z"]] = 1.0
        if _reservations_fit(view, cand, pairs):
            var_lo[off["z"]:off["x"]] = 1.0
            var_lo[off["r"]:] = var_hi[off["r"]:]
            integer[:] = False
    milp = MILP(c=c_vec, A=A, row_lo=lo, row_hi=hi, var_lo=var_lo, var_hi=var_hi, integer=integer,
                max_ones=K + Z + len(levels))
    stats = {"candidates": K, "reservations": Z, "direct_shares": X, "cascade_options": P,
             "runtime_levels": len(levels), "linear": not integer.any()}
    return CacheProgram(milp, cand, xpairs, opts, off, stats)


def _reservations_fit(view: CachingView, cand: np.ndarray, pairs: np.ndarray) -> bool:
    """Whether every instance with every reservation it could hold fits its device at once."""
    for d in {int(view.device[t]) for t in cand}:
        on = cand[view.device[cand] == d]
        total = view.weight_mem_bytes[on].sum() + view.runtime_mem_bytes[on].max(initial=0.0)
        for t in on:
            mine = pairs[pairs[:, 1] == t]
            total += view.kv_mem_bytes[mine[:, 0], t].sum() + view.workspace_mem_bytes[mine[:, 0], t].max(initial=0.0)
        if total > view.capacity_bytes[d] * (1 - MARGIN):
            return False
    return True


def _device_rows(view, rows: RowBuilder, cand, pairs, xpairs, opts, levels, off, ycol, zcol, devices, margin) -> None:
    """Memory (scaled by capacity) and, with rates, busy share per device."""
    for d in devices:
        cap = float(view.capacity_bytes[d])
        cols, vals = [], []
        for k, t in enumerate(cand):
            if view.device[t] == d:
                cols += [ycol[int(t)], off["w"] + k]
                vals += [view.weight_mem_bytes[t] / cap, _MIB / cap]
        for (c, t), j in zcol.items():
            if view.device[t] == d:
                cols.append(j)
                vals.append(view.kv_mem_bytes[c, t] / cap)
        prev = 0.0
        for li, (dd, level) in enumerate(levels):
            if dd == d:
                cols.append(off["r"] + li)
                vals.append((level - prev) / cap)
                prev = level
        rows.row(cols, vals, -np.inf, 1.0 - margin)
        if not view.rates:
            continue
        cols, vals = [], []
        for k, (c, t) in enumerate(xpairs):
            if view.device[t] == d and view.busy[c, t] > 0:
                cols.append(off["x"] + k)
                vals.append(view.busy[c, t])
        for k, p in enumerate(opts):
            busy = (view.cascades.busy_first[p] if view.device[view.cascades.first[p]] == d else 0.0) + \
                   (view.cascades.busy_second[p] if view.device[view.cascades.second[p]] == d else 0.0)
            if busy > 0:
                cols.append(off["v"] + k)
                vals.append(busy)
        if cols:
            limit = view.max_utilization
            rows.row(cols, np.array(vals) / limit, -np.inf, 1.0 - margin)
