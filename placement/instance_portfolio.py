"""Reading the model-caching sections of an instance file (see :mod:`placement.instance`).

- ``models[i].quality``: benchmark scores overriding the catalog's
  (``{mmlu: 61.2, gsm8k: 70.0, formats: {q4_k_m: {mmlu: 60.1}}}``);
- ``workload[i].models`` (several accepted models, instead of ``model``),
  ``min_quality`` (the least benchmark score accepted), ``benchmark`` (which benchmark;
  by default the class's ``profile`` when that is one) and ``cascades``
  (``[{first: a, then: b, escalate_share: 0.3}]``);
- ``devices[i].load_gbs``: the rate the device loads model weights at;
- ``cache``: what is resident now (``[{device, model, weight_format, layers}]``);
- ``constraints.max_utilization``: each device's busy share at the request rates.

Every problem is reported with its field path, like the rest of the file; nothing is
guessed (a class asking for a quality without a benchmark to measure it by is an error).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from models import ModelScores, benchmark_ids, model_scores
from models.quality import has_scores
from placement.problem import CacheEntry, Cascade, ModelSpec, Objective
from placement.textfiles import kind_of

__all__ = ["request_models", "request_quality_fields", "model_quality", "cache_section", "check_portfolio",
           "REQUEST_FIELDS", "MODEL_FIELDS"]

REQUEST_FIELDS = {"models", "min_quality", "benchmark", "cascades"}
MODEL_FIELDS = {"quality"}
_CASCADE = {"first", "then", "escalate_share"}
_CACHE = {"device", "model", "weight_format", "layers"}
MAX_SCORE = 100.0  # benchmark scores are percentages


def _unknown_name(value: str, known: set[str], what: str) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"names no {what} of this instance ({value!r}; {what}s: {', '.join(sorted(known))}){hint}"


def request_models(r, path: str, m: Mapping[str, Any], model_ids: set[str], ordered_ids: list[str]
                   ) -> tuple[str | None, tuple[str, ...]]:
    """The class's model and the models it accepts (``()`` when it names one model)."""
    if "model" in m and "models" in m:
        r.add(path, "give model (one model) or models (a list), not both")
        return None, ()
    if "models" in m:
        raw = r.items(f"{path}.models", m["models"])
        names = [r.string(f"{path}.models[{j}]", x) for j, x in enumerate(raw)]
        accepted = []
        for j, name in enumerate(names):
            if name is None:
                continue
            if model_ids and name not in model_ids:
                r.add(f"{path}.models[{j}]", _unknown_name(name, model_ids, "model"))
            elif name in accepted:
                r.add(f"{path}.models[{j}]", f"lists {name!r} twice")
            else:
                accepted.append(name)
        return (accepted[0] if accepted else None), tuple(accepted)
    model = m.get("model")
    if model is None and len(model_ids) == 1:
        model = next(iter(model_ids))
    if model is None and "min_quality" in m and ordered_ids:
        # A quality floor without a model: every model of the instance may answer, if good enough.
        return ordered_ids[0], tuple(ordered_ids)
    # Without any readable model the models list is already reported; do not repeat it here.
    model = r.string(f"{path}.model", model, required=bool(model_ids))
    if model is not None and model_ids and model not in model_ids:
        r.add(f"{path}.model", f"names no model of this instance ({model!r}; models: {', '.join(sorted(model_ids))})")
    return model, ()


def request_quality_fields(r, path: str, m: Mapping[str, Any], profile: str | None, accepted: tuple[str, ...]
                           ) -> tuple[float | None, str | None, tuple[Cascade, ...]]:
    """``min_quality``, ``benchmark`` and ``cascades`` of one request class."""
    floor = r.number(f"{path}.min_quality", m.get("min_quality"), low_open=False, required=False,
                     high=MAX_SCORE, high_means="a benchmark score in percent")
    known = benchmark_ids()
    benchmark = None
    if "benchmark" in m:
        benchmark = r.choice(f"{path}.benchmark", m["benchmark"], known, "benchmark")
    elif profile in known:
        benchmark = profile
    if "min_quality" in m and benchmark is None and "benchmark" not in m:
        r.add(f"{path}.min_quality", f"needs a benchmark to measure answers by: give benchmark (one of "
                                     f"{', '.join(known)})" + (f"; profile {profile!r} is none of them" if profile else ""))
    cascades = []
    for j, entry in enumerate(r.items(f"{path}.cascades", m["cascades"]) if "cascades" in m else []):
        cpath = f"{path}.cascades[{j}]"
        c = r.mapping(cpath, entry, _CASCADE)
        if c is None:
            continue
        ends = []
        for key in ("first", "then"):
            name = r.string(f"{cpath}.{key}", c.get(key))
            if name is not None and accepted and name not in accepted:
                r.add(f"{cpath}.{key}", f"{name!r} is not among the models this class accepts ({', '.join(accepted)})")
                name = None
            ends.append(name)
        if ends[0] is not None and ends[0] == ends[1]:
            r.add(cpath, f"escalates from {ends[0]!r} to itself")
            continue
        share = r.number(f"{cpath}.escalate_share", c.get("escalate_share"), high=1,
                         high_means="the share of requests escalated")
        if None not in ends and share is not None:
            if any((x.first, x.then) == tuple(ends) for x in cascades):
                r.add(cpath, f"repeats the cascade {ends[0]} -> {ends[1]}")
                continue
            cascades.append(Cascade(ends[0], ends[1], share))
    return floor, benchmark, tuple(cascades)


def _scores(r, path: str, raw: Any, known: list[str]) -> list[tuple[str, float]]:
    out = []
    for bench, value in raw.items():
        if bench not in known:
            r.add(f"{path}.{bench}", f"unknown benchmark (expected one of {', '.join(known)})")
            continue
        score = r.number(f"{path}.{bench}", value, low_open=False, high=MAX_SCORE, high_means="a score in percent")
        if score is not None:
            out.append((str(bench), score))
    return out


def model_quality(r, path: str, m: Mapping[str, Any], model_id: str, formats: set[str]) -> ModelScores | None:
    """The model's benchmark scores: the catalog's, with the instance's ``quality`` over them."""
    base = model_scores(model_id) if has_scores(model_id) else None
    if "quality" not in m:
        return base
    q = r.mapping(f"{path}.quality", m["quality"])
    if q is None:
        return base
    known = benchmark_ids()
    given = _scores(r, f"{path}.quality", {k: v for k, v in q.items() if k != "formats"}, known)
    measured = []
    if "formats" in q:
        per_format = r.mapping(f"{path}.quality.formats", q["formats"])
        for fmt, figures in (per_format or {}).items():
            fpath = f"{path}.quality.formats.{fmt}"
            if fmt not in formats:
                r.add(fpath, f"is not a format of this model (formats: {', '.join(sorted(formats))})")
                continue
            table = r.mapping(fpath, figures)
            measured += [(str(fmt), b, v) for b, v in _scores(r, fpath, table or {}, known)]
    scores = dict(base.scores if base else ())
    scores.update(given)
    kept = [x for x in (base.measured if base else ()) if (x[0], x[1]) not in {(f, b) for f, b, _ in measured}]
    source = "instance file" + (f"; otherwise {base.source}" if base else "")
    return ModelScores(model_id, tuple(scores.items()), tuple(kept + measured), source)


def cache_section(r, raw: Any, node_ids: set[str], models: dict[str, ModelSpec]) -> tuple[CacheEntry, ...] | None:
    """The shards resident now (``None`` when the file has no ``cache`` section)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        r.add("cache", f"must be a list of resident shards, got {kind_of(raw)}")
        return None
    out: list[CacheEntry] = []
    for i, entry in enumerate(raw):
        path = f"cache[{i}]"
        c = r.mapping(path, entry, _CACHE)
        if c is None:
            continue
        device = r.string(f"{path}.device", c.get("device"))
        if device is not None and node_ids and device not in node_ids:
            r.add(f"{path}.device", _unknown_name(device, node_ids, "device"))
            device = None
        model_id = r.string(f"{path}.model", c.get("model"))
        spec = models.get(model_id) if model_id is not None else None
        if model_id is not None and spec is None:
            if model_id not in models:
                r.add(f"{path}.model", _unknown_name(model_id, set(models), "model"))
            continue
        if spec is None or device is None:
            continue
        fmt = c.get("weight_format", spec.weight_format)
        fmt = r.choice(f"{path}.weight_format", fmt, spec.formats, f"format of {spec.id} (allowed_formats)")
        layers = (0, spec.num_blocks)
        if "layers" in c:
            got = c["layers"]
            if not (isinstance(got, list) and len(got) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                     for x in got)):
                r.add(f"{path}.layers", f"must be [start, end] (whole numbers), got {kind_of(got)}")
                continue
            if not 0 <= got[0] < got[1] <= spec.num_blocks:
                r.add(f"{path}.layers", f"must satisfy 0 <= start < end <= {spec.num_blocks}, got {got}")
                continue
            layers = (got[0], got[1])
        if fmt is None:
            continue
        item = CacheEntry(device, spec.id, fmt, layers)
        if item in out:
            r.add(path, f"repeats cache[{out.index(item)}]")
            continue
        out.append(item)
    return tuple(out)


def check_portfolio(r, models: list[ModelSpec], workload: list, nodes: list, objective: Objective) -> None:
    """Checks across sections: every accepted model has a score on its class's benchmark, a quality
    objective has a benchmark for every class, churn has a load rate for every device."""
    by_id = {m.id: m for m in models}
    terms = {name for name, _ in objective.terms}
    for i, req in enumerate(workload):
        # A benchmark only informs the report unless a floor, a cascade or the objective depends on it.
        if req.benchmark is None or (req.min_quality is None and not req.cascades and "quality" not in terms):
            continue
        for name in req.accepted:
            spec = by_id.get(name)
            if spec is None:
                continue
            if spec.scores is None or req.benchmark not in spec.scores.benchmarks():
                j = [m.id for m in models].index(name)
                r.add(f"workload[{i}].benchmark", f"model {name} has no {req.benchmark} score (the quality catalog "
                                                  f"lists none): give models[{j}].quality: {{{req.benchmark}: ...}}")
    if "quality" in terms:
        for i, req in enumerate(workload):
            if req.benchmark is None:
                r.add(f"workload[{i}]", "objective quality needs a benchmark for every class: give benchmark")
    if "churn" in terms:
        for i, node in enumerate(nodes):
            if node.load_gbs is None:
                r.add(f"devices[{i}].load_gbs", "is required by objective churn (the rate model weights load at, "
                                                "GB/s)")
