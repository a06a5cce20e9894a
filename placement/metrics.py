"""Predicted metrics of a plan, as computed by :func:`placement.evaluate`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from placement.violations import Violation

__all__ = ["RequestMetrics", "DeviceMetrics", "Metrics", "ShardChange", "CacheChanges"]


@dataclass(frozen=True)
class RequestMetrics:
    """One request class served along its route(s); times in ms, energy in J per request.

    ``energy_j`` counts the devices' active power while they work on the
    request plus the links' energy per bit; ``idle_energy_j`` is the idle power
    of the route's devices while they wait on other stages, reported apart.
    Times and energy are means over the served requests (``served_share`` of them).
    """

    ttft_ms: float
    tpot_ms: float
    e2e_ms: float
    prefill_ms: float
    transfer_ms: float
    energy_j: float
    idle_energy_j: float
    energy_j_per_token: float
    slo_met: bool = True
    served_share: float = 1.0  # of the class's requests; the rest the plan declares unserved
    quality: float | None = None  # mean benchmark score of the answers served (None: no benchmark)
    queue_ms: float = 0.0  # mean wait for a free slot, included in TTFT and E2E (with queueing)
    slo_attainment: float | None = None  # share of its requests meeting every SLO (with queueing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeviceMetrics:
    """Memory of one device against what it may use; GB are GiB (2**30 bytes).

    ``memory_capacity_gb`` is the usable memory after the reserved share and the
    instance's headroom. ``utilization`` is the busy share of time under the
    workload's request rates (``None`` when no rates are given).
    """

    memory_gb: float
    memory_capacity_gb: float
    weights_gb: float
    kv_cache_gb: float
    workspace_gb: float
    runtime_gb: float
    memory_utilization: float
    utilization: float | None
    shards: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shards"] = list(self.shards)
        return d


@dataclass(frozen=True)
class ShardChange:
    """One shard loaded, evicted or kept; ``load_s`` and ``load_j`` for loads (``None``: no load rate)."""

    device: str
    model: str
    weight_format: str
    layers: tuple[int, int]
    weights_gb: float
    load_s: float | None = None
    load_j: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ShardChange:
        return ShardChange(str(d["device"]), str(d["model"]), str(d["weight_format"]), tuple(d["layers"]),
                           float(d["weights_gb"]), d.get("load_s"), d.get("load_j"))

@dataclass(frozen=True)
class CacheChanges:
    """Loads, evictions and kept shards; ``load_s`` (all loads, summed), ``ready_s`` (the slowest
    device's loads) and ``load_j`` are ``None`` when a loading device has no load rate."""

    loads: tuple[ShardChange, ...]
    evicted: tuple[ShardChange, ...]
    kept: tuple[ShardChange, ...]
    load_s: float | None
    ready_s: float | None
    load_j: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"loads": [c.to_dict() for c in self.loads], "evicted": [c.to_dict() for c in self.evicted],
                "kept": [c.to_dict() for c in self.kept], "load_s": self.load_s, "ready_s": self.ready_s,
                "load_j": self.load_j}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CacheChanges:
        def many(key):
            return tuple(ShardChange.from_dict(x) for x in d.get(key, ()))
        return CacheChanges(many("loads"), many("evicted"), many("kept"), d.get("load_s"), d.get("ready_s"),
                            d.get("load_j"))



@dataclass(frozen=True)
class Metrics:
    """Everything the cost model predicts for a plan.

    ``objective`` is the instance objective's value for this plan: the number
    every solver must report. ``violations`` says, typed and in words and
    numbers, why an infeasible plan is infeasible. ``routing`` says where the
    routes came from: ``given`` (the plan's own) or ``max-flow`` (a plan with
    shards and no routes, routed by :func:`placement.costs.flows.route_shards`;
    ``routes`` then holds the routes evaluated).
    """

    requests: dict[str, RequestMetrics]
    devices: dict[str, DeviceMetrics]
    throughput_tok_s: float
    objective: float
    feasible: bool
    violations: tuple[Violation, ...] = ()
    calibrated: bool = True
    aggregates: dict[str, float] = field(default_factory=dict)
    changes: CacheChanges | None = None  # against the current cache, when the instance has one (or weighs churn)
    goodput_rps: float | None = None  # with queueing and SLOs: see placement.costs.queueing
    routing: str = "given"
    routes: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": {k: v.to_dict() for k, v in self.requests.items()},
            "devices": {k: v.to_dict() for k, v in self.devices.items()},
            "throughput_tok_s": self.throughput_tok_s,
            "objective": self.objective,
            "feasible": self.feasible,
            "violations": [v.to_dict() for v in self.violations],
            "calibrated": self.calibrated,
            "aggregates": dict(self.aggregates),
            **({"changes": self.changes.to_dict()} if self.changes is not None else {}),
            **({"goodput_rps": self.goodput_rps} if self.goodput_rps is not None else {}),
            "routing": self.routing,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Metrics:
        return Metrics(
            requests={k: RequestMetrics(**v) for k, v in d.get("requests", {}).items()},
            devices={k: DeviceMetrics(**{**v, "shards": tuple(v.get("shards", ()))})
                     for k, v in d.get("devices", {}).items()},
            throughput_tok_s=float(d.get("throughput_tok_s", 0.0)),
            objective=float(d.get("objective", 0.0)),
            feasible=bool(d.get("feasible", True)),
            violations=tuple(Violation.from_dict(v) for v in d.get("violations", ())),
            calibrated=bool(d.get("calibrated", True)),
            aggregates=dict(d.get("aggregates", {})),
            changes=CacheChanges.from_dict(d["changes"]) if d.get("changes") else None,
            goodput_rps=d.get("goodput_rps"),
            routing=str(d.get("routing", "given")),
        )
