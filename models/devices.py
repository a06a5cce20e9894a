"""Device specifications: memory, bandwidth, peak FLOP/s per compute unit, power.

The catalog (``catalog/devices.yaml``) cites a source for every number. An
instance file may override any field inline, or describe a device the catalog
lacks; :func:`device_from_fields` validates both the same way.

Examples
--------
>>> from models import device_spec
>>> d = device_spec("rtx-4090")
>>> d.memory_gb, d.default_engine
(24.0, 'llama.cpp')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from models._catalog import read_yaml
from models.errors import CatalogError, ConfigError
from models.formats import PRECISION_FALLBACK

__all__ = ["DeviceSpec", "device_spec", "device_ids", "device_from_fields", "TIERS", "UNITS", "DEVICE_CLASSES"]

TIERS = ("device", "edge", "cloud")
UNITS = ("gpu", "cpu", "npu")
DEVICE_CLASSES = (
    "datacenter_gpu", "workstation_gpu", "consumer_gpu", "jetson", "apple_soc", "phone_soc",
    "laptop_soc", "apu", "desktop_superchip", "sbc_cpu", "mini_pc_cpu", "laptop_cpu", "desktop_cpu",
    # AMD GPUs run other kernels (ROCm/HIP, Vulkan) than the NVIDIA ones the profiles were fitted
    # on: no engine profile names these classes, so they get each engine's uncalibrated defaults.
    "amd_datacenter_gpu", "amd_consumer_gpu",
)
PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "int8")


@dataclass(frozen=True)
class DeviceSpec:
    """What one device can hold and how fast it computes and moves bytes.

    ``compute`` maps a unit (``gpu``, ``cpu``, ``npu``) to its dense peak in
    TFLOP/s (TOPS for int8) per precision. Memory is unified on SoCs, so one
    ``memory_bandwidth_gbs`` serves every unit.
    """

    id: str
    name: str
    device_class: str
    tier: str
    memory_gb: float
    reserved_memory_gb: float
    memory_bandwidth_gbs: float
    default_unit: str
    compute: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]
    power_idle_w: float
    power_active_w: float
    default_engine: str
    sources: tuple[tuple[str, str], ...] = ()
    notes: str = ""
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    cpu_cores: int | None = None  # physical cores the cpu unit's peak counts

    def cpu_share(self, threads: int | None) -> float:
        """Share of the cpu unit's peak that ``threads`` engine threads reach: one per core up to
        the cores the catalog peak counts; more threads than cores add nothing (hyper-threads
        share a core's vector units)."""
        if threads is None or not self.cpu_cores:
            return 1.0
        return min(threads, self.cpu_cores) / self.cpu_cores

    @property
    def usable_memory_gb(self) -> float:
        """Memory a model may use: capacity minus the reserved share."""
        return self.memory_gb - self.reserved_memory_gb

    def units(self) -> list[str]:
        return [u for u, _ in self.compute]

    def peak_tflops(self, precision: str, unit: str | None = None) -> float:
        """Dense peak of ``unit`` (default: the device's default unit) at ``precision``.

        Falls back along fp8 -> fp16, int8 -> fp16, bf16 -> fp16, fp16 -> fp32 when
        the unit has no figure for ``precision``: kernels then run in that precision.
        """
        table = dict(dict(self.compute).get(unit or self.default_unit, ()))
        if not table:
            table = dict(dict(self.compute)[self.default_unit])
        p: str | None = precision
        while p is not None:
            if p in table:
                return table[p]
            p = PRECISION_FALLBACK.get(p)
        return max(table.values())

    def source(self, key: str) -> str:
        return dict(self.sources).get(key, "")


def _number(fields: Mapping[str, Any], key: str, *, positive: bool = True, required: bool = True,
            default: float | None = None) -> float:
    value = fields.get(key, default)
    if value is None:
        if required:
            raise ConfigError(key, "is required (a number)")
        return default  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(key, f"must be > 0, got {value:g}")
    if not positive and value < 0:
        raise ConfigError(key, f"must be >= 0, got {value:g}")
    return value


def _compute_table(raw: Any) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("compute", "must map a unit (gpu, cpu, npu) to {precision: TFLOP/s}")
    units = []
    for unit, table in raw.items():
        if unit not in UNITS:
            raise ConfigError(f"compute.{unit}", f"unknown compute unit (expected one of {', '.join(UNITS)})")
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"compute.{unit}", "must map a precision to TFLOP/s, e.g. {fp16: 165}")
        peaks = []
        for precision in table:
            if precision not in PRECISIONS:
                raise ConfigError(f"compute.{unit}.{precision}",
                                  f"unknown precision (expected one of {', '.join(PRECISIONS)})")
            peaks.append((precision, _number(table, precision)))
        units.append((unit, tuple(peaks)))
    return tuple(units)


def device_from_fields(fields: Mapping[str, Any], base: DeviceSpec | None = None,
                       device_id: str | None = None) -> DeviceSpec:
    """Build a :class:`DeviceSpec` from catalog-style fields, over ``base`` if given.

    Fields: ``name``, ``device_class``, ``tier``, ``memory_gb``,
    ``reserved_memory_gb``, ``memory_bandwidth_gbs``, ``default_unit``,
    ``compute``, ``power_w: {idle, active}``, ``default_engine``, ``cpu_cores``.

    Raises
    ------
    ConfigError
        Naming the field, when a value is missing, of the wrong type, or out of range.
    """
    merged: dict[str, Any] = {}
    if base is not None:
        merged = {
            "name": base.name, "device_class": base.device_class, "tier": base.tier,
            "memory_gb": base.memory_gb, "reserved_memory_gb": base.reserved_memory_gb,
            "memory_bandwidth_gbs": base.memory_bandwidth_gbs, "default_unit": base.default_unit,
            "compute": {u: dict(t) for u, t in base.compute},
            "power_w": {"idle": base.power_idle_w, "active": base.power_active_w},
            "default_engine": base.default_engine,
            "cpu_cores": base.cpu_cores,
        }
    for key, value in fields.items():
        if key == "compute" and isinstance(value, Mapping) and isinstance(merged.get("compute"), dict):
            table = {u: dict(t) for u, t in merged["compute"].items()}
            for unit, peaks in value.items():
                table[unit] = {**table.get(unit, {}), **peaks} if isinstance(peaks, Mapping) else peaks
            merged["compute"] = table
        elif key == "power_w" and isinstance(value, Mapping) and isinstance(merged.get("power_w"), Mapping):
            merged["power_w"] = {**merged["power_w"], **value}
        else:
            merged[key] = value

    dev_id = device_id or str(merged.get("id", "device"))
    device_class = merged.get("device_class", "datacenter_gpu")
    if device_class not in DEVICE_CLASSES:
        raise ConfigError("device_class", f"must be one of {', '.join(DEVICE_CLASSES)}, got {device_class!r}")
    tier = merged.get("tier", "edge")
    if tier not in TIERS:
        raise ConfigError("tier", f"must be one of {', '.join(TIERS)}, got {tier!r}")
    memory = _number(merged, "memory_gb")
    reserved = _number(merged, "reserved_memory_gb", positive=False, required=False, default=0.0)
    if reserved >= memory:
        raise ConfigError("reserved_memory_gb", f"must be < memory_gb ({memory:g}), got {reserved:g}")
    bandwidth = _number(merged, "memory_bandwidth_gbs")
    compute = _compute_table(merged.get("compute"))
    unit = merged.get("default_unit", compute[0][0])
    if unit not in dict(compute):
        raise ConfigError("default_unit", f"must name a unit in compute ({', '.join(dict(compute))}), got {unit!r}")
    power = merged.get("power_w", {})
    if not isinstance(power, Mapping):
        raise ConfigError("power_w", f"must be {{idle: W, active: W}}, got {power!r}")
    idle = _number(power, "idle", positive=False, required=False, default=0.0)
    active = _number(power, "active", positive=False, required=False, default=0.0)
    if active < idle:
        raise ConfigError("power_w.active", f"must be >= power_w.idle ({idle:g}), got {active:g}")
    sources = merged.get("sources") or {}
    cores = merged.get("cpu_cores")
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, int) or not 0 < cores <= 4096):
        raise ConfigError("cpu_cores", f"must be a whole number of cores in 1..4096, got {cores!r}")
    if cores is not None and "cpu" not in dict(compute):
        raise ConfigError("cpu_cores", "is given but compute has no cpu unit")
    return DeviceSpec(
        id=dev_id,
        name=str(merged.get("name", dev_id)),
        device_class=device_class,
        tier=tier,
        memory_gb=memory,
        reserved_memory_gb=reserved,
        memory_bandwidth_gbs=bandwidth,
        default_unit=unit,
        compute=compute,
        power_idle_w=idle,
        power_active_w=active,
        default_engine=str(merged.get("default_engine", "llama.cpp")),
        sources=tuple((str(k), str(v)) for k, v in sources.items()) if isinstance(sources, Mapping)
        else (base.sources if base else ()),
        notes=str(merged.get("notes", base.notes if base else "")),
        cpu_cores=cores,
    )


def _catalog() -> dict[str, DeviceSpec]:
    entries = read_yaml("devices.yaml")
    specs = {}
    for entry in entries:
        specs[entry["id"]] = device_from_fields(entry, device_id=entry["id"])
    return specs


@cache
def _all() -> dict[str, DeviceSpec]:
    return _catalog()


def device_ids() -> list[str]:
    """Ids of the devices in the catalog."""
    return sorted(_all())


def device_spec(device_id: str, **overrides: Any) -> DeviceSpec:
    """The catalog device ``device_id``, with optional field overrides.

    Raises
    ------
    CatalogError
        For an unknown id.
    """
    try:
        spec = _all()[device_id]
    except KeyError:
        raise CatalogError("device type", device_id, _all()) from None
    if overrides:
        return device_from_fields(overrides, base=spec, device_id=device_id)
    return spec
