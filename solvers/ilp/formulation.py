"""The placement program's variables and rows, built in named blocks from the cost table.

Each model gets one pipeline: an ordered sequence of distinct devices, each
holding one contiguous range of blocks (in one weight format), serving all of the
model's request classes. The program is a *segment* formulation, a shortest path
with side constraints:

- :func:`segments`: ``y[m, d, a, b, f]`` = 1 when device ``d`` holds blocks
  ``[a, b)`` of model ``m`` in format ``f``. Any per-shard figure, however
  non-additive (a tied head shared only when one shard holds every block, the
  head's workspace, a measured tokens/s at ``b - a`` layers, ``max_layers``), is
  an exact coefficient of one variable; shards that cannot fit their device
  alone are never created.
- :func:`hops_and_loops`: ``h[m, u, v, b]`` = 1 when the shard on ``u`` ends at
  block ``b`` and the one on ``v`` starts there; ``w[m, e, d]`` = 1 when ``e``
  holds the last shard and ``d`` the first (its rows sum to "last is e" and its
  columns to "first is d", so for integer shards ``w`` is their product, which
  prices the sampled token's loop).
- :func:`runtime_levels`: with several models, a device pays the largest engine
  runtime of what it holds once.
- :func:`structure_rows`: flow conservation at every (block, device) makes the
  shards one path from block 0 to block L; each device serves a model at most
  once (with ``constraints.device_order`` the devices follow that order);
  interchangeable devices are used in index order (:func:`symmetry_rows`).
- :func:`class_vectors`: per request class, its TTFT, TPOT, E2E and energy as
  coefficients (the table's :func:`~placement.costs.chains.additive_terms`), its
  device load at the class's request rate, and its per-token use of every
  resource (devices, links, NICs) for throughput.
- :func:`limit_families`: memory per device, SLOs per class, load, quality floor.

Every number is read from :func:`placement.costs.cost_table`; nothing here
derives a cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from placement import Problem, cost_table
from placement.costs import CostTable
from placement.costs.chains import additive_terms, metric_coefficients
from placement.costs.symmetry import interchangeable_devices

__all__ = ["Formulation", "build_formulation", "Rows"]


class Rows:
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


@dataclass
class Formulation:
    """The placement program's pieces, shared by the solve and the infeasibility diagnosis.

    Variables are ``[segments | hops | loops | runtime levels]`` (all binary);
    ``structure`` rows make them a set of pipelines; ``families`` maps each
    limit (``("memory",)``, ``("slo", request, metric)``, ``("load",)``,
    ``("quality", model)``) to its rows ``A x <= hi``; ``metric`` maps
    ``(request, ttft|tpot|e2e|energy)`` to its coefficients (ms or J per unit);
    ``resources`` maps a request class to its ``[resource, var]`` busy seconds per
    decode token (resources as in ``cost_table(problem).resources``).
    """

    problem: Problem
    models: list  # [(ModelSpec, requests, formats)]
    seg: dict[str, np.ndarray]  # m, d, a, b, f
    hop: dict[str, np.ndarray]  # m, u, v, b
    loop: dict[str, np.ndarray]  # m, e, d
    num_vars: int
    structure: tuple[sp.csr_matrix, np.ndarray, np.ndarray]
    families: dict[tuple, tuple[sp.csr_matrix, np.ndarray]]
    metric: dict[tuple[str, str], np.ndarray]
    resources: dict[str, sp.csr_matrix]
    max_ones: int
    stats: dict[str, Any] = field(default_factory=dict)
    level_members: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (level, segments it covers)

    @property
    def offsets(self) -> tuple[int, int, int]:
        """Where hops, loops and runtime levels start among the variables."""
        S, H, W = len(self.seg["m"]), len(self.hop["m"]), len(self.loop["m"])
        return S, S + H, S + H + W


def _placed_models(problem: Problem) -> list:
    return [(m, problem.requests_for(m.id), m.formats) for m in problem.models if problem.requests_for(m.id)]


@dataclass(frozen=True)
class _DeviceSpace:
    """Which devices may hold shards, which may follow which, and which may close a loop."""

    allowed: np.ndarray  # [D]
    forward: np.ndarray  # [D(u), D(v)]: v may follow u
    loop_ok: np.ndarray  # [D(last), D(first)]
    ordered: bool


def _device_space(problem: Problem) -> _DeviceSpace:
    topo = problem.topology
    D = len(topo.nodes)
    order = problem.constraints.device_order
    rank = {topo.index[d]: k for k, d in enumerate(order)} if order else {d: 0 for d in range(D)}
    allowed = np.array([d in rank for d in range(D)])
    r = np.array([rank.get(d, -1) for d in range(D)])
    both = allowed[:, None] & allowed[None, :]
    forward = both & ~np.eye(D, dtype=bool) & ((r[:, None] < r[None, :]) if order else True)
    loop_ok = both & ((r[None, :] <= r[:, None]) if order else True)
    return _DeviceSpace(allowed, forward, loop_ok, bool(order))


def segments(problem: Problem, table: CostTable, models: list, space: _DeviceSpace
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Candidate shards that fit their device alone: ``seg`` (m, d, a, b, f), their bytes before
    runtime, and their device's runtime for their format."""
    parts: dict[str, list] = defaultdict(list)
    mem_parts, runtime_parts = [], []
    for mi, (model, requests, fmts) in enumerate(models):
        L = model.num_blocks
        a_all, b_all = np.triu_indices(L + 1, k=1)
        reach_ok = np.ones((len(space.allowed), len(a_all)), dtype=bool)
        for r in requests:  # a first stage must receive the prompt, a last one return tokens
            tc = table.transfers(r)
            reach_ok &= np.isfinite(np.where(a_all[None] == 0, tc.upload_s[:, None], 0.0))
            reach_ok &= np.isfinite(np.where(b_all[None] == L, tc.return_s[:, None], 0.0))
        most = table.max_blocks(model.id)
        for fi, f in enumerate(fmts):
            mem = table.shard_memory_bytes(model.id, f, a_all, b_all, requests)
            runtime = table.runtime_bytes(f)
            for d in np.flatnonzero(space.allowed):
                keep = ((b_all - a_all) <= most[d]) & (mem + runtime[d] <= table.capacity_bytes[d]) & reach_ok[d]
                n = int(keep.sum())
                for key, val in (("m", mi), ("d", d), ("f", fi)):
                    parts[key].append(np.full(n, val))
                parts["a"].append(a_all[keep])
                parts["b"].append(b_all[keep])
                mem_parts.append(mem[keep])
                runtime_parts.append(np.full(n, runtime[d]))
    seg = {k: np.concatenate(parts[k]).astype(np.int64) if parts[k] else np.zeros(0, np.int64) for k in "mdfab"}
    mem = np.concatenate(mem_parts) if mem_parts else np.zeros(0)
    runtime = np.concatenate(runtime_parts) if runtime_parts else np.zeros(0)
    return seg, mem, runtime


def hops_and_loops(table: CostTable, models: list, seg: dict[str, np.ndarray], space: _DeviceSpace
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Activation hops ``(m, u, v, b)`` between segments that can meet, and loops ``(m, e, d)``."""
    D = len(space.allowed)
    hop_parts, loop_parts = defaultdict(list), defaultdict(list)
    for mi, (model, requests, _) in enumerate(models):
        L = model.num_blocks
        mine = seg["m"] == mi
        ends, starts = np.zeros((D, L + 1), dtype=bool), np.zeros((D, L + 1), dtype=bool)
        ends[seg["d"][mine], seg["b"][mine]] = True
        starts[seg["d"][mine], seg["a"][mine]] = True
        hop_fin, loop_fin = np.ones((D, D), dtype=bool), np.ones((D, D), dtype=bool)
        for r in requests:
            tc = table.transfers(r)
            hop_fin &= np.isfinite(tc.prefill_hop_s) & np.isfinite(tc.decode_hop_s)
            loop_fin &= np.isfinite(tc.loop_s)
        u, v, bb = np.nonzero((space.forward & hop_fin)[:, :, None] & ends[:, None, 1:L] & starts[None, :, 1:L])
        for key, val in (("m", np.full(len(u), mi)), ("u", u), ("v", v), ("b", bb + 1)):
            hop_parts[key].append(val)
        e, d0 = np.nonzero(space.loop_ok & loop_fin & ends[:, L][:, None] & starts[:, 0][None, :])
        for key, val in (("m", np.full(len(e), mi)), ("e", e), ("d", d0)):
            loop_parts[key].append(val)
    hop = {k: np.concatenate(hop_parts[k]).astype(np.int64) if hop_parts[k] else np.zeros(0, np.int64) for k in "muvb"}
    loop = {k: np.concatenate(loop_parts[k]).astype(np.int64) if loop_parts[k] else np.zeros(0, np.int64)
            for k in "med"}
    return hop, loop


def runtime_levels(seg: dict[str, np.ndarray], runtime: np.ndarray, D: int, multi_model: bool
                   ) -> tuple[list[int], list[float], list[tuple[int, np.ndarray]]]:
    """Runtime levels per device: several models on one device pay its largest runtime once.

    Returns each level's device, its step above the previous level, and the segments it covers.
    """
    devices, steps, rows = [], [], []
    if not multi_model:
        return devices, steps, rows
    for d in range(D):
        on_d = seg["d"] == d
        levels = np.unique(runtime[on_d])
        prev = 0.0
        for level in levels[levels > 0]:
            rows.append((len(devices), on_d & (runtime >= level)))
            devices.append(d)
            steps.append(level - prev)
            prev = level
    return devices, steps, rows


def symmetry_rows(st: "Rows", seg, classes) -> int:
    """Interchangeable devices in index order: a class's next member holds no more shards (over every
    model) than the one before it. Any plan can be renumbered within classes to meet these rows at the
    same cost, so they cut only copies of plans (the branch and bound's symmetric twins). Returns the
    number of rows added."""
    rows = 0
    for cls in classes:
        for d0, d1 in zip(cls, cls[1:]):
            on0, on1 = np.flatnonzero(seg["d"] == d0), np.flatnonzero(seg["d"] == d1)
            if len(on1):
                st.add(np.concatenate([on1, on0]), np.concatenate([np.ones(len(on1)), -np.ones(len(on0))]),
                       -np.inf, 0.0)
                rows += 1
    return rows


def structure_rows(models: list, seg, hop, loop, level_rows, D: int, N: int, offsets: tuple[int, int, int],
                   ordered: bool, classes=()) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Rows that make the binaries one pipeline per model (see the module docstring), and the
    symmetry rows of interchangeable devices (:func:`symmetry_rows`)."""
    off_h, off_w, off_r = offsets
    S, H, W = len(seg["m"]), len(hop["m"]), len(loop["m"])
    sidx, hidx, widx = np.arange(S), off_h + np.arange(H), off_w + np.arange(W)
    Lm = np.array([m.num_blocks for m, _, _ in models] or [0])
    seg_L = Lm[seg["m"]] if S else np.zeros(0, np.int64)
    Lmax = int(Lm.max()) if len(Lm) else 0
    st = Rows(N)
    first, last = seg["a"] == 0, seg["b"] == seg_L
    st.add_grouped(seg["m"][first], sidx[first], np.ones(first.sum()), 1.0, 1.0)
    for mi in range(len(models)):  # a model without any shard that could start it: the row 0 = 1
        if not np.any(first & (seg["m"] == mi)):
            st.add(np.zeros(0, np.int64), np.zeros(0), 1.0, 1.0)

    def key(m, d, b):
        return (m * D + d) * (Lmax + 1) + b

    inner_end, inner_start = ~last, ~first
    st.add_grouped(np.concatenate([key(seg["m"][inner_end], seg["d"][inner_end], seg["b"][inner_end]),
                                   key(hop["m"], hop["u"], hop["b"])]),
                   np.concatenate([sidx[inner_end], hidx]), np.concatenate([np.ones(inner_end.sum()), -np.ones(H)]),
                   0.0, 0.0)
    st.add_grouped(np.concatenate([key(seg["m"][inner_start], seg["d"][inner_start], seg["a"][inner_start]),
                                   key(hop["m"], hop["v"], hop["b"])]),
                   np.concatenate([sidx[inner_start], hidx]),
                   np.concatenate([np.ones(inner_start.sum()), -np.ones(H)]), 0.0, 0.0)
    st.add_grouped(np.concatenate([seg["m"][last] * D + seg["d"][last], loop["m"] * D + loop["e"]]),
                   np.concatenate([sidx[last], widx]), np.concatenate([-np.ones(last.sum()), np.ones(W)]), 0.0, 0.0)
    st.add_grouped(np.concatenate([seg["m"][first] * D + seg["d"][first], loop["m"] * D + loop["d"]]),
                   np.concatenate([sidx[first], widx]), np.concatenate([-np.ones(first.sum()), np.ones(W)]), 0.0, 0.0)
    if not ordered:
        st.add_grouped(seg["m"] * D + seg["d"], sidx, np.ones(S), -np.inf, 1.0)
    for k, members in level_rows:
        for mi in range(len(models)):
            cols = sidx[members & (seg["m"] == mi)]
            if len(cols):
                st.add(np.append(cols, off_r + k), np.append(np.ones(len(cols)), -1.0), -np.inf, 0.0)
    symmetry_rows(st, seg, classes)
    return st.matrix()


@dataclass(frozen=True)
class _ClassVectors:
    metric: dict[tuple[str, str], np.ndarray]
    load: tuple[list, list, list]  # device keys, columns, busy shares
    resources: dict[str, sp.csr_matrix]


def _network_matrix(table: CostTable, usage_of, pairs: list[tuple[int, int]]) -> sp.csr_matrix:
    """``[resource, pair]``: seconds per decode token of each pair's transfer on each resource."""
    rows, cols, vals = [], [], []
    for p, (u, v) in enumerate(pairs):
        for k, seconds in (usage_of(u, v) or {}).items():
            rows.append(k)
            cols.append(p)
            vals.append(seconds)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(table.resources), len(pairs)))


def _resources(table: CostTable, r, mi: int, seg, hop, loop, offsets, N: int, bcs: dict) -> sp.csr_matrix:
    """``[resource, var]`` busy seconds per decode token of class ``r``: stage devices (measured
    profiles included), the hops' and the loop's paths, the last stage's return to the source."""
    off_h, off_w, _ = offsets
    R = len(table.resources)
    ms, mh, mw = (np.flatnonzero(x["m"] == mi) for x in (seg, hop, loop))
    d, a, b, fi = seg["d"][ms], seg["a"][ms], seg["b"][ms], seg["f"][ms]
    device_s = np.zeros(len(ms))
    for k, bc in bcs.items():
        sel = fi == k
        device_s[sel] = bc.stage_token_s(d[sel], a[sel], b[sel])
    parts = [sp.csr_matrix((device_s, (d, ms)), shape=(R, N))]
    L = table.problem.model(r.model).num_blocks

    def place(usage_of, us, vs, columns):
        keys = sorted(set(zip(us.tolist(), vs.tolist())))
        if not keys:
            return
        at = {key: p for p, key in enumerate(keys)}
        P = _network_matrix(table, usage_of, keys).tocsc()
        sel = P[:, [at[(u, v)] for u, v in zip(us.tolist(), vs.tolist())]].tocoo()
        parts.append(sp.csr_matrix((sel.data, (sel.row, columns[sel.col])), shape=(R, N)))

    place(lambda u, v: table.hop_usage(r, u, v), hop["u"][mh], hop["v"][mh], off_h + mh)
    place(lambda u, v: table.loop_usage(r, u, v), loop["e"][mw], loop["d"][mw], off_w + mw)
    last = b == L
    place(lambda u, _: table.return_usage(r, u), d[last], np.zeros(int(last.sum()), dtype=np.int64), ms[last])
    total = parts[0]
    for extra in parts[1:]:
        total = total + extra
    return total.tocsr()


def class_vectors(table: CostTable, models: list, seg, hop, loop, offsets, N: int) -> _ClassVectors:
    """Per request class: metric coefficients, load entries and resource use (see the module docstring)."""
    off_h, off_w, _ = offsets
    metric: dict[tuple[str, str], np.ndarray] = {}
    load_keys, load_cols, load_vals = [], [], []
    resources: dict[str, sp.csr_matrix] = {}
    for mi, (model, requests, fmts) in enumerate(models):
        L = model.num_blocks
        ms, mh, mw = (np.flatnonzero(x["m"] == mi) for x in (seg, hop, loop))
        d, a, b, fi = seg["d"][ms], seg["a"][ms], seg["b"][ms], seg["f"][ms]
        hu, hv, we, wd = hop["u"][mh], hop["v"][mh], loop["e"][mw], loop["d"][mw]
        for r in requests:
            bcs = {k: table.blocks(r, weight_format=f) for k, f in enumerate(fmts)}
            for name in ("ttft", "tpot", "energy"):
                vec = np.zeros(N)
                scale = 1.0 if name == "energy" else 1e-3  # metric_coefficients gives ms; keep seconds here
                coefs = [tuple(scale * x for x in metric_coefficients(r, name))]
                for k, f in enumerate(fmts):
                    terms = additive_terms(table, [r], coefs, weight_format=f)
                    sel = fi == k
                    vec[ms[sel]] = (terms.stage(d[sel], a[sel], b[sel]) + np.where(a[sel] == 0, terms.first[d[sel]], 0.0)
                                    + np.where(b[sel] == L, terms.last[d[sel]], 0.0))
                    vec[off_h + mh] = terms.hop[hu, hv]
                    vec[off_w + mw] = terms.loop[we, wd]
                metric[(r.id, name)] = vec
            # E2E = TTFT + (g - 1) TPOT, as the table's routes combine them.
            metric[(r.id, "e2e")] = metric[(r.id, "ttft")] + bcs[0].steps * metric[(r.id, "tpot")]
            if table.rates_given([r]):
                busy = np.zeros(len(ms))
                for k, bc in bcs.items():
                    sel = fi == k
                    busy[sel] = table.stage_load(r, bc, d[sel], a[sel], b[sel])
                load_keys.append(d)
                load_cols.append(ms)
                load_vals.append(busy)
            resources[r.id] = _resources(table, r, mi, seg, hop, loop, offsets, N, bcs)
    return _ClassVectors(metric, (load_keys, load_cols, load_vals), resources)


def limit_families(problem: Problem, table: CostTable, models: list, seg, seg_mem, levels, vectors: _ClassVectors,
                   N: int, off_r: int, multi_model: bool, seg_runtime: np.ndarray
                   ) -> dict[tuple, tuple[sp.csr_matrix, np.ndarray]]:
    """Each limit as rows ``A x <= hi``, scaled so that 1 is the limit."""
    families: dict[tuple, tuple[sp.csr_matrix, np.ndarray]] = {}
    cap = table.capacity_bytes
    level_d, level_step, _ = levels
    mem = Rows(N)
    level_d_arr = np.array(level_d, dtype=np.int64)
    used = seg_mem + (0.0 if multi_model else seg_runtime)
    mem.add_grouped(np.concatenate([seg["d"], level_d_arr]), np.concatenate([np.arange(len(seg["m"])),
                                                                              off_r + np.arange(len(level_d))]),
                    np.concatenate([used / cap[seg["d"]], np.array(level_step) / cap[level_d_arr]]), -np.inf, 1.0)
    A, _, hi = mem.matrix()
    families[("memory",)] = (A, hi)
    for _, requests, _ in models:
        for r in requests:
            for name, limit in r.slo.items():
                metric_name = name.replace("_ms", "")
                row = vectors.metric[(r.id, metric_name)] / (limit * 1e-3)
                families[("slo", r.id, metric_name)] = (sp.csr_matrix(row), np.array([1.0]))
    keys, cols, vals = vectors.load
    if keys:
        busy = Rows(N)
        busy.add_grouped(np.concatenate(keys), np.concatenate(cols), np.concatenate(vals), -np.inf, 1.0)
        A, _, hi = busy.matrix()
        families[("load",)] = (A, hi)
    floor = problem.constraints.quality_floor
    if floor is not None:
        for mi, (model, _, fmts) in enumerate(models):
            ms = np.flatnonzero(seg["m"] == mi)
            loss = np.zeros(len(ms))
            for k, f in enumerate(fmts):
                sel = seg["f"][ms] == k
                loss[sel] = table.weights(model.id, f).quality_loss(seg["a"][ms][sel], seg["b"][ms][sel])
            row = np.zeros(N)
            row[ms] = loss
            families[("quality", model.id)] = (sp.csr_matrix(row), np.array([1.0 - floor]))
    return families


def build_formulation(problem: Problem) -> Formulation:
    """Variables, structure, limit rows and metric vectors of ``problem``'s program.

    Examples
    --------
    >>> from placement import load_instance
    >>> form = build_formulation(load_instance("instances/device-edge-cloud.yaml"))
    >>> form.num_vars > 0, sorted(form.families)
    (True, [('memory',), ('slo', 'chat', 'tpot'), ('slo', 'chat', 'ttft')])
    """
    table = cost_table(problem)
    D = table.num_devices
    models = _placed_models(problem)
    multi_model = len(models) > 1
    space = _device_space(problem)
    seg, seg_mem, seg_runtime = segments(problem, table, models, space)
    hop, loop = hops_and_loops(table, models, seg, space)
    levels = runtime_levels(seg, seg_runtime, D, multi_model)
    S, H, W, V = len(seg["m"]), len(hop["m"]), len(loop["m"]), len(levels[0])
    offsets = (S, S + H, S + H + W)
    N = S + H + W + V
    classes = [c for c in interchangeable_devices(problem) if len(c) > 1] if not space.ordered else []
    structure = structure_rows(models, seg, hop, loop, levels[2], D, N, offsets, space.ordered, classes)
    vectors = class_vectors(table, models, seg, hop, loop, offsets, N)
    families = limit_families(problem, table, models, seg, seg_mem, levels, vectors, N, offsets[2], multi_model,
                              seg_runtime)
    max_ones = len(models) * (2 * D + 1) + V
    stats = {"segments": S, "hops": H, "loops": W, "runtime_levels": V,
             "symmetric_devices": sum(len(c) for c in classes)}
    return Formulation(problem, models, seg, hop, loop, N, structure, families, vectors.metric, vectors.resources,
                       max_ones, stats, level_members=list(levels[2]))
