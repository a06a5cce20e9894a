"""Reading instance files (YAML or JSON) into a :class:`~placement.problem.Problem`.

The reader checks the whole file and reports every problem at once, each with
its field path and what was expected; unknown fields are errors too, since a
misspelt override that was silently ignored would change the answer.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from models import (
    WEIGHT_FORMATS, CatalogError, ConfigError, DeviceProfile, Link, LLMGraph, Node, Topology,
    device_from_fields, device_spec, engine_ids, kv_format, load_model, weight_format, workload_profile,
)
from models.devices import TIERS
from placement.errors import InvalidInstanceError, Issue
from placement.problem import METRICS, SLO, Constraints, ModelSpec, Objective, Problem, RequestClass

__all__ = ["load_instance", "parse_instance", "read_instance_file", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_TOP = {"schema_version", "name", "description", "models", "devices", "links", "workload", "objective", "constraints"}
_MODEL = {"id", "name", "weight_format", "kv_format", "config", "config_file", "allowed_formats"}
_DEVICE_SPEC = {"name", "device_class", "memory_gb", "reserved_memory_gb", "memory_bandwidth_gbs", "default_unit",
                "compute", "power_w", "default_engine", "notes", "sources"}
_DEVICE = {"id", "type", "tier", "engine", "count", "profile", "profiles"} | _DEVICE_SPEC
_PROFILE = {"model", "max_layers", "throughput_tokens_per_s", "prefill_ms_per_layer", "decode_ms_per_layer"}
_LINK = {"a", "b", "bandwidth_mbps", "latency_ms", "energy_nj_per_bit", "channel_mhz", "snr_db", "rate_samples_mbps"}
_REQUEST = {"id", "source", "model", "prompt_tokens", "output_tokens", "rate_rps", "batch", "slo", "profile"}
_SLO = {"ttft_ms", "tpot_ms", "e2e_ms"}
_CONSTRAINTS = {"memory_headroom", "max_context_tokens", "device_order", "quality_floor"}

# Beyond these, a number is a mistake (or would overflow the arithmetic), not a bigger system.
_LIMITS = {
    "memory_gb": 1e6, "reserved_memory_gb": 1e6, "memory_bandwidth_gbs": 1e7, "bandwidth_mbps": 1e9,
    "latency_ms": 1e7, "energy_nj_per_bit": 1e6, "channel_mhz": 1e6, "snr_db": 200, "prompt_tokens": 10_000_000,
    "output_tokens": 10_000_000, "batch": 100_000, "rate_rps": 1e9, "count": 1024, "max_context_tokens": 10_000_000,
    "ttft_ms": 1e12, "tpot_ms": 1e12, "e2e_ms": 1e12, "max_layers": 100_000, "tflops": 1e7, "power_w": 1e6,
    "prefill_ms_per_layer": 1e9, "decode_ms_per_layer": 1e9, "tokens_per_s": 1e12,
}


class _Reader:
    """Collects issues while converting raw values."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def mapping(self, path: str, value: Any, allowed: set[str] | None = None) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping of fields, got {_kind(value)}")
            return None
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
                    hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(sorted(allowed))})"
                    self.add(_join(path, str(key)), f"unknown field{hint}")
        return value

    def items(self, path: str, value: Any, required: bool = True) -> list[Any]:
        if value is None:
            if required:
                self.add(path, "is required (a non-empty list)")
            return []
        if not isinstance(value, list):
            self.add(path, f"must be a list, got {_kind(value)}")
            return []
        if required and not value:
            self.add(path, "must not be empty")
        return value

    def string(self, path: str, value: Any, required: bool = True) -> str | None:
        if value is None:
            if required:
                self.add(path, "is required (a string)")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value).strip() == "":
            self.add(path, f"must be a non-empty string, got {_kind(value)}")
            return None
        return str(value)

    def number(self, path: str, value: Any, *, low: float = 0.0, low_open: bool = True, integer: bool = False,
               required: bool = True, limit: str | None = None) -> float | None:
        if value is None:
            if required:
                self.add(path, f"is required ({'an integer' if integer else 'a number'})")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"must be {'an integer' if integer else 'a number'}, got {_kind(value)}")
            return None
        if math.isnan(value) or math.isinf(value):
            self.add(path, f"must be a finite number, got {value}")
            return None
        if integer and value != int(value):
            self.add(path, f"must be an integer, got {value}")
            return None
        if low_open and value <= low:
            self.add(path, f"must be > {low:g}, got {value:g}")
            return None
        if not low_open and value < low:
            self.add(path, f"must be >= {low:g}, got {value:g}")
            return None
        top = _LIMITS.get(limit or path.rsplit(".", 1)[-1])
        if top is not None and value > top:
            self.add(path, f"must be <= {top:g}, got {value:g}")
            return None
        return int(value) if integer else float(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, bool):
        return f"{value}".lower()
    if isinstance(value, (int, float)):
        return f"the number {value:g}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def read_instance_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """Parse a YAML or JSON instance file into a dict; returns it and the file's bytes.

    Raises
    ------
    InvalidInstanceError
        If the file cannot be read or parsed, or does not hold a mapping.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InvalidInstanceError(Issue("", f"no such file: {p}")) from None
    except OSError as exc:
        raise InvalidInstanceError(Issue("", f"cannot read {p}: {exc.strerror}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInstanceError(Issue("", f"{p.name} is not UTF-8 text"), str(p)) from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidInstanceError(Issue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"),
                                   str(p)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInstanceError(Issue("", f"invalid YAML{where}: {problem}"), str(p)) from None
    if not isinstance(data, dict):
        raise InvalidInstanceError(Issue("", f"must hold a mapping of instance fields, got {_kind(data)}"), str(p))
    return data, raw


def load_instance(path: str | Path) -> Problem:
    """Read and validate an instance file.

    Parameters
    ----------
    path : str or Path
        A ``.yaml``/``.yml`` or ``.json`` file in the instance format (README, "Instance format").

    Returns
    -------
    Problem

    Raises
    ------
    InvalidInstanceError
        Listing every problem in the file, each with its field path.

    Examples
    --------
    >>> from placement import load_instance
    >>> problem = load_instance("instances/device-edge-cloud.yaml")  # doctest: +SKIP
    >>> [n.id for n in problem.topology.nodes]                       # doctest: +SKIP
    ['phone', 'edge', 'cloud']
    """
    p = Path(path)
    data, raw = read_instance_file(p)
    try:
        return parse_instance(data, base_dir=p.parent, default_name=p.stem, sha256=hashlib.sha256(raw).hexdigest())
    except InvalidInstanceError as exc:
        exc.source = str(p)
        raise


def parse_instance(data: Mapping[str, Any], base_dir: str | Path | None = None, default_name: str = "instance",
                   sha256: str | None = None) -> Problem:
    """Validate an instance given as a dict (the parsed YAML/JSON) and build its :class:`Problem`.

    Raises
    ------
    InvalidInstanceError
        Listing every problem found.
    """
    r = _Reader()
    top = r.mapping("", data, _TOP)
    if top is None:
        raise InvalidInstanceError(r.issues)
    version = top.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        r.add("schema_version", f"must be {SCHEMA_VERSION}, got {version!r}")
    name = r.string("name", top.get("name", default_name)) or default_name
    description = str(top.get("description") or "")
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    models = _models(r, top.get("models"), base)
    nodes = _devices(r, top.get("devices"), _declared_ids(top.get("models")))
    # References are checked against every id the file declares, so one bad device
    # entry is reported once, not again at each link that names it.
    node_ids = _declared_ids(top.get("devices"))
    links = _links(r, top.get("links"), node_ids)
    workload = _workload(r, top.get("workload"), {m.id: m for m in models}, _declared_ids(top.get("models")), node_ids)
    objective = _objective(r, top.get("objective", "latency"))
    constraints = _constraints(r, top.get("constraints"), node_ids)
    if constraints.max_context_tokens:
        for i, req in enumerate(workload):
            need = req.prompt_tokens + req.output_tokens
            if need > constraints.max_context_tokens:
                r.add(f"workload[{i}]", f"prompt_tokens + output_tokens = {need} exceeds "
                                        f"constraints.max_context_tokens ({constraints.max_context_tokens})")
    if r.issues:
        raise InvalidInstanceError(r.issues)
    if sha256 is None:
        sha256 = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return Problem(
        name=name, description=description, models=tuple(models),
        topology=Topology(tuple(nodes), tuple(links)), workload=tuple(workload),
        objective=objective, constraints=constraints, sha256=sha256,
    )


def _declared_ids(entries: Any) -> set[str]:
    if not isinstance(entries, list):
        return set()
    return {str(e["id"]) for e in entries if isinstance(e, Mapping) and isinstance(e.get("id"), (str, int))}


def _models(r: _Reader, raw: Any, base: Path) -> list[ModelSpec]:
    out: list[ModelSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(r.items("models", raw)):
        path = f"models[{i}]"
        m = r.mapping(path, entry, _MODEL)
        if m is None:
            continue
        mid = r.string(f"{path}.id", m.get("id"))
        if mid is None:
            continue
        if mid in seen:
            r.add(f"{path}.id", f"duplicate model id {mid!r}")
            continue
        seen.add(mid)
        graph: LLMGraph | None = None
        try:
            if "config" in m and "config_file" in m:
                r.add(path, "give either config or config_file, not both")
                continue
            if "config" in m:
                if not isinstance(m["config"], Mapping):
                    r.add(f"{path}.config", f"must be a mapping of config.json fields, got {_kind(m['config'])}")
                    continue
                graph = LLMGraph.from_config(m["config"], mid, name=m.get("name"), source=f"{path}.config")
            elif "config_file" in m:
                file = Path(str(m["config_file"]))
                graph = load_model(file if file.is_absolute() else base / file, model_id=mid)
            else:
                graph = load_model(mid)
        except CatalogError as exc:
            r.add(f"{path}.id", f"{exc} (or give config: / config_file:)")
            continue
        except ConfigError as exc:
            where = f"{path}.config_file" if exc.field == "config_file" else f"{path}.config.{exc.field}"
            r.add(where, exc.message)
            continue
        default_fmt = {"bfloat16": "bf16", "float32": "fp32"}.get(graph.arch.torch_dtype, "fp16")
        fmt = r.string(f"{path}.weight_format", m.get("weight_format", default_fmt))
        if fmt is not None and fmt not in WEIGHT_FORMATS:
            r.add(f"{path}.weight_format", f"unknown format {fmt!r} (expected one of {', '.join(WEIGHT_FORMATS)})")
            fmt = None
        kv = r.string(f"{path}.kv_format", m.get("kv_format", "fp16"))
        if kv is not None:
            try:
                kv_format(kv)
            except CatalogError as exc:
                r.add(f"{path}.kv_format", str(exc))
                kv = None
        allowed: tuple[str, ...] = ()
        if "allowed_formats" in m:
            fmts = r.items(f"{path}.allowed_formats", m["allowed_formats"])
            bad = [f for f in fmts if f not in WEIGHT_FORMATS]
            if bad:
                r.add(f"{path}.allowed_formats", f"unknown format(s) {', '.join(map(repr, bad))} "
                                                 f"(expected from {', '.join(WEIGHT_FORMATS)})")
            allowed = tuple(dict.fromkeys([fmt, *fmts])) if fmt else tuple(fmts)
        if fmt is None or kv is None:
            continue
        out.append(ModelSpec(mid, graph, fmt, kv, allowed))
    return out


def _profiles(r: _Reader, path: str, d: Mapping[str, Any], model_ids: set[str]) -> tuple[DeviceProfile, ...]:
    raw = []
    if "profile" in d:
        raw.append((f"{path}.profile", d["profile"]))
    if "profiles" in d:
        raw.extend((f"{path}.profiles[{j}]", p) for j, p in enumerate(r.items(f"{path}.profiles", d["profiles"])))
    out = []
    for ppath, entry in raw:
        p = r.mapping(ppath, entry, _PROFILE)
        if p is None:
            continue
        model = r.string(f"{ppath}.model", p.get("model"))
        if model is not None and model not in model_ids:
            r.add(f"{ppath}.model", f"names no model of this instance (models: {', '.join(sorted(model_ids))})")
        max_layers = r.number(f"{ppath}.max_layers", p.get("max_layers"), integer=True, required=False)
        table: list[tuple[int, float]] = []
        if "throughput_tokens_per_s" in p:
            tp = r.mapping(f"{ppath}.throughput_tokens_per_s", p["throughput_tokens_per_s"])
            for k, v in (tp or {}).items():
                kpath = f"{ppath}.throughput_tokens_per_s.{k}"
                try:
                    layers = int(k)
                except (TypeError, ValueError):
                    r.add(kpath, "keys must be layer counts (integers)")
                    continue
                if layers <= 0:
                    r.add(kpath, "layer counts must be > 0")
                    continue
                if max_layers is not None and layers > max_layers:
                    r.add(kpath, f"layer count {layers} exceeds max_layers {max_layers}")
                value = r.number(kpath, v, limit="tokens_per_s")
                if value is not None:
                    table.append((layers, value))
        pre = r.number(f"{ppath}.prefill_ms_per_layer", p.get("prefill_ms_per_layer"), required=False)
        dec = r.number(f"{ppath}.decode_ms_per_layer", p.get("decode_ms_per_layer"), required=False)
        if model is not None:
            out.append(DeviceProfile(model, max_layers, tuple(sorted(table)), pre, dec))
    return tuple(out)


def _devices(r: _Reader, raw: Any, model_ids: set[str]) -> list[Node]:
    nodes: list[Node] = []
    seen: set[str] = set()
    engines = set(engine_ids())
    for i, entry in enumerate(r.items("devices", raw)):
        path = f"devices[{i}]"
        d = r.mapping(path, entry, _DEVICE)
        if d is None:
            continue
        did = r.string(f"{path}.id", d.get("id"))
        if did is not None and did in seen:
            r.add(f"{path}.id", f"duplicate device id {did!r}")
            did = None
        if did is not None:
            seen.add(did)
        n_issues = len(r.issues)
        # Check numeric overrides here so every bad field is reported, not just the first.
        for key in ("memory_gb", "memory_bandwidth_gbs"):
            if key in d:
                r.number(f"{path}.{key}", d[key])
        if "reserved_memory_gb" in d:
            r.number(f"{path}.reserved_memory_gb", d["reserved_memory_gb"], low_open=False)
        if "power_w" in d:
            pw = r.mapping(f"{path}.power_w", d["power_w"], {"idle", "active"})
            for key in ("idle", "active"):
                if pw is not None and key in pw:
                    r.number(f"{path}.power_w.{key}", pw[key], low_open=False, limit="power_w")
        if "compute" in d:
            comp = r.mapping(f"{path}.compute", d["compute"])
            for unit, table in (comp or {}).items():
                t = r.mapping(f"{path}.compute.{unit}", table)
                for prec, v in (t or {}).items():
                    r.number(f"{path}.compute.{unit}.{prec}", v, limit="tflops")
        tier = d.get("tier")
        if tier is not None and tier not in TIERS:
            r.add(f"{path}.tier", f"must be one of {', '.join(TIERS)}, got {_kind(tier)}")
        eng = d.get("engine")
        if eng is not None and eng not in engines:
            r.add(f"{path}.engine", f"unknown engine {eng!r} (expected one of {', '.join(sorted(engines))})")
        count = r.number(f"{path}.count", d.get("count", 1), integer=True)
        profiles = _profiles(r, path, d, model_ids)
        base = None
        if "type" in d:
            dtype = r.string(f"{path}.type", d.get("type"))
            if dtype is not None:
                try:
                    base = device_spec(dtype)
                except CatalogError as exc:
                    r.add(f"{path}.type", str(exc))
                    continue
        if len(r.issues) > n_issues or did is None:
            continue
        overrides = {k: v for k, v in d.items() if k in _DEVICE_SPEC}
        if base is None and "memory_gb" not in d:
            r.add(f"{path}.type", "is required (a catalog device id), unless memory_gb, memory_bandwidth_gbs "
                                  "and compute are given inline")
            continue
        try:
            spec = device_from_fields(overrides, base=base, device_id=base.id if base else did)
        except ConfigError as exc:
            r.add(f"{path}.{exc.field}", exc.message)
            continue
        nodes.append(Node(did, spec, tier=tier or spec.tier, engine=eng or spec.default_engine,
                          count=int(count or 1), profiles=profiles))
    return nodes


def _links(r: _Reader, raw: Any, node_ids: set[str]) -> list[Link]:
    links: list[Link] = []
    pairs: dict[frozenset, int] = {}
    for i, entry in enumerate(r.items("links", raw, required=False)):
        path = f"links[{i}]"
        m = r.mapping(path, entry, _LINK)
        if m is None:
            continue
        n_issues = len(r.issues)
        a = r.string(f"{path}.a", m.get("a"))
        b = r.string(f"{path}.b", m.get("b"))
        for end, value in (("a", a), ("b", b)):
            if value is not None and node_ids and value not in node_ids:
                close = difflib.get_close_matches(value, sorted(node_ids), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                r.add(f"{path}.{end}", f"names no device of this instance ({value!r}){hint}")
        if a is not None and a == b:
            r.add(path, f"links device {a!r} to itself")
        if a is not None and b is not None:
            key = frozenset((a, b))
            if key in pairs and a != b:
                r.add(path, f"duplicates links[{pairs[key]}] between {a} and {b}")
            pairs.setdefault(key, i)
        bw = r.number(f"{path}.bandwidth_mbps", m.get("bandwidth_mbps"), required=False)
        ch = r.number(f"{path}.channel_mhz", m.get("channel_mhz"), required=False)
        snr = r.number(f"{path}.snr_db", m.get("snr_db"), low=-50, low_open=False, required=False)
        samples: tuple[float, ...] = ()
        if "rate_samples_mbps" in m:
            vals = r.items(f"{path}.rate_samples_mbps", m["rate_samples_mbps"])
            got = [r.number(f"{path}.rate_samples_mbps[{j}]", v, limit="bandwidth_mbps") for j, v in enumerate(vals)]
            samples = tuple(v for v in got if v is not None)
        if bw is None and not samples and (ch is None or snr is None) and len(r.issues) == n_issues:
            r.add(path, "needs bandwidth_mbps, or channel_mhz and snr_db (wireless), or rate_samples_mbps")
        if sum(x is not None for x in (bw, ch)) + bool(samples) > 1:
            r.add(path, "give one of bandwidth_mbps, a wireless channel (channel_mhz, snr_db) or rate_samples_mbps")
        lat = r.number(f"{path}.latency_ms", m.get("latency_ms", 0.0), low_open=False)
        enj = r.number(f"{path}.energy_nj_per_bit", m.get("energy_nj_per_bit", 0.0), low_open=False)
        if len(r.issues) > n_issues:
            continue
        links.append(Link(a, b, bw, lat or 0.0, enj or 0.0, ch, snr, samples))  # type: ignore[arg-type]
    return links


def _workload(r: _Reader, raw: Any, models: dict[str, ModelSpec], model_ids: set[str],
              node_ids: set[str]) -> list[RequestClass]:
    out: list[RequestClass] = []
    seen: set[str] = set()
    for i, entry in enumerate(r.items("workload", raw)):
        path = f"workload[{i}]"
        m = r.mapping(path, entry, _REQUEST)
        if m is None:
            continue
        n_issues = len(r.issues)
        rid = r.string(f"{path}.id", m.get("id", f"request-{i}"))
        if rid is not None and rid in seen:
            r.add(f"{path}.id", f"duplicate request id {rid!r}")
        seen.add(rid or "")
        source = r.string(f"{path}.source", m.get("source"))
        if source is not None and node_ids and source not in node_ids:
            close = difflib.get_close_matches(source, sorted(node_ids), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            r.add(f"{path}.source", f"names no device of this instance ({source!r}){hint}")
        model = m.get("model")
        if model is None and len(model_ids) == 1:
            model = next(iter(model_ids))
        model = r.string(f"{path}.model", model)
        if model is not None and model_ids and model not in model_ids:
            r.add(f"{path}.model", f"names no model of this instance ({model!r}; models: {', '.join(sorted(model_ids))})")
        prompt, output = m.get("prompt_tokens"), m.get("output_tokens")
        profile = None
        if "profile" in m:
            profile = r.string(f"{path}.profile", m["profile"])
            if profile is not None:
                try:
                    wp = workload_profile(profile)
                    prompt = wp.prompt_tokens if prompt is None else prompt
                    output = wp.output_tokens if output is None else output
                except CatalogError as exc:
                    r.add(f"{path}.profile", str(exc))
        p = r.number(f"{path}.prompt_tokens", prompt, integer=True)
        g = r.number(f"{path}.output_tokens", output, integer=True)
        rate = r.number(f"{path}.rate_rps", m.get("rate_rps"), required=False)
        batch = r.number(f"{path}.batch", m.get("batch", 1), integer=True)
        slo = SLO()
        if "slo" in m:
            s = r.mapping(f"{path}.slo", m["slo"], _SLO)
            if s is not None:
                slo = SLO(**{k: r.number(f"{path}.slo.{k}", s.get(k), required=False) for k in _SLO})
        if len(r.issues) > n_issues:
            continue
        out.append(RequestClass(rid, source, model, int(p), int(g), rate, int(batch), slo, profile))  # type: ignore[arg-type]
    return out


def _objective(r: _Reader, raw: Any) -> Objective:
    names = ", ".join(METRICS)
    if isinstance(raw, str):
        if raw not in METRICS:
            r.add("objective", f"unknown objective {raw!r} (expected one of {names}, or a mapping of weights)")
            return Objective.of("latency")
        return Objective.of(raw)
    m = r.mapping("objective", raw)
    if m is None:
        return Objective.of("latency")
    if not m:
        r.add("objective", "must name at least one metric")
        return Objective.of("latency")
    terms = {}
    for key, weight in m.items():
        if key not in METRICS:
            r.add(f"objective.{key}", f"unknown metric (expected one of {names})")
            continue
        w = r.number(f"objective.{key}", weight)
        if w is not None:
            terms[key] = w
    if "throughput" in terms and len(m) > 1:
        r.add("objective.throughput", "is maximised and cannot be mixed with minimised metrics; use it alone")
    return Objective.of(terms) if terms else Objective.of("latency")


def _constraints(r: _Reader, raw: Any, node_ids: set[str]) -> Constraints:
    if raw is None:
        return Constraints()
    m = r.mapping("constraints", raw, _CONSTRAINTS)
    if m is None:
        return Constraints()
    headroom = r.number("constraints.memory_headroom", m.get("memory_headroom", 0.0), low_open=False)
    if headroom is not None and headroom >= 1:
        r.add("constraints.memory_headroom", f"must be < 1 (a share of usable memory), got {headroom:g}")
        headroom = None
    ctx = r.number("constraints.max_context_tokens", m.get("max_context_tokens"), integer=True, required=False)
    order = None
    if "device_order" in m:
        ids = r.items("constraints.device_order", m["device_order"])
        unknown = [x for x in ids if x not in node_ids]
        if unknown and node_ids:
            r.add("constraints.device_order", f"names unknown device(s) {', '.join(map(repr, unknown))}")
        if len(set(map(str, ids))) != len(ids):
            r.add("constraints.device_order", "lists a device twice")
        order = tuple(str(x) for x in ids)
    floor = r.number("constraints.quality_floor", m.get("quality_floor"), low_open=False, required=False)
    return Constraints(headroom or 0.0, ctx, order, floor)
