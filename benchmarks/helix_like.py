"""Helix-class clusters as instances: heterogeneous GPUs with measured tokens/s by layers held.

Two kinds, both built from ``instances/helix/helix_clusters.json`` (shipped with the
repository: the four published clusters of Helix, ASPLOS'25, with per-machine-type
throughput tables):

- :func:`reference_cluster`: one of the published clusters, node for node (its
  machine types, its links, its tables), serving its model in fp16;
- :func:`helix_like`: a generated cluster of ``n_nodes`` nodes of the given
  machine types (round robin), a complete graph of identical links, and a model of
  ``num_blocks`` blocks of Llama-2-70B's shape, each node with its type's table.

Requests enter at a ``coordinator`` host (a mini PC whose memory holds no block of
the model, so it only forwards), as in Helix. Link bandwidths are used as the file
gives them, in Mbps (see the file's units note: the published code read them as
MB/s; here they are only generated, not compared with published flows). The
converted instances of :mod:`instances.helix.convert` apply Helix's units instead;
these clusters keep the conventions the solver-speed benchmarks were measured on.

Examples
--------
>>> data = helix_like(8, 32)
>>> len(data["devices"]), data["models"][0]["config"]["num_hidden_layers"]
(9, 32)
>>> from placement import parse_instance
>>> parse_instance(data).objective.name
'throughput'
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import instances.helix

__all__ = ["reference_cluster", "helix_like", "REFERENCE_PATH", "MACHINES", "TABLES_70B"]

REFERENCE_PATH = Path(instances.helix.__file__).resolve().parent / "helix_clusters.json"

# Helix machine type -> (catalog device type, GPUs per node).
MACHINES = {"A100": ("a100-sxm-40gb", 1), "V100": ("v100-16gb", 1), "L4": ("l4", 1), "L4x2": ("l4", 2),
            "T4": ("t4", 1), "T4x2": ("t4", 2), "T4x4": ("t4", 4)}
# The published cluster whose Llama-2-70B table each machine type takes (tables differ from cluster to
# cluster): the 24-node single-region one for its three types, the 42-node one for the other four.
_TABLE_FROM = {"A100": "helix_single24", "L4": "helix_single24", "T4": "helix_single24",
               "V100": "helix_hetero42", "L4x2": "helix_hetero42", "T4x2": "helix_hetero42",
               "T4x4": "helix_hetero42"}


@lru_cache(maxsize=1)
def _load_reference() -> dict[str, Any]:
    return json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))


def _capacity_table(cluster_name: str) -> dict[str, list[float]]:
    """A published cluster's tokens/s by layers held, per machine type."""
    cluster = next(c for c in _load_reference()["clusters"] if c["name"] == cluster_name)
    milp_key = next(k for k in cluster["reported"] if k.startswith("helix_milp_"))
    return cluster["reported"][milp_key]["helix_node_capacity_tokens_per_s_by_layers"]["table"]


# Llama-2-70B tokens/s of a node holding k = 1, 2, ... layers, per machine type.
TABLES_70B: dict[str, list[float]] = {kind: list(_capacity_table(name)[kind]) for kind, name in _TABLE_FROM.items()}

_MODELS = {"llama2_70b": "llama-2-70b", "llama1_30b": "llama-30b"}
_SERVE = {"id": "serve", "source": "coordinator", "prompt_tokens": 256, "output_tokens": 64}


def _coordinator() -> dict[str, Any]:
    # A forwarding host: 1 GB usable holds no 70B (1.7 GB) or 30B (1.2 GB) fp16 block.
    return {"id": "coordinator", "type": "intel-n150", "memory_gb": 4, "reserved_memory_gb": 3}


def _node(node_id: str, machine: str, model: str, table: list[float], most: int) -> dict[str, Any]:
    device_type, count = MACHINES[machine]
    rates = {k: v for k, v in enumerate(table[:most], start=1)}
    node: dict[str, Any] = {"id": node_id, "type": device_type,
                            "profile": {"model": model, "max_layers": len(rates), "throughput_tokens_per_s": rates}}
    if count > 1:
        node["count"] = count
    return node


def reference_cluster(name: str) -> dict[str, Any]:
    """The published cluster ``name`` (e.g. ``helix_single24``) as an instance with a throughput objective.

    Links between nodes and from the coordinator are the file's (one per pair; the
    coordinator's ingress and egress of a node become one link, the slower of the two).
    """
    cluster = next(c for c in _load_reference()["clusters"] if c["name"] == name)
    milp_key = next(k for k in cluster["reported"] if k.startswith("helix_milp_"))
    model = _MODELS[milp_key[len("helix_milp_"):]]
    tables = _capacity_table(name)
    devices = [_coordinator()] + [_node(n["id"], n["helix_machine_type"], model, tables[n["helix_machine_type"]],
                                        len(tables[n["helix_machine_type"]])) for n in cluster["nodes"]]
    pairs: dict[tuple[str, str], tuple[float, float]] = {}
    for link in cluster["links"]:
        key = tuple(sorted((link["src"], link["dst"])))
        bw, lat = float(link["bandwidth_mbps"]), float(link["latency_ms"])
        old = pairs.get(key)
        pairs[key] = (min(old[0], bw), max(old[1], lat)) if old else (bw, lat)
    links = [{"a": a, "b": b, "bandwidth_mbps": bw, "latency_ms": lat} for (a, b), (bw, lat) in sorted(pairs.items())]
    return {"name": name.replace("_", "-"), "models": [{"id": model, "weight_format": "fp16"}], "devices": devices,
            "links": links, "workload": [dict(_SERVE)], "objective": "throughput"}


def helix_like(n_nodes: int, num_blocks: int, machines: tuple[str, ...] = ("A100", "L4", "T4"), seed: int = 0,
               bandwidth_mbps: float = 1000.0, latency_ms: float = 1.0, shuffle: bool = True) -> dict[str, Any]:
    """``n_nodes`` nodes of ``machines`` (round robin, then shuffled by ``seed``), a complete graph of
    ``bandwidth_mbps`` / ``latency_ms`` links, and a ``num_blocks``-block model of Llama-2-70B's shape in fp16.

    Each node carries its machine's Llama-2-70B table (:data:`TABLES_70B`), cut at ``num_blocks`` layers.
    """
    kinds = [machines[i % len(machines)] for i in range(n_nodes)]
    if shuffle:
        random.Random(seed).shuffle(kinds)
    devices = [_coordinator()] + [_node(f"n{i}", k, "llm", TABLES_70B[k], num_blocks) for i, k in enumerate(kinds)]
    ids = [d["id"] for d in devices]
    links = [{"a": ids[i], "b": ids[j], "bandwidth_mbps": bandwidth_mbps, "latency_ms": latency_ms}
             for i in range(len(ids)) for j in range(i + 1, len(ids))]
    config = {"hidden_size": 8192, "num_hidden_layers": num_blocks, "num_attention_heads": 64,
              "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 32000, "hidden_act": "silu",
              "tie_word_embeddings": False, "torch_dtype": "float16"}
    return {"name": f"helix-like-{n_nodes}x{num_blocks}", "models": [{"id": "llm", "weight_format": "fp16",
                                                                       "config": config}],
            "devices": devices, "links": links, "workload": [dict(_SERVE)], "objective": "throughput"}
