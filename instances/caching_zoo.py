"""Model-caching instances: a zoo of tiny portfolios for the oracle, and larger portfolios for benchmarks.

``caching_zoo(seed)`` returns ``(name, instance dict)`` pairs, each parseable with
:func:`placement.parse_instance`: 2 or 3 devices (phones, an edge box, a cloud GPU) and 2 or
3 small catalog models, so that ``cache-bruteforce`` enumerates every cache in well under a
second. Together they vary what makes caching hard: memory that holds few instances, request
rates the devices cannot all carry (``max_utilization``), SLOs, minimum qualities (one no
model reaches), classes accepting one, some or all models, two sources, cascades, a current
cache with churn in the objective, a choice of weight formats, and every caching objective.
Names start with ``cache-``.

``portfolio(models, nodes, classes, seed)`` builds a larger portfolio (up to 14 catalog models
with benchmark scores over phones, edge boxes and cloud GPUs) for the benchmark runs,
``bench_instances(seed)`` the ``portfolio`` benchmark family, and ``caching_stress()`` one
portfolio for time-limit checks.

Examples
--------
>>> from placement import parse_instance
>>> zoo = caching_zoo(0)
>>> len(zoo) >= 12, all(parse_instance(d).portfolio_features() for _, d in zoo)
(True, True)
"""

from __future__ import annotations

import random
from typing import Any

from models import model_scores

__all__ = ["caching_zoo", "routing_zoo", "portfolio", "bench_instances", "caching_stress", "PORTFOLIO_MODELS"]

_TINY_MODELS = ("qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b", "llama-3.2-3b")
# Catalog models with benchmark scores, small to large (models/catalog/quality.yaml).
PORTFOLIO_MODELS = ("qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b", "gemma-2-2b", "llama-3.2-3b", "phi-3-mini",
                    "mistral-7b", "qwen2.5-7b", "llama-3.1-8b", "gemma-2-9b", "llama-2-13b", "mixtral-8x7b",
                    "llama-3.1-70b", "qwen2.5-72b")
_PHONES = ("snapdragon-8-gen3", "snapdragon-8-elite")
_EDGES = ("jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-32gb", "rtx-4090")
_CLOUDS = ("l4", "a100-sxm-40gb", "h100-sxm-80gb")

# What each tiny instance exercises: objective, devices (by tier), models, classes and features.
_TINY = (
    ("latency", "pe", 2, 1, ()),
    ("latency", "pec", 3, 2, ("rates", "tight")),
    ("energy", "pe", 2, 2, ("tight",)),
    ("weighted", "pec", 2, 2, ("slo", "min_quality")),
    ("latency", "ppe", 2, 2, ("rates", "max_util")),
    ("weighted", "pe", 3, 2, ("cache", "churn")),
    ("latency", "pec", 2, 2, ("cascade", "min_quality")),
    ("quality", "pe", 3, 1, ("tight", "rates")),
    ("unserved", "pec", 2, 2, ("rates", "slo")),
    ("latency", "pe", 2, 2, ("formats", "tight")),
    ("latency", "pec", 2, 3, ("impossible", "rates")),
    ("weighted", "ppe", 2, 2, ("cache", "churn", "rates")),
    ("energy", "pec", 2, 2, ("cascade", "rates")),
    ("weighted", "pe", 2, 2, ("quality_term", "min_quality")),
    ("latency", "pe", 2, 2, ("no_room", "best_only")),
    ("weighted", "pec", 3, 2, ("cache", "churn", "no_room", "best_only")),
)


def _device(kind: str, i: int, rng: random.Random, tight: bool, no_room: bool = False) -> dict[str, Any]:
    if kind == "p":
        usable = rng.uniform(0.9, 1.3) if no_room else rng.uniform(1.0, 2.2) if tight else rng.uniform(2.0, 4.0)
        return {"id": f"phone-{i}", "type": rng.choice(_PHONES), "tier": "device", "load_gbs": 1.5,
                "memory_gb": round(4.0 + usable, 2), "reserved_memory_gb": 4.0}
    if kind == "e":
        dev = {"id": "edge", "type": "jetson-orin-nano-8gb", "tier": "edge", "load_gbs": 2.0}
        if no_room:  # room for a small model at most
            dev["memory_gb"] = round(1.5 + rng.uniform(0.8, 1.4), 2)
        elif tight:
            dev["memory_gb"] = round(1.5 + rng.uniform(1.5, 3.0), 2)
        return dev
    dev = {"id": "cloud", "type": "l4", "tier": "cloud", "load_gbs": 3.0, "engine": "vllm"}
    dev["memory_gb"] = round(0.5 + (rng.uniform(1.2, 1.8) if no_room else rng.uniform(3.5, 6.0) if tight else 12.0), 2)
    return dev


def _links(devices: list[dict], rng: random.Random) -> list[dict]:
    ids = [d["id"] for d in devices]
    out = []
    for phone in (i for i in ids if i.startswith("phone")):
        out.append({"a": phone, "b": "edge", "bandwidth_mbps": rng.choice([100, 300, 600]),
                    "latency_ms": rng.choice([3, 5, 10]), "energy_nj_per_bit": 20})
    if "cloud" in ids:
        out.append({"a": "edge", "b": "cloud", "bandwidth_mbps": rng.choice([500, 1000]),
                    "latency_ms": rng.choice([10, 25]), "energy_nj_per_bit": 5})
    return out


def _objective(kind: str, features: tuple[str, ...]) -> Any:
    if kind == "weighted":
        terms: dict[str, float] = {"latency": 1.0, "energy": 5.0}
        if "churn" in features:
            terms["churn"] = 200.0
        if "quality_term" in features:
            terms["quality"] = 100.0
        return terms
    if kind == "unserved":
        return "unserved"
    return kind


def _classes(n: int, models: list[str], sources: list[str], features: tuple[str, ...], rng: random.Random
             ) -> list[dict]:
    out = []
    for k in range(n):
        accept = models if k % 2 == 0 else rng.sample(models, rng.randint(1, len(models)))
        cls: dict[str, Any] = {"id": f"c{k}", "source": sources[k % len(sources)], "prompt_tokens": 128,
                               "output_tokens": rng.choice([32, 64]), "benchmark": rng.choice(["mmlu", "gsm8k"])}
        cls["models"] = list(accept) if len(accept) > 1 else None
        if len(accept) == 1:
            cls["model"] = accept[0]
        if "rates" in features:
            cls["rate_rps"] = round(rng.uniform(1.0, 4.0), 2)
        if "slo" in features:
            cls["slo"] = {"e2e_ms": rng.choice([2000, 4000, 8000])}
        if "min_quality" in features or "cascade" in features:
            cls["min_quality"] = rng.choice([45, 55, 60]) if cls["benchmark"] == "mmlu" else rng.choice([40, 60, 70])
        if "best_only" in features and k == n - 1:  # only the best model will do: it needs room
            best = max(models, key=lambda m: _score(m, cls["benchmark"]))
            cls["min_quality"] = round(_score(best, cls["benchmark"]) - 0.5, 1)
        if "impossible" in features and k == n - 1:
            cls["min_quality"], cls["benchmark"] = 95, "gsm8k"
        if "cascade" in features and k == 0 and len(models) >= 2:
            share = rng.choice([0.2, 0.4])
            cls["models"] = list(models)
            cls.pop("model", None)
            cls["cascades"] = [{"first": models[0], "then": models[-1], "escalate_share": share}]
            # A floor the small model misses and the cascade meets, so that the cascade is worth choosing.
            small, large = (_score(m, cls["benchmark"]) for m in (models[0], models[-1]))
            cls["min_quality"] = round(small + 0.5 * share * (large - small), 1)
        out.append({k2: v for k2, v in cls.items() if v is not None})
    return out


def _score(model: str, benchmark: str) -> float:
    """The catalog score of ``model`` in q4_k_m (the zoo's format)."""
    return float(model_scores(model).score(benchmark, "q4_k_m"))


def _tiny(index: int, seed: int) -> tuple[str, dict]:
    objective, tiers, n_models, n_classes, features = _TINY[index]
    rng = random.Random(1000 * seed + index)
    tight = "tight" in features
    devices = [_device(kind, i + 1, rng, tight or (kind != "p" and "rates" in features and rng.random() < 0.5),
                       "no_room" in features) for i, kind in enumerate(tiers)]
    if "cascade" in features or "impossible" in features or "best_only" in features:
        models = sorted(rng.sample(_TINY_MODELS, n_models), key=_TINY_MODELS.index)
    else:
        models = rng.sample(_TINY_MODELS, n_models)
    fmts = ["q4_k_m", "q8_0"] if "formats" in features else ["q4_k_m"]
    data: dict[str, Any] = {
        "name": "cache-" + "-".join([objective if isinstance(objective, str) else "weighted", tiers,
                                     f"{n_models}mod", f"{n_classes}cls", *features]),
        "models": [{"id": m, "weight_format": "q4_k_m", **({"allowed_formats": fmts} if len(fmts) > 1 else {})}
                   for m in models],
        "devices": devices,
        "links": _links(devices, rng),
        "objective": _objective(objective, features),
    }
    sources = [d["id"] for d in devices if d["id"].startswith("phone")]
    data["workload"] = _classes(n_classes, models, sources, features, rng)
    constraints: dict[str, Any] = {}
    if "max_util" in features:
        constraints["max_utilization"] = 0.7
    if "rates" in features or "max_util" in features:
        constraints.setdefault("max_utilization", 0.9)
    if constraints:
        data["constraints"] = constraints
    if "cache" in features:
        data["cache"] = [{"device": sources[0], "model": models[0]}, {"device": "edge", "model": models[-1]}]
    return data["name"], data


def caching_zoo(seed: int = 0) -> list[tuple[str, dict]]:
    """Tiny portfolios (see the module docstring); the same ``seed`` gives the same instances."""
    return [_tiny(i, seed) for i in range(len(_TINY))]


def routing_zoo(seed: int = 0) -> list[tuple[str, dict]]:
    """The caching zoo with a current cache on each instance (for routing over a given cache): on each
    device, the smallest instance that fits it, when one does (names start with ``route-``)."""
    from placement import parse_instance
    from placement.costs.caching import caching_view

    out = []
    for name, data in caching_zoo(seed):
        view = caching_view(parse_instance(data))
        cache = []
        for d, dev in enumerate(data["devices"]):
            mine = [t for t in range(view.num_candidates) if view.device[t] == d and view.fits[t]]
            if mine:
                t = min(mine, key=lambda k: (view.weight_mem_bytes[k], k))
                cache.append({"device": dev["id"], "model": view.model[t], "weight_format": view.weight_format[t]})
        routed = {**data, "name": "route-" + name[len("cache-"):], "cache": cache}
        out.append((routed["name"], routed))
    return out


def portfolio(models: int = 10, nodes: int = 20, classes: int = 10, seed: int = 0, formats: int = 2,
              cache: bool = False) -> tuple[str, dict]:
    """A portfolio of ``models`` catalog models over ``nodes`` devices (about half phones, a third edge
    boxes, the rest cloud GPUs) with ``classes`` request classes entering at the phones.

    Every class accepts a random half of the models or names a minimum quality on its benchmark;
    request rates make the phones and edge boxes share the load; the first three classes declare a
    cascade between their smallest and largest accepted model. ``cache``: the first instances the
    phones and edge boxes could hold are resident now, and the objective weighs churn.
    """
    rng = random.Random(seed)
    chosen = sorted(rng.sample(PORTFOLIO_MODELS, min(models, len(PORTFOLIO_MODELS))), key=PORTFOLIO_MODELS.index)
    phones = max(1, nodes // 2)
    clouds = max(1, nodes // 6)
    edges = max(1, nodes - phones - clouds)
    devices: list[dict[str, Any]] = []
    for i in range(phones):
        devices.append({"id": f"phone-{i}", "type": rng.choice(_PHONES), "tier": "device", "load_gbs": 1.5})
    for i in range(edges):
        devices.append({"id": f"edge-{i}", "type": _EDGES[i % len(_EDGES)], "tier": "edge", "load_gbs": 2.0})
    for i in range(clouds):
        devices.append({"id": f"cloud-{i}", "type": _CLOUDS[i % len(_CLOUDS)], "tier": "cloud", "engine": "vllm",
                        "load_gbs": 3.0})
    links = []
    for i in range(phones):
        links.append({"a": f"phone-{i}", "b": f"edge-{i % edges}", "channel_mhz": 80, "snr_db": rng.choice([15, 20, 25]),
                      "latency_ms": 5, "energy_nj_per_bit": 20})
    for i in range(edges):
        links.append({"a": f"edge-{i}", "b": f"cloud-{i % clouds}", "bandwidth_mbps": 1000, "latency_ms": 20,
                      "energy_nj_per_bit": 5})
    for i in range(1, edges):
        links.append({"a": f"edge-{i - 1}", "b": f"edge-{i}", "bandwidth_mbps": 1000, "latency_ms": 2,
                      "energy_nj_per_bit": 5})
    for i in range(1, clouds):
        links.append({"a": f"cloud-{i - 1}", "b": f"cloud-{i}", "bandwidth_mbps": 10000, "latency_ms": 1,
                      "energy_nj_per_bit": 1})
    fmts = ["q4_k_m", "q8_0", "fp16"][:formats]
    workload = []
    for k in range(classes):
        bench = rng.choice(["mmlu", "gsm8k"])
        accept = sorted(rng.sample(chosen, max(1, len(chosen) // 2)), key=chosen.index)
        cls: dict[str, Any] = {"id": f"class-{k}", "source": f"phone-{rng.randrange(phones)}", "benchmark": bench,
                               "prompt_tokens": rng.choice([128, 256, 512]), "output_tokens": rng.choice([64, 128]),
                               "rate_rps": round(rng.uniform(0.05, 0.4), 3),
                               "slo": {"e2e_ms": rng.choice([5000, 10000, 20000])}}
        if k % 3 == 2:
            cls["min_quality"] = rng.choice([50, 60, 70])
        else:
            cls["models"] = accept if len(accept) > 1 else None
            cls["model"] = accept[0] if len(accept) == 1 else None
            cls["min_quality"] = rng.choice([None, 40, 55])
        if k < 3 and cls.get("models") and len(cls["models"]) >= 2:
            cls["cascades"] = [{"first": cls["models"][0], "then": cls["models"][-1],
                                "escalate_share": rng.choice([0.2, 0.3])}]
        workload.append({key: v for key, v in cls.items() if v is not None})
    objective: dict[str, float] = {"latency": 1.0, "energy": 2.0}
    data: dict[str, Any] = {
        "name": f"portfolio-{models}mod-{nodes}dev-{classes}cls-seed{seed}",
        "models": [{"id": m, "weight_format": "q4_k_m", **({"allowed_formats": fmts} if len(fmts) > 1 else {})}
                   for m in chosen],
        "devices": devices, "links": links, "workload": workload, "objective": objective,
        "constraints": {"max_utilization": 0.9, "memory_headroom": 0.05},
    }
    if cache:
        objective["churn"] = 100.0
        data["cache"] = [{"device": f"phone-{i}", "model": chosen[0]} for i in range(phones)] + \
                        [{"device": f"edge-{i}", "model": chosen[min(i + 1, len(chosen) - 1)]} for i in range(edges)]
    return data["name"], data


def caching_stress(seed: int = 0, cache: bool = False) -> tuple[str, dict]:
    """A mid-sized portfolio (6 models, 8 devices, 6 classes: compiling its cost table takes a few
    tenths of a second, so what a tight time limit measures is the solver) for time-limit checks."""
    return portfolio(6, 8, 6, seed, cache=cache)


def bench_instances(seed: int) -> list[tuple[str, dict]]:
    """The ``portfolio`` benchmark family: 5, 10 and 14 models over 20 devices with 10 classes,
    and the 10-model one with a current cache and churn in the objective (re-planning)."""
    out = [portfolio(models, 20, 10, seed) for models in (5, 10, len(PORTFOLIO_MODELS))]
    name, data = portfolio(10, 20, 10, seed, cache=True)
    data["name"] = name = f"{name}-replan"
    return [*out, (name, data)]
