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

Model caching (see :mod:`placement.costs.caching`): a class's routes may go to instances
of any model it accepts, each must meet its ``min_quality``; a route with ``escalate_to``
is a cascade priced by :func:`~placement.costs.routes.cascade_times`; a plan may declare
shares of classes unserved (``Plan.unserved``), each with a reason that
:func:`placement.unserved.refutation` tests; routes and unserved shares of a class add up
to all of it. Devices stay within ``constraints.max_utilization``; against the current
cache the plan's loads and evictions are reported (:func:`placement.cache.cache_changes`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from placement.cache import cache_changes
from placement.costs.caching import caching_view
from placement.costs.flows import route_shards
from placement.costs.queueing import DeviceQueue, device_waits, goodput_scale, route_wait, share_within
from placement.costs.routes import (
    RouteTimes, Stage, cascade_score, cascade_times, cascade_usage, route_quality, route_score, route_times,
    route_usage,
)
from placement.costs.tables import GIB, CostTable, cost_table
from placement.costs.throughput import combine_usage, free_throughput, mixed_throughput, rated_loads
from placement.errors import InvalidPlanError, Issue
from placement.metrics import DeviceMetrics, Metrics, RequestMetrics
from placement.objective import objective_value
from placement.plan import Plan, Reason, Route, Shard, Unserved, require_plan
from placement.problem import PORTFOLIO_METRICS, Problem, RequestClass, aggregate_key, require_problem
from placement.unserved import DeviceState, refutation
from placement.violations import Kind, Violation

__all__ = ["evaluate", "check_plan", "route_shares", "route_resource_seconds", "objective_value", "device_state"]

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
    model = shards[route.path[0]].model
    for sid in route.path:
        s = shards[sid]
        if s.model not in req.accepted:
            needs = req.model if len(req.accepted) == 1 else f"one of {', '.join(req.accepted)}"
            return [Issue(f"{where}.path", f"shard {sid!r} holds {s.model}, request {req.id} needs {needs}")]
        if s.model != model:
            return [Issue(f"{where}.path", f"shard {sid!r} holds {s.model}, the route's first shard {model} "
                                           "(a route runs one model; a cascade's second model goes in escalate_to)")]
        if s.layers[0] != expected:
            return [Issue(f"{where}.path", f"shard {sid!r} starts at block {s.layers[0]}, expected {expected} "
                                           "(a route's shards must cover the blocks in order)")]
        expected = s.layers[1]
    L = problem.model(model).num_blocks
    return [] if expected == L else [Issue(f"{where}.path", f"covers blocks [0, {expected}) of {L}")]


def _check_cascade(problem: Problem, req: RequestClass, route: Route, shards: dict[str, Shard], where: str
                   ) -> list[Issue]:
    """A cascade's second chain covers an accepted model, and the class declares that cascade."""
    second = Route(route.request, route.escalate_to or ())
    issues = _check_path(problem, req, second, shards, f"{where}.escalate_to")
    if issues:  # _check_path names the field `<where>.path`
        return [Issue(f"{where}.escalate_to", i.message) for i in issues]
    first, then = shards[route.path[0]].model, shards[second.path[0]].model
    if req.cascade(first, then) is None:
        declared = ", ".join(f"{c.first} -> {c.then}" for c in req.cascades) or "none"
        return [Issue(f"{where}.escalate_to", f"request {req.id} declares no cascade {first} -> {then} "
                                              f"(declared: {declared})")]
    if route.rate_tok_s is not None:
        return [Issue(f"{where}.rate_tok_s", "a cascade shares its class by fraction, not by rate")]
    return []


def _check_unserved(problem: Problem, plan: Plan) -> list[Issue]:
    issues: list[Issue] = []
    request_ids = {r.id for r in problem.workload}
    seen: set[str] = set()
    for i, u in enumerate(plan.unserved):
        where = f"unserved[{i}]"
        if u.request not in request_ids:
            issues.append(Issue(f"{where}.request", f"unknown request class {u.request!r}"))
        elif u.request in seen:
            issues.append(Issue(f"{where}.request", f"request {u.request!r} is declared unserved twice"))
        seen.add(u.request)
        if not (math.isfinite(u.share) and 0 < u.share <= 1 + _FRACTION_TOL):
            issues.append(Issue(f"{where}.share", f"must be in (0, 1], got {u.share}"))
        if not isinstance(u.reason, Reason):
            issues.append(Issue(f"{where}.reason", f"must be one of {', '.join(r.value for r in Reason)}"))
    return issues


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
        found = _check_path(problem, problem.request(route.request), route, shards, f"routes[{i}]")
        if not found and route.escalate_to is not None:
            found = _check_cascade(problem, problem.request(route.request), route, shards, f"routes[{i}]")
        issues += found
    issues += _check_shares(plan, request_ids)
    issues += _check_unserved(problem, plan)
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
    model: str = ""
    paths: tuple[RouteTimes, ...] = ()  # the times of every path a request may take (SLOs hold on each)
    escalated: tuple[Stage, ...] = ()  # a cascade's second chain, taken by `escalate` of the route's share
    escalated_shards: tuple[Shard, ...] = ()
    escalate: float = 0.0
    score: float | None = None  # benchmark score of the route's answers

    @property
    def all_shards(self) -> tuple[Shard, ...]:
        return self.shards + self.escalated_shards


def _price_routes(problem: Problem, table: CostTable, plan: Plan) -> dict[str, list[_Routed]]:
    shards = {s.id: s for s in plan.shards}
    by_class: dict[str, list[tuple[int, Route]]] = defaultdict(list)
    for i, route in enumerate(plan.routes):
        by_class[route.request].append((i, route))
    out: dict[str, list[_Routed]] = {}
    for rid, indexed in by_class.items():
        req = problem.request(rid)
        priced = []
        for (i, route), share in zip(indexed, route_shares([r for _, r in indexed])):
            path = tuple(shards[sid] for sid in route.path)
            priced.append(_priced_route(table, req, i, route, share, path,
                                        tuple(shards[sid] for sid in route.escalate_to or ())))
        out[rid] = priced
    return out


def _chain(table: CostTable, req: RequestClass, path: tuple[Shard, ...]
           ) -> tuple[tuple[Stage, ...], RouteTimes, dict[int, float] | None, float | None]:
    """A chain of one model's shards priced for ``req``: stages, times, resource use and answer score."""
    index = table.problem.topology.index
    model = path[0].model
    stages = tuple(Stage(index[s.device], s.layers[0], s.layers[1], table.blocks(req, s.model, s.weight_format))
                   for s in path)
    score = route_score(table, model, [(st.costs.weight_format, st.start, st.end) for st in stages], req.benchmark)
    return (stages, route_times(stages, table.transfers(req, model), req), route_usage(table, req, stages, model),
            score)


def _priced_route(table: CostTable, req: RequestClass, i: int, route: Route, share: float, path: tuple[Shard, ...],
                  second: tuple[Shard, ...]) -> _Routed:
    stages, times, usage, score = _chain(table, req, path)
    if not second:
        return _Routed(i, route, req, path, stages, times, usage, share, path[0].model, (times,), score=score)
    stages2, times2, usage2, score2 = _chain(table, req, second)
    e = req.cascade(path[0].model, second[0].model).escalate_share  # type: ignore[union-attr]
    both = cascade_times(times, times2, e)
    return _Routed(i, route, req, path, stages, both.mean, cascade_usage(usage, usage2, e), share, path[0].model,
                   (times, both.escalated), stages2, second, e, cascade_score(score, score2, e))


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def _unrouted(declared: bool) -> RequestMetrics:
    """A class no route serves: no finite time or energy. Declared unserved (``declared``), none of it
    is served and no SLO is missed; otherwise the plan misses it whole."""
    inf = math.inf
    return RequestMetrics(inf, inf, inf, inf, inf, inf, 0.0, inf, slo_met=declared,
                          served_share=0.0 if declared else 1.0)


def _coverage(req: RequestClass, total: float, declared: Unserved | None) -> list[Violation]:
    """The class's routes and its declared unserved share must add up to all of it."""
    if declared is None:
        if total < 1 - _FRACTION_TOL:
            return [Violation(Kind.COVERAGE, req.id, total, 1.0,
                              f"request {req.id}: routes carry {total:.0%} of its requests, not all")]
        return []
    if abs(total + declared.share - 1) > _FRACTION_TOL:
        return [Violation(Kind.COVERAGE, req.id, total + declared.share, 1.0,
                          f"request {req.id}: routes carry {total:.1%} and the plan declares {declared.share:.1%} "
                          "unserved; together they must be all of it")]
    return []


def _min_quality_violations(req: RequestClass, routed: list[_Routed]) -> list[Violation]:
    if req.min_quality is None:
        return []
    out = []
    for r in routed:
        if r.score is None or r.score < req.min_quality - _QUALITY_TOL:
            got = "no score" if r.score is None else f"{r.score:.1f}"
            out.append(Violation(Kind.QUALITY, req.id, r.score if r.score is not None else 0.0, req.min_quality,
                                 f"request {req.id}: route {' -> '.join(r.route.path)} answers with {req.benchmark} "
                                 f"{got} < its min_quality {req.min_quality:g}"))
    return out


def _request_metrics(problem: Problem, table: CostTable, req: RequestClass, routed: list[_Routed],
                     declared: Unserved | None = None) -> tuple[RequestMetrics, list[Violation]]:
    """One class averaged over its routes by share; its SLOs checked on every route it may take
    (an average could hide a route that always misses)."""
    if not routed and declared is not None:
        return _unrouted(declared=True), _coverage(req, 0.0, declared)
    if not routed:
        return _unrouted(declared=False), [Violation(Kind.COVERAGE, req.id, 0.0, 1.0,
                                                     f"request {req.id}: no route serves it")]
    violations: list[Violation] = []
    total = sum(r.share for r in routed)
    weights = [r.share / total if total > 0 else 1.0 / len(routed) for r in routed]
    mean = {k: sum(w * getattr(r.times, k) for w, r in zip(weights, routed))
            for k in ("ttft_s", "tpot_s", "e2e_s", "prefill_s", "transfer_s", "energy_j", "idle_energy_j")}
    violations += _coverage(req, total, declared)
    violations += _min_quality_violations(req, routed)
    slo_ok = True
    for name, limit in req.slo.items():
        worst = max(getattr(p, name.replace("_ms", "_s")) * 1e3 for r in routed for p in r.paths)
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
        quality = min(route_quality(table, stages[0].costs.model, [(st.costs.weight_format, st.start, st.end)
                                                                   for st in stages])
                      for stages in (r.stages, r.escalated) if stages)
        if quality < floor - _QUALITY_TOL:
            violations.append(Violation(Kind.QUALITY, req.id, quality, floor,
                                        f"request {req.id}: route {' -> '.join(r.route.path)} has weight-format "
                                        f"quality {quality:.4f} < quality floor {floor:g}"))
    if not math.isfinite(mean["e2e_s"]):
        violations.append(Violation(Kind.NETWORK, req.id, math.inf, 0.0, f"request {req.id}: no network path "
                                    f"between its source {req.source} and its shards"))
    g = max(req.output_tokens, 1)
    scores = [r.score for r in routed]
    quality = None if any(q is None for q in scores) else sum(w * q for w, q in zip(weights, scores))  # type: ignore[misc]
    metrics = RequestMetrics(
        ttft_ms=mean["ttft_s"] * 1e3, tpot_ms=mean["tpot_s"] * 1e3, e2e_ms=mean["e2e_s"] * 1e3,
        prefill_ms=mean["prefill_s"] * 1e3, transfer_ms=mean["transfer_s"] * 1e3,
        energy_j=mean["energy_j"], idle_energy_j=mean["idle_energy_j"], energy_j_per_token=mean["energy_j"] / g,
        slo_met=slo_ok, served_share=total if declared is not None else 1.0, quality=quality)
    return metrics, violations


def _device_busy(table: CostTable, routed: dict[str, list[_Routed]]) -> dict[int, float]:
    """Share of time each device is busy at the workload's request rates."""
    busy: dict[int, float] = defaultdict(float)
    for routes in routed.values():
        for r in routes:
            for st in r.stages:
                busy[st.device] += float(table.stage_load(r.request, st.costs, st.device, st.start, st.end, r.share))
            for st in r.escalated:  # a cascade's second chain takes the escalated share
                busy[st.device] += float(table.stage_load(r.request, st.costs, st.device, st.start, st.end,
                                                          r.share * r.escalate))
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
            for s in r.all_shards:
                served[s.id].add(r.request.id)
    on_device: dict[str, list[Shard]] = defaultdict(list)
    for s in plan.shards:
        on_device[s.device].append(s)
    busy = _device_busy(table, routed)
    any_rates = problem.has_request_rates()
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
            classes = sorted(served.get(s.id, ())) or [r.id for r in problem.requests_accepting(s.model)[:1]]
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
        violations += _load_violations(problem, node.id, load)
    return devices, violations, calibrated


def _load_violations(problem: Problem, device: str, load: float | None) -> list[Violation]:
    """A device busier than ``constraints.max_utilization`` (all of the time, by default)."""
    limit = problem.constraints.max_utilization
    if load is None or load <= limit + _LIMIT_TOL:
        return []
    if limit >= 1:
        return [Violation(Kind.LOAD, device, load, 1.0, f"device {device}: busy {load:.0%} of the "
                          "time at the workload's request rates (more than it can serve)")]
    return [Violation(Kind.LOAD, device, load, limit, f"device {device}: busy {load:.0%} of the time at the "
                      f"workload's request rates > constraints.max_utilization {limit:.0%}")]


def device_state(problem: Problem, plan: Plan, devices: dict[str, DeviceMetrics]) -> DeviceState:
    """What ``plan`` leaves on each device, from its device metrics (for :mod:`placement.unserved`)."""
    view = caching_view(problem)
    nodes = problem.topology.nodes
    routed_through: dict[str, set[str]] = defaultdict(set)
    for route in plan.routes:
        for sid in (*route.path, *(route.escalate_to or ())):
            routed_through[sid].add(route.request)
    held: list[list] = [[] for _ in nodes]
    for s in plan.shards:
        fmt = s.weight_format or problem.model(s.model).weight_format
        t = view.candidate(s.model, fmt, problem.topology.index[s.device])
        if t is not None and s.layers == (0, problem.model(s.model).num_blocks):
            held[problem.topology.index[s.device]].append((t, frozenset(routed_through.get(s.id, ()))))
    metrics = [devices[n.id] for n in nodes]
    cached = frozenset(t for c in (problem.cache or ()) if c.layers == (0, problem.model(c.model).num_blocks)
                       for t in [view.candidate(c.model, c.weight_format, problem.topology.index[c.device])]
                       if t is not None)
    return DeviceState(
        used_bytes=np.array([m.memory_gb * GIB for m in metrics]),
        capacity_bytes=cost_table(problem).capacity_bytes,
        runtime_bytes=np.array([m.runtime_gb * GIB for m in metrics]),
        load=np.array([m.utilization or 0.0 for m in metrics]),
        instances=tuple(tuple(h) for h in held), loads=bool(cache_changes(problem, plan).loads), cached=cached)


def _unserved_violations(problem: Problem, plan: Plan, devices: dict[str, DeviceMetrics]) -> list[Violation]:
    """Each declared reason for unserved demand that the evidence contradicts."""
    if not plan.unserved:
        return []
    view = caching_view(problem)
    state = device_state(problem, plan, devices)
    out = []
    for u in plan.unserved:
        c = view.requests.index(u.request)
        why = refutation(problem, view, state, c, u.reason, u.share)
        if why:
            out.append(Violation(Kind.COVERAGE, u.request, u.share, 0.0, f"request {u.request}: declared "
                                 f"{u.share:.0%} unserved for want of {u.reason.value}, but {why}"))
    return out


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
    require_problem(problem)
    require_plan(plan)
    check_plan(problem, plan)
    plan, routing = _routed_plan(problem, plan)
    table = cost_table(problem)
    routed = _price_routes(problem, table, plan)
    queue = _queueing(problem, table, routed) if problem.constraints.queueing else None
    if queue is not None:
        routed = queue.waiting(routed)
    requests: dict[str, RequestMetrics] = {}
    violations: list[Violation] = []
    declared = {u.request: u for u in plan.unserved}
    for req in problem.workload:
        requests[req.id], broken = _request_metrics(problem, table, req, routed.get(req.id, []), declared.get(req.id))
        if queue is not None and req.id in routed:
            requests[req.id] = replace(requests[req.id], slo_attainment=queue.attainment(req, routed[req.id]),
                                       queue_ms=_mean_wait_ms(routed[req.id]))
        violations += broken
    devices, broken, calibrated = _device_metrics(problem, table, plan, routed)
    violations += broken
    violations += _unserved_violations(problem, plan, devices)
    throughput, broken = _throughput(problem, table, routed)
    violations += broken
    changes = cache_changes(problem, plan) if _tracks_cache(problem) else None
    goodput = queue.goodput(routed) if queue is not None and any(r.slo.items() for r in problem.workload) else None
    per_metric = {**_per_metric(problem, requests, throughput, changes), "goodput": goodput or 0.0}
    shown = per_metric if problem.portfolio_features() or plan.unserved else \
        {k: v for k, v in per_metric.items() if k not in PORTFOLIO_METRICS}
    if goodput is None:
        shown = {k: v for k, v in shown.items() if k != "goodput"}
    aggregates = {aggregate_key(name): value for name, value in shown.items()}
    return Metrics(requests=requests, devices=devices, throughput_tok_s=throughput,
                   objective=objective_value(problem, per_metric), feasible=not violations,
                   violations=tuple(violations), calibrated=calibrated, aggregates=aggregates, changes=changes,
                   goodput_rps=goodput, routing=routing, routes=plan.routes if routing == "max-flow" else ())


class _Queues:
    """The plan's queues at the request rates (see :mod:`placement.costs.queueing`): each device serves
    the requests of every route through it, each taking its share of a batch's busy time."""

    def __init__(self, jobs: dict[int, list[tuple[float, float]]], goodput_share: float):
        self.jobs, self.goodput_share = jobs, goodput_share
        self.at_rates = device_waits(jobs)

    def scaled(self, x: float) -> dict[int, DeviceQueue]:
        """The queues with every arrival rate multiplied by ``x``."""
        return device_waits({d: [(lam * x, s) for lam, s in pairs] for d, pairs in self.jobs.items()})

    def waiting(self, routed: dict[str, list[_Routed]]) -> dict[str, list[_Routed]]:
        """Every route's times with the mean wait at each of its devices added."""
        return {rid: [_with_waits(r, self.at_rates) for r in routes] for rid, routes in routed.items()}

    def attainment(self, req: RequestClass, routes: list[_Routed], queues: dict[int, DeviceQueue] | None = None
                   ) -> float:
        """Share of the class's requests that meet every SLO of the class (``queues``: at the rates)."""
        queues = queues if queues is not None else self.at_rates
        total = sum(r.share for r in routes)
        met = sum(r.share * weight * _path_attainment(req, times, route_wait(queues, [st.device for st in stages]))
                  for r in routes for times, weight, stages in _paths_with_weights(r))
        return met / total if total > 0 else 0.0

    def goodput(self, routed: dict[str, list[_Routed]]) -> float:
        """Requests/s, every class's rate scaled alike, at which the goodput share of them meets its SLOs."""
        rates = {rid: (routes[0].request.rate_rps or 0.0) * sum(r.share for r in routes)
                 for rid, routes in routed.items() if routes}
        total = sum(rates.values())
        if total <= 0:
            return 0.0

        def attainment(x: float) -> float:
            queues = self.scaled(x)
            return sum(rate * self.attainment(routed[rid][0].request, routed[rid], queues)
                       for rid, rate in rates.items()) / total
        rho = max((q.rho for q in self.at_rates.values()), default=0.0)
        return total * goodput_scale(attainment, self.goodput_share, 1.0 / rho if rho > 0 else 1e9)


def _paths_with_weights(r: _Routed):
    """Each path a request of the route may take, the share of the route's requests on it, and its stages."""
    if not r.escalated:
        yield r.paths[0], 1.0, r.stages
        return
    yield r.paths[0], 1.0 - r.escalate, r.stages
    yield r.paths[1], r.escalate, r.stages + r.escalated


def _path_attainment(req: RequestClass, times: RouteTimes, wait: DeviceQueue) -> float:
    """Share of requests on a path that meet every SLO of their class, the wait drawn from ``wait``
    (``times`` may already hold a mean wait: it is taken out first)."""
    limits = dict(req.slo.items())
    if "tpot_ms" in limits and times.tpot_s * 1e3 > limits["tpot_ms"]:
        return 0.0
    slacks = []
    if "ttft_ms" in limits:
        slacks.append(limits["ttft_ms"] * 1e-3 - (times.ttft_s - times.queue_s))
    if "e2e_ms" in limits:
        slacks.append(limits["e2e_ms"] * 1e-3 - (times.e2e_s - times.queue_s))
    if not slacks:
        return 1.0
    return share_within(0.0, wait.rho, wait.mean_wait_s, min(slacks))


def _with_waits(r: _Routed, queues: dict[int, DeviceQueue]) -> _Routed:
    paths = [times.waiting(route_wait(queues, [st.device for st in stages]).mean_wait_s)
             for times, _, stages in _paths_with_weights(r)]
    if not r.escalated:
        return replace(r, times=paths[0], paths=tuple(paths))
    wait = (1.0 - r.escalate) * paths[0].queue_s + r.escalate * paths[1].queue_s
    return replace(r, times=r.times.waiting(wait), paths=tuple(paths))


def _mean_wait_ms(routes: list[_Routed]) -> float:
    total = sum(r.share for r in routes)
    return sum(r.share * r.times.queue_s for r in routes) / total * 1e3 if total > 0 else 0.0


def _queueing(problem: Problem, table: CostTable, routed: dict[str, list[_Routed]]) -> _Queues:
    """Each device's jobs: ``(arrivals per second, seconds each)`` of every route's stages on it."""
    jobs: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for routes in routed.values():
        for r in routes:
            rate = r.request.rate_rps or 0.0
            for stages, share in ((r.stages, r.share), (r.escalated, r.share * r.escalate)):
                for st in stages:
                    busy = float(st.costs.stage_busy_s(st.device, st.start, st.end))
                    jobs[st.device].append((rate * share, busy / st.costs.batch))
    return _Queues(dict(jobs), problem.constraints.goodput_share)


def _tracks_cache(problem: Problem) -> bool:
    """Whether changes against the current cache are reported: the instance gives one, or weighs churn."""
    return problem.cache is not None or any(name == "churn" for name, _ in problem.objective.terms)


def _per_metric(problem: Problem, requests: dict[str, RequestMetrics], throughput: float, changes) -> dict[str, float]:
    """The objective's aggregates (see :mod:`placement.objective`): per-request metrics weighted by the
    classes' weights and served shares, the unserved share, the seconds of loads, the throughput."""
    weights = problem.request_weights()
    served = {r: m.served_share for r, m in requests.items()}

    def mean(field: str) -> float:
        return sum(w * served[r] * getattr(requests[r], field) for r, w in weights.items() if served[r] > 0)
    return {
        "latency": mean("e2e_ms"), "ttft": mean("ttft_ms"), "tpot": mean("tpot_ms"), "energy": mean("energy_j"),
        "throughput": throughput,
        "quality": sum(w * served[r] * (requests[r].quality or 0.0) for r, w in weights.items() if served[r] > 0),
        "churn": (changes.load_s or 0.0) if changes is not None else 0.0,
        "unserved": sum(w * (1.0 - served[r]) for r, w in weights.items()),
    }


def _routed_plan(problem: Problem, plan: Plan) -> tuple[Plan, str]:
    """``plan`` as evaluated: a plan with shards and no routes is routed by max-flow
    (:func:`placement.costs.flows.route_shards`), one with routes as it says."""
    if not plan.shards or plan.routes:
        return plan, "given"
    return plan.with_(routes=route_shards(problem, plan.shards).routes), "max-flow"
