"""Stand-in for the ``helix`` benchmark family, until the max-flow work ships its own.

``bench_instances(seed)`` returns, in today's instance format:

- the four published Helix clusters (``helix-single24``, ``helix-geo3region24``,
  ``helix-hetero42``, ``helix-quality10``), converted from
  ``benchmarks/data/helix_clusters.json`` (facts extracted from the Helix
  artifact, github.com/Thesys-lab/Helix-ASPLOS25, Apache-2.0), the same for every seed;
- a Helix-class cluster drawn from the seed (the seven published machine types,
  one region and three regions);
- a Petals-style swarm of consumer GPUs on home internet links, with a TPOT SLO.

How the published clusters are written today (each a choice the max-flow work
may make differently):

- every node keeps its measured tokens/s-by-layers table as a device profile
  (``throughput_tokens_per_s``, ``max_layers`` from Helix's per-machine limits);
- a link's published "Mbps" figure is multiplied by 8: Helix's code treats it as
  megabytes per second, so the clusters' published max-flows need it so;
- Helix's coordinator (its source and sink) is a device with 0.5 GB usable, too
  little for one block, since today a device cannot be declared to hold no blocks;
  its ingress and egress links to a node become one undirected link with the
  slower bandwidth and the longer latency of the two;
- the workload is one class from the coordinator with the ShareGPT chat profile,
  and the objective is throughput.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data" / "helix_clusters.json"

_CATALOG_TYPE = {"A100": "a100-sxm-40gb", "V100": "v100-16gb", "L4": "l4", "T4": "t4"}
_CATALOG_MODEL = {"llama2_70b": "llama-2-70b", "llama1_30b": "llama-30b"}
_MEGABYTES_AS_MEGABITS = 8.0  # the published code reads the links' "Mbps" figure as MB/s
_CONSUMER_GPUS = ("rtx-3060", "rtx-3070", "rtx-3090", "rtx-4080", "rtx-4090", "rtx-5090")


@lru_cache(maxsize=1)
def _reference() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def _coordinator() -> dict[str, Any]:
    return {"id": "coordinator", "type": "intel-n150", "tier": "edge", "memory_gb": 1.0, "reserved_memory_gb": 0.5}


def _device(node_id: str, machine: str, model: str, tables: dict[str, list[float]]) -> dict[str, Any]:
    spec = _reference()["machine_types"][machine]
    limit = _reference()["models"][model]["helix_max_layers_per_machine"][machine]
    device: dict[str, Any] = {"id": node_id, "type": _CATALOG_TYPE[spec["gpu"]], "count": spec["gpu_count"],
                              "tier": "cloud", "nic_mbps": spec["nic_gbps_nominal"] * 1000}
    profile: dict[str, Any] = {"model": _CATALOG_MODEL[model], "max_layers": limit}
    if machine in tables:
        profile["throughput_tokens_per_s"] = {k + 1: v for k, v in enumerate(tables[machine][:limit])}
    device["profile"] = profile
    return device


def _link(a: str, b: str, mbps: float, latency_ms: float) -> dict[str, Any]:
    return {"a": a, "b": b, "bandwidth_mbps": round(mbps * _MEGABYTES_AS_MEGABITS, 6), "latency_ms": latency_ms}


def _instance(name: str, model: str, devices: list[dict[str, Any]], links: list[dict[str, Any]],
              description: str) -> dict[str, Any]:
    return {"name": name, "description": description,
            "models": [{"id": _CATALOG_MODEL[model], "weight_format": "fp16"}],
            "devices": [_coordinator(), *devices], "links": links,
            "workload": [{"id": "serve", "source": "coordinator", "profile": "sharegpt"}],
            "objective": "throughput"}


def published(cluster: dict[str, Any]) -> dict[str, Any]:
    """One published cluster of the reference file in today's instance format."""
    model = "llama1_30b" if cluster["model"].startswith("llama1_30b") else "llama2_70b"
    tables = cluster["reported"][f"helix_milp_{model}"]["helix_node_capacity_tokens_per_s_by_layers"]["table"]
    devices = [_device(n["id"], n["helix_machine_type"], model, tables) for n in cluster["nodes"]]
    links = [_link(lk["src"], lk["dst"], lk["bandwidth_mbps"], lk["latency_ms"])
             for lk in cluster["links"] if lk["kind"] == "compute"]
    ends: dict[str, list[tuple[float, float]]] = {}
    for lk in cluster["links"]:
        if lk["kind"] in ("ingress", "egress"):
            node = lk["dst"] if lk["kind"] == "ingress" else lk["src"]
            ends.setdefault(node, []).append((lk["bandwidth_mbps"], lk["latency_ms"]))
    for node, both in ends.items():  # one undirected link: the slower direction's figures
        links.append(_link("coordinator", node, min(m for m, _ in both), max(t for _, t in both)))
    name = cluster["name"].replace("_", "-")
    return _instance(name, model, devices, links, cluster["description"])


def helix_class(seed: int, nodes: int, regions: int) -> dict[str, Any]:
    """A cluster of the seven published machine types, in one region or several (Helix's generator
    settings: 1000 "Mbps" / 1 ms within a region, 12.5 +- 2.5 "Mbps" / 50 +- 10 ms across regions
    and to the coordinator when there are several)."""
    rng = random.Random(f"helix-class-{nodes}-{regions}-{seed}")
    tables = next(c for c in _reference()["clusters"] if c["name"] == "helix_hetero42")["reported"][
        "helix_milp_llama2_70b"]["helix_node_capacity_tokens_per_s_by_layers"]["table"]
    machines = sorted(tables)
    devices, region_of = [], {}
    for i in range(nodes):
        devices.append(_device(f"n{i}", rng.choice(machines), "llama2_70b", tables))
        region_of[f"n{i}"] = i % regions
    ids = [d["id"] for d in devices]
    links = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            near = region_of[a] == region_of[b]
            links.append(_link(a, b, 1000.0 if near else round(rng.uniform(10, 15), 1),
                               1.0 if near else round(rng.uniform(40, 60))))
    for node in ids:
        far = regions > 1
        links.append(_link("coordinator", node, round(rng.uniform(10, 15), 1) if far else 1000.0,
                           round(rng.uniform(40, 60)) if far else 1.0))
    name = f"helix-class-{nodes}n-{regions}r"
    return _instance(name, "llama2_70b", devices, links,
                     f"{nodes} nodes of the published Helix machine types in {regions} region(s), drawn from seed {seed}")


def swarm(seed: int, gpus: int = 16) -> dict[str, Any]:
    """A Petals-style swarm: consumer GPUs at home on 50-500 Mbit/s links 10-60 ms apart, serving
    Llama-2-70B in 4 bits to a laptop with a TPOT SLO of 400 ms."""
    rng = random.Random(f"swarm-{gpus}-{seed}")
    devices = [{"id": "client", "type": "apple-m4", "tier": "device", "memory_gb": 16.0, "reserved_memory_gb": 15.5}]
    devices += [{"id": f"g{i}-{t}", "type": t, "tier": "edge"}
                for i, t in enumerate(rng.choice(_CONSUMER_GPUS) for _ in range(gpus))]
    ids = [d["id"] for d in devices]
    links = [{"a": a, "b": b, "bandwidth_mbps": rng.choice((50, 100, 200, 500)),
              "latency_ms": round(rng.uniform(10, 60), 1)} for i, a in enumerate(ids) for b in ids[i + 1:]]
    return {"name": f"swarm-{gpus}gpu", "description": "consumer GPUs over home internet links (Petals-style)",
            "models": [{"id": "llama-2-70b", "weight_format": "q4_k_m"}], "devices": devices, "links": links,
            "workload": [{"id": "chat", "source": "client", "profile": "sharegpt", "slo": {"tpot_ms": 400}}],
            "objective": "throughput", "constraints": {"max_context_tokens": 2048}}


def bench_instances(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The published clusters, a one-region and a three-region Helix-class cluster, and a swarm."""
    out = [published(c) for c in _reference()["clusters"]]
    out += [helix_class(seed, 16, 1), helix_class(seed, 24, 3), swarm(seed)]
    return [(d["name"], d) for d in out]
