"""Instance families for benchmarks: seeded generators, registered by name.

A family is a function ``seed -> [(name, instance dict)]``; every dict parses
with :func:`placement.parse_instance`, names are unique within one seed, and the
same seed gives the same instances. The benchmark harness (``llmplace bench``)
runs suites made of families.

Built in:

========================  ==================================================================
``tiny``                  the conformance zoo (:func:`instances.zoo.zoo`): at most 4 devices
                          and 8 blocks, so the brute-force oracle knows every optimum
``stress``                one 10-device, 48-block mesh with tight memory (:func:`instances.zoo.stress`)
``chains``                one model of 32-160 blocks over 4-64 devices (:mod:`instances.chains`)
``architectures``         the ready files ``instances/*.yaml``: single node, vertical, horizontal, hybrid
``edge``                  the same four architectures drawn from the seed (:mod:`instances.edge`)
``speed``                 80 blocks over 8 ordered devices; 32 over the same 8, free; 32 with a
                          format choice and a quality floor (the solver-speed benchmark's instances)
``pareto``                one instance under a sweep of objectives and latency limits (a latency-energy front)
``helix``                 the four published Helix clusters, two Helix-class clusters drawn from the
                          seed and a consumer-GPU swarm (:mod:`instances.helix.family`)
``portfolio``             model caching: 5, 10 and 14 models over 20 devices, and a re-planning one
                          with a current cache (:func:`instances.caching_zoo.bench_instances`)
``caching-tiny``          the caching conformance zoo (:func:`instances.caching_zoo.caching_zoo`): 2-3
                          devices and models, so the caching oracle (``cache-bruteforce``) knows every optimum
========================  ==================================================================

Examples
--------
>>> tiny = family("tiny")
>>> len(tiny.generate(0)) >= 30
True
>>> [f.name for f in families()][:3]
['tiny', 'stress', 'chains']
>>> family("helix").generate(0)[0][0]
'helix-single24'
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from placement.textfiles import read_mapping_file

__all__ = ["Family", "family", "families", "register_family", "Generator"]

Generator = Callable[[int], list[tuple[str, dict[str, Any]]]]

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Family:
    """A registered family: ``generate(seed)`` gives ``[(name, instance dict)]``; ``origin`` names it."""

    name: str
    summary: str
    generate: Generator
    origin: str = ""

    def instances(self, seed: int) -> list[tuple[str, dict[str, Any]]]:
        """The family's instances for ``seed``, checked for unique names."""
        out = list(self.generate(seed))
        names = [name for name, _ in out]
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.name!r} seed {seed} gives duplicate instance names")
        return out


_BUILTIN: dict[str, Family] = {}


def register_family(name: str, summary: str) -> Callable[[Generator], Generator]:
    """Register ``fn(seed) -> [(name, dict)]`` as family ``name`` (a decorator)."""
    def add(fn: Generator) -> Generator:
        if name in _BUILTIN:
            raise ValueError(f"family {name!r} is already registered")
        _BUILTIN[name] = Family(name, summary, fn, origin=f"{fn.__module__}:{fn.__name__}")
        return fn
    return add


def families() -> list[Family]:
    """Every registered family, in registration order."""
    return list(_BUILTIN.values())


def family(name: str) -> Family:
    """The family called ``name``; ``KeyError`` naming the known ones for a typo."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    raise KeyError(f"unknown instance family {name!r} (known: {', '.join(_BUILTIN)})")


# -- the built-in families ------------------------------------------------------------------


@lru_cache(maxsize=8)
def _zoo(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.zoo import zoo
    return zoo(seed)


@register_family("tiny", "the conformance zoo: at most 4 devices and 8 blocks (brute-force oracle sizes)")
def _tiny(seed: int) -> list[tuple[str, dict[str, Any]]]:
    # The zoo evaluates planted plans as it builds: built once per seed, handed out as copies.
    return copy.deepcopy(_zoo(seed))


@register_family("stress", "one 10-device, 48-block mesh with tight memory")
def _stress(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.zoo import stress
    return [stress(seed)]


@register_family("chains", "one model of 32-160 blocks over 4-64 devices: phones, Jetsons, consumer and "
                           "datacentre GPUs, wireless and wired links")
def _chains(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.chains import chains
    return chains(seed)


@register_family("architectures", "the ready instance files: single node, vertical, horizontal, hybrid "
                                  "(the same for every seed)")
def _architectures(seed: int) -> list[tuple[str, dict[str, Any]]]:
    del seed  # fixed files
    out = []
    for stem in ("single-edge", "device-edge-cloud", "peer-edge", "hybrid"):
        data, _, _ = read_mapping_file(_HERE / f"{stem}.yaml")
        out.append((str(data.get("name", stem)), data))
    return out


@register_family("edge", "the four edge architectures (single node, vertical, horizontal, hybrid) drawn from "
                         "the seed")
def _edge(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.edge import edge
    return edge(seed)


_SPEED_DEVICES = ("rtx-4090", "rtx-3090", "jetson-agx-orin-64gb", "apple-m1-max", "l4", "rtx-4080",
                  "jetson-agx-orin-32gb", "rtx-3060")


def _speed_instance(num_blocks: int, ordered: bool, formats: bool, seed: int) -> dict[str, Any]:
    """A 70B-class block shape in q8_0 over 8 mixed devices, a full mesh of seeded links."""
    rng = random.Random(seed)
    ids = [f"d{i}" for i in range(len(_SPEED_DEVICES))]
    links = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            near = j == i + 1  # neighbours in the list share a faster link
            links.append({"a": ids[i], "b": ids[j],
                          "bandwidth_mbps": rng.choice([2500, 5000, 10000]) if near else rng.choice([300, 500, 1000]),
                          "latency_ms": round(rng.uniform(0.5, 2.0) if near else rng.uniform(2.0, 8.0), 2)})
    kind = "formats" if formats else "chain" if ordered else "free"
    data: dict[str, Any] = {
        "name": f"{kind}-{num_blocks}x{len(ids)}",
        "models": [{"id": "llm", "weight_format": "q8_0", "config": {
            "hidden_size": 8192, "num_hidden_layers": num_blocks, "num_attention_heads": 64,
            "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 128256,
            "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16"}}],
        "devices": [{"id": i, "type": t} for i, t in zip(ids, _SPEED_DEVICES)],
        "links": links,
        "workload": [{"id": "chat", "source": ids[0], "prompt_tokens": 512, "output_tokens": 128}],
        "objective": "latency",
        "constraints": {"memory_headroom": 0.05},
    }
    if ordered:
        data["constraints"]["device_order"] = ids
    if formats:
        data["models"][0]["allowed_formats"] = ["q8_0", "q4_0", "fp16"]
        data["constraints"]["quality_floor"] = 0.96
    return data


@register_family("speed", "80 blocks over 8 ordered devices; 32 blocks over the same 8 in any order; 32 with a "
                          "format choice and a quality floor of 0.96 (links drawn from the seed; 7 published)")
def _speed(seed: int) -> list[tuple[str, dict[str, Any]]]:
    out = [_speed_instance(80, True, False, seed), _speed_instance(32, False, False, seed),
           _speed_instance(32, False, True, seed)]
    return [(d["name"], d) for d in out]


@register_family("pareto", "one instance (a phone, a laptop, an edge box and a cloud GPU) under latency, energy "
                           "and energy with end-to-end latency limits: a latency-energy front; names "
                           "base@objective")
def _pareto(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.edge import pareto
    return pareto(seed)


@register_family("helix", "throughput serving: the four published Helix clusters, a 16-node and a 24-node "
                          "three-region cluster drawn from the seed, a consumer-GPU swarm")
def _helix(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.helix.family import bench_instances
    return bench_instances(seed)


@register_family("portfolio", "model caching: 5, 10 and 14 models over 20 devices (phones, edge boxes, cloud "
                              "GPUs) with 10 classes, and a re-planning portfolio with a current cache")
def _portfolio(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.caching_zoo import bench_instances
    return bench_instances(seed)


@register_family("caching-tiny", "the caching conformance zoo: 2-3 devices and models (caching oracle sizes)")
def _caching_tiny(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from instances.caching_zoo import caching_zoo
    return caching_zoo(seed)
