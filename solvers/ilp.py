"""ILP: general placement as one mixed-integer program, solved by HiGHS, CBC, CP-SAT or SCIP.

Each model gets one pipeline: an ordered sequence of distinct devices, each
holding one contiguous range of blocks (in one weight format), serving all of
the model's request classes. The program is a *segment* formulation, a
shortest path with side constraints:

- ``y[m, d, a, b, f]`` = 1 when device ``d`` holds blocks ``[a, b)`` of model
  ``m`` in format ``f``. Any per-shard figure, however non-additive (a tied
  head shared only when one shard holds every block, the head's workspace, a
  measured tokens/s at ``b - a`` layers, ``max_layers``), is an exact
  coefficient of one variable; shards that cannot fit their device alone are
  never created.
- ``h[m, u, v, b]`` = 1 when the shard on ``u`` ends at block ``b`` and the one
  on ``v`` starts there (the activation hop). Flow conservation at every
  (block, device) makes the shards one path from block 0 to block L.
- ``w[m, e, d]`` = 1 when ``e`` holds the last shard and ``d`` the first: its
  rows sum to "last is e" and its columns to "first is d", so for integer
  shards ``w`` is their product, which prices the sampled token's loop from
  the last stage to the first (and, for throughput, that channel).
- each device serves a model at most once (with ``constraints.device_order``
  the devices must also follow that order; devices may be skipped).

Limits are rows: memory per device (weights, the KV cache of every class,
the largest workspace, the engine runtime once per device, across models),
SLOs per class, device load under the classes' request rates, and the
quality floor (block-weighted mean of the formats' quality per route).
Objectives: latency / TTFT / TPOT / energy and weighted sums are linear. For
throughput, a variable ``T`` bounds the busy seconds per second of every
device and every ordered device pair (channel), and ``T`` is minimised
(tokens/s = demand / T); with several classes of free rates, per-class rates
times the binaries are linearised exactly (McCormick) and the total rate is
maximised. Every number comes from :func:`~placement.costs.block_costs`
and :func:`~placement.costs.transfer_costs`.

Backends (option ``backend``): see :mod:`solvers.milp`. ``cpsat`` takes
integers only, so it refuses the free-rate throughput program (several
classes without ``rate_rps``); HiGHS runs on one thread. A plan that a
backend's float tolerance leaves a hair over a limit is caught by
:func:`~placement.evaluate`, that limit is tightened by the excess and the
program re-solved; the bound of the first solve is kept (it is the proof).

A proven-infeasible program is explained: each limit family (memory, an SLO,
load, quality) is checked alone and then against all the others by solving
for the best value it could reach, and each one that cannot be met is
reported with that proven number.

Examples
--------
>>> from placement import load_instance
>>> from solvers import solve, SolveParams
>>> plan = solve(load_instance("instances/device-edge-cloud.yaml"), "ilp",
...              SolveParams(time_limit_s=30), options={"backend": "highs"})   # doctest: +SKIP
>>> plan.status, plan.gap                                                         # doctest: +SKIP
(<Status.OPTIMAL: 'optimal'>, 0.0)
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from models import weight_format
from placement import Plan, Problem, Status, Termination, block_costs, evaluate, transfer_costs
from placement.costs import GIB
from placement.problem import RequestClass
from solvers.api import UnsupportedProblemError
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.milp import BACKENDS, MILP, MILPResult, solve_milp

__all__ = ["solve_ilp", "build_formulation", "Formulation", "estimated_variables", "ilp_unsupported", "MAX_VARIABLES"]

_SCALE = {"latency": 1e3, "ttft": 1e3, "tpot": 1e3, "energy": 1.0}  # seconds -> ms; joules stay
_LIMIT_TOL = 1e-9


@dataclass
class Formulation:
    """The placement program's pieces, shared by the solve and the infeasibility diagnosis.

    Variables are ``[segments | hops | loops | runtime levels]`` (all binary);
    ``structure`` rows make them a set of pipelines; ``families`` maps each
    limit (``("memory",)``, ``("slo", request, metric)``, ``("load",)``,
    ``("quality", model)``) to its rows ``A x <= hi``.
    """

    problem: Problem
    models: list  # [(ModelSpec, requests, formats)]
    seg: dict[str, np.ndarray]  # m, d, a, b, f
    num_vars: int
    structure: tuple[sp.csr_matrix, np.ndarray, np.ndarray]
    families: dict[tuple, tuple[sp.csr_matrix, np.ndarray]]
    metric: dict[tuple[str, str], np.ndarray]  # (request, ttft|tpot|e2e|energy) -> seconds / joules per var
    resources: dict[str, sp.csr_matrix]  # request -> [resource, var] busy seconds per decode token
    max_ones: int
    stats: dict[str, Any] = field(default_factory=dict)


class _Rows:
    """Sparse rows collected as (row, column, value) triplets."""

    def __init__(self, num_vars: int):
        self.n = num_vars
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add_grouped(self, keys: np.ndarray, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        """One row per distinct key, holding the entries with that key."""
        if len(keys) == 0:
            return
        uniq, row = np.unique(keys, return_inverse=True)
        base = len(self.lo)
        self.r.append(row + base)
        self.c.append(cols)
        self.v.append(vals.astype(float))
        self.lo.extend([lo] * len(uniq))
        self.hi.extend([hi] * len(uniq))

    def add(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        """One row (an empty one, ``lo <= 0 <= hi``, when ``cols`` is empty)."""
        if len(cols):
            self.add_grouped(np.zeros(len(cols), dtype=np.int64), cols, vals, lo, hi)
        else:
            self.lo.append(lo)
            self.hi.append(hi)

    def matrix(self) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        m = len(self.lo)
        if self.r:
            A = sp.csr_matrix((np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
                              shape=(m, self.n))
        else:
            A = sp.csr_matrix((m, self.n))
        A.sum_duplicates()
        return A, np.array(self.lo, dtype=float), np.array(self.hi, dtype=float)


def _placed_models(problem: Problem) -> list:
    out = []
    for model in problem.models:
        requests = problem.requests_for(model.id)
        if requests:
            out.append((model, requests, model.formats))
    return out


def build_formulation(problem: Problem) -> Formulation:
    """Variables, structure, limit rows and metric vectors of ``problem``'s program.

    Examples
    --------
    >>> from placement import load_instance
    >>> form = build_formulation(load_instance("instances/device-edge-cloud.yaml"))  # doctest: +SKIP
    >>> form.num_vars > 0                                                                # doctest: +SKIP
    True
    """
    topo = problem.topology
    D = len(topo.nodes)
    models = _placed_models(problem)
    order = problem.constraints.device_order
    rank = {topo.index[d]: k for k, d in enumerate(order)} if order else {d: 0 for d in range(D)}
    allowed_dev = np.array([d in rank for d in range(D)])
    forward = np.array([[u != v and allowed_dev[u] and allowed_dev[v] and (not order or rank[u] < rank[v])
                         for v in range(D)] for u in range(D)])
    loop_ok = np.array([[allowed_dev[e] and allowed_dev[d] and (not order or rank[d] <= rank[e])
                         for d in range(D)] for e in range(D)])
    multi_model = len(models) > 1

    # -- segments ------------------------------------------------------------------------
    seg_parts = defaultdict(list)
    seg_mem, seg_runtime = [], []
    per_model_tables = []
    for mi, (model, requests, fmts) in enumerate(models):
        L = model.num_blocks
        a_all, b_all = np.triu_indices(L + 1, k=1)
        tables = {(r.id, f): block_costs(problem, r, f) for r in requests for f in fmts}
        tcs = {r.id: transfer_costs(problem, r) for r in requests}
        per_model_tables.append((tables, tcs))
        kv_cum = np.concatenate([[0.0], np.cumsum(sum(tables[(r.id, fmts[0])].kv_bytes for r in requests))])
        for fi, f in enumerate(fmts):
            bcs = [tables[(r.id, f)] for r in requests]
            bc0 = bcs[0]
            w_cum = np.concatenate([[0.0], np.cumsum(bc0.weight_bytes)])
            ws_mid = max(c.workspace_bytes for c in bcs)
            ws_last = max(c.workspace_bytes + c.head_workspace_bytes for c in bcs)
            for d in np.flatnonzero(allowed_dev):
                keep = (b_all - a_all) <= bc0.max_blocks[d]
                a, b = a_all[keep], b_all[keep]
                whole = (a == 0) & (b == L)
                mem = (w_cum[b] - w_cum[a] - np.where(whole, bc0.tied_head_bytes, 0.0) + kv_cum[b] - kv_cum[a]
                       + np.where(b == L, ws_last, ws_mid))
                runtime = bc0.runtime_bytes[d]
                finite = np.ones(len(a), dtype=bool)
                for r in requests:
                    tc = tcs[r.id]
                    finite &= np.isfinite(np.where(a == 0, tc.upload_s[d], 0.0))
                    finite &= np.isfinite(np.where(b == L, tc.return_s[d], 0.0))
                keep = (mem + runtime <= bc0.capacity_bytes[d]) & finite
                n = int(keep.sum())
                for key, val in (("m", mi), ("d", d), ("f", fi)):
                    seg_parts[key].append(np.full(n, val))
                seg_parts["a"].append(a[keep])
                seg_parts["b"].append(b[keep])
                seg_mem.append(mem[keep] + (0.0 if multi_model else runtime))
                seg_runtime.append(np.full(n, runtime))
    seg = {k: np.concatenate(v).astype(np.int64) if v else np.zeros(0, np.int64) for k, v in seg_parts.items()}
    for k in "mdfab":
        seg.setdefault(k, np.zeros(0, np.int64))
    seg_mem_b = np.concatenate(seg_mem) if seg_mem else np.zeros(0)
    seg_rt = np.concatenate(seg_runtime) if seg_runtime else np.zeros(0)
    S = len(seg["m"])
    Lm = np.array([m.num_blocks for m, _, _ in models] or [0])
    seg_L = Lm[seg["m"]] if S else np.zeros(0, np.int64)
    Lmax = int(Lm.max()) if len(Lm) else 0

    # -- hops and loops ------------------------------------------------------------------
    hop_parts, loop_parts = defaultdict(list), defaultdict(list)
    for mi, (model, requests, _) in enumerate(models):
        L = model.num_blocks
        tcs = per_model_tables[mi][1]
        mine = seg["m"] == mi
        ends = np.zeros((D, L + 1), dtype=bool)
        starts = np.zeros((D, L + 1), dtype=bool)
        ends[seg["d"][mine], seg["b"][mine]] = True
        starts[seg["d"][mine], seg["a"][mine]] = True
        hop_fin = np.ones((D, D), dtype=bool)
        loop_fin = np.ones((D, D), dtype=bool)
        for r in requests:
            hop_fin &= np.isfinite(tcs[r.id].prefill_hop_s) & np.isfinite(tcs[r.id].decode_hop_s)
            loop_fin &= np.isfinite(tcs[r.id].loop_s)
        ok = (forward & hop_fin)[:, :, None] & ends[:, None, 1:L] & starts[None, :, 1:L]
        u, v, bb = np.nonzero(ok)
        hop_parts["m"].append(np.full(len(u), mi))
        hop_parts["u"].append(u)
        hop_parts["v"].append(v)
        hop_parts["b"].append(bb + 1)
        e, d0 = np.nonzero(loop_ok & loop_fin & ends[:, L][:, None] & starts[:, 0][None, :])
        loop_parts["m"].append(np.full(len(e), mi))
        loop_parts["e"].append(e)
        loop_parts["d"].append(d0)
    hop = {k: np.concatenate(hop_parts[k]).astype(np.int64) if hop_parts[k] else np.zeros(0, np.int64)
           for k in "muvb"}
    loop = {k: np.concatenate(loop_parts[k]).astype(np.int64) if loop_parts[k] else np.zeros(0, np.int64)
            for k in "med"}
    H, W = len(hop["m"]), len(loop["m"])
    off_h, off_w = S, S + H

    # -- runtime levels (several models on one device pay the largest runtime once) -------
    lvl_d, lvl_step, lvl_rows = [], [], []
    if multi_model:
        for d in range(D):
            on_d = seg["d"] == d
            levels = np.unique(seg_rt[on_d])
            levels = levels[levels > 0]
            prev = 0.0
            for level in levels:
                k = len(lvl_d)
                lvl_d.append(d)
                lvl_step.append(level - prev)
                prev = level
                lvl_rows.append((k, on_d & (seg_rt >= level)))
    V = len(lvl_d)
    off_r = off_w + W
    N = off_r + V
    sidx = np.arange(S)
    hidx = off_h + np.arange(H)
    widx = off_w + np.arange(W)

    # -- structure rows --------------------------------------------------------------------
    st = _Rows(N)
    first = seg["a"] == 0
    last = seg["b"] == seg_L
    st.add_grouped(seg["m"][first], sidx[first], np.ones(first.sum()), 1.0, 1.0)
    for mi in range(len(models)):  # a model without any shard that could start it: the row 0 = 1
        if not np.any(first & (seg["m"] == mi)):
            st.add(np.zeros(0, np.int64), np.zeros(0), 1.0, 1.0)
    key = lambda m, d, b: (m * D + d) * (Lmax + 1) + b  # noqa: E731
    inner_end = ~last
    st.add_grouped(np.concatenate([key(seg["m"][inner_end], seg["d"][inner_end], seg["b"][inner_end]),
                                   key(hop["m"], hop["u"], hop["b"])]),
                   np.concatenate([sidx[inner_end], hidx]), np.concatenate([np.ones(inner_end.sum()), -np.ones(H)]),
                   0.0, 0.0)
    inner_start = ~first
    st.add_grouped(np.concatenate([key(seg["m"][inner_start], seg["d"][inner_start], seg["a"][inner_start]),
                                   key(hop["m"], hop["v"], hop["b"])]),
                   np.concatenate([sidx[inner_start], hidx]),
                   np.concatenate([np.ones(inner_start.sum()), -np.ones(H)]), 0.0, 0.0)
    st.add_grouped(np.concatenate([seg["m"][last] * D + seg["d"][last], loop["m"] * D + loop["e"]]),
                   np.concatenate([sidx[last], widx]), np.concatenate([-np.ones(last.sum()), np.ones(W)]), 0.0, 0.0)
    st.add_grouped(np.concatenate([seg["m"][first] * D + seg["d"][first], loop["m"] * D + loop["d"]]),
                   np.concatenate([sidx[first], widx]), np.concatenate([-np.ones(first.sum()), np.ones(W)]), 0.0, 0.0)
    if not order:
        st.add_grouped(seg["m"] * D + seg["d"], sidx, np.ones(S), -np.inf, 1.0)
    for k, members in lvl_rows:
        for mi in range(len(models)):
            cols = sidx[members & (seg["m"] == mi)]
            if len(cols):
                st.add(np.append(cols, off_r + k), np.append(np.ones(len(cols)), -1.0), -np.inf, 0.0)
    structure = st.matrix()

    # -- per-class metric vectors and resources ---------------------------------------------
    metric: dict[tuple[str, str], np.ndarray] = {}
    load_keys, load_cols, load_vals = [], [], []  # device busy share under the classes' rates
    resources: dict[str, sp.csr_matrix] = {}
    for mi, (model, requests, fmts) in enumerate(models):
        tables, tcs = per_model_tables[mi]
        L = model.num_blocks
        ms = np.flatnonzero(seg["m"] == mi)
        d, a, b, fi = seg["d"][ms], seg["a"][ms], seg["b"][ms], seg["f"][ms]
        mh = np.flatnonzero(hop["m"] == mi)
        hu, hv = hop["u"][mh], hop["v"][mh]
        mw = np.flatnonzero(loop["m"] == mi)
        we, wd = loop["e"][mw], loop["d"][mw]
        for r in requests:
            tc = tcs[r.id]
            steps = max(r.output_tokens - 1, 0)
            pre = np.zeros(len(ms))
            dec = np.zeros(len(ms))
            for k, f in enumerate(fmts):
                bc = tables[(r.id, f)]
                sel = fi == k
                cp, cd, _ = bc.cumulative()
                pre[sel] = cp[d[sel], b[sel]] - cp[d[sel], a[sel]] + bc.prefill_overhead_s[d[sel]]
                dec[sel] = cd[d[sel], b[sel]] - cd[d[sel], a[sel]] + bc.decode_overhead_s[d[sel]]
            at0, atL = a == 0, b == L
            power = tables[(r.id, fmts[0])].active_power_w[d]
            ttft, tpot, energy = np.zeros(N), np.zeros(N), np.zeros(N)
            ttft[ms] = pre + np.where(at0, tc.upload_s[d], 0.0) + np.where(atL, tc.return_s[d], 0.0)
            ttft[off_h + mh] = tc.prefill_hop_s[hu, hv]
            tpot[ms] = dec
            tpot[off_h + mh] = tc.decode_hop_s[hu, hv]
            tpot[off_w + mw] = tc.loop_s[we, wd]
            busy = pre + steps * dec
            energy[ms] = (power * busy / r.batch + np.where(at0, tc.upload_j[d], 0.0)
                          + np.where(atL, max(r.output_tokens, 1) * tc.return_j[d], 0.0))
            energy[off_h + mh] = (tc.prefill_hop_j[hu, hv] + steps * tc.decode_hop_j[hu, hv]) / r.batch
            energy[off_w + mw] = steps * tc.loop_j[we, wd] / r.batch
            metric[(r.id, "ttft")] = ttft
            metric[(r.id, "tpot")] = tpot
            metric[(r.id, "e2e")] = ttft + steps * tpot
            metric[(r.id, "energy")] = energy
            if r.rate_rps:
                load_keys.append(d)
                load_cols.append(ms)
                load_vals.append(r.rate_rps * busy / r.batch)
            resources[r.id] = _resources(problem, model.id, r, tc, D, N, L, ms, d, a, b, dec, off_h + mh, hu, hv,
                                         off_w + mw, we, wd)

    # -- limit families ---------------------------------------------------------------------
    families: dict[tuple, tuple[sp.csr_matrix, np.ndarray]] = {}
    cap = np.array([n.usable_memory_gb * GIB * (1.0 - problem.constraints.memory_headroom) for n in topo.nodes])
    mem = _Rows(N)
    lvl_d_arr = np.array(lvl_d, dtype=np.int64)
    mem.add_grouped(np.concatenate([seg["d"], lvl_d_arr]), np.concatenate([sidx, off_r + np.arange(V)]),
                    np.concatenate([seg_mem_b / cap[seg["d"]], np.array(lvl_step) / cap[lvl_d_arr]]), -np.inf, 1.0)
    A, _, hi = mem.matrix()
    families[("memory",)] = (A, hi)
    for _, requests, _ in models:
        for r in requests:
            for name, limit in r.slo.items():
                metric_name = name.replace("_ms", "")
                row = metric[(r.id, metric_name)] / (limit * 1e-3)
                families[("slo", r.id, metric_name)] = (sp.csr_matrix(row), np.array([1.0]))
    if load_keys:
        busy_rows = _Rows(N)
        busy_rows.add_grouped(np.concatenate(load_keys), np.concatenate(load_cols), np.concatenate(load_vals),
                              -np.inf, 1.0)
        A, _, hi = busy_rows.matrix()
        families[("load",)] = (A, hi)
    floor = problem.constraints.quality_floor
    if floor is not None:
        for mi, (model, _, fmts) in enumerate(models):
            quality = np.array([weight_format(f).quality for f in fmts])
            ms = np.flatnonzero(seg["m"] == mi)
            loss = (1.0 - quality[seg["f"][ms]]) * (seg["b"][ms] - seg["a"][ms]) / model.num_blocks
            row = np.zeros(N)
            row[ms] = loss
            families[("quality", model.id)] = (sp.csr_matrix(row), np.array([1.0 - floor]))
    max_ones = len(models) * (2 * D + 1) + V
    stats = {"segments": S, "hops": H, "loops": W, "runtime_levels": V}
    return Formulation(problem, models, seg, N, structure, families, metric, resources, max_ones, stats)


def _resources(problem: Problem, model_id: str, r: RequestClass, tc, D: int, N: int, L: int, ms, d, a, b, dec,
               hcols, hu, hv, wcols, we, wd) -> sp.csr_matrix:
    """Busy seconds per decode token of ``r`` on each resource: devices ``0..D-1``, then the
    channel of each ordered pair ``(u, v)`` at ``D + u * D + v`` (see ``route_resource_seconds``)."""
    topo = problem.topology
    devsec = dec / r.batch
    for dd in np.unique(d):
        measured = topo.nodes[dd].profile_for(model_id)
        if measured is not None and measured.throughput_tokens_per_s:
            sel = d == dd
            devsec[sel] = [1.0 / measured.throughput_at(int(k)) for k in (b[sel] - a[sel])]
    src = topo.index[r.source]
    ret = (b == L) & (d != src)
    hop_ch = hu != hv
    loop_ch = we != wd
    rows = np.concatenate([d, D + hu[hop_ch] * D + hv[hop_ch], D + we[loop_ch] * D + wd[loop_ch], D + d[ret] * D + src])
    cols = np.concatenate([ms, hcols[hop_ch], wcols[loop_ch], ms[ret]])
    vals = np.concatenate([devsec, tc.hop_token_s[hu[hop_ch], hv[hop_ch]], tc.loop_token_s[we[loop_ch], wd[loop_ch]],
                           tc.return_token_s[d[ret]]])
    R = sp.csr_matrix((vals, (rows, cols)), shape=(D + D * D, N))
    R.sum_duplicates()
    return R


# -- programs built from the formulation --------------------------------------------------


def _objective_vector(form: Formulation) -> np.ndarray:
    weights = form.problem.request_weights()
    c = np.zeros(form.num_vars)
    for name, weight in form.problem.objective.terms:
        key = "e2e" if name == "latency" else name
        for rid, w in weights.items():
            if (rid, key) in form.metric:
                c += weight * w * _SCALE[name] * form.metric[(rid, key)]
    return c


def _throughput_mode(problem: Problem) -> str:
    classes = [r for m in problem.models for r in problem.requests_for(m.id)]
    return "scale" if len(classes) == 1 or all(r.rate_rps for r in classes) else "free"


def _demand(r: RequestClass) -> float:
    return (r.rate_rps or 1.0) * max(r.output_tokens, 1)


def _stack(form: Formulation, blocks: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]], extra: int,
           c_extra: np.ndarray, lo_extra: np.ndarray, hi_extra: np.ndarray, c: np.ndarray) -> MILP:
    A = sp.vstack([sp.hstack([blk[0], sp.csr_matrix((blk[0].shape[0], extra))]) if extra else blk[0]
                   for blk in blocks]).tocsr()
    return MILP(
        c=np.concatenate([c, c_extra]), A=A,
        row_lo=np.concatenate([blk[1] for blk in blocks]), row_hi=np.concatenate([blk[2] for blk in blocks]),
        var_lo=np.concatenate([np.zeros(form.num_vars), lo_extra]),
        var_hi=np.concatenate([np.ones(form.num_vars), hi_extra]),
        integer=np.concatenate([np.ones(form.num_vars, bool), np.zeros(extra, bool)]),
        max_ones=form.max_ones)


def _limit_blocks(form: Formulation, families, hi_shift: dict | None = None) -> list:
    out = []
    for fam in families:
        A, hi = form.families[fam]
        hi = hi - (hi_shift or {}).get(fam, 0.0)
        out.append((A, np.full(len(hi), -np.inf), hi))
    return out


def _program(form: Formulation, hi_shift: dict | None = None) -> tuple[MILP, dict[str, Any]]:
    """The program for the problem's objective with every limit; ``info`` says how to read it."""
    problem = form.problem
    blocks = [form.structure] + _limit_blocks(form, form.families, hi_shift)
    n = form.num_vars
    if problem.objective.name != "throughput":
        return _stack(form, blocks, 0, np.zeros(0), np.zeros(0), np.zeros(0), _objective_vector(form)), {"mode": "min"}
    requests = [r for _, reqs, _ in form.models for r in reqs]
    if _throughput_mode(problem) == "scale":
        load = sum(_demand(r) * form.resources[r.id] for r in requests)
        load = load[np.flatnonzero(load.getnnz(axis=1))]
        t_hi = float(load.sum(axis=1).max()) if load.shape[0] else 1.0
        rows = sp.hstack([load, -np.ones((load.shape[0], 1))]).tocsr()
        milp = _stack(form, blocks, 1, np.array([1.0]), np.zeros(1), np.array([max(t_hi, 1e-12)]), np.zeros(n))
        milp.A = sp.vstack([milp.A, rows]).tocsr()
        milp.row_lo = np.concatenate([milp.row_lo, np.full(load.shape[0], -np.inf)])
        milp.row_hi = np.concatenate([milp.row_hi, np.zeros(load.shape[0])])
        return milp, {"mode": "scale", "load": load, "demand": sum(_demand(r) for r in requests)}
    return _free_rate_program(form, blocks, requests)


def _free_rate_program(form: Formulation, blocks, requests) -> tuple[MILP, dict[str, Any]]:
    """Max total tokens/s with free per-class rates ``x_c``: resource rows ``sum_c x_c t_c(y) <= 1``
    with each product ``x_c y_j`` replaced by ``p >= x_c - U_c (1 - y_j)``, exact for binary ``y``
    (``p`` only appears with positive coefficients in ``<=`` rows)."""
    n = form.num_vars
    C = len(requests)
    pairs = []  # (class, var)
    ubs = []
    for k, r in enumerate(requests):
        R = form.resources[r.id]
        per_block = R.sum(axis=0).A1  # a route's resource seconds per token, summed over resources
        seg_len = np.zeros(n)
        seg_len[: len(form.seg["m"])] = form.seg["b"] - form.seg["a"]
        mine = (seg_len > 0) & (per_block > 0)
        L = form.problem.model(r.model).num_blocks
        least = L * float(np.min(per_block[mine] / seg_len[mine])) if mine.any() else 0.0
        # Every route spends at least `least` seconds per token over at most D resources.
        ubs.append(len(form.problem.topology.nodes) / least if least > 0 else 1e12)
        cols = np.flatnonzero(R.getnnz(axis=0))
        pairs.extend((k, j) for j in cols)
    P = len(pairs)
    extra = C + P
    pk = np.array([k for k, _ in pairs], dtype=np.int64)
    pj = np.array([j for _, j in pairs], dtype=np.int64)
    U = np.array(ubs)
    # Resource rows over p.
    res_rows, res_cols, res_vals = [], [], []
    for k, r in enumerate(requests):
        R = form.resources[r.id].tocoo()
        lookup = {j: i for i, j in enumerate(pj) if pk[i] == k}
        res_rows.append(R.row)
        res_cols.append(n + C + np.array([lookup[j] for j in R.col], dtype=np.int64))
        res_vals.append(R.data)
    rr, rc, rv = np.concatenate(res_rows), np.concatenate(res_cols), np.concatenate(res_vals)
    used, rr = np.unique(rr, return_inverse=True)
    res = sp.csr_matrix((rv, (rr, rc)), shape=(len(used), n + extra))
    # McCormick rows: x_k - p + U_k y_j <= U_k.
    i = np.arange(P)
    mc = sp.csr_matrix((np.concatenate([np.ones(P), -np.ones(P), U[pk]]),
                        (np.concatenate([i, i, i]), np.concatenate([n + pk, n + C + i, pj]))), shape=(P, n + extra))
    c_extra = np.concatenate([-np.ones(C), np.zeros(P)])
    hi_extra = np.concatenate([U, U[pk]])
    milp = _stack(form, blocks, extra, c_extra, np.zeros(extra), hi_extra, np.zeros(n))
    milp.A = sp.vstack([milp.A, res, mc]).tocsr()
    milp.row_lo = np.concatenate([milp.row_lo, np.full(len(used) + P, -np.inf)])
    milp.row_hi = np.concatenate([milp.row_hi, np.ones(len(used)), U[pk]])
    return milp, {"mode": "free", "requests": requests}


def _plan_value(form: Formulation, info: dict[str, Any], x: np.ndarray) -> float:
    """The objective of the plan ``x`` (binary part), from the formulation's own arrays."""
    n = form.num_vars
    y = x[:n]
    if info["mode"] == "min":
        return float(_objective_vector(form) @ y)
    if info["mode"] == "scale":
        worst = float(np.max(info["load"] @ y))
        return info["demand"] / worst if worst > 0 else math.inf
    A = np.column_stack([form.resources[r.id] @ y for r in info["requests"]])
    A = A[np.any(A > 0, axis=1)]
    result = linprog(-np.ones(A.shape[1]), A_ub=A, b_ub=np.ones(A.shape[0]), bounds=(0, None), method="highs")
    return float(-result.fun) if result.status == 0 else 0.0


def _plan_bound(info: dict[str, Any], result: MILPResult, objective: float) -> float | None:
    """A proven bound on the optimum in the objective's own units (upper for throughput)."""
    if result.bound is None:
        return None
    if info["mode"] == "min":
        return min(result.bound, objective) if math.isfinite(objective) else result.bound
    if info["mode"] == "scale":
        upper = info["demand"] / result.bound if result.bound > 0 else None
    else:
        upper = -result.bound
    return max(upper, objective) if upper is not None else None


def _pipelines(form: Formulation, x: np.ndarray) -> list[Pipeline]:
    chosen = np.flatnonzero(x[: len(form.seg["m"])] > 0.5)
    topo = form.problem.topology
    out = []
    for mi, (model, requests, fmts) in enumerate(form.models):
        mine = sorted((int(form.seg["a"][s]), s) for s in chosen if form.seg["m"][s] == mi)
        stages = []
        for a, s in mine:
            fmt = fmts[form.seg["f"][s]]
            stages.append(StageSpec(topo.nodes[form.seg["d"][s]].id, a, int(form.seg["b"][s]),
                                    None if fmt == model.weight_format else fmt))
        out.append(Pipeline(model.id, tuple(r.id for r in requests), tuple(stages)))
    return out


def _violated_families(form: Formulation, x: np.ndarray) -> dict[tuple, float]:
    """Each family row the plan ``x`` breaks (in the program's own arithmetic), by how much."""
    out = {}
    for fam, (A, hi) in form.families.items():
        excess = float(np.max(A @ x[: form.num_vars] - hi)) if A.shape[0] else -1.0
        if excess > -_LIMIT_TOL * 1e-3:
            out[fam] = max(excess, 0.0) + 1e-12
    return out


# About a kilobyte of memory per variable while building and solving (measured: 1.03 M
# variables, 1.2 GB); above this the program would not fit a workstation's memory.
MAX_VARIABLES = 2_000_000


def estimated_variables(problem: Problem) -> int:
    """An upper bound on the program's variables: shards, hops and loops of every model."""
    D = len(problem.constraints.device_order or problem.topology.nodes)
    total = 0
    for model in problem.models:
        if problem.requests_for(model.id):
            L, F = model.num_blocks, len(model.formats)
            total += D * L * (L + 1) // 2 * F + D * D * max(L - 1, 0) + D * D
    return total


def ilp_unsupported(problem: Problem) -> list[str]:
    """What ilp refuses beyond its capability flags (the registry's precondition)."""
    n = estimated_variables(problem)
    if n > MAX_VARIABLES:
        return [f"a program of up to {n:,} variables (more than {MAX_VARIABLES:,}: too large for memory); "
                "dp and matching scale to it"]
    return []


def solve_ilp(problem: Problem, params: Any, options: dict[str, Any]) -> Plan:
    """Solve ``problem`` as one mixed-integer program (see the module docstring).

    Parameters
    ----------
    problem : Problem
    params : SolveParams
        ``time_limit_s`` (wall clock, building included), ``threads``, ``seed``
        and ``rel_gap`` go to the backend.
    options : dict
        ``backend``: ``highs`` (default), ``cbc``, ``cpsat`` or ``scip``.

    Returns
    -------
    Plan
        ``optimal`` with its proven bound when the backend proves it (within
        ``rel_gap``), ``feasible`` with bound and gap when stopped by the time
        limit, ``infeasible`` with reasons when proven, ``no_solution`` otherwise.

    Examples
    --------
    >>> from placement import load_instance
    >>> plan = solve_ilp(load_instance("instances/device-edge-cloud.yaml"),
    ...                  SolveParams(), {"backend": "highs"})   # doctest: +SKIP
    """
    started = time.perf_counter()
    backend = options.get("backend", "highs")
    if backend not in BACKENDS:
        raise UnsupportedProblemError(f"unknown backend {backend!r} for ilp (expected one of {', '.join(BACKENDS)})")
    if backend == "cpsat" and problem.objective.name == "throughput" and _throughput_mode(problem) == "free":
        raise UnsupportedProblemError(
            "ilp's cpsat backend does not take throughput over several request classes without rate_rps (that "
            "program multiplies continuous rates by binaries, which CP-SAT's integers cannot hold exactly); "
            "use backend highs, scip or cbc, or give every class a rate_rps")
    deadline = started + params.time_limit_s

    def run(milp: MILP) -> MILPResult:
        return solve_milp(milp, backend, time_limit_s=deadline - time.perf_counter(), threads=params.threads,
                          seed=params.seed, rel_gap=params.rel_gap, verbose=params.verbose)

    form = build_formulation(problem)
    milp, info = _program(form)
    build_s = time.perf_counter() - started
    result = run(milp)
    first_bound = result
    rounds = 0
    # A backend's float tolerances may leave a limit broken by a hair; tighten that row and re-solve.
    while result.x is not None and rounds < 3 and time.perf_counter() < deadline:
        pipelines = _pipelines(form, result.x)
        if any(not pipe.stages for pipe in pipelines):
            break
        shards, routes = assemble(pipelines)
        if evaluate(problem, Plan(shards=shards, routes=routes)).feasible:
            break
        shift = _violated_families(form, result.x)
        if not shift:
            break
        rounds += 1
        milp, info = _program(form, {k: v * (2 ** rounds) for k, v in shift.items()})
        result = run(milp)
    stats = {**form.stats, **result.stats, "build_time_s": round(build_s, 4), "tighten_rounds": rounds,
             "throughput_model": info["mode"] if info["mode"] != "min" else None}
    stats = {k: v for k, v in stats.items() if v is not None}
    common = dict(backend=backend, stats=stats)

    if result.status == "infeasible":
        reasons = _diagnose(form, run, deadline, backend)
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, reasons=tuple(reasons), **common)
    if result.x is None:
        status = Status.NO_SOLUTION if result.status != "error" else Status.ERROR
        term = Termination.TIME_LIMIT if result.time_limited else Termination.ERROR
        reasons = (result.message,) if result.message and status == Status.ERROR else \
            (f"no plan found within {params.time_limit_s:g} s",)
        return Plan(status=status, termination=term, reasons=reasons, **common)

    pipelines = _pipelines(form, result.x)
    if any(not pipe.stages for pipe in pipelines):  # a backend answer that is not a set of pipelines
        return Plan(status=Status.ERROR, termination=Termination.ERROR,
                    reasons=(f"backend {backend} returned a solution without a pipeline",), **common)
    shards, routes = assemble(pipelines)
    objective = _plan_value(form, info, result.x)
    bound = _plan_bound(info, first_bound, objective)  # tightened re-solves prove less: keep the first bound
    gap = abs(objective - bound) / max(abs(objective), 1e-12) if bound is not None else None
    if result.status == "optimal" and gap is not None and gap <= 1e-9:
        status, term, bound, gap = Status.OPTIMAL, Termination.CONVERGED, objective, 0.0
    elif result.status == "optimal":
        status, term = Status.OPTIMAL, Termination.GAP_REACHED
    else:
        status, term = Status.FEASIBLE, Termination.TIME_LIMIT
    return Plan(shards=shards, routes=routes, status=status, termination=term, objective=objective,
                bound=bound, gap=gap, **common)


# -- explaining infeasibility --------------------------------------------------------------


def _measure(form: Formulation, fam: tuple, others: list[tuple], run) -> MILPResult:
    """Minimise family ``fam``'s worst row relative to its limit (``u``: 1.0 = at the limit),
    subject to the structure and the ``others`` families."""
    A, hi = form.families[fam]
    blocks = [form.structure] + _limit_blocks(form, others)
    if fam[0] == "quality":  # the quality loss itself (its limit may be 0)
        return run(_stack(form, blocks, 0, np.zeros(0), np.zeros(0), np.zeros(0), A.toarray()[0]))
    u_hi = float(np.max(np.asarray(A.sum(axis=1)).ravel() / hi)) + 1.0
    milp = _stack(form, blocks, 1, np.array([1.0]), np.zeros(1), np.array([u_hi]), np.zeros(form.num_vars))
    rows = sp.hstack([sp.diags(1.0 / hi) @ A, -np.ones((A.shape[0], 1))]).tocsr()
    milp.A = sp.vstack([milp.A, rows]).tocsr()
    milp.row_lo = np.concatenate([milp.row_lo, np.full(A.shape[0], -np.inf)])
    milp.row_hi = np.concatenate([milp.row_hi, np.zeros(A.shape[0])])
    return run(milp)


def _reason(form: Formulation, fam: tuple, bound: float, alone: bool) -> str:
    problem = form.problem
    ctx = "" if alone else " together with the other limits"
    if fam[0] == "memory":
        return (f"memory: every plan{ctx} needs at least {bound:.1%} of some device's usable memory "
                f"(weights, KV cache, workspace and runtime)")
    if fam[0] == "load":
        return (f"load: at the workload's request rates every plan{ctx} keeps some device busy at least "
                f"{bound:.0%} of the time")
    if fam[0] == "slo":
        _, rid, name = fam
        limit = dict(problem.request(rid).slo.items())[f"{name}_ms"]
        return (f"SLO: request {rid} cannot reach {name.upper()} {limit:g} ms: every plan{ctx} takes at least "
                f"{bound * limit:.1f} ms")
    floor = problem.constraints.quality_floor
    return (f"quality: the routes of model {fam[1]} reach at most quality {1.0 - bound:.4f}{ctx} "
            f"(block-weighted weight-format quality), below the floor {floor:g}")


def _exceeds(fam: tuple, form: Formulation, result: MILPResult) -> float | None:
    """The proven least value of ``fam``'s measure when it breaks the limit, else ``None``."""
    if result.bound is None:
        return None
    if fam[0] == "quality":
        limit = float(form.families[fam][1][0])
        return result.bound if result.bound > limit + _LIMIT_TOL else None
    return result.bound if result.bound > 1.0 + _LIMIT_TOL else None


def _structure_reason(form: Formulation) -> list[str]:
    topo = form.problem.topology
    out = []
    for mi, (model, requests, _) in enumerate(form.models):
        mine = form.seg["m"] == mi
        most = {}
        for d, a, b in zip(form.seg["d"][mine], form.seg["a"][mine], form.seg["b"][mine]):
            most[int(d)] = max(most.get(int(d), 0), int(b - a))
        held = ", ".join(f"{topo.nodes[d].id} {k}" for d, k in sorted(most.items())) or "none"
        sources = ", ".join(sorted({r.source for r in requests}))
        out.append(f"memory: model {model.id} has {model.num_blocks} blocks but no pipeline of distinct devices "
                   f"reachable from {sources} can hold them: within each device's memory (and profile max_layers) "
                   f"the most blocks a device can hold are: {held} ({sum(most.values())} in all)")
    return out


def _diagnose(form: Formulation, run, deadline: float, backend: str) -> list[str]:
    """Reasons a proven-infeasible program has no solution, each with a proven number.

    Each limit family is measured alone (structure only), then against all the
    others; families whose measure is a plain objective (SLOs, quality) go
    first, and a family that a solution already found meets is not measured.
    """
    empty = np.zeros(0)
    structure_only = _stack(form, [form.structure], 0, empty, empty, empty, np.zeros(form.num_vars))
    first = run(structure_only)
    if not form.families or first.status == "infeasible":
        return _structure_reason(form)
    fams = sorted(form.families, key=lambda f: f[0] in ("memory", "load"))
    seen = [first.x[: form.num_vars]] if first.x is not None else []

    def met(fam: tuple) -> bool:
        A, hi = form.families[fam]
        return any(np.all(A @ x <= hi + _LIMIT_TOL) for x in seen)

    for alone in (True, False):
        reasons = []
        for fam in fams:
            if time.perf_counter() >= deadline:
                break
            if alone and met(fam):
                continue
            res = _measure(form, fam, [] if alone else [f for f in fams if f != fam], run)
            if res.x is not None:
                seen.append(res.x[: form.num_vars])
            value = _exceeds(fam, form, res)
            if value is not None:
                reasons.append(_reason(form, fam, value, alone))
        if reasons:
            return reasons
    names = ", ".join(" ".join(map(str, f)) for f in fams)
    return [f"the limits ({names}) cannot all be met at once, though each can be met alone "
            f"(proven infeasible by {backend})"]
