"""Predicted metrics of a plan, as computed by :func:`placement.evaluate`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from placement.violations import Violation

__all__ = ["RequestMetrics", "DeviceMetrics", "Metrics"]


@dataclass(frozen=True)
class RequestMetrics:
    """One request class served along its route(s); times in ms, energy in J per request.

    ``energy_j`` counts the devices' active power while they work on the
    request plus the links' energy per bit; ``idle_energy_j`` is the idle power
    of the route's devices while they wait on other stages, reported apart.
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
            routing=str(d.get("routing", "given")),
        )
