"""Validation of the cost model against published measurements, and the fit behind it.

``models/catalog/measurements.csv`` holds public measurements (llama-bench,
serving benchmarks, vendor tables), one per row, each with its source. For every
``decode_tok_s`` and ``prefill_tok_s`` row, :func:`validate` asks
:func:`placement.predict` the same question and reports the relative error
``predicted / measured - 1``. A measurement means what its benchmark measured:

- ``ppN`` (``prompt_tokens=N, gen_tokens=0``): prompt tokens / prefill time.
- ``tgN`` (``prompt_tokens=0, gen_tokens=N``) and decode rates of a run
  (llama.cpp "eval rate", a token generator's tokens/s): batch / TPOT at the
  mean context of the generation.
- serving benchmarks whose notes say the rate is taken *over the whole run*
  (static-batch tables of lmdeploy and TensorRT-LLM, aggregate output
  throughput of a concurrency sweep): batch x output tokens / end-to-end time,
  which includes the prefill.

A row is excluded only for a stated reason, and excluded rows stay in the
table: its notes record a run other than the one it names (:data:`EXCLUSION_RULES`:
flagged software-limited, fell back to the CPU, another power mode or hardware
variant, a derived number), its weights and KV cache exceed the device's memory,
or it is a TTFT taken through an HTTP server (request handling the model omits).

The efficiencies in ``models/catalog/engines.yaml`` come from :func:`fit_profile`:
a bounded least-squares fit of the log ratio predicted / measured over the rows
a profile serves, varying only the parameters the profile lists under
``fitted``. :func:`row_times` evaluates the cost model's own per-node formulas
(:func:`placement.costs.roofline.node_times`) with a trial profile, so the fit and
:func:`placement.predict` cannot disagree.

Examples
--------
>>> from placement.calibration import validate, summarize
>>> rows = validate()
>>> stats = {(s.group, s.metric): s for s in summarize(rows)}
>>> stats[("all", "decode_tok_s")].median_abs_error < 0.25
True
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from models import EngineProfile, Node, device_spec, engine, kv_format, load_model, weight_format
from models._catalog import catalog_dir, read_yaml
from placement.costs.roofline import execution_rates, kv_concurrency, node_times, wave_batches
from placement.predict import predict
from placement.problem import ModelSpec, RequestClass

__all__ = [
    "TARGET_METRICS", "LATENCY_METRICS", "FIT_METRICS", "EXCLUSION_RULES", "FIT_BOUNDS", "HELD_OUT_SOURCES",
    "source_key", "held_out",
    "Measurement", "ValidationRow", "Summary",
    "load_measurements", "exclusion_reason", "profile_name", "validate", "summarize",
    "rows_to_csv", "row_waves", "row_times", "model_value", "profile_rows", "catalog_profiles", "fit_profile", "fit_catalog",
    "refit_value",
]

TARGET_METRICS = ("decode_tok_s", "prefill_tok_s")
LATENCY_METRICS = ("ttft_ms", "tpot_ms")
FIT_METRICS = TARGET_METRICS + LATENCY_METRICS  # every timing measurement informs the fit

# (phrase in the row's notes, reason): the notes record from the source that the run differs
# from the configuration the row names.
EXCLUSION_RULES: tuple[tuple[str, str], ...] = (
    ("likely a software issue", "source run flagged as software-limited (F16 prompt processing far below "
                                "the same GPU's other runs)"),
    ("software-limited", "source run flagged as software-limited (throughput rises with prompt length)"),
    ("ran on CPU", "source marks the run '(CPU)': the model did not fit the GPU working set"),
    ("'GPU/CPU' split", "source reports a GPU/CPU split: part of the model ran on the CPU"),
    ("original mode (15W", "measured in the original 15 W mode (68 GB/s); the catalog device is the "
                           "Super 25 W configuration (102 GB/s)"),
    ("24-core GPU 32GB variant", "measured on the 24-core-GPU M1 Max; the catalog device is the 32-core part"),
    ("Framework 12 laptop", "a Framework Laptop 12 has one SO-DIMM: half the dual-channel bandwidth of the "
                            "catalog's i3-1315U laptop"),
    ("not an independent measurement", "scaled from another row by the publisher, not measured"),
    ("not the AWS A10G variant", "measured on an NVIDIA A10, not the catalog's A10G, in a report of "
                                 "slower-than-expected speed"),
)

# Sources whose rows are never fitted: the standing held-out split, reported apart. They are
# independent users' runs (one person's hardware and build each), so their errors say how the
# model does on measurements the calibration has not seen.
HELD_OUT_SOURCES: tuple[str, ...] = (
    "github:dambergn/ollama-benchmarks",
    "github:brand-o/normiebench",
    "https://ai.wmx.dev/benchmarks",
    "github:jason-easyazz/zoe-ai-assistant",
    "github:geerlingguy/ai-benchmarks issue #43",
)


def source_key(source: str) -> str:
    """The publication a row comes from (its repository or site), for leave-one-source-out:
    ``github:owner/repo ...`` -> ``github:owner/repo``."""
    return source.split(";")[0].split(" ")[0].strip()


def held_out(source: str) -> bool:
    """Whether rows of ``source`` belong to the held-out split (:data:`HELD_OUT_SOURCES`)."""
    return any(source.startswith(h) for h in HELD_OUT_SOURCES)


# Physically plausible ranges the fit may use.
FIT_BOUNDS: dict[str, tuple[float, float]] = {
    "eta_mem": (0.3, 0.95),
    "eta_compute": (0.05, 0.8),
    "compute_half_tokens": (1.0, 1024.0),
    "step_overhead_ms": (0.0, 100.0),
    "layer_overhead_ms": (0.0, 2.0),
}


@dataclass(frozen=True)
class Measurement:
    """One row of ``measurements.csv``; ``row`` is its 0-based data-row index."""

    row: int
    device: str
    model: str
    weight_format: str
    engine: str
    batch: int
    prompt_tokens: int
    gen_tokens: int
    metric: str
    value: float
    source: str
    notes: str
    threads: int | None = None  # CPU threads of the run, when the source gives fewer than the cores

    @property
    def kv_format(self) -> str:
        """KV-cache format of the run: fp8 for TensorRT-LLM's FP8 tables, whose engines the
        source builds with ``--enable_fp8 --fp8_kv_cache``; fp16 otherwise."""
        return "fp8" if self.engine == "tensorrt-llm" and self.weight_format == "fp8" else "fp16"

    @property
    def whole_run(self) -> bool:
        """Whether a decode rate counts output tokens over the whole run (prefill included)."""
        n = self.notes.lower()
        return self.metric == "decode_tok_s" and ("whole run" in n or "aggregate output" in n)


def load_measurements(path: str | None = None) -> list[Measurement]:
    """Rows of the measurement CSV (default: the catalog's ``measurements.csv``)."""
    path = path or str(catalog_dir() / "measurements.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            Measurement(
                row=i, device=r["device"], model=r["model"], weight_format=r["weight_format"],
                engine=r["engine"], batch=int(r["batch"]), prompt_tokens=int(r["prompt_tokens"]),
                gen_tokens=int(r["gen_tokens"]), metric=r["metric"], value=float(r["value"]),
                source=r["source"], notes=r["notes"], threads=int(r["threads"]) if r.get("threads") else None,
            )
            for i, r in enumerate(csv.DictReader(fh))
        ]


def exclusion_reason(m: Measurement, held_gb: float = 0.0) -> str:
    """Why ``m`` is left out of the statistics ("" if it is not).

    ``held_gb`` is what the run must hold (weights + KV cache, GiB); a run that
    could not hold it on the catalog device was not the run the row describes.
    """
    for phrase, reason in EXCLUSION_RULES:
        if phrase in m.notes:
            return reason
    if m.metric == "ttft_ms" and m.engine == "vllm":
        # The vLLM rows come from benchmarks of its HTTP server; engine-internal TTFTs
        # (lmdeploy, TensorRT-LLM, QNN) do not carry this.
        return "TTFT through the serving API includes request handling the cost model does not model"
    capacity = device_spec(m.device).memory_gb
    if held_gb > capacity:
        return f"weights + {m.kv_format} KV cache ({held_gb:.0f} GiB) exceed the device's {capacity:.0f} GiB"
    return ""


def profile_name(m: Measurement) -> tuple[str, bool]:
    """Name of the engine profile ``m`` runs under (``engine/name`` or ``engine/default``) and
    whether it is calibrated."""
    spec = device_spec(m.device)
    rates = execution_rates(Node(spec.id, spec, engine=m.engine, threads=m.threads), weight_format(m.weight_format))
    eng = engine(m.engine)
    raw = next(e for e in read_yaml("engines.yaml") if e["id"] == m.engine).get("profiles", [])
    for i, (_, prof) in enumerate(eng.profiles):
        if prof is rates.profile:
            return f"{m.engine}/{raw[i].get('name', i)}", prof.calibrated
    return f"{m.engine}/default", rates.profile.calibrated


@dataclass(frozen=True)
class ValidationRow:
    """A measurement next to the cost model's prediction of it.

    ``basis`` says what was compared: ``prefill`` (B p / prefill time), ``decode``
    (B / TPOT) or ``whole_run`` (B g / end-to-end time), or the latency itself.
    ``rel_error`` is ``predicted / measured - 1``.
    """

    row: int
    metric: str
    device: str
    device_class: str
    model: str
    weight_format: str
    engine: str
    kv_format: str
    batch: int
    prompt_tokens: int
    gen_tokens: int
    basis: str
    measured: float
    predicted: float
    rel_error: float
    profile: str
    calibrated: bool
    excluded: str
    source: str


def _basis(m: Measurement) -> str:
    if m.metric == "prefill_tok_s":
        return "prefill"
    if m.metric == "decode_tok_s":
        return "whole_run" if m.whole_run else "decode"
    return m.metric


def _predicted(m: Measurement) -> tuple[float, float]:
    """The cost model's value for ``m`` and the GiB of weights + KV cache the run holds."""
    p = predict(model=m.model, device=m.device, weight_format=m.weight_format, engine=m.engine,
                batch=m.batch, prompt_tokens=m.prompt_tokens, output_tokens=m.gen_tokens,
                kv_format=m.kv_format, threads=m.threads)
    basis = _basis(m)
    if basis == "prefill":
        value = p.prefill_tok_s
    elif basis == "decode":
        value = p.decode_tok_s
    elif basis == "whole_run":
        value = m.batch * m.gen_tokens / (p.e2e_ms * 1e-3)
    elif basis == "ttft_ms":
        value = p.ttft_ms
    else:  # tpot_ms
        value = p.tpot_ms
    return float(value), float(p.weights_gb + p.kv_cache_gb)


def validate(measurements: Iterable[Measurement] | None = None,
             metrics: Sequence[str] = TARGET_METRICS) -> list[ValidationRow]:
    """One :class:`ValidationRow` per measurement of ``metrics``, in CSV order."""
    out = []
    for m in measurements if measurements is not None else load_measurements():
        if m.metric not in metrics:
            continue
        value, held_gb = _predicted(m)
        name, calibrated = profile_name(m)
        out.append(ValidationRow(
            row=m.row, metric=m.metric, device=m.device, device_class=device_spec(m.device).device_class,
            model=m.model, weight_format=m.weight_format, engine=m.engine, kv_format=m.kv_format, batch=m.batch,
            prompt_tokens=m.prompt_tokens, gen_tokens=m.gen_tokens, basis=_basis(m),
            measured=m.value, predicted=value, rel_error=value / m.value - 1.0,
            profile=name, calibrated=calibrated, excluded=exclusion_reason(m, held_gb), source=m.source,
        ))
    return out


@dataclass(frozen=True)
class Summary:
    """Median and 90th percentile of |relative error| of one metric over one group of rows."""

    group: str
    metric: str
    count: int
    median_abs_error: float
    p90_abs_error: float
    median_error: float  # signed: > 0 means the model over-predicts


def _stats(group: str, metric: str, errors: Sequence[float]) -> Summary:
    e = np.asarray(errors, dtype=float)
    return Summary(group, metric, len(e), float(np.median(np.abs(e))), float(np.percentile(np.abs(e), 90)),
                   float(np.median(e)))


def summarize(rows: Sequence[ValidationRow],
              keys: Sequence[Callable[[ValidationRow], str]] = (lambda r: "all",
                                                                 lambda r: f"engine:{r.engine}",
                                                                 lambda r: f"class:{r.device_class}")
              ) -> list[Summary]:
    """Error statistics of the included rows, overall and per engine and device class."""
    groups: dict[tuple[str, str], list[float]] = {}
    for key in keys:
        for r in rows:
            if not r.excluded:
                groups.setdefault((key(r), r.metric), []).append(r.rel_error)
    order = sorted(groups, key=lambda k: (k[0] != "all", k[0], k[1]))
    return [_stats(g, metric, groups[(g, metric)]) for g, metric in order]


def rows_to_csv(rows: Sequence[ValidationRow]) -> str:
    """The validation table as CSV text, numbers rounded so the file is stable."""
    buf = io.StringIO()
    names = [f.name for f in fields(ValidationRow)]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in rows:
        d = asdict(r)
        d["measured"] = f"{r.measured:.6g}"
        d["predicted"] = f"{r.predicted:.4g}"
        d["rel_error"] = f"{r.rel_error:+.3f}"
        w.writerow(d)
    return buf.getvalue()


# -- fitting --------------------------------------------------------------------------------


def _node(m: Measurement) -> Node:
    spec = device_spec(m.device)
    return Node(spec.id, spec, engine=m.engine, threads=m.threads)


def row_waves(m: Measurement, profile: EngineProfile | None = None) -> tuple[int, list[tuple[int, float, float]]]:
    """How many of ``m``'s sequences run at once, and per wave of them (batch, prefill seconds,
    TPOT seconds) on its device under ``profile`` (default: the catalog profile), from the cost
    model's per-node formulas (:func:`placement.costs.roofline.node_times`, ``kv_concurrency``).

    Only the numeric efficiencies of ``profile`` are used; the compute precision and unit stay
    those of the catalog profile.
    """
    node = _node(m)
    fmt = weight_format(m.weight_format)
    rates = execution_rates(node, fmt)
    prof = profile or rates.profile
    rates = replace(rates, profile=prof)
    graph = load_model(m.model)
    req = RequestClass("fit", node.id, m.model, m.prompt_tokens, m.gen_tokens, None, m.batch)
    model = ModelSpec(m.model, graph, m.weight_format, m.kv_format)
    concurrency = kv_concurrency(model, fmt, node, rates, req, m.prompt_tokens + m.gen_tokens)
    out = []
    for size in wave_batches(m.batch, concurrency):
        t = node_times(graph, fmt, kv_format(m.kv_format), rates, replace(req, batch=size))
        prefill = float(t.prefill_s.sum()) + t.prefill_steps * prof.step_overhead_ms * 1e-3
        out.append((size, prefill, float(t.decode_s.sum()) + prof.step_overhead_ms * 1e-3))
    return concurrency, out


def row_times(m: Measurement, profile: EngineProfile | None = None) -> tuple[float, float]:
    """Prefill seconds and TPOT seconds of ``m``'s first wave (see :func:`row_waves`)."""
    _, waves = row_waves(m, profile)
    return waves[0][1], waves[0][2]


def model_value(m: Measurement, profile: EngineProfile | None = None) -> float:
    """The cost model's value of ``m``'s metric on its own basis (see :func:`row_waves`);
    equal to what :func:`validate` gets from :func:`placement.predict`."""
    concurrency, waves = row_waves(m, profile)
    basis = _basis(m)
    if basis == "prefill":
        return m.batch * m.prompt_tokens / sum(w[1] for w in waves)
    if basis == "decode":
        return concurrency / waves[0][2]
    if basis == "whole_run":
        return m.batch * m.gen_tokens / sum(w[1] + max(m.gen_tokens - 1, 0) * w[2] for w in waves)
    return 1e3 * (waves[0][1] if basis == "ttft_ms" else waves[0][2])


def profile_rows(measurements: Iterable[Measurement] | None = None) -> dict[str, list[Measurement]]:
    """Included timing rows (:data:`FIT_METRICS`) outside the held-out split, grouped by the name
    of the profile they run under: the rows the calibration fits."""
    out: dict[str, list[Measurement]] = {}
    for m in measurements if measurements is not None else load_measurements():
        if m.metric not in FIT_METRICS or held_out(m.source):
            continue
        if exclusion_reason(m, _predicted(m)[1]):
            continue
        out.setdefault(profile_name(m)[0], []).append(m)
    return out


def catalog_profiles() -> dict[str, tuple[EngineProfile, tuple[str, ...], EngineProfile]]:
    """Every named profile of ``engines.yaml``: the profile, the parameters it lists under
    ``fitted``, and its engine's uncalibrated default."""
    out = {}
    for entry in read_yaml("engines.yaml"):
        eng = engine(entry["id"])
        for raw, (_, prof) in zip(entry.get("profiles", []), eng.profiles):
            out[f"{eng.id}/{raw['name']}"] = (prof, tuple(raw.get("fitted", ())), eng.fallback)
    return out


def fit_profile(rows: Sequence[Measurement], base: EngineProfile, params: Sequence[str],
                f_scale: float = 0.25) -> EngineProfile:
    """Fit ``params`` of ``base`` to ``rows``: bounded least squares on log(predicted / measured).

    The ``soft_l1`` loss grows linearly beyond ``f_scale`` (about 25 %), so a few
    rows from an odd build or host do not drag a whole profile. Bounds are
    :data:`FIT_BOUNDS`; the search starts from ``base``.
    """
    from scipy.optimize import least_squares  # only fitting needs scipy

    params = list(params)
    if not params or not rows:
        return base
    lo = np.array([FIT_BOUNDS[p][0] for p in params])
    hi = np.array([FIT_BOUNDS[p][1] for p in params])
    x0 = np.clip([getattr(base, p) for p in params], lo + 1e-6, hi - 1e-6)
    measured = np.log([m.value for m in rows])

    def make(x: np.ndarray) -> EngineProfile:
        return replace(base, **{p: float(v) for p, v in zip(params, x)})

    def residuals(x: np.ndarray) -> np.ndarray:
        prof = make(x)
        return np.log([model_value(m, prof) for m in rows]) - measured

    res = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=f_scale, x_scale="jac")
    return make(res.x)


def fit_catalog(groups: dict[str, list[Measurement]] | None = None,
                leave_out_device: str | None = None,
                leave_out_source: str | None = None) -> dict[str, tuple[EngineProfile, int]]:
    """Refit every catalog profile on ``groups`` (default :func:`profile_rows`), optionally
    without one device's rows or one source's (:func:`source_key`). Returns the profile and its
    row count per name.

    Each fit starts from the engine's uncalibrated defaults, not from the catalog's fitted
    values, so a parameter the remaining rows do not constrain keeps the default, and a
    profile left with no rows is the default.
    """
    groups = profile_rows() if groups is None else groups
    out = {}
    for name, (prof, params, default) in catalog_profiles().items():
        rows = [m for m in groups.get(name, [])
                if m.device != leave_out_device and source_key(m.source) != leave_out_source]
        start = replace(prof, **{p: getattr(default, p) for p in params})
        out[name] = (fit_profile(rows, start, params), len(rows))
    return out


def refit_value(m: Measurement, profiles: dict[str, tuple[EngineProfile, int]]) -> float:
    """The value of ``m`` under refitted ``profiles`` (the catalog profile if its own is absent)."""
    entry = profiles.get(profile_name(m)[0])
    return model_value(m, entry[0] if entry else None)
