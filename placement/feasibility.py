"""Proofs that an instance has no feasible plan, in words and numbers.

Each check is a *necessary* condition every plan must meet, computed from lower
bounds, so a failed check proves infeasibility whatever the solver. Each reason
starts with the binding resource:

- **memory**: a model's weights (in its smallest allowed format), the KV cache
  its request classes reserve and the prefill workspace of the stage holding
  its last block must fit in the usable memory of the devices those requests
  can reach, less the engine runtime each device pays if it holds anything;
  measured profiles may also cap the blocks a device holds;
- **connectivity**: the same need, when all devices together could hold the
  model but the ones connected to a request's source cannot (every shard on a
  route must have a network path to the source, or the tokens never return);
- **SLO**: every block runs on some reachable device, so TTFT (TPOT) is at least
  the sum over blocks of the fastest device's prefill (decode step) time for that
  block, plus the fastest stage overhead; above the SLO, no plan meets it;
- **quality**: a route's quality is the block-weighted mean of its formats'
  quality, so it is at most that of the best allowed format; below
  ``constraints.quality_floor``, no plan meets the floor;
- **load**: at the workload's request rates every block of every request runs
  on some device, at best the fastest reachable one; if that work already needs
  more device-seconds per second than the reachable devices have (each is busy
  at most all of the time), no plan keeps up, however it replicates.

Devices that no request can reach are harmless: they are simply not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models import weight_format
from placement.costs.roofline import GIB, execution_rates, workspace_bytes
from placement.costs.tables import block_costs, cost_table
from placement.problem import ModelSpec, Problem, RequestClass

__all__ = ["infeasibility_reasons"]

_QUALITY_TOL = 1e-9  # as in evaluate(): a floor met to rounding is met
_SHOWN = 8  # devices listed by name in a reason; the rest are counted


def infeasibility_reasons(problem: Problem) -> list[str]:
    """Reasons no plan can be feasible (empty when none of the checks fails).

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    list of str
        One reason per binding cause, each starting with its resource
        (``memory:``, ``connectivity:``, ``SLO:``, ``quality:``) and giving the numbers.

    Examples
    --------
    >>> from placement import load_instance
    >>> infeasibility_reasons(load_instance("instances/device-edge-cloud.yaml"))
    []
    """
    reasons: list[str] = []
    need_by_component: dict[frozenset[str], float] = {}
    for model in problem.models:
        requests = problem.requests_for(model.id)
        if not requests:
            continue
        reasons.extend(_quality_reasons(problem, model))
        for component, reqs in _by_component(problem, requests):
            need, why = _memory_reasons(problem, model, component, reqs)
            need_by_component[component] = need_by_component.get(component, 0.0) + need
            reasons.extend(why)
            reasons.extend(_profile_reasons(problem, model, component))
            reasons.extend(_slo_reasons(problem, model, component, reqs))
    if not reasons and len(problem.models) > 1:
        reasons.extend(_shared_memory_reasons(problem, need_by_component))
    reasons.extend(_load_reasons(problem))
    return reasons


def _by_component(problem: Problem,
                  requests: Sequence[RequestClass]) -> list[tuple[frozenset[str], list[RequestClass]]]:
    """Requests grouped by the devices their source connects to (in order of first appearance)."""
    groups: dict[frozenset[str], list[RequestClass]] = {}
    for req in requests:
        groups.setdefault(frozenset(problem.topology.reachable(req.source)), []).append(req)
    return list(groups.items())


def _capacities_gb(problem: Problem, devices: Sequence[str]) -> dict[str, float]:
    """Usable GB a model may use on each device (capacity - reserve, less the headroom), in topology order."""
    keep = 1.0 - problem.constraints.memory_headroom
    wanted = set(devices)
    return {n.id: n.usable_memory_gb * keep for n in problem.topology.nodes if n.id in wanted}


def _listed(caps: dict[str, float], decimals: int = 1) -> str:
    shown = ", ".join(f"{d} {c:.{decimals}f}" for d, c in list(caps.items())[:_SHOWN])
    return shown + (f", ... {len(caps) - _SHOWN} more" if len(caps) > _SHOWN else "")


def _whole_model_weights(problem: Problem, model: ModelSpec, fmt_id: str) -> float:
    return float(cost_table(problem).weights(model.id, fmt_id).shard_bytes(0, model.num_blocks))


def _memory_reasons(problem: Problem, model: ModelSpec, component: frozenset[str],
                    requests: Sequence[RequestClass]) -> tuple[float, list[str]]:
    """Bytes ``model`` needs at least in ``component`` (beyond engine runtimes) and, if they do not fit, why."""
    by_format = {f: _whole_model_weights(problem, model, f) for f in model.formats}
    fmt = min(by_format, key=by_format.__getitem__)
    weights = by_format[fmt]
    table = cost_table(problem)
    kv = sum(float(table.kv(r, model.id).shard_kv_bytes(0, model.num_blocks)) for r in requests)
    workspace = _least_workspace_bytes(problem, model, component, requests)
    need = weights + kv + workspace
    caps = _capacities_gb(problem, component)
    net = _net_bytes(problem, caps, model.formats)
    if need <= net:
        return need, []
    sources = ", ".join(sorted({r.source for r in requests}))
    digits = _decimals(need, net)  # enough digits that need and room read differently

    def gb(nbytes: float) -> str:
        return f"{nbytes / GIB:.{digits}f} GB"

    what = (f"model {model.id} needs at least {gb(need)} (weights {gb(weights)} in {fmt} + KV cache {gb(kv)} + "
            f"workspace {gb(workspace)})")
    room = (f"{gb(sum(caps.values()) * GIB)} usable, {gb(net)} after their engine runtimes "
            f"({_listed(caps, digits)})")
    elsewhere = _capacities_gb(problem, [node.id for node in problem.topology.nodes if node.id not in component])
    if elsewhere and need <= net + _net_bytes(problem, elsewhere, model.formats):
        classes = ", ".join(r.id for r in requests)
        return need, [
            f"connectivity: {what} but request class(es) {classes} entering at {sources} reach only "
            f"{len(caps)} device(s) with {room}; {len(elsewhere)} other device(s) with "
            f"{gb(sum(elsewhere.values()) * GIB)} usable ({_listed(elsewhere, digits)}) have no network path "
            f"to {sources}"]
    return need, [f"memory: {what} but the devices reachable from {sources} have {room}"]


def _decimals(need: float, have: float) -> int:
    """Decimals (1 to 4) at which ``need`` and ``have`` (bytes) show as different GB figures."""
    for digits in range(1, 4):
        if f"{need / GIB:.{digits}f}" != f"{have / GIB:.{digits}f}":
            return digits
    return 4


def _net_bytes(problem: Problem, caps_gb: dict[str, float], formats: Sequence[str]) -> float:
    """Usable bytes left for models on these devices once each pays its engine's runtime.

    A device holding any shard pays its runtime once; one holding none gives nothing,
    so each device counts at most its capacity less its least runtime over ``formats``.
    """
    table = cost_table(problem)
    least = np.min([table.runtime_bytes(f) for f in formats], axis=0)
    return sum(max(0.0, cap_gb * GIB - float(least[problem.topology.index[d]])) for d, cap_gb in caps_gb.items())


def _least_workspace_bytes(problem: Problem, model: ModelSpec, component: frozenset[str],
                           requests: Sequence[RequestClass]) -> float:
    """Prefill workspace with the logits that the device holding the last block of the most
    demanding request class pays at least (some device must hold it)."""
    least = np.inf
    for node in problem.topology.nodes:
        if node.id not in component:
            continue
        for fmt in model.formats:
            step = execution_rates(node, weight_format(fmt)).profile.max_tokens_per_step
            workspace = max(sum(workspace_bytes(model.graph, r, problem.context_tokens(r), step)) for r in requests)
            least = min(least, workspace)
    return float(least) if np.isfinite(least) else 0.0


def _profile_reasons(problem: Problem, model: ModelSpec, component: frozenset[str]) -> list[str]:
    """Measured profiles' ``max_layers`` cap the blocks each device may hold."""
    topo = problem.topology
    profiled = [topo.node(d).profile_for(model.id) for d in component]
    if not profiled or any(p is None or p.max_layers is None for p in profiled):
        return []
    most = sum(p.max_layers for p in profiled)  # type: ignore[union-attr,misc]
    if most >= model.num_blocks:
        return []
    return [f"memory: model {model.id} has {model.num_blocks} blocks but the profiles of the {len(profiled)} "
            f"reachable device(s) allow at most {most} in all"]


def _slo_reasons(problem: Problem, model: ModelSpec, component: frozenset[str],
                 requests: Sequence[RequestClass]) -> list[str]:
    out = []
    idx = sorted(problem.topology.index[d] for d in component)
    for req in requests:
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


def _least_busy_s(problem: Problem, req: RequestClass, devices: Sequence[int]) -> float:
    """Device-seconds one batch of ``req`` needs at least: each block, and one stage's
    overheads, on its fastest device (in the best allowed format)."""
    steps = max(req.output_tokens - 1, 0)
    best = np.inf
    for fmt in problem.model(req.model).formats:
        t = block_costs(problem, req, fmt)
        per_block = t.prefill_s[devices] + steps * t.decode_s[devices]
        overhead = t.prefill_overhead_s[devices] + steps * t.decode_overhead_s[devices]
        best = min(best, float(per_block.min(axis=0).sum() + overhead.min()))
    return best


def _load_reasons(problem: Problem) -> list[str]:
    out = []
    by_component: dict[frozenset[str], list[RequestClass]] = {}
    for req in problem.workload:
        if req.rate_rps:
            by_component.setdefault(frozenset(problem.topology.reachable(req.source)), []).append(req)
    for component, reqs in by_component.items():
        idx = sorted(problem.topology.index[d] for d in component)
        need = sum(r.rate_rps * _least_busy_s(problem, r, idx) / r.batch for r in reqs)  # type: ignore[operator]
        if need > len(idx) * (1 + 1e-9):
            classes = ", ".join(r.id for r in reqs)
            out.append(f"load: at their request rates, {classes} need at least {need:.2f} device-seconds per second "
                       f"(every block on its fastest reachable device) but the {len(idx)} device(s) they can reach "
                       f"give at most {len(idx)}")
    return out


def _quality_reasons(problem: Problem, model: ModelSpec) -> list[str]:
    floor = problem.constraints.quality_floor
    if floor is None:
        return []
    quality = {f: getattr(weight_format(f), "quality", None) for f in model.formats}
    if any(q is None for q in quality.values()):
        return []  # formats without a quality figure: nothing can be proven
    best = max(quality, key=quality.__getitem__)
    if quality[best] >= floor - _QUALITY_TOL:
        return []
    allowed = ", ".join(f"{f} {q:.4f}" for f, q in quality.items())
    return [f"quality: model {model.id} cannot reach quality floor {floor:g}: its best allowed format {best} "
            f"has quality {quality[best]:.4f} (allowed: {allowed})"]


def _shared_memory_reasons(problem: Problem, need_by_component: dict[frozenset[str], float]) -> list[str]:
    """Models whose requests enter the same connected devices share those devices' memory."""
    formats = sorted({f for m in problem.models for f in m.formats})
    out = []
    for component, need in need_by_component.items():
        caps = _capacities_gb(problem, component)
        net = _net_bytes(problem, caps, formats)
        if need > net:
            digits = _decimals(need, net)
            out.append(f"memory: the models together need at least {need / GIB:.{digits}f} GB but the devices they "
                       f"can reach have {sum(caps.values()):.{digits}f} GB usable, {net / GIB:.{digits}f} GB after "
                       f"their engine runtimes ({_listed(caps, digits)})")
    return out
