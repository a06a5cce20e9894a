"""Chains for scaling studies: one model of 32 to 160 blocks over 4 to 64 devices.

``chains(seed)`` returns one instance per size in :data:`SIZES`, each a phone
asking one model for chat answers over a mixed network:

- **device tier** (the source phone, other phones, laptops): wireless links
  (``channel_mhz`` and ``snr_db``: the Shannon rate of a 20-80 MHz channel at
  10-30 dB) to one or two edge devices, 4-15 ms away;
- **edge tier** (Jetsons, consumer and workstation GPUs, Apple machines): wired
  gigabit-to-10-gigabit links along a chain, plus a few shortcuts;
- **cloud tier** (L4, T4, A10G, A100): a wired datacentre mesh (25-100 Gbit/s),
  reached from one or two edge gateways over 100-1000 Mbit/s wide-area links
  10-40 ms away.

Devices keep their catalog memory. The model's block shape (hidden size 4096 to
8192) and weight format (4-bit, 8-bit or fp16) are the pair whose weights come
closest to a drawn 1.3-2.5 times the usable memory of the largest device, so no
device holds the whole model and a plan must split it: what a partitioning
benchmark should measure. The objective is end-to-end latency.

Examples
--------
>>> from placement import parse_instance
>>> sizes = [(p.models[0].num_blocks, len(p.topology.nodes)) for p in (parse_instance(d) for _, d in chains(0))]
>>> sizes == list(SIZES)
True
"""

from __future__ import annotations

import math
import random
from typing import Any

from placement import cost_table, parse_instance

__all__ = ["chains", "chain", "SIZES"]

# (blocks, devices) of the generated chains, smallest first.
SIZES = ((32, 4), (48, 8), (80, 16), (120, 32), (160, 64))

_PHONES = ("snapdragon-8-gen3", "snapdragon-8-elite", "snapdragon-8-elite-gen5", "iphone-15-pro", "iphone-16-pro")
_LAPTOPS = ("apple-m1", "apple-m4", "snapdragon-x-elite", "intel-i3-1315u", "ryzen-ai-5-340")
_EDGE = ("jetson-agx-orin-32gb", "jetson-agx-orin-64gb", "jetson-orin-nx-16gb", "jetson-orin-nano-8gb",
         "rtx-3060", "rtx-3090", "rtx-4080", "rtx-4090", "rtx-a6000", "apple-m1-max", "apple-m4-pro")
_CLOUD = ("l4", "t4", "a10g", "a100-sxm-40gb", "a100-sxm-80gb")
# Block shapes (hidden, attention heads, KV heads, MLP width) of 7B- to 70B-class models.
_SHAPES = ((4096, 32, 8, 14336), (5120, 40, 8, 13824), (6656, 52, 52, 17920), (8192, 64, 8, 28672))
_FORMATS = ("q4_k_m", "q8_0", "fp16")


def _tiers(devices: int, rng: random.Random) -> list[str]:
    """The source phone, then about a quarter device tier, a fifth cloud, the rest edge (at least one each)."""
    cloud = max(1, round(devices * rng.uniform(0.15, 0.25)))
    local = max(0, round((devices - 1) * rng.uniform(0.15, 0.3)))
    edge = max(1, devices - 1 - cloud - local)
    local = devices - 1 - cloud - edge
    return ["source"] + ["device"] * local + ["edge"] * edge + ["cloud"] * cloud


def _device(i: int, tier: str, rng: random.Random) -> dict[str, Any]:
    pool = {"source": _PHONES, "device": _PHONES + _LAPTOPS, "edge": _EDGE, "cloud": _CLOUD}[tier]
    kind = rng.choice(pool)
    return {"id": f"{tier[0] if tier != 'source' else 'p'}{i}-{kind}", "type": kind,
            "tier": "device" if tier == "source" else tier}


def _wireless(a: str, b: str, rng: random.Random) -> dict[str, Any]:
    return {"a": a, "b": b, "channel_mhz": rng.choice((20, 40, 80)), "snr_db": round(rng.uniform(10, 30), 1),
            "latency_ms": round(rng.uniform(4, 15), 1), "energy_nj_per_bit": 20}


def _wired(a: str, b: str, mbps: tuple[int, ...], latency: tuple[float, float], rng: random.Random,
           nj_per_bit: float) -> dict[str, Any]:
    return {"a": a, "b": b, "bandwidth_mbps": rng.choice(mbps), "latency_ms": round(rng.uniform(*latency), 2),
            "energy_nj_per_bit": nj_per_bit}


def _links(devices: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    by_tier: dict[str, list[str]] = {"device": [], "edge": [], "cloud": []}
    for d in devices:
        by_tier[d["tier"]].append(d["id"])
    edge, cloud = by_tier["edge"], by_tier["cloud"]
    pairs: dict[frozenset[str], dict[str, Any]] = {}

    def add(link: dict[str, Any]) -> None:
        pairs.setdefault(frozenset((link["a"], link["b"])), link)  # one link per pair of devices

    for d in by_tier["device"]:  # phones and laptops reach one or two edge devices over the air
        for e in rng.sample(edge, min(len(edge), rng.choice((1, 2)))):
            add(_wireless(d, e, rng))
    for a, b in zip(edge, edge[1:]):  # a wired chain through the edge tier, and a few shortcuts
        add(_wired(a, b, (1000, 2500, 10000), (0.2, 1.0), rng, 5))
    for _ in range(len(edge) // 3):
        a, b = rng.sample(edge, 2) if len(edge) > 1 else (edge[0], edge[0])
        if a != b:
            add(_wired(a, b, (1000, 2500), (0.3, 1.5), rng, 5))
    for i, a in enumerate(cloud):  # a datacentre mesh
        for b in cloud[i + 1:]:
            add(_wired(a, b, (25000, 100000), (0.02, 0.1), rng, 1))
    for g in rng.sample(edge, min(len(edge), 2)):  # wide-area uplinks from edge gateways to the cloud
        add(_wired(g, rng.choice(cloud), (100, 500, 1000), (10, 40), rng, 10))
    return list(pairs.values())


def chain(blocks: int, devices: int, seed: int = 0) -> tuple[str, dict[str, Any]]:
    """One chain instance of ``blocks`` blocks over ``devices`` devices (at least 4).

    Examples
    --------
    >>> name, data = chain(32, 4, seed=1)
    >>> name, len(data["devices"]), data["models"][0]["config"]["num_hidden_layers"]
    ('chain-32blk-4dev', 4, 32)
    """
    if devices < 4:
        raise ValueError(f"devices must be >= 4 (a source, an edge, a cloud tier), got {devices}")
    rng = random.Random(f"chain-{blocks}-{devices}-{seed}")
    devs = [_device(i, tier, rng) for i, tier in enumerate(_tiers(devices, rng))]
    name = f"chain-{blocks}blk-{devices}dev"
    data = {
        "name": name,
        "models": [],
        "devices": devs,
        "links": _links(devs, rng),
        "workload": [{"id": "chat", "source": devs[0]["id"], "prompt_tokens": rng.choice((256, 512, 1024)),
                      "output_tokens": rng.choice((64, 128, 256))}],
        "objective": "latency",
        "constraints": {"memory_headroom": 0.05},
    }
    data["models"] = [_sized_model(data, blocks, rng.uniform(1.3, 2.5))]
    return name, data


def _model(blocks: int, shape: tuple[int, int, int, int], weight_format: str) -> dict[str, Any]:
    hidden, heads, kv_heads, mlp = shape
    return {"id": "llm", "weight_format": weight_format, "config": {
        "model_type": "llama", "hidden_size": hidden, "num_hidden_layers": blocks, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "intermediate_size": mlp, "vocab_size": 128256, "hidden_act": "silu",
        "tie_word_embeddings": False}}


def _sized_model(data: dict[str, Any], blocks: int, times_largest: float) -> dict[str, Any]:
    """The (shape, format) whose whole weights are closest to ``times_largest`` x the largest usable memory."""
    best: tuple[float, dict[str, Any]] | None = None
    for shape in _SHAPES:
        model = {**_model(blocks, shape, _FORMATS[0]), "allowed_formats": list(_FORMATS)}
        table = cost_table(parse_instance({**data, "models": [model]}))
        target = times_largest * float(table.capacity_bytes.max())
        for fmt in _FORMATS:
            miss = abs(math.log(float(table.weights("llm", fmt).shard_bytes(0, blocks)) / target))
            if best is None or miss < best[0]:
                best = (miss, _model(blocks, shape, fmt))
    assert best is not None
    return best[1]


def chains(seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """One chain per size of :data:`SIZES`, drawn from ``seed``."""
    return [chain(blocks, devices, seed) for blocks, devices in SIZES]
