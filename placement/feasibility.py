"""Proofs that an instance has no feasible plan, in words and numbers.

Each check is a *necessary* condition every plan must meet, computed from lower
bounds, so a failed check proves infeasibility whatever the solver:

- **memory**: a model's weights (in its smallest allowed format) plus the KV cache
  its request classes reserve must fit in the usable memory of the devices its
  requests can reach;
- **SLO**: every block runs on some reachable device, so TTFT (TPOT) is at least
  the sum over blocks of the fastest device's prefill (decode step) time for that
  block, plus the fastest stage overhead; above the SLO, no plan meets it.
"""

from __future__ import annotations

import numpy as np

from models import weight_format
from placement.costmodel import GIB, block_costs, block_weight_bytes, kv_bytes_per_block_token
from placement.problem import ModelSpec, Problem

__all__ = ["infeasibility_reasons"]


def _reachable(problem: Problem, model_id: str) -> list[str]:
    topo = problem.topology
    seen: set[str] = set()
    for req in problem.requests_for(model_id):
        seen |= topo.reachable(req.source)
    return [n.id for n in topo.nodes if n.id in seen]


def infeasibility_reasons(problem: Problem) -> list[str]:
    """Reasons no plan can be feasible (empty when none of the checks fails)."""
    reasons: list[str] = []
    topo = problem.topology
    headroom = 1.0 - problem.constraints.memory_headroom
    used_by_models = 0.0
    pooled: set[str] = set()
    for model in problem.models:
        requests = problem.requests_for(model.id)
        if not requests:
            continue
        reach = _reachable(problem, model.id)
        pooled |= set(reach)
        by_format = {f: _whole_model_weights(model, f) for f in model.formats}
        fmt = min(by_format, key=by_format.__getitem__)
        weights = by_format[fmt]
        kv = sum(r.batch * problem.context_tokens(r) for r in requests) * kv_bytes_per_block_token(model) * model.num_blocks
        need = weights + kv
        used_by_models += need
        caps = {d: topo.node(d).usable_memory_gb * headroom for d in reach}
        have = sum(caps.values()) * GIB
        if need > have:
            sources = ", ".join(sorted({r.source for r in requests}))
            shown = ", ".join(f"{d} {c:.1f}" for d, c in list(caps.items())[:8]) + (", ..." if len(caps) > 8 else "")
            reasons.append(
                f"memory: model {model.id} needs at least {need / GIB:.1f} GB (weights {weights / GIB:.1f} GB "
                f"in {fmt} + KV cache {kv / GIB:.1f} GB) but the devices reachable from {sources} have "
                f"{have / GIB:.1f} GB usable ({shown})")
        profiled = [topo.node(d).profile_for(model.id) for d in reach]
        if profiled and all(p is not None and p.max_layers is not None for p in profiled):
            most = sum(p.max_layers for p in profiled)  # type: ignore[union-attr]
            if most < model.num_blocks:
                reasons.append(f"memory: model {model.id} has {model.num_blocks} blocks but the reachable devices' "
                               f"profiles allow at most {most} in all")
        reasons.extend(_slo_reasons(problem, model, reach))
    if not reasons and len(problem.models) > 1:
        have = sum(topo.node(d).usable_memory_gb * headroom for d in pooled) * GIB
        if used_by_models > have:
            reasons.append(f"memory: the models together need at least {used_by_models / GIB:.1f} GB but the "
                           f"reachable devices have {have / GIB:.1f} GB usable")
    return reasons


def _whole_model_weights(model: ModelSpec, fmt_id: str) -> float:
    weights, tied = block_weight_bytes(model, weight_format(fmt_id))
    return float(weights.sum()) - tied


def _slo_reasons(problem: Problem, model: ModelSpec, reach: list[str]) -> list[str]:
    out = []
    idx = [problem.topology.index[d] for d in reach]
    for req in problem.requests_for(model.id):
        if not req.slo.items():
            continue
        tables = [block_costs(problem, req, f) for f in model.formats]
        ttft = min(float(np.min(t.prefill_s[idx], axis=0).sum() + np.min(t.prefill_overhead_s[idx])) for t in tables)
        tpot = min(float(np.min(t.decode_s[idx], axis=0).sum() + np.min(t.decode_overhead_s[idx])) for t in tables)
        bounds = {"ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3,
                  "e2e_ms": (ttft + max(req.output_tokens - 1, 0) * tpot) * 1e3}
        for name, limit in req.slo.items():
            if bounds[name] > limit:
                label = name.replace("_ms", "").upper()
                out.append(f"SLO: request {req.id} cannot reach {label} {limit:g} ms: even running every block on "
                           f"its fastest reachable device takes at least {bounds[name]:.1f} ms")
    return out
