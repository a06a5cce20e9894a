"""The maxflow solver and the topology conveniences it needs (gateways, relay-free devices, link groups)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from placement import Kind, Plan, Shard, evaluate, load_instance, load_plan
from solvers import SolveParams, solve
from solvers.checks import range_oracle, replicated_problems

ROOT = Path(__file__).resolve().parents[1]
HELIX = ROOT / "instances" / "helix"
GATEWAY = ROOT / "tests" / "malformed" / "79-gateway-and-group.yaml"


def test_ten_node_cluster_proven_optimal_in_seconds():
    problem = load_instance(HELIX / "quality10.yaml")
    started = time.perf_counter()
    plan = solve(problem, "maxflow", SolveParams(time_limit_s=60))
    assert time.perf_counter() - started < 10
    assert plan.status.value == "optimal" and plan.objective == pytest.approx(286.59, abs=1e-6)
    assert plan.bound == pytest.approx(plan.objective, rel=1e-6)
    bounds = plan.stats["bounds"]
    assert bounds["fluid"] > 340 and bounds["compute_only"] > bounds["fluid"]  # the cover bound closes the gap


def test_single_region_cluster_optimal_at_its_fluid_bound():
    problem = load_instance(HELIX / "single24.yaml")
    plan = solve(problem, "maxflow", SolveParams(time_limit_s=60))
    published = load_plan(HELIX / "single24.published.json").stats["published_max_flow_tok_s"]
    assert plan.status.value == "optimal" and plan.objective >= published
    assert plan.objective == pytest.approx(2045.64, abs=0.01)
    assert plan.stats["bounds"]["fluid"] < plan.stats["bounds"]["compute_only"] - 500
    m = evaluate(problem, plan)
    assert m.feasible and m.objective == pytest.approx(plan.objective, rel=1e-9)


def test_short_copies_beat_one_pipeline_under_a_tpot_slo():
    problem = dict(replicated_problems(0))["slo-short-copies-3dev-4blk"]
    plan = solve(problem, "maxflow")
    pipeline = solve(problem, "dp")
    assert plan.status.value == "optimal" and plan.objective == pytest.approx(range_oracle(0, problem.name).objective)
    assert plan.objective > 1.5 * pipeline.objective
    assert evaluate(problem, plan).requests["r0"].slo_met


@pytest.mark.parametrize("backend", ["cbc", "scip"])
def test_every_backend_finds_the_same_optimum(backend):
    problem = dict(replicated_problems(0))["overlap-3dev-4blk-profiles"]
    plan = solve(problem, "maxflow", options={"backend": backend, "milp": "route"})
    assert plan.status.value == "optimal"
    assert plan.objective == pytest.approx(range_oracle(0, problem.name).objective, rel=1e-6)


def test_cli_solve_prints_throughput_bound_routes_and_time():
    result = CliRunner().invoke(main, ["solve", str(HELIX / "quality10.yaml"), "--solver", "maxflow"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "-> optimal (converged, over the ranges plan space) in" in out and "objective: throughput = " in out and "bound" in out
    assert "tok/s" in out and "routes:" in out and " at " in out and "found by" in out


def test_cli_evaluate_routes_a_published_placement():
    result = CliRunner().invoke(main, ["evaluate", str(HELIX / "quality10.yaml"), str(HELIX / "quality10.published.json")])
    assert result.exit_code == 0, result.output
    assert "routing: max-flow" in result.output and "286.59 tok/s" in result.output


def test_no_solver_puts_blocks_on_a_gateway():
    problem = load_instance(GATEWAY)
    assert [(l.a, l.b) for l in problem.topology.links][:3] == [("gw", "g1"), ("gw", "g2"), ("gw", "g3")]
    assert len(problem.topology.links) == 6  # the group: every pair of its four devices
    for name in ("dp", "greedy", "uniform", "random", "bruteforce", "maxflow", "auto"):
        plan = solve(problem, name)
        assert plan.has_solution and all(s.device != "gw" for s in plan.shards), name
    on_gateway = Plan(shards=(Shard("s0", "tinyllama-1.1b", "gw", (0, 22)),))
    (v,) = [v for v in evaluate(problem, on_gateway).violations if v.kind == Kind.MAX_LAYERS]
    assert v.subject == "gw" and "holds no blocks" in str(v)


def test_devices_that_relay_nothing_are_never_passed_through():
    problem = load_instance(GATEWAY)
    topo = problem.topology
    assert not topo.node("gw").relays and topo.node("g1").relays
    assert topo.path("g1", "g2", 1000) == ["g1", "g2"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["geo3region24", "hetero42"])
def test_large_clusters_reach_the_published_placement_within_a_minute(name):
    problem = load_instance(HELIX / f"{name}.yaml")
    published = load_plan(HELIX / f"{name}.published.json").stats["published_max_flow_tok_s"]
    started = time.perf_counter()
    plan = solve(problem, "maxflow", SolveParams(time_limit_s=60))
    assert time.perf_counter() - started < 61 + 1
    assert plan.has_solution and plan.objective >= published
    assert plan.bound >= plan.objective and plan.bound < plan.stats["bounds"]["compute_only"]


@pytest.mark.slow
def test_time_limit_on_the_largest_cluster():
    problem = load_instance(HELIX / "hetero42.yaml")
    started = time.perf_counter()
    plan = solve(problem, "maxflow", SolveParams(time_limit_s=3))
    assert time.perf_counter() - started < 3 + 1.5
    assert plan.has_solution and plan.termination.value in ("time_limit", "heuristic")


def test_generator_builds_helix_class_clusters():
    from instances.helix.generate import helix_cluster
    from placement import parse_instance

    one = parse_instance(helix_cluster({"A100": 2, "L4x2": 1, "T4x4": 1}))
    topo = one.topology
    assert len(topo.nodes) == 5 and topo.node("n2").count == 2 and topo.node("n3").count == 4
    assert len(topo.links) == 3 * 4 // 2 + 4  # one group of the nodes, and the coordinator's links
    assert topo.node("n0").profile_for("llama-2-70b").max_layers == 12
    geo = parse_instance(helix_cluster({"A100": 2, "T4": 4}, regions=2, seed=3, profiles="analytic"))
    assert all(not n.profiles for n in geo.topology.nodes)
    slow = [l for l in geo.topology.links if l.latency_ms >= 40 and "coordinator" not in (l.a, l.b)]
    assert slow and all(l.rate_mbps <= 15 * 8 for l in slow)  # 12.5 +- 2.5 MB/s across regions
    with pytest.raises(ValueError, match="unknown machine type"):
        helix_cluster({"H100": 1})


def test_solvers_listing_names_the_plan_spaces():
    import json

    result = CliRunner().invoke(main, ["solvers", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["maxflow"]["plan_space"] == "ranges" and rows["dp"]["plan_space"] == "pipeline"
    assert {o["name"] for o in rows["maxflow"]["options"]} >= {"backend", "milp", "max_routes"}
    table = CliRunner().invoke(main, ["solvers"])
    assert "PlanSpace(" not in table.output and " ranges " in table.output


def test_cli_evaluate_json_carries_the_routes_it_found():
    import json

    result = CliRunner().invoke(main, ["evaluate", str(HELIX / "quality10.yaml"), str(HELIX / "quality10.published.json"),
                                       "--json"])
    out = json.loads(result.output)
    assert out["predicted"]["routing"] == "max-flow" and out["routes"] and out["routes"][0]["rate_tok_s"] > 0


# -- the time limit holds while layouts are built and scored ---------------------------------------

SWARM = ROOT / "instances" / "swarm-consumer-gpus.yaml"


@pytest.fixture(scope="module")
def swarm_space():
    from solvers.maxflow.bounds import fluid_bound
    from solvers.maxflow.space import build_space

    space = build_space(load_instance(SWARM))
    return space, fluid_bound(space)


def test_layout_builders_stop_at_the_deadline_with_one_layout(swarm_space):
    import random

    from solvers.deadline import Deadline
    from solvers.maxflow.search import copy_layouts, stage_layouts

    space, fluid = swarm_space
    _, stages = stage_layouts(space, fluid, random.Random(0), Deadline(0))
    assert len(stages) == 1 and len(copy_layouts(space, deadline=Deadline(0))) == 1
    assert len(stage_layouts(space, fluid, random.Random(0))[1]) > 1 and len(copy_layouts(space)) > 1


def test_region_layouts_stop_at_the_deadline_with_one_layout():
    from solvers.deadline import Deadline
    from solvers.maxflow.bounds import fluid_bound
    from solvers.maxflow.regions import region_layouts
    from solvers.maxflow.space import build_space

    space = build_space(load_instance(HELIX / "geo3region24.yaml"))
    assert len(set(space.regions)) == 3
    assert len(region_layouts(space, fluid_bound(space), Deadline(0))) == 1


def test_scoring_past_the_deadline_stops_at_the_first_layout_that_serves(swarm_space):
    from solvers.deadline import Deadline
    from solvers.maxflow.search import Scorer, copy_layouts

    space, _ = swarm_space
    copies = copy_layouts(space)
    layouts = [("nothing", (None,) * space.n)] + [("short copies", a) for a in copies]
    scorer = Scorer(space, False, Deadline(0))
    scored = scorer.ranked(layouts, range(len(layouts)))
    assert scorer.evaluations == 2 and [k for _, k, _, _ in scored] == [1, 0] and scored[0][0] > 0
    everything = Scorer(space, False, Deadline(60)).ranked(layouts, range(len(layouts)))
    assert len(everything) == len(layouts)


def test_a_time_limit_already_past_still_gives_the_first_plan_that_serves():
    plan = solve(load_instance(SWARM), "maxflow", SolveParams(time_limit_s=0.001))
    assert plan.has_solution and plan.termination.value == "time_limit"
    assert plan.stats["evaluations"] <= 3  # all 26 layouts were scored, whatever the limit


def test_an_infeasible_cutoff_program_without_an_incumbent_proves_nothing(monkeypatch):
    """Without a plan the MILP's cutoff sits a little above zero: its infeasibility leaves the plans serving
    less than that unexamined, so the answer is no solution with the bound, not a proof of infeasibility."""
    import solvers.maxflow.solver as maxflow
    from placement import Proof
    from solvers.ilp.backends import MILPResult

    problem = dict(replicated_problems(0))["overlap-3dev-4blk-profiles"]
    monkeypatch.setattr(maxflow, "_search", lambda *args, **kwargs: None)  # no incumbent
    monkeypatch.setattr(maxflow, "solve_milp", lambda *args, **kwargs: MILPResult("infeasible"))
    plan = solve(problem, "maxflow", options={"milp": "route"})
    assert plan.status.value == "no_solution" and plan.proof is Proof.NONE
    assert "none serves more than" in plan.reasons[0] and "route MILP" in plan.reasons[0]
    assert plan.stats["bounds"]["route MILP"] <= 1e-6 < plan.stats["bounds"]["fluid"]


def test_the_milp_option_states_the_rule_auto_follows():
    from solvers.maxflow.solver import _LINE_MILP_MOST, _ROUTE_MILP_DEVICES
    from solvers.registry import solver_info

    text = solver_info("maxflow").option("milp").help
    assert f"route on at most {_ROUTE_MILP_DEVICES} devices" in text
    assert f"line when it has at most {_LINE_MILP_MOST:,} range variables" in text and "else none" in text


def test_without_pulp_only_the_cbc_backend_is_refused(monkeypatch):
    import importlib.util

    from solvers import SolverUnavailableError
    from solvers.registry import solver_info

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pulp" else real(name, *a))
    problem = dict(replicated_problems(0))["overlap-3dev-4blk-profiles"]
    assert solver_info("maxflow").available()
    assert solve(problem, "maxflow", options={"milp": "route"}).status.value == "optimal"
    with pytest.raises(SolverUnavailableError, match=r"backend 'cbc' needs pulp.*backends that can: highs, scip"):
        solve(problem, "maxflow", options={"backend": "cbc"})
    result = CliRunner().invoke(main, ["solve", str(SWARM), "--solver", "maxflow", "-O", "backend=cbc"])
    assert result.exit_code != 0 and "needs pulp" in result.output and "Traceback" not in result.output
