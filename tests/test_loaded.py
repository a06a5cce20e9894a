"""Queueing under load in plans: TTFT grows with the request rate, SLO attainment and goodput are reported."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import INSTANCES
from placement import InvalidInstanceError, Plan, Route, Shard, evaluate, parse_instance
from solvers import UnsupportedProblemError, solve

LOADED = yaml.safe_load((INSTANCES / "loaded-edge.yaml").read_text())


def _at(rate: float, **constraints) -> dict:
    data = copy.deepcopy(LOADED)
    data["workload"][0]["rate_rps"] = rate
    data["constraints"].update(constraints)
    return data


def _on_edge(problem) -> Plan:
    return Plan(shards=(Shard("s0", "llama-3.1-8b", "edge", (0, 32)),), routes=(Route("chat", ("s0",)),))


def test_ttft_grows_with_the_rate_and_attainment_falls():
    seen = []
    for rate in (0.25, 1.0, 1.5, 2.0, 2.5):
        problem = parse_instance(_at(rate))
        m = evaluate(problem, _on_edge(problem))
        r = m.requests["chat"]
        seen.append((r.ttft_ms, r.queue_ms, r.slo_attainment, m.goodput_rps))
    ttfts = [s[0] for s in seen]
    assert ttfts == sorted(ttfts) and ttfts[-1] > ttfts[0] * 1.2
    assert [s[2] for s in seen] == sorted((s[2] for s in seen), reverse=True)
    # Goodput is a property of the plan, not of the rate it is evaluated at.
    assert len({round(s[3], 6) for s in seen}) == 1 and seen[0][3] > 0


def test_the_wait_is_what_the_queue_model_says():
    problem = parse_instance(_at(1.0))
    plan = _on_edge(problem)
    loaded = evaluate(problem, plan).requests["chat"]
    idle = evaluate(parse_instance(_at(1.0, queueing=False)), plan).requests["chat"]
    assert loaded.ttft_ms == pytest.approx(idle.ttft_ms + loaded.queue_ms)
    assert loaded.e2e_ms == pytest.approx(idle.e2e_ms + loaded.queue_ms)
    assert loaded.tpot_ms == idle.tpot_ms and idle.queue_ms == 0 and idle.slo_attainment is None
    # M/D/1 at the edge: service = the batch's busy time / batch, rho = rate x service.
    from placement import cost_table
    bc = cost_table(problem).blocks("chat")
    service = float(bc.stage_busy_s(1, 0, 32)) / 8
    rho = 1.0 * service
    assert loaded.queue_ms == pytest.approx(1e3 * rho * service / (2 * (1 - rho)))


def test_goodput_is_the_rate_where_the_share_is_met():
    problem = parse_instance(_at(1.0))
    g = evaluate(problem, _on_edge(problem)).goodput_rps
    at_goodput = parse_instance(_at(g * 0.999))
    beyond = parse_instance(_at(g * 1.02))
    assert evaluate(at_goodput, _on_edge(at_goodput)).requests["chat"].slo_attainment >= 0.9 - 1e-6
    assert evaluate(beyond, _on_edge(beyond)).requests["chat"].slo_attainment < 0.9


def test_goodput_as_the_objective():
    problem = parse_instance({**_at(1.0), "objective": "goodput"})
    plan = solve(problem)
    assert plan.stats["picked"] == "bruteforce" and plan.status.value == "optimal"
    assert plan.objective == pytest.approx(evaluate(problem, plan).goodput_rps)


def test_solvers_that_cannot_model_the_wait_refuse_it():
    problem = parse_instance(_at(1.0))
    for name in ("dp", "ilp"):
        with pytest.raises(UnsupportedProblemError, match="queueing"):
            solve(problem, name)


def test_queueing_needs_rates_and_goodput_needs_slos():
    data = _at(1.0)
    del data["workload"][0]["rate_rps"]
    with pytest.raises(InvalidInstanceError, match="constraints.queueing: needs request rates"):
        parse_instance(data)
    data = {**_at(1.0), "objective": "goodput"}
    del data["workload"][0]["slo"]
    with pytest.raises(InvalidInstanceError, match="goodput counts requests that meet their SLOs"):
        parse_instance(data)
    with pytest.raises(InvalidInstanceError, match="goodput is measured with queueing"):
        parse_instance({**_at(1.0, queueing=False), "objective": "goodput"})
