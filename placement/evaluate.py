"""``evaluate(problem, plan)``: the metrics the cost model predicts for a plan.

This is the single source of truth: a solver's reported objective must equal
``evaluate(problem, plan).objective`` on its own plan. It is a reduction over the
plan's shards and routes on the problem's compiled cost table
(:func:`placement.costs.cost_table`): routes are summed by
:mod:`placement.costs.routes`, throughput is computed by
:mod:`placement.costs.throughput`, and nothing here derives a cost of its own.

A plan that does not fit its instance (unknown device, a route that skips
blocks, ...) raises :class:`~placement.errors.InvalidPlanError`. A plan that fits
but breaks a limit (memory, SLO, load, a resource's capacity) is *infeasible*:
the metrics say so and list each :class:`~placement.violations.Violation`.

Routes of one request class share its requests by their ``fraction``; routes
that carry a ``rate_tok_s`` (as a flow solver assigns) share it by their rates,
and every resource must carry its routes' rates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from placement.costs.flows import route_shards
from placement.costs.routes import RouteTimes, Stage, route_quality, route_times, route_usage
from placement.costs.tables import GIB, CostTable, cost_table
from placement.costs.throughput import combine_usage, free_throughput, mixed_throughput, rated_loads
from placement.errors import InvalidPlanError, Issue
from placement.metrics import DeviceMetrics, Metrics, RequestMetrics
from placement.plan import Plan, Route, Shard
from placement.problem import METRICS, Problem, RequestClass
from placement.violations import Kind, Violation

__all__ = ["evaluate", "check_plan", "route_shares", "route_resource_seconds", "objective_value"]

_FRACTION_TOL = 1e-6
_QUALITY_TOL = 1e-9
_LIMIT_TOL = 1e-9  # a limit met to rounding is met


# -- the plan against its instance ----------------------------------------------------------


def _check_shards(problem: Problem, plan: Plan) -> list[Issue]:
    issues: list[Issue] = []
    model_ids = {m.id for m in problem.models}
    seen: set[str] = set()
    for i, s in enumerate(plan.shards):
        where = f"shards[{i}]"
        if s.id in seen:
            issues.append(Issue(f"{where}.id", f"duplicate shard id {s.id!r}"))
        seen.add(s.id)
        if s.device not in problem.topology.index:
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
            issues.append(Issue(f"{where}.weight_format", f"{s.weight_format!r} is not allowed for {s.model} "
                                                          f"(allowed: {', '.join(model.formats)})"))
    return issues


def _check_path(problem: Problem, req: RequestClass, route: Route, shards: dict[str, Shard], where: str) -> list[Issue]:
    if not route.path:
        return [Issue(f"{where}.path", "must list at least one shard")]
    missing = [sid for sid in route.path if sid not in shards]
    if missing:
        return [Issue(f"{where}.path", f"unknown shard(s) {', '.join(map(repr, missing))}")]
    expected = 0
    for sid in route.path:
        s = shards[sid]
        if s.model != req.model:
            return [Issue(f"{where}.path", f"shard {sid!r} holds {s.model}, request {req.id} needs {req.model}")]
        if s.layers[0] != expected:
            return [Issue(f"{where}.path", f"shard {sid!r} starts at block {s.layers[0]}, expected {expected} "
                                           "(a route's shards must cover the blocks in order)")]
        expected = s.layers[1]
    L = problem.model(req.model).num_blocks
    return [] if expected == L else [Issue(f"{where}.path", f"covers blocks [0, {expected}) of {L}")]


def _check_shares(plan: Plan, request_ids: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    by_class: dict[str, list[tuple[int, Route]]] = defaultdict(list)
    for i, route in enumerate(plan.routes):
        if route.request in request_ids:
            by_class[route.request].append((i, route))
    for rid, routes in by_class.items():
        rated = [r.rate_tok_s is not None for _, r in routes]
        if any(rated) and not all(rated):
            issues.append(Issue("routes", f"request {rid!r}: some routes give rate_tok_s and some do not "
                                          "(give a rate on every route of a class, or on none)"))
        for i, r in routes:
            if r.fraction is not None and not 0 < r.fraction <= 1 + _FRACTION_TOL:
                issues.append(Issue(f"routes[{i}].fraction", f"must be in (0, 1], got {r.fraction}"))
            if r.rate_tok_s is not None and not (math.isfinite(r.rate_tok_s) and r.rate_tok_s >= 0):
                issues.append(Issue(f"routes[{i}].rate_tok_s", f"must be a finite number >= 0, got {r.rate_tok_s}"))
        if not any(rated) and len(routes) > 1 and any(r.fraction is None for _, r in routes):
            issues.append(Issue("routes", f"request {rid!r} has {len(routes)} routes: give each its fraction "
                                          "(or each its rate_tok_s)"))
        total = sum(r.fraction for _, r in routes if r.fraction is not None)
        if total > 1 + _FRACTION_TOL:
            issues.append(Issue("routes", f"fractions of request {rid!r} sum to {total:g} > 1"))
    return issues


def check_plan(problem: Problem, plan: Plan) -> None:
    """Raise :class:`InvalidPlanError` listing every way ``plan`` does not fit ``problem``."""
    issues = _check_shards(problem, plan)
    shards = {s.id: s for s in plan.shards}
    request_ids = {r.id for r in problem.workload}
    for i, route in enumerate(plan.routes):
        if route.request not in request_ids:
            issues.append(Issue(f"routes[{i}].request", f"unknown request class {route.request!r}"))
            continue
        issues += _check_path(problem, problem.request(route.request), route, shards, f"routes[{i}]")
    issues += _check_shares(plan, request_ids)
    if issues:
        raise InvalidPlanError(issues)


def route_shares(routes: Sequence[Route]) -> list[float]:
    """Share of its class's requests each of one class's ``routes`` takes: by ``rate_tok_s`` when the
    routes carry rates, else by ``fraction`` (a lone route without one takes them all)."""
    if routes and all(r.rate_tok_s is not None for r in routes):
        total = sum(r.rate_tok_s for r in routes)  # type: ignore[misc]
        return [r.rate_tok_s / total if total > 0 else 1.0 / len(routes) for r in routes]  # type: ignore[operator]
    if len(routes) == 1 and routes[0].fraction is None:
        return [1.0]
    return [r.fraction or 0.0 for r in routes]


# -- the reduction -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Routed:
    """One route priced: its request class, shards, stages, times and resource use."""

    index: int  # in plan.routes
    route: Route
    request: RequestClass
    shards: tuple[Shard, ...]
    stages: tuple[Stage, ...]
    times: RouteTimes
    usage: dict[int, float] | None
    share: float


def _price_routes(problem: Problem, table: CostTable, plan: Plan) -> dict[str, list[_Routed]]:
    shards = {s.id: s for s in plan.shards}
    index = problem.topology.index
    by_class: dict[str, list[tuple[int, Route]]] = defaultdict(list)
    for i, route in enumerate(plan.routes):
        by_class[route.request].append((i, route))
    out: dict[str, list[_Routed]] = {}
    for rid, indexed in by_class.items():
        req = problem.request(rid)
        tc = table.transfers(req)
        priced = []
        for (i, route), share in zip(indexed, route_shares([r for _, r in indexed])):
            path = tuple(shards[sid] for sid in route.path)
            stages = tuple(Stage(index[s.device], s.layers[0], s.layers[1], table.blocks(req, s.model, s.weight_format))
                           for s in path)
            priced.append(_Routed(i, route, req, path, stages, route_times(stages, tc, req),
                                  route_usage(table, req, stages), share))
        out[rid] = priced
    return out


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def _unserved() -> RequestMetrics:
    inf = math.inf
    return RequestMetrics(inf, inf, inf, inf, inf, inf, 0.0, inf, slo_met=False)


def _request_metrics(problem: Problem, table: CostTable, req: RequestClass, routed: list[_Routed]
                     ) -> tuple[RequestMetrics, list[Violation]]:
    """One class averaged over its routes by share; its SLOs checked on every route it may take
    (an average could hide a route that always misses)."""
    if not routed:
        return _unserved(), [Violation(Kind.COVERAGE, req.id, 0.0, 1.0, f"request {req.id}: no route serves it")]
    violations: list[Violation] = []
    total = sum(r.share for r in routed)
    weights = [r.share / total if total > 0 else 1.0 / len(routed) for r in routed]
    mean = {k: sum(w * getattr(r.times, k) for w, r in zip(weights, routed))
            for k in ("ttft_s", "tpot_s", "e2e_s", "prefill_s", "transfer_s", "energy_j", "idle_energy_j")}
    if total < 1 - _FRACTION_TOL:
        violations.append(Violation(Kind.COVERAGE, req.id, total, 1.0,
                                    f"request {req.id}: routes carry {total:.0%} of its requests, not all"))
    slo_ok = True
    for name, limit in req.slo.items():
        worst = max(getattr(r.times, name.replace("_ms", "_s")) * 1e3 for r in routed)
        if not worst <= limit:
            slo_ok = False
            which = " on its slowest route" if len(routed) > 1 else ""
            violations.append(Violation(Kind.SLO, req.id, worst, limit, f"request {req.id}: "
                                        f"{name.replace('_ms', '').upper()} {_ms(worst)}{which} > SLO {_ms(limit)}",
                                        metric=name))
    floor = problem.constraints.quality_floor
    for r in routed:
        if floor is None:
            break
        quality = route_quality(table, req.model, [(st.costs.weight_format, st.start, st.end) for st in r.stages])
        if quality < floor - _QUALITY_TOL:
            violations.append(Violation(Kind.QUALITY, req.id, quality, floor,
                                        f"request {req.id}: route {' -> '.join(r.route.path)} has weight-format "
                                        f"quality {quality:.4f} < quality floor {floor:g}"))
    if not math.isfinite(mean["e2e_s"]):
        violations.append(Violation(Kind.NETWORK, req.id, math.inf, 0.0, f"request {req.id}: no network path "
                                    f"between its source {req.source} and its shards"))
    g = max(req.output_tokens, 1)
    metrics = RequestMetrics(
        ttft_ms=mean["ttft_s"] * 1e3, tpot_ms=mean["tpot_s"] * 1e3, e2e_ms=mean["e2e_s"] * 1e3,
        prefill_ms=mean["prefill_s"] * 1e3, transfer_ms=mean["transfer_s"] * 1e3,
        energy_j=mean["energy_j"], idle_energy_j=mean["idle_energy_j"], energy_j_per_token=mean["energy_j"] / g,
        slo_met=slo_ok)
    return metrics, violations


def _device_busy(table: CostTable, routed: dict[str, list[_Routed]]) -> dict[int, float]:
    """Share of time each device is busy at the workload's request rates."""
    busy: dict[int, float] = defaultdict(float)
    for routes in routed.values():
        for r in routes:
            for st in r.stages:
                busy[st.device] += float(table.stage_load(r.request, st.costs, st.device, st.start, st.end, r.share))
    return busy


def _memory_violation(problem: Problem, device: str, used: float, parts: dict[str, float], capacity: float
                      ) -> Violation:
    node = problem.topology.node(device)
    headroom = problem.constraints.memory_headroom
    detail = f"capacity {node.memory_gb:g}, reserved {node.spec.reserved_memory_gb * node.count:g}"
    if headroom:
        detail += f", headroom {headroom:.0%}"
    split = ", ".join(f"{k} {v / GIB:.2f}" for k, v in parts.items())
    return Violation(Kind.MEMORY, device, used / GIB, capacity / GIB,
                     f"device {device}: needs {used / GIB:.2f} GB ({split}) > usable {capacity / GIB:.2f} GB ({detail})")


def _device_metrics(problem: Problem, table: CostTable, plan: Plan, routed: dict[str, list[_Routed]]
                    ) -> tuple[dict[str, DeviceMetrics], list[Violation], bool]:
    """Memory of every shard (KV reserved for every class it serves), load, and calibration."""
    served: dict[str, set[str]] = defaultdict(set)
    for routes in routed.values():
        for r in routes:
            for s in r.shards:
                served[s.id].add(r.request.id)
    on_device: dict[str, list[Shard]] = defaultdict(list)
    for s in plan.shards:
        on_device[s.device].append(s)
    busy = _device_busy(table, routed)
    any_rates = any(r.rate_rps for r in problem.workload)
    devices: dict[str, DeviceMetrics] = {}
    violations: list[Violation] = []
    calibrated = True
    for d, node in enumerate(problem.topology.nodes):
        held = on_device.get(node.id, [])
        parts = {"weights": 0.0, "KV cache": 0.0, "workspace": 0.0, "runtime": 0.0}
        blocks_by_model: dict[str, int] = defaultdict(int)
        for s in held:
            fmt = s.weight_format or problem.model(s.model).weight_format
            a, b = s.layers
            blocks_by_model[s.model] += b - a
            # A shard no route uses still keeps room for one sequence of its model's first class.
            classes = sorted(served.get(s.id, ())) or [r.id for r in problem.requests_for(s.model)[:1]]
            kvs = [table.kv(c, s.model) for c in classes]
            parts["weights"] += float(table.weights(s.model, fmt).shard_bytes(a, b))
            parts["KV cache"] += sum(float(k.shard_kv_bytes(a, b)) for k in kvs)
            parts["workspace"] += max((float(k.shard_workspace_bytes(b)) for k in kvs), default=0.0)
            parts["runtime"] = max(parts["runtime"], float(table.runtime_bytes(fmt)[d]))
            calibrated &= bool(table.calibrated(s.model, fmt)[d])
        used, capacity = sum(parts.values()), float(table.capacity_bytes[d])
        load = busy.get(d, 0.0) if any_rates else None
        devices[node.id] = DeviceMetrics(
            memory_gb=used / GIB, memory_capacity_gb=capacity / GIB, weights_gb=parts["weights"] / GIB,
            kv_cache_gb=parts["KV cache"] / GIB, workspace_gb=parts["workspace"] / GIB, runtime_gb=parts["runtime"] / GIB,
            memory_utilization=used / capacity if capacity > 0 else math.inf, utilization=load,
            shards=tuple(s.id for s in held))
        if used > capacity * (1 + _LIMIT_TOL):
            violations.append(_memory_violation(problem, node.id, used, parts, capacity))
        for model_id, count in blocks_by_model.items():
            most = float(table.max_blocks(model_id)[d])
            if count > most and not table.may_hold[d]:
                violations.append(Violation(Kind.MAX_LAYERS, node.id, count, 0.0,
                                            f"device {node.id}: holds {count} blocks of {model_id} but holds no "
                                            "blocks (holds_blocks: false: a gateway or coordinator)"))
            elif count > most:
                violations.append(Violation(Kind.MAX_LAYERS, node.id, count, most,
                                            f"device {node.id}: holds {count} blocks of {model_id} > its profile's "
                                            f"max_layers {most:g}"))
        if load is not None and load > 1 + _LIMIT_TOL:
            violations.append(Violation(Kind.LOAD, node.id, load, 1.0, f"device {node.id}: busy {load:.0%} of the "
                                        "time at the workload's request rates (more than it can serve)"))
    return devices, violations, calibrated


def _resource_name(table: CostTable, resource: int) -> str:
    kind, *names = table.resources[resource]
    return f"{kind} {' -> '.join(names)}"


def _throughput(problem: Problem, table: CostTable, routed: dict[str, list[_Routed]]
                ) -> tuple[float, list[Violation]]:
    """Decode tokens/s the plan's routes can carry: at their given rates, or the most its
    resources allow (classes in their mix when rates are given or there is one class)."""
    routes = [r for rs in routed.values() for r in rs if r.usage is not None]
    if any(r.route.rate_tok_s is not None for r in routes):
        loads = rated_loads([(r.route.rate_tok_s or 0.0, r.usage) for r in routes])  # type: ignore[misc]
        worst = max(loads.values(), default=0.0)
        violations = [Violation(Kind.CAPACITY, _resource_name(table, k), load, 1.0,
                                f"{_resource_name(table, k)}: the routes' rates keep it busy {load:.0%} of the time")
                      for k, load in sorted(loads.items()) if load > 1 + _LIMIT_TOL]
        total = sum(r.route.rate_tok_s or 0.0 for r in routes)
        return total / max(worst, 1.0), violations
    usage: dict[str, dict[int, float]] = {}
    for rid, rs in routed.items():
        if all(r.usage is not None for r in rs):
            total = sum(r.share for r in rs)
            usage[rid] = combine_usage([(r.share / total if total > 0 else 1.0 / len(rs), r.usage) for r in rs])
    if not usage:
        return 0.0, []
    if len(usage) == 1 or table.rates_given(list(usage)):
        return mixed_throughput(usage, {c: table.decode_demand(c) for c in usage}), []
    return free_throughput(usage), []


def route_resource_seconds(problem: Problem, plan: Plan) -> list[dict[tuple[str, ...], float] | None]:
    """Per route of ``plan`` (in order): seconds per decode token on each resource it uses, by
    resource label (``("device", id)``, ``("link", a, b)``, ``("nic_out", d)``, ...); ``None``
    when a transfer of the route has no network path.

    Examples
    --------
    >>> from placement import load_instance
    >>> from solvers import solve
    >>> problem = load_instance("instances/device-edge-cloud.yaml")
    >>> use = route_resource_seconds(problem, solve(problem, "dp"))[0]
    >>> max(use, key=use.get)   # the binding resource: the edge box's decode steps
    ('device', 'edge')
    """
    check_plan(problem, plan)
    table = cost_table(problem)
    priced = _price_routes(problem, table, plan)
    out: list[dict[tuple[str, ...], float] | None] = [None] * len(plan.routes)
    for routes in priced.values():
        for r in routes:
            out[r.index] = None if r.usage is None else {table.resources[k]: seconds for k, seconds in r.usage.items()}
    return out


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
    >>> problem = load_instance("instances/device-edge-cloud.yaml")
    >>> plan = solve(problem, solver="greedy")
    >>> evaluate(problem, plan).objective == plan.objective
    True
    """
    check_plan(problem, plan)
    plan, routing = _routed_plan(problem, plan)
    table = cost_table(problem)
    routed = _price_routes(problem, table, plan)
    requests: dict[str, RequestMetrics] = {}
    violations: list[Violation] = []
    for req in problem.workload:
        requests[req.id], broken = _request_metrics(problem, table, req, routed.get(req.id, []))
        violations += broken
    devices, broken, calibrated = _device_metrics(problem, table, plan, routed)
    violations += broken
    throughput, broken = _throughput(problem, table, routed)
    violations += broken
    weights = problem.request_weights()
    per_metric = {
        "latency": sum(w * requests[r].e2e_ms for r, w in weights.items()),
        "ttft": sum(w * requests[r].ttft_ms for r, w in weights.items()),
        "tpot": sum(w * requests[r].tpot_ms for r, w in weights.items()),
        "energy": sum(w * requests[r].energy_j for r, w in weights.items()),
        "throughput": throughput,
    }
    aggregates = {f"{name}_{METRICS[name][1].replace('/', '_per_')}": value for name, value in per_metric.items()}
    return Metrics(requests=requests, devices=devices, throughput_tok_s=throughput,
                   objective=objective_value(problem, per_metric), feasible=not violations,
                   violations=tuple(violations), calibrated=calibrated, aggregates=aggregates,
                   routing=routing, routes=plan.routes if routing == "max-flow" else ())


def _routed_plan(problem: Problem, plan: Plan) -> tuple[Plan, str]:
    """``plan`` as evaluated: a plan with shards and no routes is routed by max-flow
    (:func:`placement.costs.flows.route_shards`), one with routes as it says."""
    if not plan.shards or plan.routes:
        return plan, "given"
    return plan.with_(routes=route_shards(problem, plan.shards).routes), "max-flow"
