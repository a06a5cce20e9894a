"""Inference engines and their efficiency profiles.

An engine reaches a fraction of a device's peak: ``eta_mem`` of its memory
bandwidth when streaming weights and KV cache, and a compute efficiency that
rises with the tokens processed per step,

    eta_compute(n) = eta_compute_max * n / (n + compute_half_tokens),

so a 16-token prompt runs far below peak and a 512-token one close to it. Each
forward step also pays a fixed ``step_overhead_ms`` (scheduling, sampling,
synchronisation) and each block a ``layer_overhead_ms`` (kernel launches).

Profiles are chosen per (engine, device class, compute unit, format family);
``catalog/engines.yaml`` gives each its calibration rows and sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models._catalog import read_yaml
from models.errors import CatalogError, ConfigError

__all__ = ["EngineProfile", "Engine", "engine", "engine_ids", "efficiency_profile"]


@dataclass(frozen=True)
class EngineProfile:
    """Efficiencies of one engine on one class of device for one format family."""

    eta_mem: float
    eta_compute: float
    compute_half_tokens: float
    step_overhead_ms: float
    layer_overhead_ms: float
    runtime_overhead_gb: float
    max_tokens_per_step: int
    tp_efficiency: float
    compute_precision: str | None
    unit: str | None
    calibrated: bool
    source: str

    def compute_efficiency(self, tokens: float) -> float:
        """Fraction of peak FLOP/s reached with ``tokens`` tokens per step."""
        n = max(1.0, min(float(tokens), float(self.max_tokens_per_step)))
        return self.eta_compute * n / (n + self.compute_half_tokens)


@dataclass(frozen=True)
class Engine:
    id: str
    name: str
    url: str
    notes: str
    profiles: tuple[tuple[Mapping[str, Any], EngineProfile], ...]
    fallback: EngineProfile

    def profile(self, device_class: str, unit: str, family: str) -> EngineProfile:
        """The most specific profile matching the device class, unit and format family."""
        for match, prof in self.profiles:
            if (device_class in match.get("device_classes", (device_class,))
                    and unit in match.get("units", (unit,))
                    and family in match.get("families", (family,))):
                return prof
        return self.fallback


_PROFILE_KEYS = {
    "eta_mem", "eta_compute", "compute_half_tokens", "step_overhead_ms", "layer_overhead_ms",
    "runtime_overhead_gb", "max_tokens_per_step", "tp_efficiency", "compute_precision", "unit",
    "calibrated_on", "source",
}


def _profile(fields: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> EngineProfile:
    merged = {**defaults, **{k: v for k, v in fields.items() if k in _PROFILE_KEYS}}
    for key in ("eta_mem", "eta_compute", "compute_half_tokens", "step_overhead_ms", "layer_overhead_ms",
                "runtime_overhead_gb", "max_tokens_per_step", "tp_efficiency"):
        if key not in merged:
            raise ConfigError(f"{where}.{key}", "is required")
        value = merged[key]
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}.{key}", f"must be a number >= 0, got {value!r}")
    for key in ("eta_mem", "eta_compute", "tp_efficiency"):
        if not 0 < merged[key] <= 1:
            raise ConfigError(f"{where}.{key}", f"must be in (0, 1], got {merged[key]!r}")
    return EngineProfile(
        eta_mem=float(merged["eta_mem"]),
        eta_compute=float(merged["eta_compute"]),
        compute_half_tokens=float(merged["compute_half_tokens"]),
        step_overhead_ms=float(merged["step_overhead_ms"]),
        layer_overhead_ms=float(merged["layer_overhead_ms"]),
        runtime_overhead_gb=float(merged["runtime_overhead_gb"]),
        max_tokens_per_step=int(merged["max_tokens_per_step"]),
        tp_efficiency=float(merged["tp_efficiency"]),
        compute_precision=merged.get("compute_precision"),
        unit=merged.get("unit"),
        calibrated=bool(fields.get("calibrated_on")),
        source=str(fields.get("source", merged.get("source", ""))),
    )


def _load() -> dict[str, Engine]:
    engines = {}
    for entry in read_yaml("engines.yaml"):
        eid = entry["id"]
        defaults = entry.get("defaults", {})
        profiles = []
        for i, p in enumerate(entry.get("profiles", [])):
            match = {k: tuple(p[k]) for k in ("device_classes", "units", "families") if k in p}
            profiles.append((match, _profile(p, defaults, f"engines.{eid}.profiles[{i}]")))
        engines[eid] = Engine(
            id=eid,
            name=entry.get("name", eid),
            url=entry.get("url", ""),
            notes=entry.get("notes", ""),
            profiles=tuple(profiles),
            fallback=_profile({"source": "uncalibrated default"}, defaults, f"engines.{eid}.defaults"),
        )
    return engines


_engines: dict[str, Engine] | None = None


def _all() -> dict[str, Engine]:
    global _engines
    if _engines is None:
        _engines = _load()
    return _engines


def engine_ids() -> list[str]:
    return sorted(_all())


def engine(engine_id: str) -> Engine:
    """The engine ``engine_id``.

    Raises
    ------
    CatalogError
        For an unknown id.
    """
    try:
        return _all()[engine_id]
    except KeyError:
        raise CatalogError("engine", engine_id, _all()) from None


def efficiency_profile(engine_id: str, device_class: str, unit: str, family: str) -> EngineProfile:
    """Shortcut for ``engine(engine_id).profile(device_class, unit, family)``."""
    return engine(engine_id).profile(device_class, unit, family)
