"""Dense views of the cost table for model caching: whole-model instances and what each class pays on them.

A *candidate instance* ``t`` is one accepted model, whole, in one of its formats, on one
device: the triple ``(model, format, device)``. For every request class ``c`` and
candidate ``t``, :func:`caching_view` prices the class's single-stage route on it with
:func:`~placement.costs.routes.route_times` (the same reduction :func:`placement.evaluate`
runs) and records

- whether the route is possible at all (``reach_ok``: a network path both ways and the
  instance's relative ``constraints.quality_floor``), meets the class's SLOs (``slo_ok``)
  and its ``min_quality`` (``quality_ok``), and whether the class accepts the model;
- its objective cost per request (:func:`placement.objective.request_cost`), its answer
  score, the share of time it keeps the device busy per unit of the class's requests at
  the class's rate, and the KV cache and workspace the class reserves on it;

and for every instance its weights, its device's engine runtime, the time and energy to
load it, whether the current cache already holds it, and what a load costs in the
objective (``churn``). Declared cascades are priced for every pair of candidates of their
two models (:func:`~placement.costs.routes.cascade_times`). Solvers read these arrays and
compute no costs of their own; every array is read-only.

Examples
--------
>>> from placement import load_instance
>>> from placement.costs.caching import caching_view
>>> view = caching_view(load_instance("instances/hybrid.yaml"))
>>> view.eligible.shape == (3, len(view.model)), view.cost.flags.writeable
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from placement.costs.routes import RouteTimes, Stage, cascade_score, cascade_times, route_quality, route_times
from placement.costs.tables import CostTable, cost_table, readonly
from placement.objective import request_cost, unserved_weight
from placement.problem import Problem, RequestClass

__all__ = ["CachingView", "CascadeOptions", "caching_view", "slo_met"]

_TOL = 1e-9  # a limit met to rounding is met (as in evaluate)


def slo_met(request: RequestClass, times: RouteTimes) -> bool:
    """Whether one path's times meet every SLO of ``request`` (evaluate's per-route test)."""
    return all(getattr(times, name.replace("_ms", "_s")) * 1e3 <= limit for name, limit in request.slo.items())


@dataclass(frozen=True)
class CascadeOptions:
    """Eligible cascade routes, one per entry ``p``: class ``cls[p]`` answered on candidate ``first[p]``,
    its share ``share[p]`` escalated to candidate ``second[p]``; the cost per request, the first and
    second devices' busy share per unit of the class's requests, and the answers' score."""

    cls: np.ndarray
    first: np.ndarray
    second: np.ndarray
    share: np.ndarray
    cost: np.ndarray
    busy_first: np.ndarray
    busy_second: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.cls)


@dataclass(frozen=True)
class CachingView:
    """Whole-model candidate instances and every class's route on each (see the module docstring).

    Memory figures are bytes: an instance's weights, its device's engine runtime, what an
    instance no class uses keeps (one sequence of its model's first class), and per class
    the KV cache and prefill workspace it reserves on an instance.

    Arrays over candidates ``[T]`` and over classes x candidates ``[C, T]``; ``score`` is ``nan``
    where a class has no benchmark. ``fits`` says whether the instance's weights and its device's
    runtime fit the device's usable memory (and its profile's ``max_layers``) on their own.
    Costs (``cost``, ``unserved_cost``, ``churn_cost``, the cascades') are to be *minimised*:
    the objective times ``sign`` (-1 when the objective is maximised: ``quality`` alone).
    """

    requests: tuple[str, ...]
    class_weight: np.ndarray
    unserved_cost: float
    sign: float
    model: tuple[str, ...]
    weight_format: tuple[str, ...]
    device: np.ndarray
    num_blocks: np.ndarray
    fits: np.ndarray
    weight_mem_bytes: np.ndarray
    runtime_mem_bytes: np.ndarray
    idle_mem_bytes: np.ndarray
    load_s: np.ndarray
    load_j: np.ndarray
    cached: np.ndarray
    churn_cost: np.ndarray
    accepts: np.ndarray
    reach_ok: np.ndarray
    slo_ok: np.ndarray
    quality_ok: np.ndarray
    eligible: np.ndarray
    cost: np.ndarray
    busy: np.ndarray
    kv_mem_bytes: np.ndarray
    workspace_mem_bytes: np.ndarray
    score: np.ndarray
    e2e_ms: np.ndarray
    capacity_bytes: np.ndarray
    max_utilization: float
    rates: bool
    cascades: CascadeOptions

    @property
    def num_candidates(self) -> int:
        return len(self.model)

    def candidate(self, model: str, weight_format: str, device: int) -> int | None:
        """Index of the candidate ``(model, weight_format, device)``, or ``None``."""
        return self._index.get((model, weight_format, int(device)))

    @cached_property
    def _index(self) -> dict:
        return {(m, f, int(d)): t for t, (m, f, d) in enumerate(zip(self.model, self.weight_format, self.device))}


def _sign(problem: Problem) -> float:
    """+1 when the objective is minimised, -1 when it is maximised (so solvers always minimise)."""
    return -1.0 if problem.objective.sense == "max" else 1.0


def _triples(problem: Problem) -> list[tuple[str, str, int]]:
    accepted = {m for r in problem.workload for m in r.accepted}
    D = len(problem.topology.nodes)
    return [(m.id, f, d) for m in problem.models if m.id in accepted for f in m.formats for d in range(D)]


def _instance_arrays(problem: Problem, table: CostTable, triples: list) -> dict[str, np.ndarray]:
    weights, runtime, idle, load_s, load_j, cached, fits = [], [], [], [], [], [], []
    resident = {(c.device, c.model, c.weight_format, c.layers) for c in (problem.cache or ())}
    nodes = problem.topology.nodes
    for model, fmt, d in triples:
        L = problem.model(model).num_blocks
        w = float(table.weights(model, fmt).shard_bytes(0, L))
        rt = float(table.runtime_bytes(fmt)[d])
        first = problem.requests_accepting(model)[:1]
        idle.append(float(table.shard_memory_bytes(model, fmt, 0, L, first)) - w)
        weights.append(w)
        runtime.append(rt)
        load_s.append(float(table.load_seconds(model, fmt, 0, L)[d]))
        load_j.append(float(table.load_energy_j(model, fmt, 0, L)[d]))
        cached.append((nodes[d].id, model, fmt, (0, L)) in resident)
        fits.append(w + rt <= table.capacity_bytes[d] * (1 + _TOL) and L <= table.max_blocks(model)[d])
    churn = dict(problem.objective.terms).get("churn", 0.0) * _sign(problem)
    load = np.nan_to_num(np.array(load_s), nan=0.0)
    return {"weight_mem_bytes": np.array(weights), "runtime_mem_bytes": np.array(runtime), "idle_mem_bytes": np.array(idle),
            "load_s": np.array(load_s), "load_j": np.array(load_j), "cached": np.array(cached, dtype=bool),
            "fits": np.array(fits, dtype=bool),
            "churn_cost": np.where(np.array(cached, dtype=bool), 0.0, churn * load)}


def _class_arrays(problem: Problem, table: CostTable, triples: list) -> tuple[dict[str, np.ndarray], dict]:
    C, T = len(problem.workload), len(triples)
    out = {k: np.zeros((C, T), dtype=bool) for k in ("accepts", "reach_ok", "slo_ok", "quality_ok")}
    out.update({k: np.zeros((C, T)) for k in ("cost", "busy", "kv_mem_bytes", "workspace_mem_bytes")})
    out["score"] = np.full((C, T), np.nan)
    out["e2e_ms"] = np.full((C, T), np.inf)
    floor = problem.constraints.quality_floor
    times: dict[tuple[int, int], RouteTimes] = {}
    for c, req in enumerate(problem.workload):
        for t, (model, fmt, d) in enumerate(triples):
            if model not in req.accepted:
                continue
            out["accepts"][c, t] = True
            L = problem.model(model).num_blocks
            bc = table.blocks(req, model, fmt)
            rt = route_times([Stage(d, 0, L, bc)], table.transfers(req, model), req)
            score = table.quality_score(model, fmt, req.benchmark)
            rel_ok = floor is None or route_quality(table, model, [(fmt, 0, L)]) >= floor - _TOL
            out["reach_ok"][c, t] = bool(np.isfinite(rt.e2e_s)) and rel_ok
            out["slo_ok"][c, t] = slo_met(req, rt)
            out["quality_ok"][c, t] = req.min_quality is None or (score is not None and score >= req.min_quality - _TOL)
            kv = table.kv(req, model)
            out["kv_mem_bytes"][c, t] = float(kv.shard_kv_bytes(0, L))
            out["workspace_mem_bytes"][c, t] = float(kv.shard_workspace_bytes(L))
            out["busy"][c, t] = float(table.stage_load(req, bc, d, 0, L, 1.0))
            out["score"][c, t] = np.nan if score is None else score
            out["e2e_ms"][c, t] = rt.e2e_s * 1e3
            if out["reach_ok"][c, t]:
                out["cost"][c, t] = _sign(problem) * request_cost(problem, rt, score)
                times[(c, t)] = rt
    return out, times


def _cascade_options(problem: Problem, triples: list, arrays: dict, times: dict) -> CascadeOptions:
    cols: dict[str, list] = {k: [] for k in CascadeOptions.__dataclass_fields__}
    by_model: dict[str, list[int]] = {}
    for t, (model, _, _) in enumerate(triples):
        by_model.setdefault(model, []).append(t)
    for c, req in enumerate(problem.workload):
        for cascade in req.cascades:
            firsts = [t for t in by_model.get(cascade.first, ()) if arrays["reach_ok"][c, t] and arrays["slo_ok"][c, t]]
            seconds = [t for t in by_model.get(cascade.then, ()) if arrays["reach_ok"][c, t]]
            for i in firsts:
                for j in seconds:
                    both = cascade_times(times[(c, i)], times[(c, j)], cascade.escalate_share)
                    score = cascade_score(*(None if np.isnan(arrays["score"][c, k]) else float(arrays["score"][c, k])
                                            for k in (i, j)), cascade.escalate_share)
                    if not slo_met(req, both.escalated):
                        continue
                    if req.min_quality is not None and (score is None or score < req.min_quality - _TOL):
                        continue
                    for key, value in (("cls", c), ("first", i), ("second", j), ("share", cascade.escalate_share),
                                       ("cost", _sign(problem) * request_cost(problem, both.mean, score)),
                                       ("busy_first", arrays["busy"][c, i]),
                                       ("busy_second", cascade.escalate_share * arrays["busy"][c, j]),
                                       ("score", np.nan if score is None else score)):
                        cols[key].append(value)
    ints = {"cls", "first", "second"}
    return CascadeOptions(**{k: readonly(v, dtype=np.int64 if k in ints else float) for k, v in cols.items()})


def caching_view(problem: Problem) -> CachingView:
    """The :class:`CachingView` of ``problem``, compiled once and kept with its cost table."""
    table = cost_table(problem)

    def build() -> CachingView:
        triples = _triples(problem)
        inst = _instance_arrays(problem, table, triples)
        arrays, times = _class_arrays(problem, table, triples)
        eligible = arrays["accepts"] & arrays["reach_ok"] & arrays["slo_ok"] & arrays["quality_ok"]
        weights = problem.request_weights()
        return CachingView(
            requests=tuple(r.id for r in problem.workload),
            class_weight=readonly([weights[r.id] for r in problem.workload]),
            unserved_cost=float(_sign(problem) * unserved_weight(problem)), sign=_sign(problem),
            model=tuple(m for m, _, _ in triples), weight_format=tuple(f for _, f, _ in triples),
            device=readonly([d for _, _, d in triples], dtype=np.int64),
            num_blocks=readonly([problem.model(m).num_blocks for m, _, _ in triples], dtype=np.int64),
            **{k: readonly(v, dtype=v.dtype) for k, v in inst.items()},
            **{k: readonly(v, dtype=v.dtype) for k, v in arrays.items()},
            eligible=readonly(eligible, dtype=bool),
            capacity_bytes=table.capacity_bytes,
            max_utilization=problem.constraints.max_utilization,
            rates=problem.has_request_rates(),
            cascades=_cascade_options(problem, triples, arrays, times),
        )
    return table._memo(("caching_view",), build)
