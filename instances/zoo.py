"""A zoo of small instances for testing solvers against the brute-force oracle.

``zoo(seed)`` returns ``(name, instance dict)`` pairs, each parseable with
:func:`placement.parse_instance`, with at most 4 devices and 8 blocks so that
exhaustive enumeration takes well under a second. Together they vary what makes
placement hard: device tiers and types (two hosts of one type included), memory
from ample to tight, slow and fast links, chain / star / mesh topologies, one or
two request classes (from one or two sources), every objective, SLOs, request
rates, measured profiles, a weight-format choice and two models.

Feasible instances are built around a *planted* plan, measured with
:func:`placement.evaluate`: memory is sized so that it fits (tight instances
give each of its devices 2-25 % more than its stage needs beyond the engine's
runtime, and the other devices 30-70 % of the whole model), request rates so
that it keeps every device at most 90 % busy, and SLOs so that the best of a
few sampled plans meets them; the optimum may of course be another plan.
Infeasible instances (names start with ``infeasible-``) break one thing on
purpose: memory in total, memory by fragmentation, an SLO below any device's
speed, an SLO only a too-small device could meet, a source cut off from the
others, request rates no split can serve, profile layer limits, the KV cache
of two classes.

Numbers come from the cost model at generation time, so the zoo follows the
catalog's calibration; known optima are not stored but computed by the oracle.

Examples
--------
>>> from placement import parse_instance
>>> from instances.zoo import zoo
>>> instances = zoo(seed=0)
>>> len(instances) >= 30, all(len(parse_instance(d).topology.nodes) <= 4 for _, d in instances)
(True, True)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from placement import Plan, Problem, Route, Shard, block_costs, cost_table, evaluate, parse_instance
from placement.costs import GIB

__all__ = ["zoo", "stress", "replicated_zoo"]

# Device types by tier: the request source is a device-tier type.
_SOURCE_TYPES = ("snapdragon-8-gen3", "apple-m1", "raspberry-pi-5-8gb", "intel-i3-1315u")
_EDGE_TYPES = ("jetson-orin-nano-8gb", "rtx-3060", "rtx-4090", "jetson-agx-orin-32gb", "intel-i9-13900k")
_CLOUD_TYPES = ("l4", "a100-sxm-40gb", "a10g")
_BANDWIDTHS_MBPS = (20, 100, 400, 1000, 10000)
_LATENCIES_MS = (0.5, 2, 5, 20)


@dataclass(frozen=True)
class _Spec:
    """What a generated instance exercises."""

    devices: int
    blocks: int
    topology: str  # chain | star | mesh
    objective: Any  # a metric name or {metric: weight}
    classes: int = 1
    memory: str = "ample"  # ample | tight | mixed (tight, one device ample)
    slo: tuple[str, ...] = ()  # ttft_ms / tpot_ms / e2e_ms, met by the planted plan
    rates: bool = False
    batch: int = 1
    two_sources: bool = False
    link_energy: bool = False
    slow_links: bool = False
    same_types: bool = False
    constraints: tuple[tuple[str, Any], ...] = ()

    def name(self) -> str:
        obj = self.objective if isinstance(self.objective, str) else "weighted"
        parts = [obj, f"{self.devices}dev", f"{self.blocks}blk", self.topology, self.memory]
        parts += [f"{self.classes}cls"] if self.classes > 1 else []
        parts += ["slo-" + "+".join(s.replace("_ms", "") for s in self.slo)] if self.slo else []
        parts += ["rates"] if self.rates else []
        parts += [f"batch{self.batch}"] if self.batch > 1 else []
        parts += ["slowlinks"] if self.slow_links else []
        parts += ["sametypes"] if self.same_types else []
        parts += ["constrained"] if self.constraints else []
        return "-".join(parts)


_SPECS = (
    _Spec(2, 4, "chain", "latency"),
    _Spec(3, 6, "star", "latency", memory="tight"),
    _Spec(4, 8, "mesh", "latency", memory="mixed"),
    _Spec(3, 5, "chain", "ttft", memory="tight"),
    _Spec(3, 6, "mesh", "ttft", classes=2, two_sources=True),
    _Spec(3, 6, "mesh", "tpot", memory="tight"),
    _Spec(4, 8, "star", "tpot", memory="mixed", batch=4),
    _Spec(3, 6, "chain", "energy", link_energy=True),
    _Spec(4, 6, "mesh", "energy", memory="tight", slo=("tpot_ms",), link_energy=True),
    _Spec(3, 6, "mesh", "throughput"),
    _Spec(4, 8, "chain", "throughput", memory="tight"),
    _Spec(3, 6, "star", "throughput", memory="mixed", classes=2, rates=True, two_sources=True),
    _Spec(3, 5, "mesh", {"latency": 1.0, "energy": 0.05}, memory="tight", link_energy=True),
    _Spec(4, 6, "star", {"ttft": 1.0, "tpot": 10.0}),
    _Spec(3, 6, "mesh", "latency", memory="mixed", slo=("ttft_ms",)),
    _Spec(3, 5, "chain", "energy", slo=("e2e_ms",), link_energy=True),
    _Spec(3, 4, "mesh", "ttft", memory="tight", classes=2, slo=("tpot_ms",)),
    _Spec(3, 6, "mesh", "latency", memory="tight", rates=True),
    _Spec(3, 6, "mesh", "throughput", memory="tight", rates=True, slo=("tpot_ms",)),
    _Spec(4, 5, "chain", "latency", classes=2, slow_links=True),
    _Spec(4, 5, "star", "energy", memory="tight", classes=2, rates=True, link_energy=True),
    _Spec(4, 6, "mesh", "latency", slow_links=True,
          constraints=(("memory_headroom", 0.1), ("max_context_tokens", 2048))),
    _Spec(4, 6, "mesh", "tpot", memory="mixed", slo=("ttft_ms", "tpot_ms")),
    _Spec(4, 8, "mesh", "latency", memory="tight", same_types=True),
    _Spec(3, 6, "star", {"latency": 1.0, "tpot": 5.0, "energy": 0.01}, memory="tight", classes=2, rates=True,
          slo=("e2e_ms",), link_energy=True, two_sources=True),
)


# -- building blocks ------------------------------------------------------------------------


def _model(blocks: int, rng: random.Random, model_id: str = "m", vocab: int | None = None) -> dict:
    hidden = rng.choice((1024, 2048, 3072))
    heads = hidden // 128
    return {
        "id": model_id,
        "weight_format": rng.choice(("fp16", "q8_0", "q4_0")),
        "config": {
            "model_type": "llama", "hidden_size": hidden, "num_hidden_layers": blocks,
            "num_attention_heads": heads, "num_key_value_heads": heads // rng.choice((1, 2, 4)),
            "intermediate_size": hidden * rng.choice((2, 3, 4)), "vocab_size": vocab or rng.choice((8000, 32000)),
            "tie_word_embeddings": rng.random() < 0.3,
        },
    }


def _device_types(n: int, rng: random.Random, same_types: bool) -> list[str]:
    if same_types:  # two hosts of each of two types
        pair = [rng.choice(_SOURCE_TYPES), rng.choice(_EDGE_TYPES + _CLOUD_TYPES)]
        return [pair[0], pair[0], pair[1], pair[1]][:n]
    pool = list(_EDGE_TYPES + _CLOUD_TYPES)
    rng.shuffle(pool)
    return [rng.choice(_SOURCE_TYPES)] + pool[: n - 1]


def _devices(types: list[str]) -> list[dict]:
    return [{"id": f"n{i}-{t}", "type": t, "reserved_memory_gb": 0} for i, t in enumerate(types)]


def _links(ids: list[str], topology: str, rng: random.Random, energy: bool = False, slow: bool = False) -> list[dict]:
    if topology == "chain":
        pairs = list(zip(ids, ids[1:]))
    elif topology == "star":  # the second device is the hub (an edge box next to the source)
        hub = ids[1] if len(ids) > 1 else ids[0]
        pairs = [(hub, d) for d in ids if d != hub]
    else:
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    out = []
    for a, b in pairs:
        link = {"a": a, "b": b,
                "bandwidth_mbps": rng.choice(_BANDWIDTHS_MBPS[:2] if slow else _BANDWIDTHS_MBPS),
                "latency_ms": rng.choice(_LATENCIES_MS[2:] if slow else _LATENCIES_MS)}
        if energy:
            link["energy_nj_per_bit"] = rng.choice((5, 20, 60))
        out.append(link)
    return out


def _workload(spec: _Spec, ids: list[str], rng: random.Random) -> list[dict]:
    out = []
    for c in range(spec.classes):
        source = ids[-1] if c == 1 and spec.two_sources else ids[0]
        req = {"id": f"r{c}", "source": source, "prompt_tokens": rng.choice((64, 256, 512, 1024)),
               "output_tokens": rng.choice((8, 32, 128))}
        if spec.batch > 1:
            req["batch"] = spec.batch
        if spec.rates:
            req["rate_rps"] = 1.0 if c == 0 else 0.5
        out.append(req)
    return out


def _plan(problem: Problem, stages: list[tuple[str, int, int]], model: str | None = None) -> Plan:
    model = model or problem.models[0].id
    shards = tuple(Shard(f"s{i}", model, d, (a, b)) for i, (d, a, b) in enumerate(stages))
    path = tuple(s.id for s in shards)
    return Plan(shards=shards, routes=tuple(Route(r.id, path) for r in problem.requests_for(model)))


def _planted(problem: Problem, rng: random.Random, min_stages: int = 2) -> list[tuple[str, int, int]]:
    """A random contiguous pipeline over distinct devices."""
    ids = [n.id for n in problem.topology.nodes]
    L = problem.models[0].num_blocks
    k = rng.randint(min(min_stages, len(ids), L), min(len(ids), L))
    devices = rng.sample(ids, k)
    bounds = [0, *sorted(rng.sample(range(1, L), k - 1)), L]
    return [(d, a, b) for d, a, b in zip(devices, bounds, bounds[1:])]


def _gb_up(nbytes: float) -> float:
    """GiB rounded up to 6 decimals (never below the bytes it stands for)."""
    return math.ceil(nbytes / GIB * 1e6) / 1e6


def _memory_used(problem: Problem, plan: Plan) -> dict[str, float]:
    return {d: m.memory_gb * GIB for d, m in evaluate(problem, plan).devices.items() if m.shards}


def _fit_memory(data: dict, planted: list[tuple[str, int, int]], mode: str, rng: random.Random) -> None:
    """Size device memory so the planted plan fits: tightly (tight, mixed) or as catalogued (ample)."""
    if mode == "ample":
        return
    problem = parse_instance(data)
    used = _memory_used(problem, _plan(problem, planted))
    L = problem.models[0].num_blocks
    ample = rng.choice([d["id"] for d in data["devices"][1:]]) if mode == "mixed" else None
    for dev in data["devices"]:
        if dev["id"] == ample:
            continue
        # Slack and shares apply to what the model needs, not to the engine's runtime.
        runtime = _runtime(problem, dev["id"])
        if dev["id"] in used:
            dev["memory_gb"] = _gb_up(runtime + (used[dev["id"]] - runtime) * rng.uniform(1.02, 1.25))
        else:
            whole = _memory_used(problem, _plan(problem, [(dev["id"], 0, L)]))[dev["id"]]
            dev["memory_gb"] = _gb_up(runtime + (whole - runtime) * rng.uniform(0.3, 0.7))


def _fit_rates(data: dict, planted: list[tuple[str, int, int]], rng: random.Random) -> None:
    """Scale the request rates so the planted plan keeps its busiest device 50-90 % busy."""
    problem = parse_instance(data)
    loads = [m.utilization or 0.0 for m in evaluate(problem, _plan(problem, planted)).devices.values()]
    scale = rng.uniform(0.5, 0.9) / max(loads)
    for req in data["workload"]:
        req["rate_rps"] = float(f"{req['rate_rps'] * scale:.6g}")


def _fit_slo(data: dict, planted: list[tuple[str, int, int]], slo: tuple[str, ...], rng: random.Random) -> None:
    """SLOs that the best of a few feasible plans (by the first SLO's metric) meets with 0-5 % to spare.

    Taking the best of several plans, not the planted one alone, makes the SLO likely to rule
    out the optimum of the unconstrained objective, so solvers have to handle it.
    """
    problem = parse_instance(data)
    best = None
    for stages in [planted] + [_planted(problem, rng, min_stages=1) for _ in range(30)]:
        metrics = evaluate(problem, _plan(problem, stages))
        if not metrics.feasible:
            continue
        score = sum(getattr(m, slo[0]) for m in metrics.requests.values())
        if best is None or score < best[0]:
            best = (score, metrics.requests)
    assert best is not None  # the planted plan is feasible
    slack = rng.uniform(1.0, 1.05)
    for req in data["workload"]:
        got = best[1][req["id"]]
        req["slo"] = {k: math.ceil(getattr(got, k) * slack * 1e3) / 1e3 for k in slo}


def _from_spec(spec: _Spec, rng: random.Random) -> dict:
    types = _device_types(spec.devices, rng, spec.same_types)
    devices = _devices(types)
    ids = [d["id"] for d in devices]
    data = {
        "name": spec.name(),
        "models": [_model(spec.blocks, rng)],
        "devices": devices,
        "links": _links(ids, spec.topology, rng, spec.link_energy, spec.slow_links),
        "workload": _workload(spec, ids, rng),
        "objective": spec.objective,
    }
    if spec.constraints:
        data["constraints"] = dict(spec.constraints)
    planted = _planted(parse_instance(data), rng)
    _fit_memory(data, planted, spec.memory, rng)
    if spec.rates:
        _fit_rates(data, planted, rng)
    if spec.slo:
        _fit_slo(data, planted, spec.slo, rng)
    return data


# -- instances with measured profiles, a format choice, two models --------------------------


def _measured_pipeline(rng: random.Random) -> dict:
    """Two device types, two hosts each, per-layer profiles: type b ten times faster (PipeEdge style)."""
    slow, fast = rng.uniform(8.0, 12.0), rng.uniform(0.8, 1.2)
    devices = []
    for kind, ms in (("a", slow), ("b", fast)):
        for host in (1, 2):
            devices.append({"id": f"{kind}{host}", "type": "rtx-3060" if kind == "a" else "jetson-agx-orin-32gb",
                            "profile": {"model": "m", "prefill_ms_per_layer": 20 * ms, "decode_ms_per_layer": ms}})
    ids = [d["id"] for d in devices]
    return {"name": "measured-throughput-2types-2hosts", "models": [_model(8, rng)], "devices": devices,
            "links": _links(ids, "mesh", rng), "objective": "throughput",
            "workload": [{"id": "r0", "source": "a1", "prompt_tokens": 128, "output_tokens": 32}]}


def _measured_latency(rng: random.Random) -> dict:
    """Per-layer profiles with max_layers limits and a latency objective."""
    devices = [
        {"id": "phone", "type": "snapdragon-8-gen3",
         "profile": {"model": "m", "max_layers": 2, "prefill_ms_per_layer": 40.0, "decode_ms_per_layer": 6.0}},
        {"id": "edge", "type": "jetson-orin-nano-8gb",
         "profile": {"model": "m", "max_layers": 4, "prefill_ms_per_layer": 8.0, "decode_ms_per_layer": 1.5}},
        {"id": "cloud", "type": "l4",
         "profile": {"model": "m", "max_layers": 3, "prefill_ms_per_layer": 1.0, "decode_ms_per_layer": 0.4}},
    ]
    return {"name": "measured-latency-maxlayers", "models": [_model(6, rng)], "devices": devices,
            "links": [{"a": "phone", "b": "edge", "bandwidth_mbps": 100, "latency_ms": 5},
                      {"a": "edge", "b": "cloud", "bandwidth_mbps": 1000, "latency_ms": 20}],
            "workload": [{"id": "r0", "source": "phone", "prompt_tokens": 256, "output_tokens": 64}],
            "objective": "latency"}


def _throughput_table(rng: random.Random) -> dict:
    """Helix-style tokens/s-by-layers profiles (stage times not additive in blocks)."""
    def table(top: float, most: int) -> dict[int, float]:
        return {k: v for k, v in {1: top, 3: top / 3.3, 6: top / 7.0}.items() if k <= most} | {most: top / most / 1.1}
    devices = [
        {"id": "src", "type": "intel-i3-1315u"},
        {"id": "gpu1", "type": "l4", "profile": {"model": "m", "max_layers": 6,
                                                 "throughput_tokens_per_s": table(rng.uniform(400, 600), 6)}},
        {"id": "gpu2", "type": "a10g", "profile": {"model": "m", "max_layers": 4,
                                                   "throughput_tokens_per_s": table(rng.uniform(250, 350), 4)}},
    ]
    ids = [d["id"] for d in devices]
    return {"name": "throughput-table-profiles", "models": [_model(6, rng)], "devices": devices,
            "links": _links(ids, "mesh", rng), "objective": "throughput",
            "workload": [{"id": "r0", "source": "src", "prompt_tokens": 256, "output_tokens": 64}]}


def _inline_devices(rng: random.Random) -> dict:
    """Devices given by their numbers alone, no catalog type."""
    def dev(i: int, mem: float, bw: float, tflops: float, idle: float, active: float) -> dict:
        return {"id": f"box{i}", "memory_gb": mem, "memory_bandwidth_gbs": bw, "device_class": "mini_pc_cpu",
                "tier": "edge" if i else "device", "compute": {"cpu": {"fp16": tflops, "fp32": tflops / 2}},
                "power_w": {"idle": idle, "active": active}}
    devices = [dev(0, 8, 40, 0.3, 3, 15), dev(1, 16, 120, 2.0, 8, 60), dev(2, 32, 400, 20.0, 20, 200)]
    ids = [d["id"] for d in devices]
    data = {"name": "inline-devices-energy", "models": [_model(5, rng)], "devices": devices,
            "links": _links(ids, "chain", rng, energy=True),
            "workload": [{"id": "r0", "source": "box0", "prompt_tokens": 256, "output_tokens": 32}],
            "objective": {"energy": 1.0, "latency": 0.001}}
    _fit_memory(data, _planted(parse_instance(data), rng), "tight", rng)
    return data


def _format_choice(rng: random.Random) -> dict:
    spec = _Spec(3, 4, "mesh", "latency", memory="tight")
    data = _from_spec(spec, rng)
    data["name"] = "format-choice-latency-3dev-4blk"
    data["models"][0]["weight_format"] = "fp16"
    data["models"][0]["allowed_formats"] = ["q4_0", "q8_0"]
    return data


def _two_models(rng: random.Random) -> dict:
    types = _device_types(3, rng, False)
    devices = _devices(types)
    ids = [d["id"] for d in devices]
    data = {"name": "two-models-latency-3dev-4blk", "models": [_model(4, rng, "m1"), _model(4, rng, "m2")],
            "devices": devices, "links": _links(ids, "star", rng),
            "workload": [{"id": "r1", "source": ids[0], "model": "m1", "prompt_tokens": 256, "output_tokens": 32,
                          "rate_rps": 0.5},
                         {"id": "r2", "source": ids[0], "model": "m2", "prompt_tokens": 128, "output_tokens": 64,
                          "rate_rps": 0.2}],
            "objective": "latency"}
    # Tight enough that the two models compete for the fast devices.
    problem = parse_instance(data)
    for dev in data["devices"][1:]:
        runtime = _runtime(problem, dev["id"])
        whole = sum(_memory_used(problem, _plan(problem, [(dev["id"], 0, 4)], m))[dev["id"]] - runtime
                    for m in ("m1", "m2"))
        dev["memory_gb"] = _gb_up(runtime + whole * rng.uniform(0.55, 0.8))
    return data


# -- infeasible instances -------------------------------------------------------------------


def _base(name: str, n: int, blocks: int, rng: random.Random, topology: str = "mesh", vocab: int | None = None,
          objective: Any = "latency") -> dict:
    devices = _devices(_device_types(n, rng, False))
    ids = [d["id"] for d in devices]
    return {"name": name, "models": [_model(blocks, rng, vocab=vocab)], "devices": devices,
            "links": _links(ids, topology, rng),
            "workload": [{"id": "r0", "source": ids[0], "prompt_tokens": 256, "output_tokens": 32}],
            "objective": objective}


def _sizes(data: dict) -> tuple[Problem, np.ndarray, float]:
    """The problem, weights + KV per block (bytes), and the largest prefill workspace (bytes)."""
    problem = parse_instance(data)
    table = cost_table(problem)
    kvs = [table.kv(r) for r in problem.workload]
    per_block = table.weights(problem.workload[0].model).weight_bytes + sum(k.kv_bytes for k in kvs)
    workspace = max(k.workspace_bytes + k.head_workspace_bytes for k in kvs)
    return problem, per_block, workspace


def _runtime(problem: Problem, device: str) -> float:
    fmt = problem.models[0].weight_format
    return float(cost_table(problem).runtime_bytes(fmt)[problem.topology.index[device]])


def _infeasible_memory_total(rng: random.Random) -> dict:
    data = _base("infeasible-memory-total", 3, 6, rng, objective="energy")
    problem, per_block, ws = _sizes(data)
    for dev in data["devices"]:
        dev["memory_gb"] = _gb_up(_runtime(problem, dev["id"]) + 0.3 * per_block.sum())
    return data


def _infeasible_fragmentation(rng: random.Random) -> dict:
    """Each device holds one block at most: 3 devices, 4 blocks, though the memory adds up."""
    data = _base("infeasible-fragmentation", 3, 4, rng, vocab=1000, objective="tpot")
    data["models"][0]["config"]["tie_word_embeddings"] = False
    problem, per_block, ws = _sizes(data)
    for dev in data["devices"]:
        dev["memory_gb"] = _gb_up(_runtime(problem, dev["id"]) + ws + 1.5 * per_block.max())
    return data


def _infeasible_slo_bound(rng: random.Random) -> dict:
    """TPOT SLO below the sum over blocks of the fastest device's time (caught before any search)."""
    data = _base("infeasible-slo-below-fastest", 3, 6, rng, objective="ttft")
    problem = parse_instance(data)
    bc = block_costs(problem, "r0")
    fastest_ms = (bc.decode_s.min(axis=0).sum() + bc.decode_overhead_s.min()) * 1e3
    data["workload"][0]["slo"] = {"tpot_ms": float(f"{0.5 * fastest_ms:.6g}")}
    return data


def _infeasible_slo_memory(rng: random.Random) -> dict:
    """Only the cloud GPU is fast enough for the TPOT SLO, and it holds half the model."""
    devices = _devices(["snapdragon-8-gen3", "rtx-3060", "a100-sxm-40gb"])
    ids = [d["id"] for d in devices]
    data = {"name": "infeasible-slo-needs-small-device", "models": [_model(6, rng)], "devices": devices,
            "links": _links(ids, "mesh", rng),
            "workload": [{"id": "r0", "source": ids[0], "prompt_tokens": 256, "output_tokens": 32}],
            "objective": "energy"}
    problem, per_block, ws = _sizes(data)
    gpu = problem.topology.index[ids[2]]
    bc = block_costs(problem, "r0")
    devices[2]["memory_gb"] = _gb_up(_runtime(problem, ids[2]) + ws + 0.5 * per_block.sum())
    whole_ms = (bc.decode_s[gpu].sum() + bc.decode_overhead_s[gpu]) * 1e3
    data["workload"][0]["slo"] = {"tpot_ms": float(f"{1.001 * whole_ms:.6g}")}
    return data


def _infeasible_disconnected(rng: random.Random) -> dict:
    """The source has no link and cannot hold the model; the others could."""
    data = _base("infeasible-disconnected-source", 3, 6, rng)
    ids = [d["id"] for d in data["devices"]]
    data["links"] = _links(ids[1:], "chain", rng)
    problem, per_block, ws = _sizes(data)
    data["devices"][0]["memory_gb"] = _gb_up(_runtime(problem, ids[0]) + ws + 0.5 * per_block.sum())
    return data


def _infeasible_load(rng: random.Random) -> dict:
    """Requests arrive faster than all devices together can serve them."""
    data = _base("infeasible-load", 3, 5, rng, topology="star")
    problem = parse_instance(data)
    bc = block_costs(problem, "r0")
    req = problem.workload[0]
    busy = bc.prefill_s + (req.output_tokens - 1) * bc.decode_s
    # Every plan's busy seconds per request add up to at least the fastest per block; spread over all
    # devices, some device carries a third of it at best.
    least_s = float(busy.min(axis=0).sum())
    data["workload"][0]["rate_rps"] = float(f"{1.5 * len(data['devices']) / least_s:.6g}")
    return data


def _infeasible_max_layers(rng: random.Random) -> dict:
    data = _base("infeasible-profile-max-layers", 3, 8, rng, objective="throughput")
    for dev, most in zip(data["devices"], (2, 3, 2)):
        dev["profile"] = {"model": "m", "max_layers": most}
    return data


def _infeasible_kv_two_classes(rng: random.Random) -> dict:
    """Room for the weights and one class's KV cache, not for both classes'."""
    data = _base("infeasible-kv-two-classes", 2, 4, rng)
    ids = [d["id"] for d in data["devices"]]
    data["workload"] = [{"id": "r0", "source": ids[0], "prompt_tokens": 2048, "output_tokens": 128, "batch": 8},
                        {"id": "r1", "source": ids[0], "prompt_tokens": 2048, "output_tokens": 128, "batch": 8}]
    problem = parse_instance(data)
    table = cost_table(problem)
    kvs = [table.kv(r) for r in problem.workload]
    weights = float(table.weights("m").shard_bytes(0, 4))
    ws = max(k.workspace_bytes + k.head_workspace_bytes for k in kvs)
    kv_one = kvs[0].kv_bytes.sum()
    # Together the devices hold the weights, their workspaces and 1.2 classes' KV cache.
    for dev in data["devices"]:
        dev["memory_gb"] = _gb_up(_runtime(problem, dev["id"]) + ws + (weights + 1.2 * kv_one) / len(ids))
    return data


_SPECIAL = (_measured_pipeline, _measured_latency, _throughput_table, _inline_devices, _format_choice, _two_models)
_INFEASIBLE = (_infeasible_memory_total, _infeasible_fragmentation, _infeasible_slo_bound, _infeasible_slo_memory,
               _infeasible_disconnected, _infeasible_load, _infeasible_max_layers, _infeasible_kv_two_classes)


def zoo(seed: int = 0) -> list[tuple[str, dict]]:
    """Small instances (<= 4 devices, <= 8 blocks) for conformance tests: ``(name, instance dict)`` pairs.

    Parameters
    ----------
    seed : int
        Draws device types, link speeds, model sizes, planted plans and slacks;
        the same seed gives the same instances (for one catalog calibration).

    Returns
    -------
    list of (str, dict)
        Names are unique; infeasible instances' names start with ``infeasible-``.
    """
    rng = random.Random(seed)
    out = []
    for spec in _SPECS:
        out.append((spec.name(), _from_spec(spec, random.Random(rng.random()))))
    for build in _SPECIAL + _INFEASIBLE:
        data = build(random.Random(rng.random()))
        out.append((data["name"], data))
    return out


def stress(seed: int = 0, devices: int = 10, blocks: int = 48, objective: str = "latency") -> tuple[str, dict]:
    """One larger instance (default 10 devices, 48 blocks, mesh, latency) for time-limit checks.

    Too big to enumerate, small enough to build quickly: solvers must stop at their time limit.
    ``objective`` may be changed for solvers of one objective (the instance is otherwise the same).
    """
    rng = random.Random(seed)
    types = [rng.choice(_SOURCE_TYPES)] + [rng.choice(_EDGE_TYPES + _CLOUD_TYPES) for _ in range(devices - 1)]
    devs = _devices(types)
    ids = [d["id"] for d in devs]
    name = f"stress-{devices}dev-{blocks}blk" + ("" if objective == "latency" else f"-{objective}")
    data = {"name": name, "models": [_model(blocks, rng)], "devices": devs, "links": _links(ids, "mesh", rng),
            "workload": [{"id": "r0", "source": ids[0], "prompt_tokens": 512, "output_tokens": 64}],
            "objective": objective}
    _fit_memory(data, _planted(parse_instance(data), rng, min_stages=4), "tight", rng)
    return name, data


# -- instances whose best plan replicates or overlaps shards (the maxflow plan space) --------------


def _gateway() -> dict:
    return {"id": "gw", "type": "intel-i3-1315u", "holds_blocks": False}


def _replicated(name: str, rng: random.Random, devices: list[dict], blocks: int = 4, classes: int = 1,
                links: list[dict] | None = None, **extra: Any) -> dict:
    ids = [d["id"] for d in devices]
    workload = []
    for c in range(classes):
        source = extra.pop("sources", ["gw"] * classes)[c] if "sources" in extra else "gw"
        workload.append({"id": f"r{c}", "source": source, "prompt_tokens": rng.choice((64, 256)),
                         "output_tokens": rng.choice((16, 64))})
    data = {"name": name, "models": [_model(blocks, rng)], "devices": devices,
            "links": links if links is not None else _links(ids, "mesh", rng), "workload": workload,
            "objective": "throughput"}
    data.update(extra)
    return data


def _table(top: float, most: int, blocks: int) -> dict[int, float]:
    """A Helix-style tokens/s-by-layers table: roughly top / k, a little worse than linear."""
    return {k: round(top / (k ** 1.1), 3) for k in range(1, min(most, blocks) + 1)}


def _rz_replicas(rng: random.Random) -> dict:
    """Two GPUs that each hold the model: two whole copies serve twice what one does."""
    devices = [_gateway(), {"id": "g1", "type": "rtx-4090"}, {"id": "g2", "type": "rtx-4090"}]
    return _replicated("replicas-2gpu-4blk-gateway", rng, devices)


def _rz_overlap(rng: random.Random) -> dict:
    """Measured tables where a fast device feeds two slow replicas (an overlap no pipeline has)."""
    devices = [_gateway(),
               {"id": "fast", "type": "a100-sxm-40gb",
                "profile": {"model": "m", "max_layers": 4,
                            "throughput_tokens_per_s": _table(rng.uniform(900, 1100), 4, 4)}},
               {"id": "slow1", "type": "t4", "profile": {"model": "m", "max_layers": 2,
                                                         "throughput_tokens_per_s": _table(rng.uniform(300, 400), 2, 4)}},
               {"id": "slow2", "type": "t4", "profile": {"model": "m", "max_layers": 2,
                                                         "throughput_tokens_per_s": _table(rng.uniform(300, 400), 2, 4)}}]
    return _replicated("overlap-3dev-4blk-profiles", rng, devices)


def _rz_slo(rng: random.Random) -> dict:
    """A TPOT SLO that a long pipeline misses: copies must be short."""
    devices = [_gateway()] + [{"id": f"g{i}", "type": t} for i, t in enumerate(("rtx-3060", "rtx-3060", "rtx-4090"))]
    data = _replicated("slo-short-copies-3dev-4blk", rng, devices,
                       links=[{"group": ["gw", "g0", "g1", "g2"], "bandwidth_mbps": 1000, "latency_ms": 15}])
    problem = parse_instance(data)
    best = min(evaluate(problem, _plan(problem, [(d, 0, 4)])).requests["r0"].tpot_ms for d in ("g0", "g1", "g2"))
    data["workload"][0]["slo"] = {"tpot_ms": float(f"{best * 1.3:.6g}")}
    return data


def _rz_rates(rng: random.Random) -> dict:
    """Two classes at given rates from two sources: the load at those rates is a limit too."""
    devices = [_gateway(), {"id": "g1", "type": "rtx-3060"}, {"id": "g2", "type": "jetson-agx-orin-32gb"},
               {"id": "g3", "type": "rtx-4090"}]
    data = _replicated("rates-2cls-3dev-4blk", rng, devices, classes=2, sources=["gw", "g1"])
    data["workload"][0]["rate_rps"], data["workload"][1]["rate_rps"] = 1.0, 0.5
    problem = parse_instance(data)
    load = max(m.utilization or 0.0 for m in evaluate(problem, _plan(problem, [("g3", 0, 4)])).devices.values())
    for req in data["workload"]:
        req["rate_rps"] = float(f"{req['rate_rps'] * rng.uniform(0.8, 1.4) / load:.6g}")
    return data


def _rz_links(rng: random.Random) -> dict:
    """Slow links between devices: where shards meet matters as much as what they hold."""
    devices = [_gateway(), {"id": "g1", "type": "rtx-4090"}, {"id": "g2", "type": "rtx-3060"},
               {"id": "g3", "type": "rtx-3060"}]
    links = [{"a": "gw", "b": g, "bandwidth_mbps": 1000, "latency_ms": 1} for g in ("g1", "g2", "g3")]
    links += [{"a": "g1", "b": "g2", "bandwidth_mbps": rng.choice((2, 5)), "latency_ms": 5},
              {"a": "g1", "b": "g3", "bandwidth_mbps": rng.choice((2, 5)), "latency_ms": 5},
              {"a": "g2", "b": "g3", "bandwidth_mbps": 1000, "latency_ms": 1}]
    data = _replicated("slow-links-3dev-4blk", rng, devices, links=links)
    _tight_memory(data, ["g1"], 0.6)
    return data


def _rz_free_mix(rng: random.Random) -> dict:
    """Two classes without rates: the total over both is maximised, each keeping a share."""
    devices = [_gateway(), {"id": "g1", "type": "rtx-3060"}, {"id": "g2", "type": "rtx-4090"}]
    return _replicated("free-mix-2cls-2dev-4blk", rng, devices, classes=2)


def _rz_nic(rng: random.Random) -> dict:
    """A relay-free cluster on one switch whose ports (NICs) every transfer of a device shares."""
    devices = [{**_gateway(), "relays": False}] + [
        {"id": f"g{i}", "type": "rtx-3060", "relays": False, "nic_mbps": rng.choice((20, 40))} for i in range(3)]
    data = _replicated("nic-switch-3dev-4blk", rng, devices,
                       links=[{"group": ["gw", "g0", "g1", "g2"], "bandwidth_mbps": 1000, "latency_ms": 1}])
    _tight_memory(data, ["g0", "g1", "g2"], 0.6)
    return data


def _rz_infeasible(rng: random.Random) -> dict:
    """Profiles cap each device's layers: together they hold fewer than the model's blocks."""
    devices = [_gateway()] + [{"id": f"g{i}", "type": "l4", "profile": {"model": "m", "max_layers": 1}}
                              for i in range(3)]
    return _replicated("infeasible-ranges-3dev-4blk", rng, devices)


def _tight_memory(data: dict, ids: list[str], share: float) -> None:
    """Give devices ``ids`` room for about ``share`` of the model (beyond their engine runtime)."""
    for dev in data["devices"]:
        if dev["id"] in ids:
            dev["reserved_memory_gb"] = 0
    problem = parse_instance(data)
    L = problem.models[0].num_blocks
    for dev in data["devices"]:
        if dev["id"] in ids:
            runtime = _runtime(problem, dev["id"])
            whole = _memory_used(problem, _plan(problem, [(dev["id"], 0, L)]))[dev["id"]]
            dev["memory_gb"] = _gb_up(runtime + (whole - runtime) * share)


_REPLICATED = (_rz_replicas, _rz_overlap, _rz_slo, _rz_rates, _rz_links, _rz_free_mix, _rz_nic, _rz_infeasible)


def replicated_zoo(seed: int = 0) -> list[tuple[str, dict]]:
    """Tiny throughput instances (a gateway and at most 3 devices holding blocks, 4 blocks) whose best
    plans replicate or overlap shards: the oracle of the ``ranges`` plan space enumerates every
    assignment of a range or nothing to each device. Infeasible ones' names start with ``infeasible-``.

    Examples
    --------
    >>> from placement import parse_instance
    >>> instances = replicated_zoo(0)
    >>> len(instances) >= 8, all(parse_instance(d).objective.name == "throughput" for _, d in instances)
    (True, True)
    """
    rng = random.Random(1000 + seed)
    return [(data["name"], data) for data in (build(random.Random(rng.random())) for build in _REPLICATED)]
