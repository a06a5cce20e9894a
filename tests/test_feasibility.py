"""Infeasibility explained: each kind of proof names its binding resource and its numbers.

Expected numbers are computed here from the cost model's own parts (weights,
KV bytes, capacities, block times), never copied from one calibration.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import placement.feasibility as feasibility
from cli import main
from conftest import tiny_instance
from instances.zoo import zoo
from models import weight_format
from placement import block_costs, evaluate, parse_instance
from placement.costs.roofline import (
    GIB, block_weight_bytes, execution_rates, kv_reservation_bytes, runtime_bytes, workspace_bytes,
)
from placement.feasibility import infeasibility_reasons
from solvers import SolveParams, solve


def _needs_gb(problem, model_id: str, fmt: str | None = None, requests=None) -> tuple[float, float, float]:
    """Weights of the whole model, KV of its requests, and the least workspace of the stage with
    the last block, in GB, as the proof must count them."""
    model = problem.model(model_id)
    fmt = fmt or model.weight_format
    weights, tied = block_weight_bytes(model, weight_format(fmt))
    reqs = requests if requests is not None else problem.requests_for(model_id)
    kv = sum(float(kv_reservation_bytes(model, r.batch, problem.context_tokens(r)).sum()) for r in reqs)
    sources = {r.source for r in reqs}
    reach = [n for n in problem.topology.nodes if any(s in problem.topology.reachable(n.id) for s in sources)]
    workspace = min(
        max(sum(workspace_bytes(model.graph, r, problem.context_tokens(r),
                                execution_rates(n, weight_format(f)).profile.max_tokens_per_step)) for r in reqs)
        for n in reach for f in model.formats)
    return (float(weights.sum()) - tied) / GIB, kv / GIB, workspace / GIB


def _usable_gb(problem, devices) -> float:
    keep = 1 - problem.constraints.memory_headroom
    return sum(problem.topology.node(d).usable_memory_gb * keep for d in devices)


def _room_gb(problem, devices, formats) -> float:
    """Usable memory left once each device pays its least engine runtime."""
    keep = 1 - problem.constraints.memory_headroom
    total = 0.0
    for d in devices:
        node = problem.topology.node(d)
        runtime = min(runtime_bytes(node, execution_rates(node, weight_format(f))) for f in formats) / GIB
        total += max(0.0, node.usable_memory_gb * keep - runtime)
    return total


def _solve_cli(tmp_path, data):
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump(data))
    return CliRunner().invoke(main, ["solve", str(path)])


def test_memory_names_model_and_numbers(tmp_path):
    data = tiny_instance(models=[{"id": "llama-3-70b", "weight_format": "fp16"}])
    problem = parse_instance(data)
    [reason] = infeasibility_reasons(problem)
    weights, kv, ws = _needs_gb(problem, "llama-3-70b")
    have, room = _usable_gb(problem, ["phone", "edge"]), _room_gb(problem, ["phone", "edge"], ["fp16"])
    assert reason.startswith("memory: model llama-3-70b needs at least")
    assert f"{weights + kv + ws:.1f} GB (weights {weights:.1f} GB in fp16 + KV cache {kv:.1f} GB + " \
           f"workspace {ws:.1f} GB)" in reason
    assert f"reachable from phone have {have:.1f} GB usable, {room:.1f} GB after their engine runtimes" in reason
    r = _solve_cli(tmp_path, data)
    assert r.exit_code == 4 and "memory: model llama-3-70b" in r.output


def test_memory_counts_the_smallest_allowed_format():
    data = tiny_instance(models=[{"id": "llama-3-8b", "weight_format": "fp16", "allowed_formats": ["q4_0"]}],
                         devices=[{"id": "phone", "type": "snapdragon-8-gen3"},
                                  {"id": "edge", "type": "jetson-orin-nano-8gb"}])
    problem = parse_instance(data)
    have = _room_gb(problem, ["phone", "edge"], ["fp16", "q4_0"])
    assert sum(_needs_gb(problem, "llama-3-8b", "q4_0")) < have  # fits in q4_0, although fp16 would not
    assert _needs_gb(problem, "llama-3-8b", "fp16")[0] > have
    assert not [r for r in infeasibility_reasons(problem) if r.startswith("memory")]


def _islands(model="llama-2-13b"):
    """phone - laptop reach 16.7 GB; the cloud GPU has 79.5 GB but no link to them."""
    return tiny_instance(
        models=[{"id": model, "weight_format": "fp16"}],
        devices=[{"id": "phone", "type": "snapdragon-8-gen3"}, {"id": "laptop", "type": "apple-m1"},
                 {"id": "cloud", "type": "a100-sxm-80gb"}],
        links=[{"a": "phone", "b": "laptop", "bandwidth_mbps": 100, "latency_ms": 3}],
    )


def test_connectivity_names_source_devices_and_memory(tmp_path):
    problem = parse_instance(_islands())
    [reason] = infeasibility_reasons(problem)
    need = sum(_needs_gb(problem, "llama-2-13b"))
    reach, cut_off = _room_gb(problem, ["phone", "laptop"], ["fp16"]), _room_gb(problem, ["cloud"], ["fp16"])
    assert need > reach and need <= reach + cut_off  # connectivity, not memory, binds
    assert reason.startswith(f"connectivity: model llama-2-13b needs at least {need:.1f} GB")
    assert (f"chat entering at phone reach only 2 device(s) with {_usable_gb(problem, ['phone', 'laptop']):.1f} GB "
            f"usable, {reach:.1f} GB after their engine runtimes") in reason
    assert f"phone {problem.topology.node('phone').usable_memory_gb:.1f}, laptop" in reason
    cloud = _usable_gb(problem, ["cloud"])
    assert f"1 other device(s) with {cloud:.1f} GB usable (cloud {cloud:.1f}) have no network path to phone" in reason
    r = _solve_cli(tmp_path, _islands())
    assert r.exit_code == 4 and "connectivity:" in r.output


def test_linking_the_island_removes_the_reason():
    data = _islands()
    data["links"].append({"a": "laptop", "b": "cloud", "bandwidth_mbps": 1000, "latency_ms": 20})
    assert infeasibility_reasons(parse_instance(data)) == []


def test_too_big_for_every_device_is_memory_not_connectivity():
    data = _islands(model="llama-3-70b")  # 131 GB in fp16: more than all three devices hold
    [reason] = infeasibility_reasons(parse_instance(data))
    assert reason.startswith("memory: model llama-3-70b")


def test_an_unreachable_device_is_harmless(tmp_path):
    data = tiny_instance()
    data["devices"].append({"id": "spare", "type": "rtx-4090"})
    problem = parse_instance(data)
    assert infeasibility_reasons(problem) == []
    r = _solve_cli(tmp_path, data)
    assert r.exit_code == 0, r.output


def test_each_island_needs_its_own_copy():
    # Two sources on two islands: each island must hold the model, so the small one binds.
    data = tiny_instance(
        models=[{"id": "llama-3-8b", "weight_format": "fp16"}],
        devices=[{"id": "phone", "type": "snapdragon-8-gen3"}, {"id": "gpu", "type": "rtx-4090"},
                 {"id": "pi", "type": "raspberry-pi-5-8gb"}, {"id": "pi2", "type": "raspberry-pi-5-8gb"}],
        links=[{"a": "phone", "b": "gpu", "bandwidth_mbps": 100}],
        workload=[{"id": "chat", "source": "phone", "prompt_tokens": 128, "output_tokens": 32},
                  {"id": "home", "source": "pi", "prompt_tokens": 128, "output_tokens": 32}],
    )
    problem = parse_instance(data)
    need = sum(_needs_gb(problem, "llama-3-8b", requests=[problem.request("home")]))
    assert need > _room_gb(problem, ["pi"], ["fp16"])  # the premise: pi alone is too small ...
    chat = sum(_needs_gb(problem, "llama-3-8b", requests=[problem.request("chat")]))
    assert chat <= _room_gb(problem, ["phone", "gpu"], ["fp16"])  # ... while phone and gpu hold a copy
    [reason] = infeasibility_reasons(problem)
    assert reason.startswith(f"connectivity: model llama-3-8b needs at least {need:.1f} GB")
    assert "home entering at pi reach only 1 device(s)" in reason


def test_models_that_fit_alone_but_not_together():
    data = tiny_instance(
        models=[{"id": "llama-3-8b", "weight_format": "q8_0"}, {"id": "qwen2.5-7b", "weight_format": "q8_0"}],
        devices=[{"id": "phone", "type": "snapdragon-8-gen3"}, {"id": "edge", "type": "rtx-3070"}],
        workload=[{"id": "a", "source": "phone", "model": "llama-3-8b", "prompt_tokens": 128, "output_tokens": 32},
                  {"id": "b", "source": "phone", "model": "qwen2.5-7b", "prompt_tokens": 128, "output_tokens": 32}],
    )
    problem = parse_instance(data)
    need = sum(sum(_needs_gb(problem, m)) for m in ("llama-3-8b", "qwen2.5-7b"))
    room = _room_gb(problem, ["phone", "edge"], ["q8_0"])
    assert all(sum(_needs_gb(problem, m)) <= room for m in ("llama-3-8b", "qwen2.5-7b")) and need > room
    [reason] = infeasibility_reasons(problem)
    assert reason.startswith(f"memory: the models together need at least {need:.1f} GB")
    assert f"{_usable_gb(problem, ['phone', 'edge']):.1f} GB usable, {room:.1f} GB after their engine runtimes" \
        in reason


def test_profiles_cap_the_blocks():
    data = tiny_instance()
    for d in data["devices"]:
        d["profile"] = {"model": "tinyllama-1.1b", "max_layers": 5}
    [reason] = infeasibility_reasons(parse_instance(data))
    assert reason == "memory: model tinyllama-1.1b has 22 blocks but the profiles of the 2 reachable device(s) " \
                     "allow at most 10 in all"


def _slo_bound_ms(problem, request_id: str, metric: str) -> float:
    """The fastest-device-per-block lower bound, recomputed from the block tables."""
    req = problem.request(request_id)
    bc = block_costs(problem, req)
    if metric == "ttft":
        return (bc.prefill_s.min(axis=0).sum() + bc.prefill_overhead_s.min()) * 1e3
    return (bc.decode_s.min(axis=0).sum() + bc.decode_overhead_s.min()) * 1e3


@pytest.mark.parametrize("metric", ["ttft", "tpot"])
def test_slo_below_the_lower_bound(metric, tmp_path):
    problem = parse_instance(tiny_instance())
    bound = _slo_bound_ms(problem, "chat", metric)
    limit = round(float(bound) * 0.5, 3)
    data = tiny_instance(workload=[{"id": "chat", "source": "phone", "prompt_tokens": 128, "output_tokens": 32,
                                    "slo": {f"{metric}_ms": limit}}])
    [reason] = infeasibility_reasons(parse_instance(data))
    assert reason == (f"SLO: request chat cannot reach {metric.upper()} {limit:g} ms: even running every block on "
                      f"its fastest reachable device takes at least {bound:.1f} ms")
    r = _solve_cli(tmp_path, data)
    assert r.exit_code == 4 and f"SLO: request chat cannot reach {metric.upper()}" in r.output


@pytest.mark.parametrize("solver", ["greedy", "uniform", "source"])
def test_slo_bound_is_below_what_plans_achieve(solver):
    # The proof is only sound if no plan beats its bound.
    problem = parse_instance(tiny_instance())
    plan = solve(problem, solver, SolveParams(time_limit_s=5), options={"precheck": False})
    m = evaluate(problem, plan).requests["chat"]
    assert _slo_bound_ms(problem, "chat", "ttft") <= m.ttft_ms * (1 + 1e-9)
    assert _slo_bound_ms(problem, "chat", "tpot") <= m.tpot_ms * (1 + 1e-9)


def test_quality_floor_above_the_best_allowed_format(tmp_path):
    fmts = ["q4_0", "q3_k_s"]
    best = max(fmts, key=lambda f: weight_format(f).quality)
    quality = weight_format(best).quality
    floor = round(min(1.0, quality + 0.01), 4)
    data = tiny_instance(models=[{"id": "tinyllama-1.1b", "weight_format": "q4_0", "allowed_formats": fmts}],
                         constraints={"quality_floor": floor})
    [reason] = infeasibility_reasons(parse_instance(data))
    assert reason.startswith(f"quality: model tinyllama-1.1b cannot reach quality floor {floor:g}: its best allowed "
                             f"format {best} has quality {quality:.4f}")
    assert all(f"{f} {weight_format(f).quality:.4f}" in reason for f in fmts)


def test_quality_floor_cli_exits_4(tmp_path):
    floor = round(min(1.0, weight_format("q4_0").quality + 0.01), 4)
    r = _solve_cli(tmp_path, tiny_instance(constraints={"quality_floor": floor}))
    assert r.exit_code == 4 and "quality: model tinyllama-1.1b cannot reach quality floor" in r.output


def test_quality_floor_that_one_allowed_format_meets():
    fmts = ["q4_0", "q8_0"]
    floor = round(weight_format("q8_0").quality - 1e-3, 4)
    assert weight_format("q4_0").quality < floor  # q4_0 alone would not do
    data = tiny_instance(models=[{"id": "tinyllama-1.1b", "weight_format": "q4_0", "allowed_formats": fmts}],
                         constraints={"quality_floor": floor})
    assert infeasibility_reasons(parse_instance(data)) == []


def test_quality_check_is_skipped_without_quality_figures(monkeypatch):
    class Bare:  # a format without a quality attribute
        bits_per_weight = 4.5

    data = tiny_instance(constraints={"quality_floor": 1.0})
    problem = parse_instance(data)
    assert any(r.startswith("quality:") for r in infeasibility_reasons(problem))
    monkeypatch.setattr(feasibility, "weight_format", lambda f: Bare())
    assert feasibility._quality_reasons(problem, problem.models[0]) == []


def test_every_reason_has_numbers():
    cases = [tiny_instance(models=[{"id": "llama-3-70b", "weight_format": "fp16"}]), _islands(),
             tiny_instance(constraints={"quality_floor": 1.0}),
             tiny_instance(workload=[{"id": "chat", "source": "phone", "prompt_tokens": 128, "output_tokens": 32,
                                      "slo": {"e2e_ms": 0.5}}])]
    kinds = set()
    for data in cases:
        for reason in infeasibility_reasons(parse_instance(data)):
            kinds.add(reason.split(":")[0])
            assert re.search(r"\d", reason), reason
    assert kinds == {"memory", "connectivity", "quality", "SLO"}


@pytest.mark.parametrize("seed", [0, 1])
def test_no_proof_against_instances_built_around_a_feasible_plan(seed):
    # The zoo plants a plan that evaluate() confirms in every instance not named infeasible-*.
    feasible = [(name, d) for name, d in zoo(seed) if not name.startswith("infeasible-")]
    assert len(feasible) >= 20
    for name, data in feasible:
        assert infeasibility_reasons(parse_instance(data)) == [], name


def test_zoo_infeasible_instances_are_mostly_explained():
    explained = {name for name, d in zoo(0) if name.startswith("infeasible-")
                 and infeasibility_reasons(parse_instance(d))}
    assert {"infeasible-memory-total", "infeasible-disconnected-source", "infeasible-slo-below-fastest",
            "infeasible-profile-max-layers"} <= explained


def test_solve_reports_the_reasons_as_infeasible():
    plan = solve(parse_instance(_islands()), "greedy", SolveParams(time_limit_s=5))
    assert plan.status.value == "infeasible" and plan.reasons and plan.reasons[0].startswith("connectivity:")
    assert np.isfinite(plan.solve_time_s)
