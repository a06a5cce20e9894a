"""Reading instance files (YAML or JSON) into a :class:`~placement.problem.Problem`.

The reader checks the whole file and reports every problem at once, each with
its field path and what was expected; unknown fields are errors too, since a
misspelt override that was silently ignored would change the answer. So are a
key given twice (YAML and JSON keep the last silently), a field in another unit
than its name says, non-finite or absurd numbers, and instances beyond the size
limits (``MAX_DEVICES``, ``MAX_BLOCKS``) whose cost tables would not fit in memory.
Nothing the user gave is converted behind their back.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models import (
    KV_FORMATS, WEIGHT_FORMATS, CatalogError, ConfigError, DeviceProfile, DeviceSpec, Link, LLMGraph, Node, Topology,
    device_from_fields, device_spec, engine, engine_ids, load_model, model_ids, workload_profile,
)
from models.devices import DEVICE_CLASSES, PRECISIONS, TIERS, UNITS
from models.llm import SIZE_FIELDS, mlp_width_defaults
from placement.errors import InvalidInstanceError, Issue, printable
from placement.instance_portfolio import (
    MODEL_FIELDS, REQUEST_FIELDS, cache_section, check_portfolio, model_quality, request_models, request_quality_fields,
)
from placement.netaddr import hf_repo_problem, host_problem
from placement.problem import METRICS, SLO, Constraints, ModelSpec, Objective, Problem, RequestClass
from placement.safefiles import UnsafeFileError, read_regular_bytes
from placement.textfiles import join_path, kind_of, number_text, parse_json_text, read_mapping_file
from placement.values import FLOORS, check_number, id_problem, numeric_hint, text_problem

__all__ = ["load_instance", "parse_instance", "read_instance_file", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_TOP = {"schema_version", "name", "description", "models", "devices", "links", "workload", "objective", "constraints",
        "cache"}
_MODEL = {"id", "name", "weight_format", "kv_format", "config", "config_file", "allowed_formats", "gguf",
          "hf_repo"} | MODEL_FIELDS
_DEVICE_SPEC = {"name", "device_class", "memory_gb", "reserved_memory_gb", "memory_bandwidth_gbs", "default_unit",
                "compute", "power_w", "default_engine", "notes", "sources", "cpu_cores"}
_DEVICE = {"id", "type", "tier", "engine", "count", "threads", "profile", "profiles", "nic_mbps", "load_gbs",
           "address", "port", "holds_blocks", "relays"} | _DEVICE_SPEC
_PROFILE = {"model", "max_layers", "throughput_tokens_per_s", "prefill_ms_per_layer", "decode_ms_per_layer"}
_LINK = {"a", "b", "group", "bandwidth_mbps", "latency_ms", "energy_nj_per_bit", "channel_mhz", "snr_db",
         "rate_samples_mbps"}
_REQUEST = {"id", "source", "model", "prompt_tokens", "output_tokens", "rate_rps", "batch", "slo", "profile"} | REQUEST_FIELDS
_SLO = {"ttft_ms", "tpot_ms", "e2e_ms"}
_CONSTRAINTS = {"memory_headroom", "max_context_tokens", "device_order", "quality_floor", "max_utilization",
                "queueing", "goodput_share"}

# Size limits: beyond them the cost tables (devices x devices and devices x blocks) would not
# fit in a workstation's memory, so the file is refused rather than left to run out of it.
MAX_DEVICES = 2000
MAX_BLOCKS = 4096
_LIST_LIMITS = {"models": 64, "devices": MAX_DEVICES, "links": 100_000, "workload": 1000}

# Config fields that size a model (read by models.parse_config) and their largest sensible
# value; a config beyond them is a typo, and would build a graph too large for memory.
_CONFIG_SIZES = {
    "hidden_size": 1_000_000, "n_embd": 1_000_000, "d_model": 1_000_000,
    "num_hidden_layers": MAX_BLOCKS, "n_layer": MAX_BLOCKS, "num_layers": MAX_BLOCKS,
    "num_attention_heads": 100_000, "n_head": 100_000,
    "num_key_value_heads": 100_000, "n_head_kv": 100_000, "num_kv_heads": 100_000, "head_dim": 100_000,
    "intermediate_size": 10_000_000, "ffn_dim": 10_000_000, "n_inner": 10_000_000, "vocab_size": 10_000_000,
    "num_local_experts": 100_000, "num_experts": 100_000, "n_routed_experts": 100_000,
    "num_experts_per_tok": 100_000, "num_experts_per_token": 100_000, "moe_intermediate_size": 10_000_000,
    "shared_expert_intermediate_size": 10_000_000, "n_shared_experts": 100_000,
    "max_position_embeddings": 100_000_000, "n_positions": 100_000_000, "n_ctx": 100_000_000,
    "first_k_dense_replace": MAX_BLOCKS, "decoder_sparse_step": MAX_BLOCKS, "kv_lora_rank": 1_000_000,
    "q_lora_rank": 1_000_000, "qk_rope_head_dim": 100_000, "qk_nope_head_dim": 100_000, "v_head_dim": 100_000,
    "sliding_window": 100_000_000, "max_window_layers": MAX_BLOCKS,
}
# Sizes a config must give (any one name of each group); GPT-style models default the MLP width.
_CONFIG_MLP = SIZE_FIELDS["intermediate_size"]
_CONFIG_REQUIRED = tuple(names for names in SIZE_FIELDS.values() if names != _CONFIG_MLP)

# Units field names end in (and how to say them); a known field given in another unit
# (``memory_mb``, ``bandwidth_gbps``) is reported as such, not just as a typo.
_UNITS = {"nj_per_bit": "nJ/bit", "gbs": "GB/s", "gb": "GB", "mbps": "Mbit/s", "ms": "ms", "mhz": "MHz",
          "db": "dB", "rps": "requests/s", "w": "W"}
_OTHER_UNITS = {"b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "bytes", "bps", "kbps", "mbps", "gbps",
                "tbps", "bits", "mbs", "gbs", "tbs", "s", "sec", "secs", "seconds", "ms", "us", "ns", "min", "h",
                "hz", "khz", "mhz", "ghz", "db", "rps", "qps", "rpm", "w", "kw", "mw", "watts", "j", "nj", "uj",
                "pj", "mj", "tflops", "gflops"}


class _Reader:
    """Collects issues while converting raw values."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.files_read: list[str] = []  # config files, resolved: a plan file is never written over them

    def add(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def mapping(self, path: str, value: Any, allowed: set[str] | None = None) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping of fields, got {kind_of(value)}")
            return None
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.add(join_path(path, str(key)), f"unknown field{_field_hint(str(key), allowed)}")
        return value

    def items(self, path: str, value: Any, required: bool = True) -> list[Any]:
        if value is None:
            if required:
                self.add(path, "is required (a non-empty list)")
            return []
        if not isinstance(value, list):
            self.add(path, f"must be a list, got {kind_of(value)}")
            return []
        if required and not value:
            self.add(path, "must not be empty")
        top = _LIST_LIMITS.get(path)
        if top is not None and len(value) > top:
            self.add(path, f"has {len(value):,} entries; at most {top:,} are supported (see README, "
                           "\"Errors and exit codes\")")
            return []
        return value

    def string(self, path: str, value: Any, required: bool = True) -> str | None:
        """Text that prints as one plain line (no control or invisible characters)."""
        if value is None:
            if required:
                self.add(path, "is required (a string)")
            return None
        # Integers pass (YAML reads `id: 1` as one); floats and booleans are never names.
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            self.add(path, f"must be a non-empty string, got {kind_of(value)}")
            return None
        problem = text_problem(str(value))
        if problem:
            self.add(path, problem)
            return None
        return str(value)

    def identifier(self, path: str, value: Any) -> str | None:
        """An id a model, device or request class declares (see ``placement.values``)."""
        # The id rules first: they name the character (a zero-width space) more precisely than text rules.
        text = value if isinstance(value, str) and value else self.string(path, value)
        if text is None:
            return None
        problem = id_problem(text)
        if problem:
            self.add(path, f"{problem}; got {text!r}")
            return None
        return text

    def flag(self, path: str, value: Any, default: bool) -> bool:
        """A true/false field (``default`` when absent); anything else is reported."""
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, f"must be true or false, got {kind_of(value)}")
            return default
        return value

    def choice(self, path: str, value: Any, known: Any, what: str) -> str | None:
        """A string that must be one of ``known`` (hashable check first, so a list is a type error)."""
        text = self.string(path, value)
        if text is not None and text not in known:
            close = difflib.get_close_matches(text, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.add(path, f"unknown {what} {text!r} (expected one of {', '.join(known)}){hint}")
            return None
        return text

    def number(self, path: str, value: Any, *, low: float = 0.0, low_open: bool = True, integer: bool = False,
               required: bool = True, limit: str | None = None, high: float | None = None, high_open: bool = False,
               high_means: str = "") -> float | None:
        """A number in the accepted range of its field (``limit``, else the path's last name).

        ``high`` bounds it above (``high_open``: strictly), ``high_means`` saying what the bound is.
        """
        if value is None:
            if required:
                self.add(path, f"is required ({'an integer' if integer else 'a number'})")
            return None
        number, problem = check_number(value, limit or path.rsplit(".", 1)[-1], low=low, low_open=low_open,
                                       integer=integer)
        if problem:
            self.add(path, problem)
        elif high is not None and (number >= high if high_open else number > high):  # type: ignore[operator]
            self.add(path, f"must be {'<' if high_open else '<='} {high:g} ({high_means}), got {number:g}")
            return None
        return number


def _split_unit(key: str) -> tuple[str, str] | None:
    for unit in sorted(_UNITS, key=len, reverse=True):
        if key.endswith("_" + unit):
            return key[: -len(unit) - 1], _UNITS[unit]
    return None


def _field_hint(key: str, allowed: set[str]) -> str:
    """Why ``key`` is unknown: another unit of a known field, a misspelling, or neither."""
    for field in sorted(allowed):
        split = _split_unit(field)
        if split is None:
            continue
        stem, unit = split
        if key.startswith(stem + "_") and key[len(stem) + 1:].lower() in _OTHER_UNITS:
            return (f" (units are part of the field name: this field is {field!r}, in {unit}; "
                    f"convert the value, nothing is converted for you)")
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of {', '.join(sorted(allowed))})"


def read_instance_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """Parse a YAML or JSON instance file into a dict; returns it and the file's bytes.

    Raises
    ------
    InvalidInstanceError
        If the file cannot be read or parsed, does not hold a mapping, or gives a key twice.
    """
    data, raw, duplicates = read_mapping_file(path)
    if duplicates:
        raise InvalidInstanceError(duplicates, str(path))
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
    >>> problem = load_instance("instances/device-edge-cloud.yaml")
    >>> [n.id for n in problem.topology.nodes]
    ['phone', 'edge', 'cloud']
    """
    data, raw, duplicates = read_mapping_file(path)
    p = Path(path)
    try:
        problem = parse_instance(data, base_dir=p.parent, default_name=printable(p.stem), sha256=hashlib.sha256(raw).hexdigest())
    except InvalidInstanceError as exc:
        raise InvalidInstanceError([*duplicates, *exc.issues], str(p)) from None
    if duplicates:
        raise InvalidInstanceError(duplicates, str(p))
    return dataclasses.replace(problem, input_files=(os.path.realpath(p), *problem.input_files))


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
    if type(version) is not int or version != SCHEMA_VERSION:  # `true` equals 1 in Python, but is no version
        r.add("schema_version", f"must be the integer {SCHEMA_VERSION}, got {kind_of(version)}")
    name = r.string("name", top.get("name", default_name)) or default_name
    description = _description(r, top.get("description"))
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    models = _models(r, top.get("models"), base)
    by_id = {m.id: m for m in models}
    # References are checked against every id the file declares, so one bad device
    # entry is reported once, not again at each link that names it.
    model_order = _declared_order(top.get("models"))
    model_ids = set(model_order)
    nodes = _devices(r, top.get("devices"), model_ids)
    node_ids = _declared_ids(top.get("devices"))
    links = _links(r, top.get("links"), node_ids)
    workload = _workload(r, top.get("workload"), by_id, model_ids, node_ids, model_order)
    objective = _objective(r, top.get("objective", "latency"))
    constraints = _constraints(r, top.get("constraints"), node_ids)
    cache = cache_section(r, top.get("cache"), node_ids, by_id)
    check_portfolio(r, models, workload, nodes, objective)
    _check_queueing(r, workload, objective, constraints)
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
        objective=objective, constraints=constraints, sha256=sha256, input_files=tuple(r.files_read), cache=cache,
    )


def _description(r: _Reader, raw: Any) -> str:
    """Free text that may span lines (a YAML block scalar ends with one); it is never printed."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        r.add("description", f"must be a string, got {kind_of(raw)}")
        return ""
    problem = text_problem(raw.replace("\n", " ").replace("\t", " "))
    if problem:
        r.add("description", problem)
    return raw


def _declared_ids(entries: Any) -> set[str]:
    return set(_declared_order(entries))


def _declared_order(entries: Any) -> list[str]:
    if not isinstance(entries, list):
        return []
    ids = [str(e["id"]) for e in entries if isinstance(e, Mapping) and isinstance(e.get("id"), (str, int))]
    return list(dict.fromkeys(ids))


def _models(r: _Reader, raw: Any, base: Path) -> list[ModelSpec]:
    out: list[ModelSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(r.items("models", raw)):
        path = f"models[{i}]"
        m = r.mapping(path, entry, _MODEL)
        if m is None:
            continue
        mid = r.identifier(f"{path}.id", m.get("id"))
        if mid is None:
            continue
        if mid in seen:
            r.add(f"{path}.id", f"duplicate model id {mid!r}")
            continue
        seen.add(mid)
        graph = _model_graph(r, path, m, mid, base)
        if graph is None:
            continue
        default_fmt = {"bfloat16": "bf16", "float32": "fp32"}.get(graph.arch.torch_dtype, "fp16")
        fmt = r.choice(f"{path}.weight_format", m.get("weight_format", default_fmt), WEIGHT_FORMATS, "format")
        kv = r.choice(f"{path}.kv_format", m.get("kv_format", "fp16"), KV_FORMATS, "KV format")
        allowed: tuple[str, ...] = ()
        if "allowed_formats" in m:
            fmts = r.items(f"{path}.allowed_formats", m["allowed_formats"])
            for j, f in enumerate(fmts):
                if not isinstance(f, str):
                    r.add(f"{path}.allowed_formats[{j}]", f"must be a format name, got {kind_of(f)}")
            fmts = [f for f in fmts if isinstance(f, str)]
            if len(set(fmts)) != len(fmts):
                r.add(f"{path}.allowed_formats", "lists a format twice")
            bad = [f for f in fmts if f not in WEIGHT_FORMATS]
            if bad:
                r.add(f"{path}.allowed_formats", f"unknown format(s) {', '.join(map(repr, bad))} "
                                                 f"(expected from {', '.join(WEIGHT_FORMATS)})")
            allowed = tuple(dict.fromkeys([fmt, *fmts])) if fmt else tuple(fmts)
        gguf, hf_repo = _weights_names(r, path, m)
        if fmt is None or kv is None:
            continue
        scores = model_quality(r, path, m, mid, set(allowed or (fmt,)))
        out.append(ModelSpec(mid, graph, fmt, kv, allowed, gguf=gguf, hf_repo=hf_repo, scores=scores))
    return out


def _weights_names(r: _Reader, path: str, m: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The model's ``gguf`` path and ``hf_repo`` id, which exports to serving engines name."""
    gguf = r.string(f"{path}.gguf", m["gguf"]) if "gguf" in m else None
    hf_repo = r.string(f"{path}.hf_repo", m["hf_repo"]) if "hf_repo" in m else None
    problem = hf_repo_problem(hf_repo) if hf_repo is not None else None
    if problem:
        r.add(f"{path}.hf_repo", problem)
        hf_repo = None
    return gguf, hf_repo


def _model_graph(r: _Reader, path: str, m: Mapping[str, Any], mid: str, base: Path) -> LLMGraph | None:
    """The model's graph from the catalog, an inline ``config`` or a ``config_file``."""
    name = r.string(f"{path}.name", m.get("name"), required=False)
    if "config" in m and "config_file" in m:
        r.add(path, "give either config or config_file, not both")
        return None
    if "config" in m:
        cfg, where, source = m["config"], f"{path}.config", f"{path}.config"
        if not isinstance(cfg, Mapping):
            r.add(where, f"must be a mapping of config.json fields, got {kind_of(cfg)}")
            return None
        problems = _config_problems(cfg)
        for key, message in problems:
            r.add(f"{where}.{key}", message)
    elif "config_file" in m:
        name_of_file = r.string(f"{path}.config_file", m["config_file"])
        if name_of_file is None:
            return None
        file = Path(name_of_file)
        file = file if file.is_absolute() else base / file
        cfg = _read_config_file(r, f"{path}.config_file", file)
        r.files_read.append(os.path.realpath(file))
        if cfg is None:
            return None
        where, source = f"{path}.config_file", str(file)
        problems = _config_problems(cfg)
        for key, message in problems:
            r.add(where, f"{key} in {file.name}: {message}")
    else:
        known = model_ids()
        if mid not in known:  # checked first: an id is not a path to look up on disk
            r.add(f"{path}.id", f"{CatalogError('model', mid, known)} (or give config: / config_file:)")
            return None
        return load_model(mid)
    if problems:
        return None
    try:
        return LLMGraph.from_config(cfg, mid, name=name, source=source)
    except ConfigError as exc:
        r.add(f"{where}.{exc.field}" if where.endswith(".config") else where, exc.message)
    except (TypeError, ValueError, OverflowError) as exc:  # a field _config_problems does not know about
        r.add(where, f"cannot be read as a model config: {exc}")
    return None


def _read_config_file(r: _Reader, where: str, file: Path) -> Mapping[str, Any] | None:
    """A ``config.json``, read like every input file: a regular file of at most 16 MiB."""
    try:
        data, duplicates = parse_json_text(read_regular_bytes(file).decode("utf-8"))
    except FileNotFoundError:
        r.add(where, f"no such file: {file}")
        return None
    except UnsafeFileError as exc:
        r.add(where, f"{file} {exc}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        r.add(where, f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}")
        return None
    except json.JSONDecodeError as exc:
        r.add(where, f"{file} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
        return None
    except RecursionError:
        r.add(where, f"{file} is nested too deeply to be a model config")
        return None
    if not isinstance(data, dict):
        r.add(where, f"{file} must hold a JSON object of config fields, got {kind_of(data)}")
        return None
    for issue in duplicates:
        r.add(where, f"{file.name}: {issue.message}")
    return None if duplicates else data


def _config_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem with the sizes of a ``config.json``, as (field, message) pairs.

    ``models.parse_config`` stops at the first bad field; checking them all here first
    reports every one, and keeps absurd sizes from building a graph too large for memory.
    """
    out: list[tuple[str, str]] = []
    fields: dict[str, tuple[str, Any]] = {k: (str(k), v) for k, v in config.items()}
    nested = config.get("text_config")
    if nested is not None and not isinstance(nested, Mapping):
        out.append(("text_config", f"must be a mapping of config fields, got {kind_of(nested)}"))
    elif isinstance(nested, Mapping):
        # As in parse_config, the language model's own fields win.
        fields.update({k: (f"text_config.{k}", v) for k, v in nested.items()})
    for key, limit in _CONFIG_SIZES.items():
        if key not in fields or fields[key][1] is None:
            continue
        where, value = fields[key]
        low = 0 if ("expert" in key or key in ("max_position_embeddings", "n_positions", "n_ctx",
                                                "first_k_dense_replace", "max_window_layers")) else 1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value):
            out.append((where, f"must be an integer, got {kind_of(value)}{numeric_hint(value)}"))
        elif value < low:
            out.append((where, f"must be >= {low}, got {number_text(value)}"))
        elif value > limit:
            out.append((where, f"must be <= {limit:,}, got {number_text(value)}"))
    for group in _CONFIG_REQUIRED:
        if not any(fields.get(k, (None, None))[1] is not None for k in group):
            also = f" (or {', '.join(group[1:])})" if len(group) > 1 else ""
            out.append((group[0], f"is required{also}: a positive integer"))
    model_type = fields.get("model_type", (None, "llama"))[1]
    if not isinstance(model_type, str):
        out.append((fields["model_type"][0], f"must be a string, got {kind_of(model_type)}"))
    elif not mlp_width_defaults(model_type) and not any(fields.get(k, (None, None))[1] is not None
                                                            for k in _CONFIG_MLP):
        out.append((_CONFIG_MLP[0], f"is required for model_type {model_type!r}: a positive integer"))
    for key in ("tie_word_embeddings", "attention_bias", "bias", "enable_bias"):
        if key in fields and not isinstance(fields[key][1], (bool, type(None))):
            out.append((fields[key][0], f"must be true or false, got {kind_of(fields[key][1])}"))
    return out


def _profiles(r: _Reader, path: str, d: Mapping[str, Any], model_ids: set[str]) -> tuple[DeviceProfile, ...]:
    raw = []
    if "profile" in d:
        raw.append((f"{path}.profile", d["profile"]))
    if "profiles" in d:
        raw.extend((f"{path}.profiles[{j}]", p) for j, p in enumerate(r.items(f"{path}.profiles", d["profiles"])))
    out = []
    first: dict[str, str] = {}
    for ppath, entry in raw:
        p = r.mapping(ppath, entry, _PROFILE)
        if p is None:
            continue
        model = r.string(f"{ppath}.model", p.get("model"))
        if model is not None and model_ids and model not in model_ids:
            r.add(f"{ppath}.model", f"names no model of this instance (models: {', '.join(sorted(model_ids))})")
        if model is not None and model in first:
            r.add(f"{ppath}.model", f"a second profile for {model!r} on this device (first at {first[model]}); "
                                    "which one applies would be a guess")
        elif model is not None:
            first[model] = ppath
        max_layers = r.number(f"{ppath}.max_layers", p.get("max_layers"), integer=True, required=False)
        table: list[tuple[int, float]] = []
        if "throughput_tokens_per_s" in p:
            tp = r.mapping(f"{ppath}.throughput_tokens_per_s", p["throughput_tokens_per_s"])
            for k, v in (tp or {}).items():
                kpath = f"{ppath}.throughput_tokens_per_s.{k}"
                # JSON keys are strings ("12"); a float or boolean key would be silently truncated.
                is_count = isinstance(k, int) and not isinstance(k, bool) or isinstance(k, str) and k.strip().isdigit()
                if not is_count:
                    r.add(kpath, f"keys must be layer counts (whole numbers), got {kind_of(k)}")
                    continue
                layers = int(k)
                if layers <= 0:
                    r.add(kpath, "layer counts must be > 0")
                    continue
                if layers in {n for n, _ in table}:  # 12 and "12" are two keys to YAML, one layer count
                    r.add(kpath, f"gives layer count {layers} a second time; which one applies would be a guess")
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
        did = r.identifier(f"{path}.id", d.get("id"))
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
            comp = r.mapping(f"{path}.compute", d["compute"], set(UNITS))
            for unit, table in (comp or {}).items():
                t = r.mapping(f"{path}.compute.{unit}", table, set(PRECISIONS)) if unit in UNITS else None
                for prec, v in (t or {}).items():
                    if prec in PRECISIONS:
                        r.number(f"{path}.compute.{unit}.{prec}", v, limit="tflops")
        tier = r.choice(f"{path}.tier", d["tier"], TIERS, "tier") if "tier" in d else None
        eng = r.choice(f"{path}.engine", d["engine"], sorted(engines), "engine") if "engine" in d else None
        _device_texts(r, path, d, engines)
        count = r.number(f"{path}.count", d.get("count", 1), integer=True)
        nic = r.number(f"{path}.nic_mbps", d.get("nic_mbps"), required=False, limit="bandwidth_mbps")
        load_gbs = r.number(f"{path}.load_gbs", d.get("load_gbs"), required=False)
        threads = r.number(f"{path}.threads", d["threads"], integer=True) if "threads" in d else None
        holds = r.flag(f"{path}.holds_blocks", d.get("holds_blocks"), True)
        relays = r.flag(f"{path}.relays", d.get("relays"), True)
        if "cpu_cores" in d:
            r.number(f"{path}.cpu_cores", d["cpu_cores"], integer=True)
        address, port = _endpoint(r, path, d)
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
        missing = [k for k in ("memory_gb", "memory_bandwidth_gbs", "compute") if k not in d]
        if base is None and missing:
            r.add(f"{path}.type", "is required (a catalog device id), unless memory_gb, memory_bandwidth_gbs "
                                  f"and compute are given inline (missing: {', '.join(missing)})")
            continue
        try:
            spec = device_from_fields(overrides, base=base, device_id=base.id if base else did)
        except ConfigError as exc:
            r.add(f"{path}.{exc.field}", exc.message)
            continue
        except (TypeError, ValueError) as exc:  # a combination the checks above do not cover
            r.add(path, f"cannot be read as a device: {exc}")
            continue
        engine_id = eng or spec.default_engine
        if threads is not None and _engine_unit(spec, engine_id) != "cpu":
            r.add(f"{path}.threads", f"applies to devices whose engine runs on the cpu; {engine_id} runs on the "
                                     f"{_engine_unit(spec, engine_id)} of {spec.id}")
            continue
        nodes.append(Node(did, spec, tier=tier or spec.tier, engine=engine_id,
                          count=int(count or 1), profiles=profiles, threads=int(threads) if threads else None,
                          nic_mbps=nic, load_gbs=load_gbs, address=address, port=port, holds_blocks=holds,
                          relays=relays))
    return nodes


def _engine_unit(spec: DeviceSpec, engine_id: str) -> str:
    """The compute unit ``engine_id`` runs on on ``spec`` (as the cost model picks it)."""
    preferred = engine(engine_id).fallback.unit
    return preferred if preferred in spec.units() else spec.default_unit


def _endpoint(r: _Reader, path: str, d: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """The device's ``address`` (host name or IP) and ``port``, which exports to serving engines use."""
    address = r.string(f"{path}.address", d["address"]) if "address" in d else None
    problem = host_problem(address) if address is not None else None
    if problem:
        r.add(f"{path}.address", problem)
        address = None
    port = r.number(f"{path}.port", d["port"], integer=True) if "port" in d else None
    return address, None if port is None else int(port)


def _device_texts(r: _Reader, path: str, d: Mapping[str, Any], engines: set[str]) -> None:
    """Check the catalog fields that are names or text (``device_from_fields`` reads them as they are)."""
    if "device_class" in d:
        r.choice(f"{path}.device_class", d["device_class"], DEVICE_CLASSES, "device class")
    if "default_unit" in d:
        r.choice(f"{path}.default_unit", d["default_unit"], UNITS, "compute unit")
    if "default_engine" in d:
        r.choice(f"{path}.default_engine", d["default_engine"], sorted(engines), "engine")
    for key in ("name", "notes"):
        if key in d:
            r.string(f"{path}.{key}", d[key])
    if "sources" in d:
        sources = r.mapping(f"{path}.sources", d["sources"])
        for key, value in (sources or {}).items():
            r.string(f"{path}.sources.{key}", value)


def _links(r: _Reader, raw: Any, node_ids: set[str]) -> list[Link]:
    """Links, each entry one link (``a``, ``b``) or a fully connected group (``group``: a link of
    the entry's rate between every pair of the listed devices, as on one switch)."""
    links: list[Link] = []
    pairs: dict[frozenset, int] = {}
    for i, entry in enumerate(r.items("links", raw, required=False)):
        path = f"links[{i}]"
        m = r.mapping(path, entry, _LINK)
        if m is None:
            continue
        n_issues = len(r.issues)
        ends = _link_ends(r, path, m, node_ids)
        if len(links) + len(ends) > _LIST_LIMITS["links"]:
            r.add(path, f"brings the links to {len(links) + len(ends):,}; at most {_LIST_LIMITS['links']:,} are "
                        "supported (a group of n devices is n (n - 1) / 2 links)")
            return links
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
        for a, b in ends:
            key = frozenset((a, b))
            if key in pairs and "group" in m:
                r.add(path, f"the group's pair {a}-{b} duplicates links[{pairs[key]}] (a pair of devices has one "
                            "link: leave one of them out of the group, or drop the other entry)")
            elif key in pairs:
                r.add(path, f"duplicates links[{pairs[key]}] between {a} and {b} (links are undirected: "
                            "one entry serves both directions)")
            pairs.setdefault(key, i)
        if len(r.issues) > n_issues:
            continue
        first = Link(ends[0][0], ends[0][1], bw, lat or 0.0, enj or 0.0, ch, snr, samples) if ends else None
        # A wireless channel's Shannon rate can be tiny although each field is in range.
        if first is not None and ch is not None and first.rate_mbps < FLOORS["bandwidth_mbps"]:
            r.add(path, f"the Shannon rate of channel_mhz {ch:g} at snr_db {snr:g} is {first.rate_mbps:.3g} Mbit/s; "
                        f"a link's rate must be >= {FLOORS['bandwidth_mbps']:g} Mbit/s, like bandwidth_mbps")
            continue
        links.extend(Link(a, b, bw, lat or 0.0, enj or 0.0, ch, snr, samples) for a, b in ends)
    return links


def _link_ends(r: _Reader, path: str, m: Mapping[str, Any], node_ids: set[str]) -> list[tuple[str, str]]:
    """The device pairs one ``links`` entry joins: its ``a`` and ``b``, or every pair of its ``group``."""
    if "group" in m:
        if "a" in m or "b" in m:
            r.add(path, "give a and b (one link) or group (a link between every pair of its devices), not both")
            return []
        members = [r.string(f"{path}.group[{j}]", x) for j, x in enumerate(r.items(f"{path}.group", m["group"]))]
        for j, member in enumerate(members):
            if member is not None and node_ids and member not in node_ids:
                r.add(f"{path}.group[{j}]", f"names no device of this instance ({member!r}){_close_id(member, node_ids)}")
            elif member is not None and member in members[:j]:
                r.add(f"{path}.group[{j}]", f"lists {member!r} twice")
        if len(members) == 1:
            r.add(f"{path}.group", "must list at least 2 devices")
        named = list(dict.fromkeys(x for x in members if x is not None and (not node_ids or x in node_ids)))
        return [(a, b) for j, a in enumerate(named) for b in named[j + 1:]]
    a = r.string(f"{path}.a", m.get("a"))
    b = r.string(f"{path}.b", m.get("b"))
    for end, value in (("a", a), ("b", b)):
        if value is not None and node_ids and value not in node_ids:
            r.add(f"{path}.{end}", f"names no device of this instance ({value!r}){_close_id(value, node_ids)}")
    if a is not None and a == b:
        r.add(path, f"links device {a!r} to itself")
        return []
    return [(a, b)] if a is not None and b is not None else []


def _close_id(value: str, node_ids: set[str]) -> str:
    close = difflib.get_close_matches(value, sorted(node_ids), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _workload(r: _Reader, raw: Any, models: dict[str, ModelSpec], model_ids: set[str],
              node_ids: set[str], ordered_ids: list[str]) -> list[RequestClass]:
    out: list[RequestClass] = []
    seen: set[str] = set()
    for i, entry in enumerate(r.items("workload", raw)):
        path = f"workload[{i}]"
        m = r.mapping(path, entry, _REQUEST)
        if m is None:
            continue
        n_issues = len(r.issues)
        rid = r.identifier(f"{path}.id", m.get("id", f"request-{i}"))
        if rid is not None and rid in seen:
            r.add(f"{path}.id", f"duplicate request id {rid!r}")
        seen.add(rid or "")
        source = r.string(f"{path}.source", m.get("source"))
        if source is not None and node_ids and source not in node_ids:
            close = difflib.get_close_matches(source, sorted(node_ids), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            r.add(f"{path}.source", f"names no device of this instance ({source!r}){hint}")
        model, accepted = request_models(r, path, m, model_ids, ordered_ids)
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
        floor, benchmark, cascades = request_quality_fields(r, path, m, profile, accepted or ((model,) if model else ()))
        if len(r.issues) > n_issues:
            continue
        out.append(RequestClass(rid, source, model, int(p), int(g), rate, int(batch), slo, profile,  # type: ignore[arg-type]
                                accepted if len(accepted) > 1 else (), floor, benchmark, cascades))
    return out


def _objective(r: _Reader, raw: Any) -> Objective:
    names = ", ".join(METRICS)
    if isinstance(raw, str):
        if raw not in METRICS:
            r.add("objective", f"unknown objective {raw!r} (expected one of {names}, or a mapping of weights)")
            return Objective.of("latency")
        return Objective.of(raw)
    if not isinstance(raw, Mapping):
        r.add("objective", f"must be a metric name ({names}) or a mapping of weights, got {kind_of(raw)}")
        return Objective.of("latency")
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
        w = r.number(f"objective.{key}", weight, limit="objective_weight")
        if w is not None:
            terms[key] = w
    for alone in ("throughput", "goodput"):
        if alone in terms and len(m) > 1:
            r.add(f"objective.{alone}", "is maximised and cannot be mixed with minimised metrics; use it alone")
    return Objective.of(terms) if terms else Objective.of("latency")


def _check_queueing(r: _Reader, workload: list[RequestClass], objective: Objective, constraints: Constraints) -> None:
    """Queueing needs request rates, and goodput needs queueing and an SLO to meet."""
    rated = any(q.rate_rps for q in workload)
    if constraints.queueing and not rated:
        r.add("constraints.queueing", "needs request rates to queue at (give workload[].rate_rps)")
    if "goodput" in {name for name, _ in objective.terms}:
        if not constraints.queueing:
            r.add("objective", "goodput is measured with queueing: set constraints.queueing: true")
        if not any(q.slo.items() for q in workload):
            r.add("objective", "goodput counts requests that meet their SLOs: give at least one workload[].slo")


def _constraints(r: _Reader, raw: Any, node_ids: set[str]) -> Constraints:
    if raw is None:
        return Constraints()
    m = r.mapping("constraints", raw, _CONSTRAINTS)
    if m is None:
        return Constraints()
    headroom = r.number("constraints.memory_headroom", m.get("memory_headroom", 0.0), low_open=False,
                        high=1, high_open=True, high_means="a share of usable memory")
    ctx = r.number("constraints.max_context_tokens", m.get("max_context_tokens"), integer=True, required=False)
    order = None
    if "device_order" in m:
        raw_ids = r.items("constraints.device_order", m["device_order"])
        ids = [r.string(f"constraints.device_order[{j}]", x) for j, x in enumerate(raw_ids)]
        unknown = [x for x in ids if x is not None and x not in node_ids]
        if unknown and node_ids:
            r.add("constraints.device_order", f"names unknown device(s) {', '.join(map(repr, unknown))}")
        first: dict[str, int] = {}
        for j, x in enumerate(ids):
            if x is not None and x in first:
                # A pipeline passes each device once; a repeat would make the order a cycle.
                r.add(f"constraints.device_order[{j}]", f"lists {x!r} again (first at position {first[x]}): "
                                                        "a pipeline order visits each device once, it cannot cycle")
            elif x is not None:
                first[x] = j
        order = tuple(x for x in ids if x is not None)
    floor = r.number("constraints.quality_floor", m.get("quality_floor"), low_open=False, required=False,
                     high=1, high_means="quality relative to the fp16 model")
    utilization = r.number("constraints.max_utilization", m.get("max_utilization", 1.0),
                           high=1, high_means="a share of each device's time")
    queueing = m.get("queueing", False)
    if not isinstance(queueing, bool):
        r.add("constraints.queueing", f"must be true or false, got {kind_of(queueing)}")
        queueing = False
    share = r.number("constraints.goodput_share", m.get("goodput_share", 0.9), high=1,
                     high_means="a share of the requests")
    return Constraints(headroom or 0.0, ctx, order, floor, utilization or 1.0, queueing, share or 0.9)
