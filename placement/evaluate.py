"""``evaluate(problem, plan)``: the metrics the cost model predicts for a plan.

This is the single source of truth: a solver's reported objective must equal
``evaluate(problem, plan).objective`` on its own plan.

A plan that does not fit its instance (unknown device, a route that skips
blocks, ...) raises :class:`~placement.errors.InvalidPlanError`. A plan that fits
but breaks a limit (memory, SLO, load) is *infeasible*: the metrics say so and
list each violation with its numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict

from models import weight_format
from placement.costs import (
    GIB, Stage, block_costs, execution_rates, route_times, runtime_bytes, shard_weight_bytes, transfer_costs,
)
from placement.errors import InvalidPlanError, Issue
from placement.metrics import DeviceMetrics, Metrics, RequestMetrics
from placement.plan import Plan, Shard, require_plan
from placement.problem import METRICS, Problem, require_problem
from placement.costs.throughput import plan_throughput

__all__ = ["evaluate", "check_plan", "objective_value", "route_quality"]

_FRACTION_TOL = 1e-6
_QUALITY_TOL = 1e-9


def check_plan(problem: Problem, plan: Plan) -> None:
    """Raise :class:`InvalidPlanError` listing every way ``plan`` does not fit ``problem``."""
    issues: list[Issue] = []
    topo = problem.topology
    model_ids = {m.id for m in problem.models}
    seen: set[str] = set()
    for i, s in enumerate(plan.shards):
        where = f"shards[{i}]"
        if s.id in seen:
            issues.append(Issue(f"{where}.id", f"duplicate shard id {s.id!r}"))
        seen.add(s.id)
        if s.device not in topo.index:
            issues.append(Issue(f"{where}.device", f"unknown device {s.device!r}"))
        if s.model not in model_ids:
            issues.append(Issue(f"{where}.model", f"unknown model {s.model!r}"))
            continue
        model = problem.model(s.model)
        a, b = s.layers
        if not 0 <= a < b <= model.num_blocks:
            issues.append(Issue(f"{where}.layers",
                                f"must satisfy 0 <= start < end <= {model.num_blocks}, got [{a}, {b}]"))
        if s.weight_format is not None and s.weight_format not in model.formats:
            issues.append(Issue(f"{where}.weight_format",
                                f"{s.weight_format!r} is not allowed for {s.model} (allowed: {', '.join(model.formats)})"))
    shards = {s.id: s for s in plan.shards}
    request_ids = {r.id for r in problem.workload}
    fractions: dict[str, float] = defaultdict(float)
    for i, route in enumerate(plan.routes):
        where = f"routes[{i}]"
        if route.request not in request_ids:
            issues.append(Issue(f"{where}.request", f"unknown request class {route.request!r}"))
            continue
        if not 0 < route.fraction <= 1 + _FRACTION_TOL:
            issues.append(Issue(f"{where}.fraction", f"must be in (0, 1], got {route.fraction}"))
        fractions[route.request] += route.fraction
        req = problem.request(route.request)
        if not route.path:
            issues.append(Issue(f"{where}.path", "must list at least one shard"))
            continue
        missing = [sid for sid in route.path if sid not in shards]
        if missing:
            issues.append(Issue(f"{where}.path", f"unknown shard(s) {', '.join(map(repr, missing))}"))
            continue
        expected = 0
        for sid in route.path:
            s = shards[sid]
            if s.model != req.model:
                issues.append(Issue(f"{where}.path", f"shard {sid!r} holds {s.model}, request {req.id} needs {req.model}"))
                break
            if s.layers[0] != expected:
                issues.append(Issue(f"{where}.path",
                                    f"shard {sid!r} starts at block {s.layers[0]}, expected {expected} "
                                    "(a route's shards must cover the blocks in order)"))
                break
            expected = s.layers[1]
        else:
            L = problem.model(req.model).num_blocks
            if expected != L:
                issues.append(Issue(f"{where}.path", f"covers blocks [0, {expected}) of {L}"))
    for rid, total in fractions.items():
        if total > 1 + _FRACTION_TOL:
            issues.append(Issue("routes", f"fractions of request {rid!r} sum to {total:g} > 1"))
    if issues:
        raise InvalidPlanError(issues)


def route_quality(problem: Problem, path: list[Shard]) -> float:
    """Block-weighted mean quality of the weight formats along a route's shards
    (see :attr:`models.NumberFormat.quality`)."""
    total = sum(s.num_blocks * weight_format(s.weight_format or problem.model(s.model).weight_format).quality
                for s in path)
    return total / max(sum(s.num_blocks for s in path), 1)


def objective_value(problem: Problem, per_metric: dict[str, float]) -> float:
    """Combine aggregated metrics into the problem's objective value."""
    return sum(weight * per_metric[name] for name, weight in problem.objective.terms)


def evaluate(problem: Problem, plan: Plan) -> Metrics:
    """Predict latency, memory, energy and throughput of ``plan`` on ``problem``.

    Parameters
    ----------
    problem : Problem
    plan : Plan
        Its shards and routes are read; its status and objective are not.

    Returns
    -------
    Metrics
        Per request class (TTFT, TPOT, E2E, energy), per device (memory against
        capacity, load), throughput, the objective value, feasibility and the
        violations that make it infeasible.

    Raises
    ------
    InvalidPlanError
        If the plan names unknown devices, shards or requests, or a route does not
        cover its model's blocks in order.

    Examples
    --------
    >>> from placement import load_instance, evaluate
    >>> from solvers import solve
    >>> problem = load_instance("instances/device-edge-cloud.yaml")   # doctest: +SKIP
    >>> plan = solve(problem, solver="greedy")                         # doctest: +SKIP
    >>> evaluate(problem, plan).objective == plan.objective            # doctest: +SKIP
    True
    """
    require_problem(problem)
    require_plan(plan)
    check_plan(problem, plan)
    topo = problem.topology
    shards = {s.id: s for s in plan.shards}
    violations: list[str] = []

    # Requests: each class averaged over its routes by fraction.
    requests: dict[str, RequestMetrics] = {}
    routes_of: dict[str, list] = defaultdict(list)
    for route in plan.routes:
        routes_of[route.request].append(route)
    classes_through: dict[str, set[str]] = defaultdict(set)
    busy_s: dict[str, float] = defaultdict(float)  # device busy seconds per second of workload
    for req in problem.workload:
        routes = routes_of.get(req.id, [])
        if not routes:
            violations.append(f"request {req.id}: no route serves it")
            requests[req.id] = _unserved()
            continue
        tc = transfer_costs(problem, req)
        acc = defaultdict(float)
        total_fraction = sum(r.fraction for r in routes)
        # Every request takes one route, so each route must meet the SLO on its own:
        # an average over routes could hide a route that always misses it.
        worst = {"ttft_ms": 0.0, "tpot_ms": 0.0, "e2e_ms": 0.0}
        for route in routes:
            stages = []
            for sid in route.path:
                s = shards[sid]
                classes_through[sid].add(req.id)
                stages.append(Stage(topo.index[s.device], s.layers[0], s.layers[1], block_costs(problem, req.id, s.weight_format)))
            rt = route_times(stages, tc, req)
            floor = problem.constraints.quality_floor
            if floor is not None:
                quality = route_quality(problem, [shards[sid] for sid in route.path])
                if quality < floor - _QUALITY_TOL:
                    violations.append(f"request {req.id}: route {' -> '.join(route.path)} has weight-format quality "
                                      f"{quality:.4f} < quality floor {floor:g}")
            w = route.fraction / total_fraction
            for k in ("ttft_s", "tpot_s", "e2e_s", "prefill_s", "transfer_s", "energy_j", "idle_energy_j"):
                acc[k] += w * getattr(rt, k)
            for name, value in (("ttft_ms", rt.ttft_s), ("tpot_ms", rt.tpot_s), ("e2e_ms", rt.e2e_s)):
                worst[name] = max(worst[name], value * 1e3)
            if req.rate_rps:
                for st, busy in zip(stages, rt.stage_busy_s):
                    busy_s[topo.nodes[st.device].id] += req.rate_rps * route.fraction * busy / req.batch
        if total_fraction < 1 - _FRACTION_TOL:
            violations.append(f"request {req.id}: routes carry {total_fraction:.0%} of its requests, not all")
        g = max(req.output_tokens, 1)
        slo_ok = True
        values = {"ttft_ms": acc["ttft_s"] * 1e3, "tpot_ms": acc["tpot_s"] * 1e3, "e2e_ms": acc["e2e_s"] * 1e3}
        for name, limit in req.slo.items():
            if not worst[name] <= limit:
                slo_ok = False
                which = " on its slowest route" if len(routes) > 1 else ""
                violations.append(f"request {req.id}: {name.replace('_ms', '').upper()} {_ms(worst[name])}{which} "
                                  f"> SLO {_ms(limit)}")
        if not math.isfinite(acc["e2e_s"]):
            violations.append(f"request {req.id}: no network path between its source {req.source} and its shards")
        requests[req.id] = RequestMetrics(
            ttft_ms=values["ttft_ms"], tpot_ms=values["tpot_ms"], e2e_ms=values["e2e_ms"],
            prefill_ms=acc["prefill_s"] * 1e3, transfer_ms=acc["transfer_s"] * 1e3,
            energy_j=acc["energy_j"], idle_energy_j=acc["idle_energy_j"],
            energy_j_per_token=acc["energy_j"] / g, slo_met=slo_ok,
        )

    # Devices: memory of every shard, KV reserved for every class it serves.
    devices: dict[str, DeviceMetrics] = {}
    per_device: dict[str, list[Shard]] = defaultdict(list)
    for s in plan.shards:
        per_device[s.device].append(s)
    calibrated = True
    any_rates = any(r.rate_rps for r in problem.workload)
    for node in topo.nodes:
        held = per_device.get(node.id, [])
        weights = kv = workspace = runtime = 0.0
        blocks_by_model: dict[str, int] = defaultdict(int)
        for s in held:
            model = problem.model(s.model)
            fmt_id = s.weight_format or model.weight_format
            a, b = s.layers
            blocks_by_model[s.model] += b - a
            weights += shard_weight_bytes(model, weight_format(fmt_id), a, b)
            rates = execution_rates(node, weight_format(fmt_id))
            runtime = max(runtime, runtime_bytes(node, rates))
            calibrated &= rates.profile.calibrated or node.profile_for(s.model) is not None
            # A shard no route uses still keeps room for one sequence of its model's first class.
            served = sorted(classes_through.get(s.id, ())) or [r.id for r in problem.requests_for(s.model)[:1]]
            per_class = [block_costs(problem, rid, fmt_id) for rid in served]
            kv += sum(float(c.kv_bytes[a:b].sum()) for c in per_class)
            workspace += max((c.workspace_bytes + (c.head_workspace_bytes if b == c.num_blocks else 0.0)
                              for c in per_class), default=0.0)
        capacity = node.usable_memory_gb * GIB * (1.0 - problem.constraints.memory_headroom)
        used = weights + kv + workspace + runtime
        load = float(busy_s.get(node.id, 0.0)) if any_rates else None
        devices[node.id] = DeviceMetrics(
            memory_gb=used / GIB, memory_capacity_gb=capacity / GIB, weights_gb=weights / GIB,
            kv_cache_gb=kv / GIB, workspace_gb=workspace / GIB, runtime_gb=runtime / GIB,
            memory_utilization=used / capacity if capacity > 0 else math.inf,
            utilization=load,
            shards=tuple(s.id for s in held),
        )
        if used > capacity * (1 + 1e-9):
            violations.append(_memory_violation(problem, node.id, used, weights, kv, workspace, runtime))
        for model_id, count in blocks_by_model.items():
            measured = node.profile_for(model_id)
            if measured is not None and measured.max_layers is not None and count > measured.max_layers:
                violations.append(f"device {node.id}: holds {count} blocks of {model_id} > its profile's "
                                  f"max_layers {measured.max_layers}")
        if load is not None and load > 1 + 1e-9:
            violations.append(f"device {node.id}: busy {load:.0%} of the time at the workload's request rates "
                              "(more than it can serve)")

    throughput = plan_throughput(problem, plan)
    weights_by_class = problem.request_weights()
    per_metric = {
        "latency": sum(w * requests[r].e2e_ms for r, w in weights_by_class.items()),
        "ttft": sum(w * requests[r].ttft_ms for r, w in weights_by_class.items()),
        "tpot": sum(w * requests[r].tpot_ms for r, w in weights_by_class.items()),
        "energy": sum(w * requests[r].energy_j for r, w in weights_by_class.items()),
        "throughput": throughput,
    }
    aggregates = {f"{name}_{METRICS[name][1].replace('/', '_per_')}": value for name, value in per_metric.items()}
    return Metrics(
        requests=requests,
        devices=devices,
        throughput_tok_s=throughput,
        objective=objective_value(problem, per_metric),
        feasible=not violations,
        violations=tuple(violations),
        calibrated=calibrated,
        aggregates=aggregates,
    )


def _unserved() -> RequestMetrics:
    inf = math.inf
    return RequestMetrics(inf, inf, inf, inf, inf, inf, 0.0, inf, slo_met=False)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def _memory_violation(problem: Problem, device: str, used: float, weights: float, kv: float,
                      workspace: float, runtime: float) -> str:
    node = problem.topology.node(device)
    headroom = problem.constraints.memory_headroom
    parts = f"weights {weights / GIB:.2f}, KV cache {kv / GIB:.2f}, workspace {workspace / GIB:.2f}, runtime {runtime / GIB:.2f}"
    limit = node.usable_memory_gb * (1 - headroom)
    detail = f"capacity {node.memory_gb:g}, reserved {node.spec.reserved_memory_gb * node.count:g}"
    if headroom:
        detail += f", headroom {headroom:.0%}"
    return f"device {device}: needs {used / GIB:.2f} GB ({parts}) > usable {limit:.2f} GB ({detail})"
