"""The four architectures of edge LLM inference, drawn from a seed.

``edge(seed)`` returns one instance of each architecture the surveys of edge
inference name, in the spirit of the ready files in ``instances/`` (which are
one fixed example of each):

- ``single``: one edge server (a consumer or workstation GPU) serving the phones
  and laptops on its LAN at given request rates, batched, under TTFT / TPOT SLOs;
- ``vertical``: a phone, an edge box (a Jetson or an Apple machine) one Wi-Fi hop
  away and a cloud GPU further on, splitting a 70B-class model none holds alone;
- ``horizontal``: three to six peer devices at home on one gigabit switch splitting
  a 30B- to 72B-class model (as prima.cpp and exo do);
- ``hybrid``: two models (a small one for quick replies, a larger one for harder
  requests), phones, a two-GPU edge node and a cloud GPU, with latency and energy
  weighted.

Device types, link speeds, models and rates are drawn from the seed; every
number a drawn instance uses comes from the catalog or is written in it.

Examples
--------
>>> [name for name, _ in edge(0)]
['single', 'vertical', 'horizontal', 'hybrid']
"""

from __future__ import annotations

import math
import random
from typing import Any

from placement import Plan, Route, Shard, evaluate, parse_instance

__all__ = ["edge", "pareto", "ARCHITECTURES", "PARETO_LATENCY_FACTORS"]

ARCHITECTURES = ("single", "vertical", "horizontal", "hybrid")

_PHONES = ("snapdragon-8-gen3", "snapdragon-8-elite", "snapdragon-8-elite-gen5", "iphone-16-pro")
_LAPTOPS = ("apple-m1", "apple-m4", "snapdragon-x-elite", "ryzen-ai-5-340")
_SERVERS = ("rtx-3090", "rtx-4090", "rtx-5090", "rtx-a6000", "rtx-6000-ada")
_EDGE_BOXES = ("jetson-agx-orin-32gb", "jetson-agx-orin-64gb", "apple-m4-pro", "jetson-orin-nx-16gb")
_CLOUD = ("l4", "a10g", "a100-sxm-40gb", "h100-sxm-80gb")
_PEERS = ("rtx-3090", "rtx-4080", "rtx-3060", "apple-m4", "apple-m1-max", "jetson-orin-nx-16gb",
          "raspberry-pi-5-16gb", "intel-i9-13900k")


def _single(rng: random.Random) -> dict[str, Any]:
    server = {"id": "server", "type": rng.choice(_SERVERS), "tier": "edge"}
    clients = [{"id": f"client{i}", "type": rng.choice(_PHONES + _LAPTOPS), "tier": "device"}
               for i in range(rng.randint(2, 5))]
    links = [{"a": c["id"], "b": "server", "bandwidth_mbps": rng.choice((100, 200, 400, 900)),
              "latency_ms": round(rng.uniform(2, 10), 1)} for c in clients]
    workload = [{"id": f"chat{i}", "source": c["id"], "profile": rng.choice(("sharegpt", "alpaca", "humaneval")),
                 "rate_rps": round(rng.uniform(0.05, 0.5), 3), "batch": rng.choice((1, 4, 8)),
                 "slo": {"ttft_ms": 2000, "tpot_ms": 150}} for i, c in enumerate(clients)]
    return {"name": "single", "models": [{"id": rng.choice(("llama-3.1-8b", "qwen2.5-7b", "mistral-7b")),
                                          "weight_format": rng.choice(("q4_k_m", "q8_0"))}],
            "devices": [server, *clients], "links": links, "workload": workload, "objective": "latency",
            "constraints": {"max_context_tokens": 4096}}


def _vertical(rng: random.Random) -> dict[str, Any]:
    devices = [{"id": "phone", "type": rng.choice(_PHONES), "tier": "device"},
               {"id": "edge", "type": rng.choice(_EDGE_BOXES), "tier": "edge"},
               {"id": "cloud", "type": rng.choice(_CLOUD[:3]), "tier": "cloud", "engine": "vllm"}]
    links = [{"a": "phone", "b": "edge", "channel_mhz": rng.choice((40, 80)), "snr_db": round(rng.uniform(15, 30), 1),
              "latency_ms": round(rng.uniform(3, 8), 1), "energy_nj_per_bit": 10},
             {"a": "edge", "b": "cloud", "bandwidth_mbps": rng.choice((300, 1000, 2500)),
              "latency_ms": round(rng.uniform(10, 40), 1), "energy_nj_per_bit": 5}]
    return {"name": "vertical", "models": [{"id": rng.choice(("llama-3.1-70b", "qwen2.5-72b")), "weight_format": "q4_k_m"}],
            "devices": devices, "links": links,
            "workload": [{"id": "chat", "source": "phone", "profile": "sharegpt"}], "objective": "latency",
            "constraints": {"memory_headroom": 0.05, "max_context_tokens": 4096}}


def _horizontal(rng: random.Random) -> dict[str, Any]:
    kinds = rng.sample(_PEERS, rng.randint(3, 6))
    devices = [{"id": f"peer{i}-{k}", "type": k} for i, k in enumerate(kinds)]
    ids = [d["id"] for d in devices]
    links = [{"a": a, "b": b, "bandwidth_mbps": 940, "latency_ms": 0.5} for i, a in enumerate(ids) for b in ids[i + 1:]]
    return {"name": "horizontal",
            "models": [{"id": rng.choice(("qwen2.5-72b", "llama-3.1-70b", "llama-30b", "mixtral-8x7b")),
                        "weight_format": "q4_k_m"}],
            "devices": devices, "links": links,
            "workload": [{"id": "assistant", "source": ids[0], "profile": "sharegpt"}], "objective": "latency",
            "constraints": {"max_context_tokens": 2048}}


def _hybrid(rng: random.Random) -> dict[str, Any]:
    small, large = rng.choice(("llama-3.2-3b", "qwen2.5-1.5b", "gemma-2-2b")), rng.choice(("llama-3.1-8b", "qwen2.5-7b"))
    devices = [{"id": "phone-1", "type": rng.choice(_PHONES), "tier": "device"},
               {"id": "phone-2", "type": rng.choice(_PHONES), "tier": "device"},
               {"id": "edge", "type": rng.choice(("l4", "rtx-4090", "a10g")), "count": 2, "tier": "edge", "engine": "vllm"},
               {"id": "cloud", "type": rng.choice(_CLOUD[2:]), "tier": "cloud", "engine": "vllm"}]
    links = [{"a": "phone-1", "b": "edge", "channel_mhz": 80, "snr_db": round(rng.uniform(15, 30), 1),
              "latency_ms": 5, "energy_nj_per_bit": 20},
             {"a": "phone-2", "b": "edge", "bandwidth_mbps": rng.choice((120, 250, 400)), "latency_ms": 6,
              "energy_nj_per_bit": 20},
             {"a": "edge", "b": "cloud", "bandwidth_mbps": 10000, "latency_ms": round(rng.uniform(10, 30), 1),
              "energy_nj_per_bit": 2}]
    workload = [{"id": "quick", "source": "phone-1", "model": small, "profile": "alpaca",
                 "rate_rps": round(rng.uniform(0.5, 2.0), 2)},
                {"id": "quick-2", "source": "phone-2", "model": small, "profile": "alpaca",
                 "rate_rps": round(rng.uniform(0.5, 2.0), 2)},
                {"id": "hard", "source": "phone-1", "model": large, "profile": "gsm8k",
                 "rate_rps": round(rng.uniform(0.1, 0.5), 2), "slo": {"tpot_ms": 100}}]
    return {"name": "hybrid", "models": [{"id": small, "weight_format": "q4_k_m"}, {"id": large, "weight_format": "fp16"}],
            "devices": devices, "links": links, "workload": workload, "objective": {"latency": 1.0, "energy": 10.0},
            "constraints": {"memory_headroom": 0.05}}


def edge(seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """One instance per architecture of :data:`ARCHITECTURES`, drawn from ``seed``."""
    out = []
    for arch, build in zip(ARCHITECTURES, (_single, _vertical, _horizontal, _hybrid)):
        data = build(random.Random(f"edge-{arch}-{seed}"))
        out.append((arch, data))
    return out



# End-to-end latency limits of the pareto sweep, as multiples of the whole model's latency on the cloud GPU.
PARETO_LATENCY_FACTORS = (1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0, 5.0)


def _pareto_base(seed: int) -> dict[str, Any]:
    rng = random.Random(f"pareto-{seed}")
    devices = [{"id": "phone", "type": rng.choice(_PHONES), "tier": "device"},
               {"id": "laptop", "type": rng.choice(_LAPTOPS), "tier": "device"},
               {"id": "edge", "type": rng.choice(_EDGE_BOXES[:3]), "tier": "edge"},
               {"id": "cloud", "type": rng.choice(_CLOUD), "tier": "cloud", "engine": "vllm"}]
    links = [{"a": "phone", "b": "laptop", "channel_mhz": 80, "snr_db": round(rng.uniform(20, 30), 1),
              "latency_ms": 3, "energy_nj_per_bit": 20},
             {"a": "phone", "b": "edge", "channel_mhz": 40, "snr_db": round(rng.uniform(15, 25), 1),
              "latency_ms": 5, "energy_nj_per_bit": 20},
             {"a": "laptop", "b": "edge", "bandwidth_mbps": 940, "latency_ms": 0.5, "energy_nj_per_bit": 5},
             {"a": "edge", "b": "cloud", "bandwidth_mbps": rng.choice((300, 1000)),
              "latency_ms": round(rng.uniform(10, 30), 1), "energy_nj_per_bit": 10}]
    return {"name": f"pareto-s{seed}", "models": [{"id": rng.choice(("llama-3.1-8b", "qwen2.5-7b")),
                                                   "weight_format": "fp16"}],
            "devices": devices, "links": links,
            "workload": [{"id": "chat", "source": "phone", "profile": "sharegpt"}],
            "objective": "latency", "constraints": {"max_context_tokens": 2048}}


def pareto(seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """One instance under a sweep of objectives, whose plans trace a latency-energy front.

    A phone, a laptop, an edge box and a cloud GPU share one 8B-class model in
    fp16: the phone and laptop spend little energy per token but are slow, the
    cloud GPU is fast and power-hungry. The sweep is: latency alone; energy alone;
    and energy under an end-to-end latency limit of each factor of
    :data:`PARETO_LATENCY_FACTORS` times the whole model's latency on the cloud
    GPU (the epsilon-constraint method, which reaches points of a front that no
    weighted sum does). Names are ``pareto-s<seed>@<what>``.

    Examples
    --------
    >>> [name for name, _ in pareto(0)][:3]
    ['pareto-s0@latency', 'pareto-s0@energy', 'pareto-s0@e2e<=1x']
    """
    base = _pareto_base(seed)
    problem = parse_instance(base)
    model = problem.models[0]
    whole = Plan(shards=(Shard("s0", model.id, "cloud", (0, model.num_blocks)),),
                 routes=(Route("chat", ("s0",)),))
    reference_ms = evaluate(problem, whole).requests["chat"].e2e_ms
    out = [(f"{base['name']}@latency", {**base, "objective": "latency"}),
           (f"{base['name']}@energy", {**base, "objective": "energy"})]
    for factor in PARETO_LATENCY_FACTORS:
        limit_ms = math.ceil(reference_ms * factor * 1e3) / 1e3  # rounded up: 1x admits the reference plan
        workload = [{**base["workload"][0], "slo": {"e2e_ms": limit_ms}}]
        out.append((f"{base['name']}@e2e<={factor:g}x", {**base, "objective": "energy", "workload": workload}))
    return [(name, {**data, "name": name}) for name, data in out]
