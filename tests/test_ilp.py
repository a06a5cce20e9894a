"""The ILP solver: every backend against the brute-force oracle, formats with a quality floor,
time limits, and proven infeasibility with reasons."""

from __future__ import annotations

import math

import pytest

from models import weight_format
from placement import Kind, Plan, Route, Shard, evaluate, parse_instance
from placement import cost_table
from placement.costs import route_quality as _route_quality
from solvers import InvalidOptionError, SolveParams, UnsupportedProblemError, solve

BACKENDS = ("highs", "cbc", "cpsat", "scip")

# A Llama-like block shape (GQA) with a few blocks, so brute force stays small.
CONFIG = {"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 11008,
          "vocab_size": 32000, "hidden_act": "silu", "tie_word_embeddings": False}


def _instance(blocks=5, fmt="fp16", objective="latency", **extra):
    """Three mixed devices, two too small for the whole model in fp16, a partial mesh of links."""
    data = {
        "name": "small",
        "models": [{"id": "m", "weight_format": fmt, "config": {**CONFIG, "num_hidden_layers": blocks}}],
        "devices": [
            {"id": "phone", "type": "snapdragon-8-gen3", "memory_gb": 1.5, "reserved_memory_gb": 0},
            {"id": "edge", "type": "rtx-3060", "memory_gb": 1.75, "reserved_memory_gb": 0},
            {"id": "box", "type": "jetson-orin-nx-16gb", "memory_gb": 2.0, "reserved_memory_gb": 0},
        ],
        "links": [
            {"a": "phone", "b": "edge", "bandwidth_mbps": 200, "latency_ms": 5, "energy_nj_per_bit": 20},
            {"a": "edge", "b": "box", "bandwidth_mbps": 1000, "latency_ms": 1},
        ],
        "workload": [{"id": "chat", "source": "phone", "prompt_tokens": 256, "output_tokens": 32}],
        "objective": objective,
    }
    data.update(extra)
    return data


def _two_models():
    data = _instance(blocks=4, fmt="q8_0")
    data["models"].append({"id": "m2", "weight_format": "q4_0", "config": {**CONFIG, "num_hidden_layers": 3}})
    data["workload"].append({"id": "code", "source": "edge", "model": "m2", "prompt_tokens": 512,
                             "output_tokens": 16})
    data["workload"][0]["model"] = "m"
    return data


CASES = {
    "latency": _instance(),
    "energy-two-classes": _instance(objective="energy", workload=[
        {"id": "chat", "source": "phone", "prompt_tokens": 256, "output_tokens": 32},
        {"id": "long", "source": "box", "prompt_tokens": 1024, "output_tokens": 8, "batch": 2}]),
    "throughput-with-rates": _instance(objective="throughput", workload=[
        {"id": "chat", "source": "phone", "prompt_tokens": 256, "output_tokens": 32, "rate_rps": 0.5},
        {"id": "long", "source": "edge", "prompt_tokens": 512, "output_tokens": 64, "rate_rps": 0.2}]),
    "weighted-slo": _instance(objective={"latency": 1.0, "energy": 0.5}, workload=[
        {"id": "chat", "source": "phone", "prompt_tokens": 256, "output_tokens": 32, "slo": {"ttft_ms": 2000}}]),
    "ordered-ttft": _instance(objective="ttft", constraints={"device_order": ["box", "edge", "phone"]}),
    "formats-floor": _instance(fmt="q4_0", objective="tpot", constraints={"quality_floor": 0.97},
                               models=[{"id": "m", "weight_format": "q4_0", "allowed_formats": ["q4_0", "q8_0", "fp16"],
                                        "config": {**CONFIG, "num_hidden_layers": 5}}]),
    "two-models": _two_models(),
}


@pytest.fixture(scope="module")
def oracle():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = solve(parse_instance(CASES[name]), "bruteforce")
        return cache[name]
    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_backend_finds_the_bruteforce_optimum(case, backend, oracle):
    problem = parse_instance(CASES[case])
    best = oracle(case)
    assert best.status.value == "optimal"
    plan = solve(problem, "ilp", SolveParams(time_limit_s=60, threads=2), options={"backend": backend})
    assert plan.status.value == "optimal", plan.reasons
    assert plan.objective == pytest.approx(best.objective, rel=1e-7)
    assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
    # The bound is proven: it never beats the true optimum, and the gap is what it says.
    if problem.objective.sense == "min":
        assert plan.bound <= best.objective * (1 + 1e-9)
    else:
        assert plan.bound >= best.objective * (1 - 1e-9)
    assert plan.gap == pytest.approx(abs(plan.objective - plan.bound) / abs(plan.objective), abs=1e-12)
    assert plan.gap <= 1e-6
    assert plan.backend == backend


def test_the_instances_are_not_trivial(oracle):
    # Memory forces a split in most cases, so the search is over real pipelines.
    assert sum(len(oracle(name).shards) > 1 for name in CASES) >= 4


def route_quality(problem, shards):
    model = shards[0].model
    fmt = problem.model(model).weight_format
    return _route_quality(cost_table(problem), model, [(s.weight_format or fmt, *s.layers) for s in shards])


def test_format_choice_keeps_the_quality_floor(oracle):
    data = CASES["formats-floor"]
    problem = parse_instance(data)
    plan = solve(problem, "ilp", SolveParams(time_limit_s=30))
    shards = {s.id: s for s in plan.shards}
    quality = route_quality(problem, [shards[sid] for sid in plan.routes[0].path])
    assert quality >= 0.97 - 1e-9
    # The floor binds: without it the plan is faster and its quality lower.
    free = solve(parse_instance({**data, "constraints": {}}), "ilp", SolveParams(time_limit_s=30))
    free_shards = {s.id: s for s in free.shards}
    assert free.objective < plan.objective
    assert route_quality(problem, [free_shards[sid] for sid in free.routes[0].path]) < 0.97
    assert {s.weight_format or "q4_0" for s in plan.shards} != {"q4_0"}


def test_evaluate_reports_a_route_below_the_quality_floor():
    problem = parse_instance(CASES["formats-floor"])
    L = problem.models[0].num_blocks
    plan = Plan(shards=(Shard("s0", "m", "box", (0, 2), "q8_0"), Shard("s1", "m", "edge", (2, L), "q4_0")),
                routes=(Route("chat", ("s0", "s1")),))
    expected = (2 * weight_format("q8_0").quality + (L - 2) * weight_format("q4_0").quality) / L
    metrics = evaluate(problem, plan)
    assert expected < 0.97 and not metrics.feasible
    (v,) = [v for v in metrics.violations if v.kind == Kind.QUALITY]
    assert v.value == pytest.approx(expected) and v.limit == 0.97
    assert f"{expected:.4f}" in str(v) and "s0 -> s1" in str(v)


def test_same_seed_same_plan():
    problem = parse_instance(CASES["two-models"])
    plans = [solve(problem, "ilp", SolveParams(seed=3), options={"backend": "highs"}) for _ in range(2)]
    assert plans[0].shards == plans[1].shards


def test_time_limit_is_honoured_with_a_sensible_status():
    # 64 large blocks over 8 devices in any order, three formats and a quality floor: the LP
    # relaxation is fractional and proving the optimum takes far longer than the limit.
    types = ["rtx-4090", "rtx-3090", "jetson-agx-orin-64gb", "apple-m1-max", "l4", "rtx-4080",
             "jetson-agx-orin-32gb", "rtx-3060"]
    devices = [{"id": f"d{i}", "type": t} for i, t in enumerate(types)]
    links = [{"a": f"d{i}", "b": f"d{j}", "bandwidth_mbps": 2500 if j == i + 1 else 300 + 100 * ((i * 7 + j) % 8),
              "latency_ms": 1 + (i + j) % 4} for i in range(8) for j in range(i + 1, 8)]
    config = {**CONFIG, "hidden_size": 8192, "num_attention_heads": 64, "intermediate_size": 28672,
              "vocab_size": 128256, "num_hidden_layers": 64}
    data = _instance(devices=devices, links=links, constraints={"quality_floor": 0.96},
                     models=[{"id": "m", "weight_format": "q8_0", "allowed_formats": ["q8_0", "q4_0", "fp16"],
                              "config": config}],
                     workload=[{"id": "chat", "source": "d0", "prompt_tokens": 512, "output_tokens": 128}])
    problem = parse_instance(data)
    limit = 2.0
    plan = solve(problem, "ilp", SolveParams(time_limit_s=limit), options={"backend": "highs"})
    assert plan.termination.value == "time_limit"
    assert plan.status.value in ("feasible", "no_solution")
    # Backends check the clock between their own steps, so allow them one step past the limit.
    assert plan.solve_time_s < limit + 4.0
    if plan.status.value == "feasible":
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
        assert plan.bound is None or plan.bound <= plan.objective
        assert plan.gap is None or plan.gap > 0


def test_proven_infeasible_memory_names_the_devices_and_numbers():
    # 40 fp16 blocks cannot fit on the three small devices; precheck off, so the ILP must prove it.
    problem = parse_instance(_instance(blocks=40))
    plan = solve(problem, "ilp", options={"precheck": False})
    assert plan.status.value == "infeasible" and plan.termination.value == "converged"
    (reason,) = plan.reasons
    assert reason.startswith("memory:") and "40 blocks" in reason
    assert all(dev in reason for dev in ("phone", "edge", "box"))


@pytest.mark.parametrize("backend", ["highs", "cpsat"])
def test_proven_infeasible_slo_reports_the_least_reachable_value(backend):
    fastest = solve(parse_instance(_instance(objective="ttft")), "bruteforce").objective
    data = _instance(workload=[{"id": "chat", "source": "phone", "prompt_tokens": 256, "output_tokens": 32,
                                "slo": {"ttft_ms": math.floor(fastest * 0.9)}}])
    plan = solve(parse_instance(data), "ilp", options={"precheck": False, "backend": backend})
    assert plan.status.value == "infeasible", plan.reasons
    assert any(r.startswith("SLO: request chat cannot reach TTFT") and f"{fastest:.1f} ms" in r for r in plan.reasons)


def test_cpsat_refuses_free_rate_throughput_and_names_other_backends():
    data = _instance(objective="throughput", workload=[
        {"id": "chat", "source": "phone", "prompt_tokens": 256, "output_tokens": 32},
        {"id": "long", "source": "edge", "prompt_tokens": 512, "output_tokens": 64}])
    problem = parse_instance(data)
    with pytest.raises(UnsupportedProblemError, match="highs"):
        solve(problem, "ilp", options={"backend": "cpsat"})
    plan = solve(problem, "ilp", options={"backend": "highs"})
    assert plan.status.value == "optimal"
    assert plan.objective == pytest.approx(solve(problem, "bruteforce").objective, rel=1e-7)


def test_too_large_a_program_is_refused_up_front():
    from solvers.ilp import MAX_VARIABLES, estimated_variables

    devices = [{"id": f"d{i}", "type": "rtx-3060"} for i in range(300)]
    links = [{"a": "d0", "b": f"d{i}", "bandwidth_mbps": 1000} for i in range(1, 300)]
    data = {"models": [{"id": "llama-2-7b", "weight_format": "q4_0"}], "devices": devices, "links": links,
            "workload": [{"id": "r", "source": "d0", "prompt_tokens": 8, "output_tokens": 8}]}
    problem = parse_instance(data)
    assert estimated_variables(problem) > MAX_VARIABLES
    with pytest.raises(UnsupportedProblemError, match="too large for memory"):
        solve(problem, "ilp")


def test_unknown_backend_is_a_usage_error():
    with pytest.raises(InvalidOptionError, match="option backend: must be one of highs, cbc, cpsat, scip, got 'gurobi'"):
        solve(parse_instance(_instance()), "ilp", options={"backend": "gurobi"})


def test_a_backend_that_cannot_build_the_program_in_time_refuses_up_front():
    import time as _time
    from test_limits import _deep_model
    problem = parse_instance(_deep_model(500))  # a million variables: PuLP would need ~50 s to hand it to CBC
    started = _time.perf_counter()
    with pytest.raises(UnsupportedProblemError, match="cbc backend.*time limit"):
        solve(problem, "ilp", SolveParams(time_limit_s=2), options={"backend": "cbc"})
    assert _time.perf_counter() - started < 1.5


def test_scip_gets_a_memory_limit_of_its_own():
    from solvers.ilp.backends import MILP, SCIP_MEMORY_MB, solve_milp
    import numpy as np
    import scipy.sparse as sp
    m = MILP(c=np.array([-1.0, -2.0]), A=sp.csr_matrix([[1.0, 1.0]]), row_lo=np.array([-np.inf]),
             row_hi=np.array([1.0]), var_lo=np.zeros(2), var_hi=np.ones(2), integer=np.ones(2, bool))
    assert 0 < SCIP_MEMORY_MB <= 2048 and solve_milp(m, "scip", time_limit_s=5).status == "optimal"


def test_cpsat_names_a_program_too_wide_for_its_integers():
    """The swarm's throughput program has rows CP-SAT would reject as a possible overflow: one line says so
    (and which backends take it), not CP-SAT's dump of the row."""
    from conftest import INSTANCES
    from placement import load_instance

    plan = solve(load_instance(INSTANCES / "swarm-consumer-gpus.yaml"), "ilp", SolveParams(time_limit_s=30),
                 options={"backend": "cpsat", "warm_start": "none"})
    assert plan.status.value == "error" and len(plan.reasons) == 1
    assert "too wide for CP-SAT's 64-bit integers" in plan.reasons[0] and "highs" in plan.reasons[0]
