"""Model caching and request routing: instance fields, the cost table's additions, evaluate's semantics
(several models per class, cascades, declared unserved demand and its reasons, the utilisation limit,
changes against the current cache), the caching solvers and the plan table."""

from __future__ import annotations

import copy
import math

import pytest
import yaml

from conftest import INSTANCES, tiny_instance
from models import WEIGHT_FORMATS, benchmark_ids, model_ids, model_scores
from models.quality import _catalog
from placement import (
    InvalidInstanceError, InvalidPlanError, Kind, Plan, Reason, Route, Shard, Unserved, cost_table, evaluate,
    Status, load_instance, load_plan, parse_instance, save_plan,
)
from placement.cache import cache_changes
from placement.costs.caching import caching_view
from placement.costs.routes import cascade_times
from placement.objective import UNSERVED_COST, unserved_weight
from placement.report import format_plan
from solvers import UnsupportedProblemError, solve

PORTFOLIO = INSTANCES / "portfolio.yaml"


def _portfolio(**changes) -> dict:
    data = yaml.safe_load(PORTFOLIO.read_text())
    data.update(changes)
    return data


def _messages(data: dict) -> list[str]:
    with pytest.raises(InvalidInstanceError) as info:
        parse_instance(data)
    return [str(i) for i in info.value.issues]


# -- the quality catalog ---------------------------------------------------------------------------


def test_every_catalog_score_is_a_sourced_percentage_of_a_catalog_model():
    models = _catalog()["models"]
    assert len(models) >= 10
    for model_id, entry in models.items():
        assert model_id in model_ids(), model_id
        assert entry["source"].strip() and entry["variant"].strip() and entry["setting"].strip(), model_id
        assert set(entry["scores"]) == set(benchmark_ids()), model_id
        assert all(0 < v <= 100 for v in entry["scores"].values()), model_id


def test_a_format_scales_the_published_score_by_its_quality():
    scores = model_scores("llama-3.1-8b")
    assert scores.score("mmlu", "bf16") == 69.4
    assert scores.score("mmlu", "q4_0") == pytest.approx(69.4 * WEIGHT_FORMATS["q4_0"].quality)
    assert scores.score("no-such-benchmark", "fp16") is None


# -- instance fields -------------------------------------------------------------------------------


def test_portfolio_instance_reads_its_caching_fields():
    problem = load_instance(PORTFOLIO)
    chat, math_class, olympiad = problem.request("chat-1"), problem.request("math"), problem.request("olympiad")
    assert chat.accepted == ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b") and chat.model == "llama-3.2-1b"
    assert math_class.benchmark == "gsm8k" and math_class.min_quality == 80  # from its profile
    assert math_class.cascade("llama-3.2-3b", "llama-3.1-70b").escalate_share == 0.3
    assert olympiad.accepted == tuple(m.id for m in problem.models)  # a floor alone: any model
    assert problem.constraints.max_utilization == 0.8
    assert [c.device for c in problem.cache] == ["phone-1", "phone-2", "edge"]
    assert problem.topology.node("cloud").load_gbs == 3.0
    assert "cascades" in problem.portfolio_features()


def test_plain_instances_are_not_caching_instances():
    for path in INSTANCES.glob("*.yaml"):
        problem = load_instance(path)
        if path.stem not in ("portfolio", "replan"):
            assert problem.portfolio_features() == [], path.name
            assert all(r.accepted == (r.model,) for r in problem.workload)


def test_caching_fields_are_checked_field_by_field():
    data = _portfolio()
    data["workload"][0]["model"] = "llama-3.2-1b"  # and models too
    data["workload"][1]["models"] = ["llama-3.2-1b", "llama-3.2-1bb"]
    data["workload"][2]["min_quality"] = 120
    data["workload"][2]["cascades"] = [{"first": "llama-3.2-1b", "then": "llama-3.1-70b", "escalate_share": 1.5}]
    data["workload"][3]["benchmark"] = "mmlu-pro"
    data["workload"][4]["benchmark"] = None
    data["devices"][0]["load_gbs"] = -1
    data["constraints"]["max_utilization"] = 1.2
    data["cache"] = [{"device": "phone-3", "model": "llama-3.2-1b"}, {"device": "edge", "model": "llama-3.1-8b",
                                                                     "layers": [0, 99]}]
    got = _messages(data)
    want = ["workload[0]: give model (one model) or models (a list), not both",
            "workload[1].models[1]: names no model of this instance ('llama-3.2-1bb'",
            "workload[2].min_quality: must be <= 100",
            "workload[2].cascades[0].first: 'llama-3.2-1b' is not among the models this class accepts",
            "workload[2].cascades[0].escalate_share: must be <= 1",
            "workload[3].benchmark: unknown benchmark 'mmlu-pro'",
            "devices[0].load_gbs: must be > 0, got -1",
            "constraints.max_utilization: must be <= 1",
            "cache[0].device: names no device of this instance ('phone-3'",
            "cache[1].layers: must satisfy 0 <= start < end <= 32, got [0, 99]"]
    for w in want:
        assert any(m.startswith(w) for m in got), (w, got)


def test_a_floor_needs_a_benchmark_and_scores_for_it():
    data = tiny_instance()
    data["workload"][0]["min_quality"] = 40
    assert _messages(data) == ["workload[0].min_quality: needs a benchmark to measure answers by: give benchmark "
                               "(one of gsm8k, mmlu)"]
    data["workload"][0]["benchmark"] = "mmlu"  # tinyllama has no catalog scores
    assert _messages(data) == ["workload[0].benchmark: model tinyllama-1.1b has no mmlu score (the quality catalog "
                               "lists none): give models[0].quality: {mmlu: ...}"]
    data["models"][0]["quality"] = {"mmlu": 25.5}
    problem = parse_instance(data)
    assert cost_table(problem).quality_score("tinyllama-1.1b", "q4_0", "mmlu") == pytest.approx(
        25.5 * WEIGHT_FORMATS["q4_0"].quality)
    data["models"][0]["quality"] = {"mmlu": 25.5, "formats": {"q4_0": {"mmlu": 24.0}}}
    assert cost_table(parse_instance(data)).quality_score("tinyllama-1.1b", "q4_0", "mmlu") == 24.0


def test_churn_needs_every_load_rate():
    data = tiny_instance(objective={"latency": 1.0, "churn": 10.0})
    assert _messages(data) == [f"devices[{i}].load_gbs: is required by objective churn (the rate model weights "
                               "load at, GB/s)" for i in range(2)]


# -- the cost table and the caching view -------------------------------------------------------------


def test_load_time_is_the_weights_over_the_load_rate():
    problem = load_instance(PORTFOLIO)
    table = cost_table(problem)
    seconds = table.load_seconds("llama-3.1-70b", "q4_k_m", 0, 80)
    nbytes = float(table.weights("llama-3.1-70b", "q4_k_m").shard_bytes(0, 80))
    assert seconds[problem.topology.index["cloud"]] == pytest.approx(nbytes / 3e9)
    assert not seconds.flags.writeable


def test_the_view_prices_each_class_on_each_instance_as_evaluate_does():
    problem = load_instance(PORTFOLIO)
    view = caching_view(problem)
    c, t = view.requests.index("chat-2"), view.candidate("llama-3.2-3b", "q4_k_m", problem.topology.index["edge"])
    plan = Plan(shards=(Shard("s0", "llama-3.2-3b", "edge", (0, 28)),), routes=(Route("chat-2", ("s0",)),))
    m = evaluate(problem, plan)
    assert view.e2e_ms[c, t] == pytest.approx(m.requests["chat-2"].e2e_ms)
    assert view.busy[c, t] == pytest.approx(m.devices["edge"].utilization)
    assert view.eligible[c, t] and not view.eligible[view.requests.index("expert"), t]  # below expert's floor
    assert not view.cost.flags.writeable


# -- evaluate ------------------------------------------------------------------------------------------


def _cascade_plan(fraction=1.0):
    shards = (Shard("a", "llama-3.2-3b", "edge", (0, 28)), Shard("b", "llama-3.1-70b", "cloud", (0, 80)))
    return Plan(shards=shards, routes=(Route("math", ("a",), fraction=fraction, escalate_to=("b",)),))


def test_a_cascade_adds_the_escalated_share_of_the_second_route():
    problem = load_instance(PORTFOLIO)
    first = evaluate(problem, Plan(shards=_cascade_plan().shards[:1], routes=(Route("math", ("a",)),)))
    second = evaluate(problem, Plan(shards=_cascade_plan().shards[1:], routes=(Route("math", ("b",)),)))
    both = evaluate(problem, _cascade_plan()).requests["math"]
    one, two = first.requests["math"], second.requests["math"]
    assert both.e2e_ms == pytest.approx(one.e2e_ms + 0.3 * two.e2e_ms)
    assert both.energy_j == pytest.approx(one.energy_j + 0.3 * two.energy_j)
    assert both.quality == pytest.approx(0.7 * one.quality + 0.3 * two.quality)
    busy = evaluate(problem, _cascade_plan()).devices["cloud"].utilization
    assert busy == pytest.approx(0.3 * second.devices["cloud"].utilization)
    c = cascade_times(*(_times(problem, p) for p in ("a", "b")), 0.3)
    assert c.escalated.ttft_s * 1e3 == pytest.approx(one.e2e_ms + two.ttft_ms)


def _times(problem, sid):
    from placement.evaluate import _price_routes  # the route's own times
    plan = _cascade_plan()
    shard = plan.shard(sid)
    routed = _price_routes(problem, cost_table(problem), Plan(shards=(shard,), routes=(Route("math", (sid,)),)))
    return routed["math"][0].times


def test_a_cascade_must_be_declared_and_a_route_must_run_an_accepted_model():
    problem = load_instance(PORTFOLIO)
    plan = _cascade_plan()
    bad = plan.with_(routes=(Route("math", ("b",), escalate_to=("a",)),))
    with pytest.raises(InvalidPlanError, match="declares no cascade llama-3.1-70b -> llama-3.2-3b"):
        evaluate(problem, bad)
    with pytest.raises(InvalidPlanError, match="request expert needs one of llama-3.1-8b, llama-3.1-70b"):
        evaluate(problem, plan.with_(routes=(Route("expert", ("a",)),)))


def test_routes_and_declared_unserved_shares_add_up_to_the_class():
    problem = load_instance(PORTFOLIO)
    shards = (Shard("s0", "llama-3.2-1b", "edge", (0, 16)),)
    half = Plan(shards=shards, routes=(Route("chat-1", ("s0",), fraction=0.5),))
    kinds = {v.kind for v in evaluate(problem, half).violations if v.subject == "chat-1"}
    assert Kind.COVERAGE in kinds  # half routed and nothing declared: a violation, as before
    declared = half.with_(unserved=(Unserved("chat-1", 0.5, Reason.CAPACITY),))
    broken = [v for v in evaluate(problem, declared).violations if v.subject == "chat-1"]
    assert broken and "for want of capacity, but" in broken[0].message  # the edge box has time left
    m = evaluate(problem, declared)
    assert m.requests["chat-1"].served_share == pytest.approx(0.5)


def test_an_undeclared_class_without_routes_is_still_a_violation():
    problem = load_instance(INSTANCES / "hybrid.yaml")
    plan = solve(problem, "ilp")
    missing = plan.with_(routes=plan.routes[1:])
    m = evaluate(problem, missing)
    assert not m.feasible and math.isinf(m.objective)
    assert any(v.kind is Kind.COVERAGE and "no route serves it" in v.message for v in m.violations)


def test_reasons_are_tested_against_the_evidence():
    problem = load_instance(PORTFOLIO)
    empty = Plan(unserved=tuple(Unserved(r.id, 1.0, Reason.QUALITY) for r in problem.workload))
    refuted = {v.subject for v in evaluate(problem, empty).violations}
    assert refuted == {"chat-1", "chat-2", "math", "expert"}  # only olympiad is a quality case
    plan = solve(problem, "cache-ilp")
    assert [(u.request, u.reason) for u in plan.unserved] == [("olympiad", Reason.QUALITY)]
    assert evaluate(problem, plan).feasible


def test_an_unserved_request_costs_the_default_weight_unless_the_objective_weighs_it():
    problem = load_instance(PORTFOLIO)
    expected = 1.0 * UNSERVED_COST["latency"] + 20.0 * UNSERVED_COST["energy"]
    assert unserved_weight(problem) == expected
    plan = solve(problem, "cache-ilp")
    m = evaluate(problem, plan)
    share = m.aggregates["unserved_share"]
    assert share == pytest.approx(problem.request_weights()["olympiad"])
    assert m.objective == pytest.approx(m.aggregates["latency_ms"] + 20 * m.aggregates["energy_J"]
                                        + 50 * m.aggregates["churn_s"] + expected * share)
    weighed = parse_instance(_portfolio(objective={"latency": 1.0, "unserved": 10.0}))
    assert unserved_weight(weighed) == 10.0


def test_the_utilisation_limit_binds():
    data = _portfolio()
    data["constraints"]["max_utilization"] = 0.05
    problem = parse_instance(data)
    plan = Plan(shards=(Shard("s0", "llama-3.2-1b", "phone-1", (0, 16)),), routes=(Route("chat-1", ("s0",)),),
                unserved=tuple(Unserved(r, 1.0, Reason.QUALITY) for r in ("chat-2", "math", "expert", "olympiad")))
    loads = [v for v in evaluate(problem, plan).violations if v.kind is Kind.LOAD]
    assert loads and "> constraints.max_utilization 5%" in loads[0].message


def test_changes_against_the_current_cache():
    problem = load_instance(PORTFOLIO)
    plan = Plan(shards=(Shard("s0", "llama-3.2-1b", "phone-1", (0, 16)), Shard("s1", "llama-3.1-70b", "cloud", (0, 80))))
    changes = cache_changes(problem, plan)
    assert [(c.device, c.model) for c in changes.kept] == [("phone-1", "llama-3.2-1b")]
    assert [(c.device, c.model) for c in changes.loads] == [("cloud", "llama-3.1-70b")]
    assert sorted(c.device for c in changes.evicted) == ["edge", "phone-2"]
    load = changes.loads[0]
    assert load.load_s == pytest.approx(load.weights_gb * 2**30 / 3e9)
    assert changes.ready_s == changes.load_s == load.load_s


def test_plan_files_keep_cascades_and_unserved_shares(tmp_path):
    problem = load_instance(PORTFOLIO)
    plan = solve(problem, "cache-ilp")
    cascade = _cascade_plan(0.5).with_(unserved=(Unserved("math", 0.5, Reason.COST, "why"),))
    for p in (plan, cascade):
        save_plan(tmp_path / "plan.json", p, problem)
        again = load_plan(tmp_path / "plan.json")
        assert (again.routes, again.unserved) == (p.routes, p.unserved)
    assert evaluate(problem, load_plan(tmp_path / "plan.json")).objective == evaluate(problem, cascade).objective


# -- solvers ---------------------------------------------------------------------------------------


def test_ilp_and_greedy_solve_the_portfolio_within_memory_and_account_for_every_class():
    problem = load_instance(PORTFOLIO)
    for name in ("ilp", "cache-ilp", "cache-greedy", "auto"):
        plan = solve(problem, name)
        m = evaluate(problem, plan)
        assert plan.status.value in ("optimal", "feasible") and m.feasible, (name, m.violations)
        assert all(d.memory_gb <= d.memory_capacity_gb + 1e-9 for d in m.devices.values())
        routed = {r.request for r in plan.routes} | {u.request for u in plan.unserved}
        assert routed == {r.id for r in problem.workload}, name
        assert all(u.detail for u in plan.unserved)
    ilp, greedy = solve(problem, "ilp"), solve(problem, "cache-greedy")
    assert ilp.gap == 0.0 and greedy.objective >= ilp.objective - 1e-9 * abs(ilp.objective)


def test_ilp_matches_the_oracle_on_tiny_portfolios():
    from instances.caching_zoo import caching_zoo
    for name, data in caching_zoo(3)[:4]:
        problem = parse_instance(data)
        ref = solve(problem, "cache-bruteforce", options={"precheck": False})
        got = solve(problem, "ilp", options={"precheck": False})
        assert got.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9), name


def test_routing_over_the_current_cache_keeps_it():
    problem = load_instance(PORTFOLIO)
    plan = solve(problem, "route")
    changes = evaluate(problem, plan).changes
    assert plan.status.value == "optimal" and not changes.loads
    assert {u.request: u.reason for u in plan.unserved} == {"math": Reason.CACHE, "expert": Reason.CACHE,
                                                           "olympiad": Reason.QUALITY}


def test_solvers_that_do_not_cache_refuse_caching_instances():
    problem = load_instance(PORTFOLIO)
    with pytest.raises(UnsupportedProblemError, match="request classes accepting several models"):
        solve(problem, "dp")
    with pytest.raises(UnsupportedProblemError, match="backend cpsat cannot hold"):
        solve(problem, "ilp", options={"backend": "cpsat"})
    with pytest.raises(UnsupportedProblemError, match="an instance without a cache"):
        solve(load_instance(INSTANCES / "hybrid.yaml"), "route")


def test_a_load_cost_keeps_the_cache_under_a_small_change_and_a_large_change_moves_it():
    base = yaml.safe_load((INSTANCES / "replan.yaml").read_text())

    def replan(factor: float, churn: bool = True):
        data = copy.deepcopy(base)
        for r in data["workload"]:
            r["rate_rps"] *= factor
        if not churn:
            data["objective"].pop("churn")
        problem = parse_instance(data)
        return evaluate(problem, solve(problem, "cache-ilp")).changes

    assert not replan(1.0).loads and not replan(1.25).loads  # the cache stays put
    assert replan(1.25, churn=False).loads  # without the load cost it would move
    assert replan(3.0).loads  # a large change moves it, loads and all


def test_the_plan_table_shows_cache_routing_quality_unserved_and_changes():
    problem = load_instance(PORTFOLIO)
    text = format_plan(problem, solve(problem, "ilp"))
    for part in ("cache (resident per device), busy limit 80%:", "routing (share of each class's requests):",
                 "mmlu", "unserved:", "olympiad  100.0%  quality", "changes against the current cache:",
                 "the new cache is ready in"):
        assert part in text, part
    cascade = _cascade_plan(0.5).with_(unserved=(Unserved("math", 0.5, Reason.COST, "why"),))
    assert "escalates 30% to llama-3.1-70b@cloud" in format_plan(problem, cascade.with_(
        predicted=evaluate(problem, cascade)))


def test_the_cli_solves_the_portfolio(tmp_path):
    from click.testing import CliRunner
    from cli import main
    result = CliRunner().invoke(main, ["solve", str(PORTFOLIO), "--solver", "cache-greedy"])
    assert result.exit_code == 0, result.output
    assert "unserved (quality)" in result.output
    refused = CliRunner().invoke(main, ["solve", str(PORTFOLIO), "--solver", "dp"])
    assert refused.exit_code == 2 and "solvers that do:" in refused.output


@pytest.mark.parametrize("module", ["models.quality", "placement.objective", "placement.cache", "placement.coverage",
                                    "placement.costs.caching", "placement.costs.routes", "instances.caching_zoo",
                                    "solvers.caching.ilp"])
def test_the_examples_in_the_docstrings_run(module):
    import doctest
    import importlib
    failed, _ = doctest.testmod(importlib.import_module(module))
    assert failed == 0


def test_a_caching_instance_is_never_infeasible_on_its_face():
    # The class's first model cannot meet its SLO, its second can: the face-value checks (one model per
    # class) would call the instance infeasible; the caching solvers serve it, or say why not.
    data = _portfolio()
    data["workload"][3].update(models=["llama-3.1-70b", "llama-3.1-8b"], min_quality=60, slo={"ttft_ms": 150})
    plan = solve(parse_instance(data), "cache-ilp")
    assert plan.status.value == "optimal"
    expert = [r for r in plan.routes if r.request == "expert"]
    assert expert or any(u.request == "expert" for u in plan.unserved)


# -- cache-greedy's search -------------------------------------------------------------------------


def _stress(factor: float = 1.0):
    from instances.caching_zoo import caching_stress
    _, data = caching_stress(0)
    for r in data["workload"]:
        r["rate_rps"] = r["rate_rps"] * factor
    return parse_instance(data)


def _random_caches(view, count: int, seed: int = 1):
    """Feasible greedy states over random caches, every class reserving room where it fits."""
    import numpy as np
    from solvers.caching.greedy_state import Serving, ServingOptions
    options = ServingOptions.of(view)
    rng = np.random.default_rng(seed)
    useful = np.flatnonzero(view.fits & view.eligible.any(axis=0))
    for _ in range(count):
        state = Serving.empty(options)
        for t in rng.choice(useful, size=min(len(useful), int(rng.integers(2, 12))), replace=False).tolist():
            if state.load_bytes(t) <= state.free[view.device[t]]:
                state.add(t)
                for c in np.flatnonzero(view.eligible[:, t]).tolist():
                    if state.reserve_bytes(c, t) <= state.free[view.device[t]]:
                        state.reserve(c, t)
        yield state


@pytest.mark.parametrize("factor", [1.0, 4.0])
def test_the_greedy_simplex_routes_a_cache_as_highs_does(factor):
    # The greedy's own simplex must find HiGHS's optimum, with the rows kept, cold or from another basis.
    import numpy as np
    from solvers.caching.greedy_routing import route_by_highs, route_exactly, routable
    from solvers.caching.greedy_simplex import RoutingProgram
    from solvers.deadline import Deadline
    view = caching_view(_stress(factor))
    previous = None
    for state in _random_caches(view, 12):
        o = state.options
        cols = np.flatnonzero(routable(state))
        program = RoutingProgram(o.cls[cols], o.cost[cols], o.dev1[cols], o.busy1[cols], o.unserved_cost,
                                 state.time_limit, len(state.load), o.dev2[cols], o.busy2[cols], labels=cols.tolist())
        cold = program.solve()
        warm = program.solve(previous.basis if previous is not None else None)
        reference = route_by_highs(state, Deadline(10))
        assert cold is not None and warm is not None  # the fast path, not the fallback
        for found in (cold, warm):
            assert found.objective == pytest.approx(reference.state.value(), rel=1e-9)
        routed = route_exactly(state, Deadline(10), previous.basis if previous is not None else None)
        assert routed.state.value() == pytest.approx(reference.state.value(), rel=1e-9)
        assert (routed.state.load <= state.time_limit + 1e-9).all()
        assert routed.state.unserved.min() >= 0 and (routed.state.share >= 0).all()
        previous = cold


def test_the_greedy_counts_memory_and_time_as_evaluate_does():
    import numpy as np
    from placement.costs.roofline import GIB
    from solvers.caching.formulation import MARGIN
    from solvers.caching.greedy_local import improve
    from solvers.caching.greedy_state import Serving, ServingOptions
    from solvers.caching.plans import build_plan
    from solvers.deadline import Deadline
    problem = _stress()
    view = caching_view(problem)
    state = improve(Serving.empty(ServingOptions.of(view)), Deadline(30), {}, 200).state
    m = evaluate(problem, build_plan(problem, view, state.solution()))
    assert m.feasible and m.objective == pytest.approx(state.value(), rel=1e-9)
    for d, node in enumerate(problem.topology.nodes):
        if node.id in m.devices:
            used = float(view.capacity_bytes[d]) * (1 - MARGIN) - state.free[d]
            assert used == pytest.approx(m.devices[node.id].memory_gb * GIB, rel=1e-9)
            assert state.load[d] == pytest.approx(m.devices[node.id].utilization, abs=1e-9)
    assert np.isclose(state.load.max(), problem.constraints.max_utilization)  # the devices' time binds here


def test_the_greedy_reaches_the_optimum_where_device_time_binds():
    # Devices run at their utilisation limit: the old search stalled here with servable demand unserved.
    problem = _stress()
    ilp, greedy = solve(problem, "cache-ilp"), solve(problem, "cache-greedy")
    assert greedy.status.value == "feasible" and greedy.bound is None
    assert greedy.objective == pytest.approx(ilp.objective, rel=1e-6)
    assert greedy.stats["routings"] > 0 and greedy.stats["search"] == "priced by the routing program"


@pytest.mark.parametrize("options", [{"exact_routing": False}, {"exact_routing": False, "local_moves": False},
                                     {"local_moves": False}])
def test_the_greedy_keeps_every_limit_with_either_search(options):
    problem = _stress(3.0)
    plan = solve(problem, "cache-greedy", options=options)
    m = evaluate(problem, plan)
    assert plan.status.value == "feasible" and m.feasible, m.violations
    routed = {r.request for r in plan.routes} | {u.request for u in plan.unserved}
    assert routed == {r.id for r in problem.workload}
    assert plan.objective >= solve(problem, "cache-ilp").objective - 1e-9 * abs(plan.objective)


def test_greedy_stopped_before_placing_anything_says_so():
    """A deadline that ends the search before any instance is placed is the reason, not memory."""
    from solvers import SolveParams
    from solvers.caching.greedy import solve_cache_greedy
    from solvers.deadline import Deadline

    problem = load_instance(INSTANCES / "portfolio.yaml")
    options = {"local_moves": True, "exact_routing": True}
    plan = solve_cache_greedy(problem, SolveParams(), options, Deadline(0.0))
    assert plan.status is Status.NO_SOLUTION and plan.termination.value == "time_limit"
    assert not plan.unserved and "time limit" in plan.reasons[0]


@pytest.mark.parametrize("name", ["latency-3dev-6blk-star-tight", "weighted-3dev-5blk-mesh-tight",
                                  "ttft-3dev-4blk-mesh-tight-2cls-slo-tpot", "energy-4dev-5blk-star-tight-2cls-rates"])
def test_cache_ilp_keeps_memory_on_small_devices_with_every_backend(name):
    """On 1.6 GB devices one byte is a 6e-10 share: the program's coefficients are shares, so no backend
    drops the workspace from the memory rows (HiGHS and SCIP returned plans 1-3% past the memory)."""
    from instances.zoo import zoo

    from solvers import solve

    problem = parse_instance(dict(zoo(1))[name])
    objectives = set()
    for backend in ("highs", "cbc", "scip"):
        plan = solve(problem, "cache-ilp", options={"backend": backend})
        assert plan.status is not Status.ERROR, (backend, plan.reasons)
        objectives.add(round(plan.objective, 6))
    assert len(objectives) == 1
