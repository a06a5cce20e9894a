"""Inference engines and their efficiency profiles.

An engine reaches a fraction of a device's peak: ``eta_mem`` of its memory
bandwidth when streaming weights and KV cache, and a compute efficiency that
rises with the tokens processed per step,

    eta_compute(n) = eta_compute_max * n / (n + compute_half_tokens),

so a 16-token prompt runs far below peak and a 512-token one close to it (the
cost model keeps a step's rate at or above ``eta_compute`` times the unit's
vector rate, which matrix-vector kernels reach with a single token). Each
forward step also pays a fixed ``step_overhead_ms`` (scheduling, sampling,
synchronisation) and each block a ``layer_overhead_ms`` (kernel launches).

``accumulate`` is the precision of the engine's fp16 matrix-product
accumulators. GeForce-class GPUs run FP16 tensor products with FP32
accumulation at half the FP16-accumulation rate, and the device catalog lists
the FP32-accumulate figure; an engine that accumulates in fp16 (llama.cpp's
cuBLAS path) therefore reaches twice that peak on them (:meth:`EngineProfile.peak_scale`).

``dequantize_prefill`` marks engines that expand quantised weights to fp16 in
memory before each prefill step's matrix products (llama.cpp's CUDA backend
before its int8 tensor-core kernels): a step then also reads the quantised
weights and writes and re-reads them in fp16.

Profiles are chosen per (engine, device class, compute unit, format family);
``catalog/engines.yaml`` gives each its calibration rows and sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from models._catalog import read_yaml
from models.errors import CatalogError, ConfigError

__all__ = ["EngineProfile", "Engine", "engine", "engine_ids", "HALF_RATE_FP32_ACCUMULATE"]

# Device classes whose catalog fp16 peak is the FP32-accumulate rate, half the FP16-accumulate
# rate: GeForce parts (NVIDIA Ampere GA102 whitepaper v2.0 appendix A, Ada whitepaper v2.01
# appendix A) and GB10, which devices.yaml lists under the same convention. Datacenter and
# workstation parts run both accumulations at the same rate.
HALF_RATE_FP32_ACCUMULATE = frozenset({"consumer_gpu", "desktop_superchip"})


@dataclass(frozen=True)
class EngineProfile:
    """Efficiencies of one engine on one class of device for one format family.

    ``accumulate`` (``fp32`` or ``fp16``) is the precision of the engine's fp16
    matrix-product accumulators; ``dequantize_prefill`` whether its prefill expands
    quantised weights to fp16 in memory first (see the module docstring).
    """

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
    accumulate: str = "fp32"
    dequantize_prefill: bool = False
    # Fused attention that never writes the score matrix to memory (FlashAttention and kin).
    flash_attention: bool = True
    # Share of the memory left after weights, workspace and runtime that the engine gives its
    # KV-cache pool, whose size caps how many sequences run at once (vLLM gpu_memory_utilization,
    # TensorRT-LLM kv_cache_free_gpu_mem_fraction, LMDeploy cache_max_entry_count). None: the
    # engine allocates the context it is asked for and runs every sequence of a batch at once
    # (llama.cpp's n_ctx), or fails.
    kv_memory_fraction: float | None = None

    def peak_scale(self, device_class: str, precision: str) -> float:
        """Factor on the catalog peak of ``precision``: 2 for fp16 products accumulated in fp16
        on a device class whose catalog figure is the half-rate FP32-accumulate one, else 1."""
        half_rate = device_class in HALF_RATE_FP32_ACCUMULATE
        return 2.0 if self.accumulate == "fp16" and precision == "fp16" and half_rate else 1.0

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
    "accumulate", "dequantize_prefill", "flash_attention", "kv_memory_fraction", "calibrated_on", "source",
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
    accumulate = merged.get("accumulate", "fp32")
    if accumulate not in ("fp16", "fp32"):
        raise ConfigError(f"{where}.accumulate", f"must be fp16 or fp32, got {accumulate!r}")
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
        accumulate=accumulate,
        dequantize_prefill=bool(merged.get("dequantize_prefill", False)),
        flash_attention=bool(merged.get("flash_attention", True)),
        kv_memory_fraction=_fraction(merged.get("kv_memory_fraction"), f"{where}.kv_memory_fraction"),
    )


def _fraction(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(where, f"must be a number in (0, 1] or absent, got {value!r}")
    return float(value)


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


@cache
def _all() -> dict[str, Engine]:
    return _load()


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
