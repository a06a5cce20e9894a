"""Exports to serving engines: the exported partitions parse back to the plan's block ranges, for every
engine; engines refuse what they cannot run; the command line writes, prints and exits as documented.

The parsers here read the exported scripts the way each engine reads its flags (from the engine's
source, cited in each exporter's docstring), independently of the exporters' own code.
"""

from __future__ import annotations

import dataclasses

import doctest
import json
import os
import shlex
import subprocess
from bisect import bisect_right
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import placement.netaddr
from cli import main
from conftest import INSTANCES
from models import Topology
from placement import InvalidPlanError, load_instance, parse_instance
from placement.export import (
    ExportArgumentError, ExportRefused, artefacts, base, common, dllama, exo, export_plan, exporter, exporters,
    formats, hf,
    llamacpp, petals, primacpp, sglang, shell, stages, vllm,
)
from placement.plan import Plan, Route, Shard

# ----------------------------------------------------------------------------------------------- helpers


def small_config(layers: int, kv_heads: int = 8) -> dict:
    """A llama-shaped config with any number of blocks (sizes divisible by up to 8 nodes)."""
    return {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": layers, "num_attention_heads": 16,
            "num_key_value_heads": kv_heads, "vocab_size": 32000, "intermediate_size": 512}


def cluster(devices, *, model=None, weight_format="q4_k_m", addresses=True, allowed=None) -> object:
    """An instance of ``devices`` (id, catalog type, accelerator count) on one switch, model from ``model``."""
    model = model or {"id": "m", "config": small_config(32)}
    entry = {**model, "weight_format": weight_format}
    if allowed:
        entry["allowed_formats"] = allowed
    devs = []
    for i, (did, dtype, count) in enumerate(devices):
        d = {"id": did, "type": dtype, "count": count}
        if addresses:
            d["address"] = f"10.0.0.{i + 1}"
        devs.append(d)
    links = [{"a": devices[i][0], "b": devices[j][0], "bandwidth_mbps": 1000}
             for i in range(len(devices)) for j in range(i + 1, len(devices))]
    return parse_instance({"name": "cluster", "models": [entry], "devices": devs, "links": links,
                           "workload": [{"id": "chat", "source": devices[0][0], "prompt_tokens": 100,
                                         "output_tokens": 20}]})


def pipeline_plan(problem, devices: list[str], counts: list[int], formats_=None, model=None) -> Plan:
    model = model or problem.models[0].id
    shards, start = [], 0
    for i, (d, n) in enumerate(zip(devices, counts)):
        shards.append(Shard(f"s{i}", model, d, (start, start + n), (formats_ or [None] * len(devices))[i]))
        start += n
    request = next(r.id for r in problem.workload if r.model == model)
    return Plan(shards=tuple(shards), routes=(Route(request, tuple(s.id for s in shards)),))


def stage_ranges(plan: Plan) -> dict[str, tuple[int, int]]:
    return {s.device: s.layers for s in plan.shards}


def commands(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """The commands of a generated script as (environment, argv), the way ``sh`` splits them.

    Lines the script starts with (shebang, comments, ``set``, the ``: "${VAR:?...}"`` checks) carry no
    command; ``export NAME=VALUE`` sets the environment of the commands after it.
    """
    env: dict[str, str] = {}
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "set ", ": ")):
            continue
        words = shlex.split(line)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
            continue
        out.append((dict(env), words))
    return out


def the_command(text: str) -> tuple[dict[str, str], list[str]]:
    (only,) = commands(text)
    return only


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def run_on(text: str) -> str:
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# run on: "))


def host_map(problem) -> dict[str, str]:
    return {n.address: n.id for n in problem.topology.nodes if n.address}


# ------------------------------------------------------------------------ engines' own layer assignment


def llamacpp_layers(tensor_split: list[float], n_gpu_layers: int, n_layer: int) -> list[int]:
    """Device index of layers 0..n_layer (the last is the output layer), as llama.cpp's load_tensors assigns them.

    Split points are the float32 running sums over their total; layer il goes to the first device whose
    split point exceeds float(il - i_gpu_start) / act_gpu_layers (upper_bound); layers before
    i_gpu_start, or beyond the offloaded count, stay on the CPU (-1).
    """
    splits = np.cumsum(np.asarray(tensor_split, dtype=np.float32), dtype=np.float32)
    splits = (splits / splits[-1]).astype(np.float32)
    i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0)
    act = min(n_gpu_layers, n_layer + 1)
    out = []
    for il in range(n_layer + 1):
        if il < i_gpu_start or il - i_gpu_start >= act:
            out.append(-1)
            continue
        value = np.float32(il - i_gpu_start) / np.float32(act)
        out.append(bisect_right(splits.tolist(), float(np.float32(value))))
    return out


def ranges_of(owner: list[str]) -> dict[str, tuple[int, int]]:
    """Contiguous [start, end) per owner of a per-layer owner list (asserting each owner's layers touch)."""
    out: dict[str, tuple[int, int]] = {}
    for i, who in enumerate(owner):
        if who in out:
            assert out[who][1] == i, f"{who} holds two ranges"
            out[who] = (out[who][0], i + 1)
        else:
            out[who] = (i, i + 1)
    return out


def parse_llamacpp(export, problem) -> tuple[dict[str, tuple[int, int]], str]:
    """Per device, the blocks llama-server gives it; and the device of the output layer."""
    servers = {}
    for f in export.files:
        if f.name.startswith("rpc-server-"):
            _, argv = the_command(f.text)
            servers[(flag(argv, "-H"), flag(argv, "-p"))] = run_on(f.text)
    _, argv = the_command(export.file("llama-server.sh").text)
    # Each server adds as many RPC devices as its node has accelerators, numbered in --rpc order.
    numbered = []
    for endpoint in flag(argv, "--rpc").split(","):
        host, port = endpoint.rsplit(":", 1)
        device = servers[(host, port)]
        numbered += [device] * problem.topology.node(device).count
    names = flag(argv, "--device").split(",")
    order = [numbered[int(n.removeprefix("RPC"))] for n in names]
    proportions = [float(p) for p in flag(argv, "--tensor-split").split(",")]
    L = problem.models[0].num_blocks
    layers = llamacpp_layers(proportions, int(flag(argv, "-ngl")), L)
    assert -1 not in layers, "every layer is offloaded"
    owner = [order[j] for j in layers]
    return ranges_of(owner[:L]), owner[L]


def partition_ranges(partition: str) -> list[tuple[int, int]]:
    """vLLM's and SGLang's get_pp_indices: rank r holds [sum(p[:r]), sum(p[:r + 1]))."""
    p = [int(x) for x in partition.split(",")]
    return [(sum(p[:r]), sum(p[:r + 1])) for r in range(len(p))]


def prima_ranges(windows: list[int], n_layer: int) -> list[tuple[int, int]]:
    """prima.cpp's this_layer_is_mine: layers are dealt from rank 1 upwards, rank 0 last, cycle after cycle."""
    world = len(windows)
    owner = []
    for layer in range(n_layer):
        cumulative, rank = 0, 1 % world
        while True:
            cumulative += windows[rank]
            if layer < cumulative:
                owner.append(rank)
                break
            rank = (rank + 1) % world
    spans = ranges_of([str(r) for r in owner])
    return [spans[str(r)] for r in range(world)]


# ------------------------------------------------------------------------------------- round trips


PEER = INSTANCES / "peer-edge.yaml"
GPUS4 = [("a", "rtx-3090", 1), ("b", "rtx-4090", 1), ("c", "l4", 1), ("d", "a10g", 1)]


def test_llamacpp_round_trip_on_peer_edge():
    problem = load_instance(PEER)
    plan = pipeline_plan(problem, ["jetson", "desktop", "mac"], [18, 44, 18])
    addresses = {d: f"192.168.1.{i}" for i, d in enumerate(["jetson", "desktop", "mac"], start=10)}
    out = export_plan(problem, plan, "llama.cpp", addresses=addresses)
    assert [f.name for f in out.files] == ["rpc-server-jetson.sh", "rpc-server-desktop.sh", "rpc-server-mac.sh",
                                           "llama-server.sh"]
    blocks, output_on = parse_llamacpp(out, load_instance(PEER))
    assert blocks == stage_ranges(plan) and output_on == "mac"
    assert run_on(out.file("llama-server.sh").text) == "jetson"  # the main host keeps the embedding


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(min_value=1, max_value=4096), st.data())
def test_llamacpp_proportions_reproduce_any_split(n_layer, data):
    """Whole-block proportions give back exact ranges for any layer count, float32 rounding included."""
    k = data.draw(st.integers(min_value=1, max_value=min(15, n_layer)))
    cuts = sorted(data.draw(st.sets(st.integers(1, n_layer - 1), min_size=k - 1, max_size=k - 1))) if k > 1 else []
    bounds = [0, *cuts, n_layer]
    counts = [b - a for a, b in zip(bounds, bounds[1:])]
    owner = llamacpp_layers(llamacpp.tensor_split(counts), n_layer + 1, n_layer)
    assert ranges_of([str(j) for j in owner[:n_layer]]) == {str(j): (bounds[j], bounds[j + 1]) for j in range(k)}
    assert owner[n_layer] == k - 1


def test_llamacpp_float32_split_points_separate_every_layer():
    """Why whole-block proportions are exact for every model of up to 4,096 blocks: llama.cpp compares
    fl(i / S) with split points fl(c / S) (S = blocks + 1); consecutive numerators never round together."""
    for S in range(2, 4098):
        points = np.arange(S + 1, dtype=np.float32) / np.float32(S)
        assert np.all(np.diff(points) > 0), S


def test_llamacpp_node_of_two_accelerators_keeps_its_range():
    problem = cluster([("a", "rtx-3090", 1), ("rack", "l4", 2), ("c", "rtx-4090", 1)])
    plan = pipeline_plan(problem, ["a", "rack", "c"], [10, 13, 9])
    out = export_plan(problem, plan, "llama.cpp")
    blocks, output_on = parse_llamacpp(out, problem)
    assert blocks == stage_ranges(plan) and output_on == "c"
    assert any("rack has 2 accelerators" in w for w in out.warnings)


def test_vllm_round_trip_follows_ray_ranking():
    problem = cluster(GPUS4, weight_format="bf16")
    plan = pipeline_plan(problem, ["a", "b", "c", "d"], [5, 11, 9, 7])
    out = export_plan(problem, plan, "vllm")
    hosts = host_map(problem)
    env, argv = the_command(out.file("vllm-serve.sh").text)
    assert flag(argv, "--pipeline-parallel-size") == "4" and flag(argv, "--tensor-parallel-size") == "1"
    head = run_on(out.file("vllm-serve.sh").text)
    workers = []
    for f in out.files:
        if f.name.startswith("ray-worker-"):
            _, w = the_command(f.text)
            workers.append(hosts[flag(w, "--node-ip-address")])
            assert flag(w, "--address") == f"{problem.topology.node(head).address}:6379"
    # vLLM's sort_by_driver_then_worker_ip: the driver's node first, then (workers per node, IP as text).
    ranked = [head, *sorted(workers, key=lambda d: problem.topology.node(d).address)]
    assert dict(zip(ranked, partition_ranges(env["VLLM_PP_LAYER_PARTITION"]))) == stage_ranges(plan)
    assert flag(argv, "--dtype") == "bfloat16"


def test_sglang_round_trip_by_node_rank():
    problem = cluster([("a", "l4", 2), ("b", "l4", 2), ("c", "l4", 2)], weight_format="fp16")
    plan = pipeline_plan(problem, ["b", "a", "c"], [3, 20, 9])
    out = export_plan(problem, plan, "sglang")
    got = {}
    for f in out.files:
        env, argv = the_command(f.text)
        assert flag(argv, "--tp-size") == "2" and flag(argv, "--nnodes") == "3"
        assert flag(argv, "--dist-init-addr") == f"{problem.topology.node('b').address}:20000"
        rank = int(flag(argv, "--node-rank"))
        got[run_on(f.text)] = partition_ranges(env["SGLANG_PP_LAYER_PARTITION"])[rank]
    assert got == stage_ranges(plan)


def test_petals_round_trip_keeps_replicas_and_formats():
    problem = cluster([("a", "rtx-3090", 1), ("b", "rtx-4090", 1), ("c", "l4", 1)], weight_format="fp16",
                      allowed=["fp16", "int8"])
    shards = (Shard("s0", "m", "a", (0, 16)), Shard("s1", "m", "b", (16, 32), "int8"),
              Shard("s2", "m", "c", (0, 16)), Shard("s3", "m", "c", (16, 32), "int8"))
    plan = Plan(shards=shards, routes=(Route("chat", ("s0", "s1"), fraction=0.5),
                                       Route("chat", ("s2", "s3"), fraction=0.5)))
    out = export_plan(problem, plan, "petals")
    served = []
    for f in out.files:
        _, argv = the_command(f.text)
        a, b = (int(x) for x in flag(argv, "--block_indices").split(":"))
        served.append((run_on(f.text), a, b, flag(argv, "--quant_type")))
    assert sorted(served) == sorted([("a", 0, 16, "none"), ("b", 16, 32, "int8"), ("c", 0, 16, "none"),
                                     ("c", 16, 32, "int8")])
    boot = [the_command(f.text)[1] for f in out.files if "--new_swarm" in f.text]
    assert len(boot) == 1 and flag(boot[0], "--port") == "31330"
    joined = {flag(the_command(f.text)[1], "--initial_peers") for f in out.files if "--new_swarm" not in f.text}
    assert joined == {"/ip4/10.0.0.1/tcp/31330/p2p/${PETALS_PEER_ID}"}
    assert any("fractions are not expressible" in w for w in out.warnings)


def test_prima_round_trip_rank_zero_holds_the_last_blocks():
    problem = load_instance(PEER)
    plan = pipeline_plan(problem, ["mac", "desktop", "laptop", "jetson"], [10, 40, 18, 12])
    addresses = {d: f"192.168.1.{i}" for i, d in enumerate(["mac", "desktop", "laptop", "jetson"], start=10)}
    out = export_plan(problem, plan, "prima.cpp", addresses=addresses)
    hosts = {v: k for k, v in addresses.items()}
    by_rank, windows = {}, None
    for f in out.files:
        _, argv = the_command(f.text)
        rank, world = int(flag(argv, "--rank")), int(flag(argv, "--world"))
        by_rank[rank] = (run_on(f.text), argv)
        if rank == 0:
            windows = [int(x) for x in flag(argv, "-lw").split(",")]
            assert argv[0] == "llama-server"
    assert sum(windows) == 80 and world == 4
    ranges = prima_ranges(windows, 80)
    assert {by_rank[r][0]: ranges[r] for r in range(world)} == stage_ranges(plan)
    for r, (device, argv) in by_rank.items():  # the ring: each rank's --next is the following rank's address
        assert hosts[flag(argv, "--next")] == by_rank[(r + 1) % world][0]
        assert hosts[flag(argv, "--master")] == by_rank[0][0]
    assert any("embedding" in w and "moves from mac" in w for w in out.warnings)


def test_exo_round_trip_from_the_shard_assignment():
    problem = cluster([("m1", "apple-m3-max", 1), ("m2", "apple-m2-ultra", 1)], weight_format="q4_0")
    plan = pipeline_plan(problem, ["m2", "m1"], [20, 12])
    out = export_plan(problem, plan, "exo", hf_repo="mlx-community/m-4bit")
    doc = json.loads(out.file("exo-shards.json").text)
    runner_of = {node.removeprefix("<exo node id of ").removesuffix(">"): r for node, r in doc["nodeToRunner"].items()}
    got = {}
    for device, runner in runner_of.items():
        meta = doc["runnerToShard"][runner]["PipelineShardMetadata"]
        assert meta["worldSize"] == 2 and meta["nLayers"] == 32
        got[device] = (meta["startLayer"], meta["endLayer"])
    assert got == stage_ranges(plan) and doc["modelId"] == "mlx-community/m-4bit"
    ranks = sorted(runner_of, key=lambda d: doc["runnerToShard"][runner_of[d]]["PipelineShardMetadata"]["deviceRank"])
    assert ranks == ["m2", "m1"]


def test_dllama_round_trip_equal_slices():
    problem = cluster([("p1", "raspberry-pi-5-8gb", 1), ("p2", "raspberry-pi-5-8gb", 1),
                       ("p3", "raspberry-pi-5-16gb", 1), ("p4", "raspberry-pi-5-8gb", 1)], weight_format="q4_0")
    plan = pipeline_plan(problem, ["p3", "p1", "p2", "p4"], [8, 8, 8, 8])
    out = export_plan(problem, plan, "distributed-llama")
    hosts = host_map(problem)
    _, root = the_command(out.file("dllama-root-p3.sh").text)
    assert root[:2] == ["dllama", "chat"] and flag(root, "--buffer-float-type") == "q80"
    workers = [hosts[w.rsplit(":", 1)[0]] for w in root[root.index("--workers") + 1:]]
    nodes = [run_on(out.file("dllama-root-p3.sh").text), *workers]
    # Tensor parallel: each of the n nodes holds 1/n of every block, i.e. n_layer / n blocks' worth.
    share = 32 / len(nodes)
    assert {d: share for d in nodes} == {s.device: s.num_blocks for s in plan.shards}
    assert nodes == ["p3", "p1", "p2", "p4"]
    ports = {run_on(f.text): flag(the_command(f.text)[1], "--port") for f in out.files if "worker" in f.name}
    assert {hosts[w.rsplit(":", 1)[0]]: w.rsplit(":", 1)[1] for w in root[root.index("--workers") + 1:]} == ports


# ------------------------------------------------------------------------------------------ refusals


def refusal(problem, plan, engine, **kw) -> str:
    with pytest.raises(ExportRefused) as err:
        export_plan(problem, plan, engine, **kw)
    assert err.value.engine and isinstance(err.value, ValueError)
    return str(err.value)


def pis(n):
    return cluster([(f"p{i}", "raspberry-pi-5-16gb", 1) for i in range(n)], weight_format="q4_0")


def test_dllama_refuses_node_counts_it_cannot_split():
    three = pis(3)
    assert "power-of-two number of nodes" in refusal(three, pipeline_plan(three, ["p0", "p1", "p2"], [11, 11, 10]),
                                                     "distributed-llama")
    model = {"id": "m", "config": small_config(32, kv_heads=2)}
    four = cluster([(f"p{i}", "raspberry-pi-5-16gb", 1) for i in range(4)], model=model, weight_format="q4_0")
    assert "as many nodes as the model has KV heads (2)" in refusal(
        four, pipeline_plan(four, ["p0", "p1", "p2", "p3"], [8] * 4), "distributed-llama")
    two = pis(2)
    assert "unequal ranges (p0 20, p1 12 blocks)" in refusal(two, pipeline_plan(two, ["p0", "p1"], [20, 12]),
                                                             "distributed-llama")
    q4km = cluster([("p0", "raspberry-pi-5-16gb", 1), ("p1", "raspberry-pi-5-16gb", 1)])
    assert "formats it takes: q4_0, fp32" in refusal(q4km, pipeline_plan(q4km, ["p0", "p1"], [16, 16]),
                                                     "distributed-llama")
    peer = load_instance(PEER)
    assert "qwen2" in refusal(peer, pipeline_plan(peer, ["desktop", "mac"], [40, 40]), "distributed-llama")


def test_vllm_refuses_what_its_ray_executor_cannot_run():
    mixed = cluster([("a", "l4", 1), ("b", "l4", 2)], weight_format="bf16")
    assert "different accelerator counts (a 1, b 2)" in refusal(mixed, pipeline_plan(mixed, ["a", "b"], [16, 16]),
                                                                "vllm")
    cpu = cluster([("a", "l4", 1), ("pi", "raspberry-pi-5-16gb", 1)], weight_format="bf16")
    assert "pi (sbc_cpu) is not one" in refusal(cpu, pipeline_plan(cpu, ["a", "pi"], [16, 16]), "vllm")
    problem = cluster(GPUS4[:3], weight_format="bf16")
    plan = pipeline_plan(problem, ["a", "b", "c"], [10, 10, 12])
    # Numerically in order, but as text "10.0.0.10" < "10.0.0.9": Ray would run c before b.
    why = refusal(problem, plan, "vllm", addresses={"b": "10.0.0.9", "c": "10.0.0.10"})
    assert "would run a -> c -> b" in why
    export_plan(problem, plan, "vllm", addresses={"b": "10.0.0.10", "c": "10.0.0.9"})  # in order as text: fine
    assert "share one IP address" in refusal(problem, plan, "vllm", addresses={"b": "10.0.0.7", "c": "10.0.0.7"})
    gguf = cluster(GPUS4[:2], weight_format="q3_k_s")
    assert "no weights in format q3_k_s" in refusal(gguf, pipeline_plan(gguf, ["a", "b"], [16, 16]), "vllm")


def test_sglang_refuses_unequal_tensor_parallel():
    mixed = cluster([("a", "l4", 2), ("b", "l4", 1)], weight_format="bf16")
    assert "one --tensor-parallel-size" in refusal(mixed, pipeline_plan(mixed, ["a", "b"], [16, 16]), "sglang")


def test_llamacpp_refusals():
    big = cluster([(f"g{i}", "rtx-3090", 1) for i in range(8)] + [("rack", "l4", 8)])
    plan = pipeline_plan(big, [*(f"g{i}" for i in range(8)), "rack"], [3] * 8 + [8])
    assert "expose 16 accelerators" in refusal(big, plan, "llama.cpp")
    awq = cluster(GPUS4[:2], weight_format="w4a16")
    assert "no weights in format w4a16" in refusal(awq, pipeline_plan(awq, ["a", "b"], [16, 16]), "llama.cpp")
    two = cluster(GPUS4[:2])
    assert "would both listen at 10.0.0.9:50052" in refusal(
        two, pipeline_plan(two, ["a", "b"], [16, 16]), "llama.cpp", addresses={"a": "10.0.0.9", "b": "10.0.0.9"})


def test_prima_refuses_an_embedding_its_rank_zero_has_no_room_for():
    """prima.cpp's rank 0 holds the last blocks and the token embedding; on peer-edge's full Mac that is too much."""
    problem = load_instance(PEER)
    plan = pipeline_plan(problem, ["jetson", "desktop", "mac"], [18, 44, 18])
    assert "mac would need" in refusal(problem, plan, "prima.cpp")
    roomy = pipeline_plan(problem, ["mac", "desktop", "jetson"], [18, 44, 18])  # the Jetson has room for it
    assert any("moves from mac" in w for w in export_plan(problem, roomy, "prima.cpp").warnings)


def test_prima_petals_exo_refusals():
    rack = cluster([("a", "rtx-3090", 1), ("rack", "l4", 2)])
    assert "one GPU" in refusal(rack, pipeline_plan(rack, ["a", "rack"], [16, 16]), "prima.cpp")
    peer = load_instance(PEER)
    assert "qwen2.5-72b is qwen2" in refusal(peer, pipeline_plan(peer, ["desktop", "mac"], [40, 40]), "petals")
    awq = cluster([("m1", "apple-m3-max", 1)], weight_format="w4a16")
    assert "no weights in format w4a16" in refusal(awq, pipeline_plan(awq, ["m1"], [32]), "exo")


def test_mixed_formats_take_the_smallest_for_one_file_engines():
    problem = cluster(GPUS4[:2], weight_format="q8_0", allowed=["q8_0", "q4_k_m"])
    plan = pipeline_plan(problem, ["a", "b"], [16, 16], formats_=["q8_0", "q4_k_m"])
    out = export_plan(problem, plan, "llama.cpp")
    assert any("every device holds one format: q4_k_m" in w and "a (q8_0) run at a lower precision" in w
               for w in out.warnings)
    assert "in Q4_K_M" in out.file("llama-server.sh").text


# --------------------------------------------------------------------------- plans of several pipelines


def replicated():
    problem = cluster(GPUS4, weight_format="q4_0")
    shards = (Shard("s0", "m", "a", (0, 16)), Shard("s1", "m", "b", (16, 32)),
              Shard("s2", "m", "c", (0, 20)), Shard("s3", "m", "d", (20, 32)))
    plan = Plan(shards=shards, routes=(Route("chat", ("s0", "s1"), fraction=0.7),
                                       Route("chat", ("s2", "s3"), fraction=0.3)))
    return problem, plan


def test_several_pipelines_need_one_named():
    problem, plan = replicated()
    why = refusal(problem, plan, "llama.cpp")
    assert "holds 2 pipelines" in why and "--pipeline N" in why and "pipeline 2: s2@c [0, 20) -> s3@d [20, 32)" in why
    out = export_plan(problem, plan, "llama.cpp", pipeline=2)
    blocks, _ = parse_llamacpp(out, problem)
    assert blocks == {"c": (0, 20), "d": (20, 32)}
    assert any("not exported pipeline 1" in w for w in out.warnings)
    assert any("takes no routing fractions" in w and "30% of chat" in w for w in out.warnings)
    with pytest.raises(ExportArgumentError, match="holds 2 pipeline"):
        export_plan(problem, plan, "llama.cpp", pipeline=3)
    assert len(export_plan(problem, plan, "petals").files) == 4  # every shard is a server


def test_several_models_need_one_named():
    problem = load_instance(INSTANCES / "hybrid.yaml")
    plan = Plan(shards=(Shard("s0", "llama-3.2-3b", "edge", (0, 28)), Shard("s1", "llama-3.1-8b", "cloud", (0, 32))),
                routes=(Route("quick", ("s0",)), Route("quick-2", ("s0",)), Route("hard", ("s1",))))
    assert "choose one with --model" in refusal(problem, plan, "vllm")
    out = export_plan(problem, plan, "vllm", model="llama-3.1-8b")
    _, argv = the_command(out.file("vllm-serve.sh").text)
    assert argv[2] == "meta-llama/Llama-3.1-8B" and flag(argv, "--tensor-parallel-size") == "1"
    with pytest.raises(ExportArgumentError, match="no such model"):
        export_plan(problem, plan, "vllm", model="gpt-5")


def test_a_plan_that_does_not_fit_the_instance_is_invalid():
    problem = cluster(GPUS4[:2])
    with pytest.raises(InvalidPlanError, match="unknown device 'z'"):
        export_plan(problem, Plan(shards=(Shard("s0", "m", "z", (0, 32)),), routes=(Route("chat", ("s0",)),)),
                    "llama.cpp")
    assert "places no shards" in refusal(problem, Plan(), "llama.cpp")


def test_arguments_are_checked():
    problem = cluster(GPUS4[:2], addresses=False)
    plan = pipeline_plan(problem, ["a", "b"], [16, 16])
    with pytest.raises(ExportArgumentError, match="unknown engine 'llamacp'.*did you mean 'llama.cpp'"):
        export_plan(problem, plan, "llamacp")
    with pytest.raises(ExportArgumentError, match="names no device"):
        export_plan(problem, plan, "llama.cpp", addresses={"zz": "10.0.0.1"})
    with pytest.raises(ExportArgumentError, match="port must be a TCP port"):
        export_plan(problem, plan, "llama.cpp", addresses={"a": "10.0.0.1:99999"})
    with pytest.raises(ExportArgumentError, match="--hf-repo must be a Hugging Face repository id"):
        export_plan(problem, plan, "vllm", hf_repo="/local/path")
    assert exporter("dllama").name == "distributed-llama" and exporter("LLAMACPP").name == "llama.cpp"


# ------------------------------------------------------------------------------ scripts are safe shell


def test_placeholders_stop_the_script_and_values_cannot_inject(tmp_path):
    """A device id holding shell syntax stays text; a missing address stops the script with what to set."""
    odd = 'edge";$(touch PWNED)\n`touch PWNED`'
    base = parse_instance({"name": "odd", "models": [{"id": "m", "config": small_config(8), "weight_format": "q4_0"}],
                           "devices": [{"id": "edge", "type": "rtx-3090"}, {"id": "b", "type": "rtx-3090",
                                                                          "address": "10.0.0.2"}],
                           "links": [{"a": "edge", "b": "b", "bandwidth_mbps": 100}],
                           "workload": [{"id": "chat", "source": "edge", "prompt_tokens": 10, "output_tokens": 2}]})
    # Instance files refuse such an id; a problem built in Python may still hold one.
    nodes = (dataclasses.replace(base.topology.nodes[0], id=odd), base.topology.nodes[1])
    links = (dataclasses.replace(base.topology.links[0], a=odd),)
    problem = dataclasses.replace(base, topology=Topology(nodes, links),
                                  workload=(dataclasses.replace(base.workload[0], source=odd),))
    plan = pipeline_plan(problem, [odd, "b"], [4, 4])
    out = export_plan(problem, plan, "llama.cpp", gguf="/models/a b'$(x).gguf")
    written = out.write(tmp_path / "deploy")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "llama-server").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    (fake / "llama-server").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    script = tmp_path / "deploy" / "llama-server.sh"
    assert all(os.access(p, os.X_OK) for p in written)
    missing = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.returncode != 0 and "set EDGE_TOUCH_PWNED_TOUCH_PWNED_HOST to the IPv4 address of device" \
        in missing.stderr
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={**env, "EDGE_TOUCH_PWNED_TOUCH_PWNED_HOST": "10.0.0.1"})
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    assert argv[argv.index("-m") + 1] == "/models/a b'$(x).gguf"
    assert argv[argv.index("--rpc") + 1] == "10.0.0.1:50052,10.0.0.2:50052"
    assert not (tmp_path / "PWNED").exists()
    assert "deploy" in {p.parent.name for p in written} and all("/" not in p.name for p in written)


def test_every_exported_script_parses_as_shell(tmp_path):
    problem = load_instance(INSTANCES / "device-edge-cloud.yaml")
    plan = pipeline_plan(problem, ["edge", "cloud"], [41, 39])
    for engine in ("llama.cpp", "vllm", "sglang", "petals", "prima.cpp"):
        for f in export_plan(problem, plan, engine).files:
            path = tmp_path / f.name
            path.write_text(f.text)
            assert subprocess.run(["sh", "-n", str(path)]).returncode == 0, f.name


# ------------------------------------------------------------------------------------ command line


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def dec_plan(tmp_path):
    path = tmp_path / "plan.json"
    r = invoke("solve", INSTANCES / "device-edge-cloud.yaml", "--solver", "dp", "-o", path)
    assert r.exit_code == 0
    return path


def test_cli_prints_writes_and_exits(dec_plan, tmp_path):
    inst = INSTANCES / "device-edge-cloud.yaml"
    printed = invoke("export", dec_plan, "--instance", inst, "--to", "llama.cpp", "--address", "edge=10.0.0.2",
                     "--address", "cloud=10.0.0.3", "--gguf", "/m/70b.gguf")
    assert printed.exit_code == 0, printed.stderr
    assert "==> llama-server.sh (run on edge) <==" in printed.stdout and "--tensor-split 41,40" in printed.stdout
    assert printed.stderr.startswith("note: ")
    out = tmp_path / "deploy"
    wrote = invoke("export", dec_plan, "-i", inst, "--to", "llama.cpp", "-o", out)
    assert wrote.exit_code == 0 and sorted(p.name for p in out.iterdir()) == [
        "llama-server.sh", "rpc-server-cloud.sh", "rpc-server-edge.sh"]
    refused = invoke("export", dec_plan, "-i", inst, "--to", "distributed-llama")
    assert refused.exit_code == 2 and refused.stderr.startswith("error: distributed-llama cannot run this plan: ")
    assert refused.stdout == ""
    assert invoke("export", dec_plan, "-i", inst, "--to", "tgi").exit_code == 2
    assert invoke("export", dec_plan, "-i", inst, "--to", "vllm", "--address", "edge").exit_code == 2
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    not_dir = invoke("export", dec_plan, "-i", inst, "--to", "exo", "-o", a_file)
    assert not_dir.exit_code == 2 and "is not a directory" in not_dir.stderr and a_file.read_text() == "keep"
    bad_plan = tmp_path / "bad.json"
    bad_plan.write_text(json.dumps({"schema_version": 1, "shards": [{"id": "s0", "model": "llama-3.1-70b", "device": "moon",
                                                 "layers": [0, 80]}], "routes": []}))
    invalid = invoke("export", bad_plan, "-i", inst, "--to", "exo")
    assert invalid.exit_code == 3 and "unknown device 'moon'" in invalid.stderr


def test_cli_never_writes_over_its_inputs(dec_plan, tmp_path):
    folder = tmp_path / "deploy"
    folder.mkdir()
    plan_copy = folder / "exo-shards.json"
    plan_copy.write_text(dec_plan.read_text())
    r = invoke("export", plan_copy, "-i", INSTANCES / "device-edge-cloud.yaml", "--to", "exo", "-o", folder)
    assert r.exit_code == 2 and "is a file the instance is read from" in r.stderr
    assert plan_copy.read_text() == dec_plan.read_text()


def test_exporters_cite_where_their_flags_were_checked():
    for e in exporters():
        assert e.sources and all(s.startswith("https://") for s in e.sources)
    assert len({e.name for e in exporters()}) == 7


@pytest.mark.parametrize("module", [placement.netaddr, artefacts, base, common, dllama, exo, formats, hf, llamacpp,
                                    petals, primacpp, sglang, shell, stages, vllm,
                                    __import__("placement.export", fromlist=["x"])], ids=lambda m: m.__name__)
def test_docstring_examples_run(module, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_kv_cache_format_is_carried_or_refused():
    problem = parse_instance({"name": "kv", "models": [{"id": "m", "config": small_config(32), "weight_format": "q4_0",
                                                        "kv_format": "q8_0"}],
                              "devices": [{"id": "a", "type": "l4"}, {"id": "b", "type": "l4"}],
                              "links": [{"a": "a", "b": "b", "bandwidth_mbps": 1000}],
                              "workload": [{"id": "chat", "source": "a", "prompt_tokens": 100, "output_tokens": 20}]})
    plan = pipeline_plan(problem, ["a", "b"], [16, 16])
    _, argv = the_command(export_plan(problem, plan, "llama.cpp").file("llama-server.sh").text)
    assert flag(argv, "-ctk") == "q8_0" and flag(argv, "-ctv") == "q8_0"
    assert "KV cache holds no q8_0" in refusal(problem, plan, "vllm")
    four = pis(4)
    out = export_plan(four, pipeline_plan(four, ["p0", "p1", "p2", "p3"], [8] * 4), "distributed-llama")
    assert any("the KV cache in f32: memory beyond the plan's" in w for w in out.warnings)


def test_adjacent_shards_on_one_device_are_one_stage_and_a_revisit_is_refused():
    problem = cluster(GPUS4[:2])
    merged = Plan(shards=(Shard("s0", "m", "a", (0, 10)), Shard("s1", "m", "a", (10, 20)),
                          Shard("s2", "m", "b", (20, 32))), routes=(Route("chat", ("s0", "s1", "s2")),))
    blocks, _ = parse_llamacpp(export_plan(problem, merged, "llama.cpp"), problem)
    assert blocks == {"a": (0, 20), "b": (20, 32)}
    revisit = Plan(shards=(Shard("s0", "m", "a", (0, 10)), Shard("s1", "m", "b", (10, 20)),
                           Shard("s2", "m", "a", (20, 32))), routes=(Route("chat", ("s0", "s1", "s2")),))
    assert "visits device a twice" in refusal(problem, revisit, "vllm")


def test_device_ids_that_clean_to_one_name_keep_their_own_files():
    problem = cluster([("a/b", "rtx-3090", 1), ("a:b", "rtx-3090", 1)])
    out = export_plan(problem, pipeline_plan(problem, ["a/b", "a:b"], [16, 16]), "llama.cpp")
    assert len({f.name for f in out.files}) == 3


def test_llamacpp_rpc_is_ipv4():
    problem = cluster(GPUS4[:2], addresses=False)
    plan = pipeline_plan(problem, ["a", "b"], [16, 16])
    assert "IPv4 only" in refusal(problem, plan, "llama.cpp", addresses={"a": "fe80::1", "b": "10.0.0.2"})
    out = export_plan(problem, plan, "llama.cpp", addresses={"a": "gpu-a.local", "b": "10.0.0.2"})
    _, argv = the_command(out.file("rpc-server-a.sh").text)
    assert flag(argv, "-H") == "0.0.0.0" and any("listens on all its interfaces" in w for w in out.warnings)
    _, main_argv = the_command(out.file("llama-server.sh").text)
    assert flag(main_argv, "--rpc") == "gpu-a.local:50052,10.0.0.2:50052"
