"""Explaining a proven-infeasible placement program, each reason with a proven number.

Each limit family (memory, an SLO, load, quality) is checked alone and then
against all the others by solving for the best value it could reach, and each
one that cannot be met is reported with that proven number.
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp

from solvers.ilp.backends import MILPResult
from solvers.ilp.formulation import Formulation
from solvers.ilp.programs import limit_blocks, stack

__all__ = ["diagnose", "LIMIT_TOL"]

LIMIT_TOL = 1e-9


def _measure(form: Formulation, fam: tuple, others: list[tuple], run) -> MILPResult:
    """Minimise family ``fam``'s worst row relative to its limit (``u``: 1.0 = at the limit),
    subject to the structure and the ``others`` families."""
    A, hi = form.families[fam]
    blocks = [form.structure] + limit_blocks(form, others)
    if fam[0] == "quality":  # the quality loss itself (its limit may be 0)
        return run(stack(form, blocks, 0, np.zeros(0), np.zeros(0), np.zeros(0), A.toarray()[0]))
    u_hi = float(np.max(np.asarray(A.sum(axis=1)).ravel() / hi)) + 1.0
    milp = stack(form, blocks, 1, np.array([1.0]), np.zeros(1), np.array([u_hi]), np.zeros(form.num_vars))
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
        return result.bound if result.bound > limit + LIMIT_TOL else None
    return result.bound if result.bound > 1.0 + LIMIT_TOL else None


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


def diagnose(form: Formulation, run, deadline, backend: str) -> list[str]:
    """Reasons a proven-infeasible program has no solution, each with a proven number.

    Each limit family is measured alone (structure only), then against all the
    others; families whose measure is a plain objective (SLOs, quality) go
    first, and a family that a solution already found meets is not measured.
    """
    empty = np.zeros(0)
    structure_only = stack(form, [form.structure], 0, empty, empty, empty, np.zeros(form.num_vars))
    first = run(structure_only)
    if not form.families or first.status == "infeasible":
        return _structure_reason(form)
    fams = sorted(form.families, key=lambda f: f[0] in ("memory", "load"))
    seen = [first.x[: form.num_vars]] if first.x is not None else []

    def met(fam: tuple) -> bool:
        A, hi = form.families[fam]
        return any(np.all(A @ x <= hi + LIMIT_TOL) for x in seen)

    for alone in (True, False):
        reasons = []
        for fam in fams:
            if deadline.expired():
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
