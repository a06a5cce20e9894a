"""Stand-in for the ``portfolio`` benchmark family, until the caching work ships its own.

``bench_instances(seed)`` returns portfolios of 5, 10 and 20 catalog models over
20 nodes (8 phones and laptops, 8 edge devices, 4 cloud GPUs), in today's
instance format: every request class names one model (the caching work lets a
class accept several, or a minimum quality), each model serves one or two
classes entering at phones, with request rates, and the objective is the
request-weighted end-to-end latency. Today's solvers place one pipeline per
model, so these instances measure how they scale with the number of models
sharing the devices' memory.
"""

from __future__ import annotations

import random
from typing import Any

# Catalog models small enough for an edge portfolio, with the weight format each is served in.
_MODELS = (("qwen2.5-0.5b", "q8_0"), ("llama-3.2-1b", "q8_0"), ("tinyllama-1.1b", "q8_0"),
           ("qwen2.5-1.5b", "q4_k_m"), ("gemma-2-2b", "q4_k_m"), ("llama-3.2-3b", "q4_k_m"),
           ("phi-3-mini", "q4_k_m"), ("qwen2.5-7b", "q4_k_m"), ("llama-3.1-8b", "q4_k_m"),
           ("mistral-7b", "q4_k_m"), ("deepseek-coder-6.7b", "q4_k_m"), ("llama-2-7b", "q4_k_m"),
           ("gemma-2-9b", "q4_k_m"), ("llama-2-13b", "q4_k_m"), ("opt-13b", "q4_k_m"),
           ("deepseek-v2-lite", "q4_k_m"), ("mixtral-8x7b", "q4_k_m"), ("qwen3-30b-a3b", "q4_k_m"),
           ("llama-3-8b", "q8_0"), ("llama-7b", "q4_k_m"))
_PHONES = ("snapdragon-8-gen3", "snapdragon-8-elite", "iphone-16-pro", "apple-m1", "snapdragon-x-elite")
_EDGE = ("jetson-agx-orin-32gb", "jetson-orin-nx-16gb", "rtx-3060", "rtx-3090", "rtx-4090", "apple-m4-pro")
_CLOUD = ("l4", "a10g", "a100-sxm-40gb", "h100-sxm-80gb")
_PROFILES = ("sharegpt", "alpaca", "humaneval", "gsm8k", "mmlu")


def portfolio(seed: int, models: int) -> dict[str, Any]:
    """``models`` catalog models (5-20) over 20 nodes, drawn from ``seed``."""
    if not 1 <= models <= len(_MODELS):
        raise ValueError(f"models must be in [1, {len(_MODELS)}], got {models}")
    rng = random.Random(f"portfolio-{models}-{seed}")
    local = [{"id": f"p{i}", "type": rng.choice(_PHONES), "tier": "device"} for i in range(8)]
    edge = [{"id": f"e{i}", "type": rng.choice(_EDGE), "tier": "edge"} for i in range(8)]
    cloud = [{"id": f"c{i}", "type": rng.choice(_CLOUD), "tier": "cloud", "engine": "vllm"} for i in range(4)]
    links = []
    for d in local:
        for e in rng.sample(edge, 2):
            links.append({"a": d["id"], "b": e["id"], "channel_mhz": rng.choice((40, 80)),
                          "snr_db": round(rng.uniform(12, 30), 1), "latency_ms": round(rng.uniform(3, 10), 1)})
    for i, a in enumerate(edge):
        for b in edge[i + 1:]:
            links.append({"a": a["id"], "b": b["id"], "bandwidth_mbps": 1000, "latency_ms": 0.5})
    for i, a in enumerate(cloud):
        for b in cloud[i + 1:]:
            links.append({"a": a["id"], "b": b["id"], "bandwidth_mbps": 25000, "latency_ms": 0.05})
    for e in edge[:2]:
        for c in cloud:
            links.append({"a": e["id"], "b": c["id"], "bandwidth_mbps": rng.choice((500, 1000)),
                          "latency_ms": round(rng.uniform(10, 30), 1)})
    chosen = rng.sample(_MODELS, models)
    workload = []
    for model, _ in chosen:
        for k in range(rng.choice((1, 2))):
            workload.append({"id": f"{model}-{k}", "source": rng.choice(local)["id"], "model": model,
                             "profile": rng.choice(_PROFILES), "rate_rps": round(rng.uniform(0.02, 0.2), 3)})
    return {"name": f"portfolio-{models}m-20n",
            "description": f"{models} catalog models over 20 nodes, one pipeline per model (drawn from seed {seed})",
            "models": [{"id": m, "weight_format": f} for m, f in chosen],
            "devices": local + edge + cloud, "links": links, "workload": workload, "objective": "latency",
            "constraints": {"max_context_tokens": 4096}}


def bench_instances(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Portfolios of 5, 10 and 20 models over 20 nodes."""
    return [(d["name"], d) for d in (portfolio(seed, n) for n in (5, 10, 20))]
