"""Programs built from the formulation, one per kind of objective.

- ``min``: latency / TTFT / TPOT / energy and weighted sums are linear in the binaries.
- ``scale``: throughput when the classes keep a fixed mix (one class, or every class
  with a request rate): a variable ``T`` bounds the busy seconds per second of every
  resource at unit scale, and ``T`` is minimised (tokens/s = demand / T).
- ``free``: throughput over classes of free rates: per-class rates times the
  binaries are linearised exactly (McCormick) and the total rate is maximised.

:func:`bound_in_units` turns a backend's bound into the objective's own units.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from placement import cost_table
from solvers.ilp.backends import MILP, MILPResult
from solvers.ilp.formulation import Formulation

__all__ = ["objective_vector", "program", "stack", "limit_blocks", "bound_in_units", "throughput_mode", "expand",
           "drop_columns", "with_start"]

_SCALE = {"latency": 1e3, "ttft": 1e3, "tpot": 1e3, "energy": 1.0}  # seconds -> ms; joules stay


def objective_vector(form: Formulation) -> np.ndarray:
    """The additive objective's coefficients, in its units (ms or J)."""
    weights = form.problem.request_weights()
    c = np.zeros(form.num_vars)
    for name, weight in form.problem.objective.terms:
        key = "e2e" if name == "latency" else name
        for rid, w in weights.items():
            if (rid, key) in form.metric:
                c += weight * w * _SCALE[name] * form.metric[(rid, key)]
    return c


def throughput_mode(form: Formulation) -> str:
    requests = [r for _, reqs, _ in form.models for r in reqs]
    return "scale" if len(requests) == 1 or cost_table(form.problem).rates_given(requests) else "free"


def stack(form: Formulation, blocks: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]], extra: int,
          c_extra: np.ndarray, lo_extra: np.ndarray, hi_extra: np.ndarray, c: np.ndarray) -> MILP:
    """The binaries with ``blocks`` of rows and ``extra`` continuous variables."""
    A = sp.vstack([sp.hstack([blk[0], sp.csr_matrix((blk[0].shape[0], extra))]) if extra else blk[0]
                   for blk in blocks]).tocsr()
    return MILP(
        c=np.concatenate([c, c_extra]), A=A,
        row_lo=np.concatenate([blk[1] for blk in blocks]), row_hi=np.concatenate([blk[2] for blk in blocks]),
        var_lo=np.concatenate([np.zeros(form.num_vars), lo_extra]),
        var_hi=np.concatenate([np.ones(form.num_vars), hi_extra]),
        integer=np.concatenate([np.ones(form.num_vars, bool), np.zeros(extra, bool)]),
        max_ones=form.max_ones)


def limit_blocks(form: Formulation, families, hi_shift: dict | None = None) -> list:
    """The rows of ``families``, each limit lowered by ``hi_shift`` where given."""
    out = []
    for fam in families:
        A, hi = form.families[fam]
        hi = hi - (hi_shift or {}).get(fam, 0.0)
        out.append((A, np.full(len(hi), -np.inf), hi))
    return out


def _append_rows(milp: MILP, rows: sp.csr_matrix, hi: np.ndarray) -> MILP:
    milp.A = sp.vstack([milp.A, rows]).tocsr()
    milp.row_lo = np.concatenate([milp.row_lo, np.full(rows.shape[0], -np.inf)])
    milp.row_hi = np.concatenate([milp.row_hi, hi])
    return milp


def program(form: Formulation, hi_shift: dict | None = None, better_than: float | None = None,
            eps: float = 1e-9) -> tuple[MILP, dict[str, Any]]:
    """The program for the problem's objective with every limit; ``info`` says how to read it.

    With ``better_than`` (an objective value in its own units, e.g. a warm start's), only plans
    better by a share ``eps`` are left: a cutoff row (a bound on the bottleneck for throughput),
    and for throughput the shards and transfers whose own load already reaches that bottleneck are
    dropped (``info["keep"]`` marks the columns kept; a solution is expanded with :func:`expand`).
    """
    problem = form.problem
    blocks = [form.structure] + limit_blocks(form, form.families, hi_shift)
    n = form.num_vars
    if problem.objective.name != "throughput":
        c = objective_vector(form)
        milp = stack(form, blocks, 0, np.zeros(0), np.zeros(0), np.zeros(0), c)
        if better_than is not None and np.isfinite(better_than):
            milp = _append_rows(milp, sp.csr_matrix(c[None]), np.array([better_than - eps * abs(better_than)]))
        return milp, {"mode": "min"}
    requests = [r for _, reqs, _ in form.models for r in reqs]
    if throughput_mode(form) == "scale":
        return _bottleneck_program(form, blocks, requests, better_than, eps)
    milp, info = _free_rate_program(form, blocks, requests)
    if better_than is not None and better_than > 0:
        C = len(requests)
        row = np.zeros(milp.num_vars)
        row[n:n + C] = -1.0
        milp = _append_rows(milp, sp.csr_matrix(row[None]), np.array([-better_than * (1 + eps)]))
    return milp, info


def _bottleneck_program(form: Formulation, blocks, requests, better_than: float | None, eps: float
                        ) -> tuple[MILP, dict[str, Any]]:
    """Min ``T`` with every resource's busy seconds per second at unit scale ``<= T``. ``T`` is
    measured in units of ``t_scale`` (the warm start's bottleneck, or the largest possible), so its
    rows have coefficients near 1: HiGHS's dual simplex stalled for minutes on the raw seconds."""
    table = cost_table(form.problem)
    n = form.num_vars
    demand = sum(table.decode_demand(r) for r in requests)
    load = sum(table.decode_demand(r) * form.resources[r.id] for r in requests)
    load = load[np.flatnonzero(load.getnnz(axis=1))].tocsr()
    t_hi = float(load.sum(axis=1).max()) if load.shape[0] else 1.0
    t_cut = demand / better_than * (1 - eps) if better_than is not None and better_than > 0 else None
    t_scale = max(t_cut if t_cut is not None else t_hi, 1e-300)
    scaled = (load / t_scale).tocsr()
    milp = stack(form, blocks, 1, np.array([1.0]), np.zeros(1), np.array([max(t_hi, t_scale * 1e-12) / t_scale]),
                 np.zeros(n))
    milp = _append_rows(milp, sp.hstack([scaled, -np.ones((scaled.shape[0], 1))]).tocsr(), np.zeros(scaled.shape[0]))
    info: dict[str, Any] = {"mode": "scale", "demand": demand, "t_scale": t_scale}
    if t_cut is None:
        return milp, info
    milp.var_hi[-1] = min(milp.var_hi[-1], 1.0)
    own = np.asarray(abs(scaled).max(axis=0).todense()).ravel() if scaled.shape[0] else np.zeros(n)
    keep = np.concatenate([own <= 1.0, [True]])
    info["keep"] = keep
    info["pruned"] = int(n - keep[:n].sum())
    return drop_columns(milp, keep), info


def drop_columns(milp: MILP, keep: np.ndarray) -> MILP:
    """``milp`` without the columns ``keep`` leaves out (they are fixed at 0)."""
    cols = np.flatnonzero(keep)
    return MILP(c=milp.c[cols], A=milp.A.tocsc()[:, cols].tocsr(), row_lo=milp.row_lo, row_hi=milp.row_hi,
                var_lo=milp.var_lo[cols], var_hi=milp.var_hi[cols], integer=milp.integer[cols], offset=milp.offset,
                max_ones=milp.max_ones, x0=None if milp.x0 is None else milp.x0[cols])


def expand(info: dict[str, Any], x: np.ndarray | None) -> np.ndarray | None:
    """A solution of a program with dropped columns, as a vector over all of its columns."""
    keep = info.get("keep")
    if x is None or keep is None:
        return x
    full = np.zeros(len(keep))
    full[keep] = x
    return full


def with_start(milp: MILP, info: dict[str, Any], x_binaries: np.ndarray | None) -> MILP:
    """``milp`` with a start for its binaries (extra variables left for the backend to fill), when the
    start keeps every column the program kept."""
    if x_binaries is None:
        return milp
    full = np.concatenate([x_binaries, np.zeros(len(info["keep"]) - len(x_binaries) if "keep" in info
                                                else milp.num_vars - len(x_binaries))])
    keep = info.get("keep")
    if keep is not None:
        if np.any(full[~keep] > 0.5):
            return milp
        full = full[keep]
    milp.x0 = full
    return milp


def _free_rate_program(form: Formulation, blocks, requests) -> tuple[MILP, dict[str, Any]]:
    """Max total tokens/s with free per-class rates ``x_c``: resource rows ``sum_c x_c t_c(y) <= 1``
    with each product ``x_c y_j`` replaced by ``p >= x_c - U_c (1 - y_j)``, exact for binary ``y``
    (``p`` only appears with positive coefficients in ``<=`` rows)."""
    n = form.num_vars
    C = len(requests)
    resources = len(cost_table(form.problem).resources)
    pairs, ubs = [], []  # (class, var); each class's rate bound
    seg_len = np.zeros(n)
    seg_len[: len(form.seg["m"])] = form.seg["b"] - form.seg["a"]
    for k, r in enumerate(requests):
        R = form.resources[r.id]
        per_var = R.sum(axis=0).A1  # a variable's resource seconds per token, summed over resources
        mine = (seg_len > 0) & (per_var > 0)
        L = form.problem.model(r.model).num_blocks
        least = L * float(np.min(per_var[mine] / seg_len[mine])) if mine.any() else 0.0
        # Every route spends at least `least` resource-seconds per token, over resources each busy at most 1.
        ubs.append(resources / least if least > 0 else 1e12)
        pairs.extend((k, j) for j in np.flatnonzero(R.getnnz(axis=0)))
    P = len(pairs)
    extra = C + P
    pk = np.array([k for k, _ in pairs], dtype=np.int64)
    pj = np.array([j for _, j in pairs], dtype=np.int64)
    U = np.array(ubs)
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
    i = np.arange(P)  # McCormick rows: x_k - p + U_k y_j <= U_k.
    mc = sp.csr_matrix((np.concatenate([np.ones(P), -np.ones(P), U[pk]]),
                        (np.concatenate([i, i, i]), np.concatenate([n + pk, n + C + i, pj]))), shape=(P, n + extra))
    milp = stack(form, blocks, extra, np.concatenate([-np.ones(C), np.zeros(P)]), np.zeros(extra),
                 np.concatenate([U, U[pk]]), np.zeros(n))
    milp = _append_rows(milp, sp.vstack([res, mc]).tocsr(), np.concatenate([np.ones(len(used)), U[pk]]))
    return milp, {"mode": "free"}


def bound_in_units(info: dict[str, Any], result: MILPResult, objective: float) -> float | None:
    """A proven bound on the optimum in the objective's own units (upper for throughput)."""
    if result.bound is None:
        return None
    if info["mode"] == "min":
        return min(result.bound, objective) if math.isfinite(objective) else result.bound
    if info["mode"] == "scale":
        t = result.bound * info.get("t_scale", 1.0)
        upper = info["demand"] / t if t > 0 else None
    else:
        upper = -result.bound
    return max(upper, objective) if upper is not None else None
