"""Interchangeable devices (placement.costs.symmetry) and the searches that count them: dp's types mode
and ilp's symmetry rows and warm starts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from placement import Plan, evaluate, parse_instance
from placement.costs.symmetry import interchangeable_devices
from solvers import InvalidOptionError, SolveParams, solve
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.dp import device_classes, search_mode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from helix_like import helix_like  # noqa: E402


def _cluster(n: int, blocks: int, objective: str = "throughput", **kwargs) -> dict:
    data = helix_like(n, blocks, **kwargs)
    data["objective"] = objective
    return data


# -- which devices are interchangeable ---------------------------------------------------------------

def test_same_type_and_links_make_a_class_and_the_source_stays_alone():
    problem = parse_instance(_cluster(6, 8))
    classes = interchangeable_devices(problem)
    ids = [[problem.topology.nodes[d].id for d in c] for c in classes]
    assert ["coordinator"] in ids
    kinds = {tuple(sorted({problem.topology.nodes[d].spec.id for d in c})) for c in classes}
    assert all(len(k) == 1 for k in kinds)  # a class never mixes device types
    assert sorted(len(c) for c in classes) == [1, 2, 2, 2]
    assert sorted(d for c in classes for d in c) == list(range(7))


def test_a_different_link_or_profile_splits_a_class():
    data = _cluster(6, 8, machines=("T4",))
    assert len(device_classes(parse_instance(data))) == 1
    slower = next(link for link in data["links"] if {link["a"], link["b"]} == {"coordinator", "n2"})
    slower["bandwidth_mbps"] = 100
    data["devices"][5]["profile"]["throughput_tokens_per_s"][1] *= 0.9  # n4 (devices[0] is the coordinator)
    classes = device_classes(parse_instance(data))
    assert sorted(classes) == [["n0", "n1", "n3", "n5"], ["n2"], ["n4"]]


def test_a_device_order_leaves_every_device_alone():
    data = _cluster(4, 8)
    data["constraints"] = {"device_order": [d["id"] for d in data["devices"]]}
    assert all(len(c) == 1 for c in interchangeable_devices(parse_instance(data)))


def test_swapping_two_members_of_a_class_keeps_every_metric():
    problem = parse_instance(_cluster(6, 8, machines=("L4", "T4"), objective="latency"))
    cls = next(c for c in interchangeable_devices(problem) if len(c) > 1)
    a, b = (problem.topology.nodes[d].id for d in cls[:2])
    other = next(n.id for n in problem.topology.nodes if n.id not in (a, b, "coordinator"))
    plans = []
    for first in (a, b):
        shards, routes = assemble([Pipeline("llm", ("serve",), (StageSpec(first, 0, 3), StageSpec(other, 3, 8)))])
        plans.append(evaluate(problem, Plan(shards=shards, routes=routes)))
    assert plans[0].objective == plans[1].objective
    assert plans[0].requests == plans[1].requests


# -- dp's types mode ---------------------------------------------------------------------------------

@pytest.mark.parametrize("objective", ["latency", "energy", "throughput", "tpot"])
def test_types_mode_equals_the_subset_search(objective):
    data = _cluster(7, 12, objective=objective)
    if objective == "latency":
        data["workload"][0]["slo"] = {"ttft_ms": 300}
    problem = parse_instance(data)
    subsets = solve(problem, "dp")
    types = solve(problem, "dp", options={"max_exact_devices": 2})
    assert subsets.stats["mode"] == "subsets" and types.stats["mode"] == "types"
    assert types.status == subsets.status
    assert types.objective == pytest.approx(subsets.objective, rel=1e-9)
    assert types.bound == pytest.approx(types.objective, rel=1e-12) and types.gap == 0.0
    assert types.objective == pytest.approx(evaluate(problem, types).objective, rel=1e-12)


def test_types_mode_proves_a_24_node_cluster():
    problem = parse_instance(_cluster(24, 80))
    assert search_mode(problem) == "types"
    plan = solve(problem, "dp", SolveParams(time_limit_s=30))
    assert plan.status.value == "optimal" and plan.stats["mode"] == "types"
    assert plan.stats["classes"] == 3 and plan.stats["count_vectors"] == 9 ** 3
    # Every stage keeps within its profile's max_layers, and the answer is the one evaluate() gives.
    assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-12)


def test_types_mode_stopped_by_the_time_limit_reports_a_bound():
    problem = parse_instance(_cluster(24, 40, objective="latency", machines=("A100", "L4", "T4", "V100")))
    plan = solve(problem, "dp", SolveParams(time_limit_s=0.05))
    assert plan.stats["mode"] == "types"
    if plan.status.value == "feasible":  # stopped: a plan, a proven bound below it and their gap
        assert plan.termination.value == "time_limit"
        assert plan.bound is not None and plan.bound <= plan.objective * (1 + 1e-12)
        assert plan.gap == pytest.approx((plan.objective - plan.bound) / plan.objective)
    else:
        assert plan.status.value == "optimal"


def test_too_many_count_vectors_falls_back_to_the_heuristic_orders():
    problem = parse_instance(_cluster(24, 16))
    plan = solve(problem, "dp", options={"max_count_vectors": 10})
    assert plan.stats["mode"] == "orders" and plan.bound is None


# -- ilp: symmetry rows and warm starts --------------------------------------------------------------

def test_ilp_with_symmetry_rows_finds_the_optimum_alone():
    problem = parse_instance(_cluster(5, 6))
    dp = solve(problem, "dp")
    cold = solve(problem, "ilp", SolveParams(time_limit_s=60), options={"warm_start": "none"})
    assert cold.stats["symmetric_devices"] == 4 and "warm_start" not in cold.stats
    assert cold.status.value == "optimal" and cold.objective == pytest.approx(dp.objective, rel=1e-6)


def test_ilp_returns_at_least_its_warm_start_with_a_bound():
    problem = parse_instance(_cluster(16, 24))
    dp = solve(problem, "dp")
    for backend in ("highs", "cbc", "scip", "cpsat"):
        plan = solve(problem, "ilp", SolveParams(time_limit_s=5), options={"backend": backend})
        assert plan.status.value in ("optimal", "feasible"), (backend, plan.reasons)
        assert plan.objective >= dp.objective * (1 - 1e-9)
        assert plan.bound is not None and plan.bound >= plan.objective * (1 - 1e-9)
        assert plan.stats["warm_start"] == "dp"


def test_a_registered_provider_is_a_warm_start_and_unknown_names_are_refused():
    from solvers.ilp import warm

    data = _cluster(5, 6)
    problem = parse_instance(data)
    # A poor but feasible pipeline: ilp must answer it or better, never worse.
    stages = (StageSpec("n0", 0, 2), StageSpec("n1", 2, 4), StageSpec("n2", 4, 6))
    shards, routes = assemble([Pipeline("llm", ("serve",), stages)])
    given = Plan(shards=shards, routes=routes)
    poor = evaluate(problem, given)
    assert poor.feasible
    warm.register_warm_start("given", lambda p, params, deadline: given)
    try:
        plan = solve(problem, "ilp", SolveParams(time_limit_s=30), options={"warm_start": "given"})
        assert plan.stats["warm_start"] == "given" and plan.objective >= poor.objective * (1 - 1e-9)
        assert plan.bound is not None and plan.bound >= plan.objective * (1 - 1e-9)
        with pytest.raises(InvalidOptionError, match="warm_start"):
            solve(problem, "ilp", options={"warm_start": "nosuch"})
    finally:
        del warm.PROVIDERS["given"]


def test_the_warm_start_vector_keeps_every_row_of_the_program():
    from solvers.ilp.formulation import build_formulation
    from solvers.ilp.programs import program
    from solvers.ilp.warm import canonical, pipelines_of, start_vector

    problem = parse_instance(_cluster(6, 8, objective="latency"))
    dp = solve(problem, "dp")
    form = build_formulation(problem)
    x = start_vector(form, canonical(problem, pipelines_of(problem, dp)[0]))
    assert x is not None
    milp, _ = program(form)
    Ax = milp.A @ np.concatenate([x, np.zeros(milp.num_vars - len(x))])
    assert np.all(Ax <= milp.row_hi + 1e-9) and np.all(Ax >= milp.row_lo - 1e-9)
    assert float(milp.c[: len(x)] @ x) == pytest.approx(dp.objective, rel=1e-9)


def test_a_replicated_plan_offers_each_route_as_a_pipeline():
    from placement import Route, Shard
    from solvers.ilp.warm import best_pipeline_plan, pipelines_of

    problem = parse_instance(_cluster(5, 6))
    shards = (Shard("a0", "llm", "n0", (0, 3)), Shard("a1", "llm", "n1", (3, 6)),
              Shard("b0", "llm", "n2", (0, 6)))
    plan = Plan(shards=shards, routes=(Route("serve", ("a0", "a1"), fraction=0.5),
                                       Route("serve", ("b0",), fraction=0.5)))
    candidates = pipelines_of(problem, plan)
    assert [[tuple(s.device for s in p.stages) for p in c] for c in candidates] == [[("n0", "n1")], [("n2",)]]
    found = best_pipeline_plan(problem, "given", plan)
    values = []
    for pipes in candidates:
        shards_, routes_ = assemble(pipes)
        m = evaluate(problem, Plan(shards=shards_, routes=routes_))
        values.append(m.objective if m.feasible else -1.0)
    assert found is not None and found.objective == pytest.approx(max(values)) and not found.proven
