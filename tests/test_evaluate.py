"""evaluate(): the cost model applied to plans, checked against its own parts and by hand."""

from __future__ import annotations

import itertools
import math

import pytest

from conftest import tiny_instance
from placement import (
    InvalidPlanError, Kind, Plan, Route, Shard, block_costs, cost_table, evaluate, load_plan, parse_instance, save_plan,
    transfer_costs,
)
from placement.costs import GIB
from placement.costs.roofline import execution_rates
from models import weight_format


def plan_throughput(problem, plan):
    return evaluate(problem, plan).throughput_tok_s


def _chain(problem, stages, request="chat"):
    model = problem.workload[0].model
    shards = tuple(Shard(f"s{i}", model, d, (a, b)) for i, (d, a, b) in enumerate(stages))
    return Plan(shards=shards, routes=(Route(request, tuple(s.id for s in shards)),))


def test_request_metrics_are_the_sum_of_their_parts():
    problem = parse_instance(tiny_instance())
    req = problem.workload[0]
    bc, tc = block_costs(problem, req), transfer_costs(problem, req)
    L = bc.num_blocks
    for cut in (1, 7, L - 1):
        stages = [("phone", 0, cut), ("edge", cut, L)]
        m = evaluate(problem, _chain(problem, stages)).requests["chat"]
        idx = [problem.topology.index[d] for d, _, _ in stages]
        pre = sum(bc.prefill_s[i, a:b].sum() + bc.prefill_overhead_s[i] for i, (_, a, b) in zip(idx, stages))
        dec = sum(bc.decode_s[i, a:b].sum() + bc.decode_overhead_s[i] for i, (_, a, b) in zip(idx, stages))
        ttft = tc.upload_s[idx[0]] + pre + tc.prefill_hop_s[idx[0], idx[1]] + tc.return_s[idx[1]]
        tpot = dec + tc.decode_hop_s[idx[0], idx[1]] + tc.loop_s[idx[1], idx[0]]
        assert m.ttft_ms == pytest.approx(ttft * 1e3, rel=1e-12)
        assert m.tpot_ms == pytest.approx(tpot * 1e3, rel=1e-12)
        assert m.e2e_ms == pytest.approx((ttft + (req.output_tokens - 1) * tpot) * 1e3, rel=1e-12)


def test_decode_step_by_hand():
    # The documented roofline, re-derived node by node: max(FLOPs / compute rate, bytes / memory rate),
    # where a one-token step's compute rate is floored at the vector units' rate.
    problem = parse_instance(tiny_instance(
        models=[{"id": "llama-2-13b", "weight_format": "fp16"}],
        devices=[{"id": "gpu", "type": "a100-sxm-80gb", "engine": "vllm"}], links=[],
        workload=[{"id": "chat", "source": "gpu", "prompt_tokens": 100, "output_tokens": 101}]))
    node = problem.topology.nodes[0]
    rates = execution_rates(node, weight_format("fp16"))
    prof = rates.profile
    graph = problem.models[0].graph
    ctx = 100 + 101 / 2
    expected = prof.step_overhead_ms * 1e-3
    for n in graph.nodes:
        flops = n.linear_flops_per_token + n.attn_flops_per_context_token * ctx
        nbytes = n.streamed_params(1) * 2 + n.kv_values_per_token * 2 * ctx
        rate = max(rates.peak_flops * prof.compute_efficiency(1), rates.vector_flops * prof.eta_compute)
        expected += max(flops / rate, nbytes / (rates.bandwidth_bytes_s * prof.eta_mem))
        expected += prof.layer_overhead_ms * 1e-3 if n.kind == "block" else 0.0
    m = evaluate(problem, _chain(problem, [("gpu", 0, graph.num_blocks)]))
    assert m.requests["chat"].tpot_ms == pytest.approx(expected * 1e3, rel=1e-9)


def test_tied_head_shares_the_embedding_only_on_one_device():
    problem = parse_instance(tiny_instance(models=[{"id": "qwen2.5-0.5b", "weight_format": "fp16"}]))
    weights = cost_table(problem).weights("qwen2.5-0.5b")
    L = weights.num_blocks
    whole = weights.shard_bytes(0, L)
    split = sum(weights.shard_bytes(a, b) for a, b in ((0, 10), (10, L)))
    graph = problem.models[0].graph
    assert whole == pytest.approx(graph.weight_bytes(weight_format("fp16")))
    assert split - whole == pytest.approx(graph.arch.vocab_size * graph.arch.hidden_size * 2)


def test_memory_violation_names_device_and_numbers():
    problem = parse_instance(tiny_instance(models=[{"id": "llama-2-13b", "weight_format": "fp16"}]))
    m = evaluate(problem, _chain(problem, [("phone", 0, 40)]))
    assert not m.feasible
    (v,) = [v for v in m.violations if v.kind == Kind.MEMORY]
    assert v.subject == "phone" and v.value > v.limit
    assert "GB" in str(v) and "weights" in str(v) and "usable" in str(v)
    assert m.devices["phone"].memory_gb > m.devices["phone"].memory_capacity_gb


def test_unserved_request_is_a_violation_not_a_crash():
    # Shards that leave blocks uncovered: no route (given or found by max-flow) serves the class.
    problem = parse_instance(tiny_instance())
    plan = Plan(shards=(Shard("s0", "tinyllama-1.1b", "edge", (0, 10)),), routes=())
    m = evaluate(problem, plan)
    assert not m.feasible and math.isinf(m.objective) and m.routing == "max-flow"
    assert [(v.kind, v.subject) for v in m.violations] == [(Kind.COVERAGE, "chat")]


def test_shards_without_routes_are_routed_by_max_flow():
    problem = parse_instance(tiny_instance())
    shards = (Shard("s0", "tinyllama-1.1b", "edge", (0, 22)),)
    m = evaluate(problem, Plan(shards=shards))
    given = evaluate(problem, Plan(shards=shards, routes=(Route("chat", ("s0",)),)))
    assert m.routing == "max-flow" and given.routing == "given" and m.feasible
    assert [r.path for r in m.routes] == [("s0",)]
    assert m.throughput_tok_s == pytest.approx(given.throughput_tok_s, rel=1e-9)


def test_plan_that_does_not_fit_raises_with_every_issue():
    problem = parse_instance(tiny_instance())
    plan = Plan(shards=(Shard("s0", "tinyllama-1.1b", "nowhere", (0, 10)), Shard("s1", "tinyllama-1.1b", "edge", (12, 22))),
                routes=(Route("chat", ("s0", "s1")), Route("ghost", ("s0",))))
    with pytest.raises(InvalidPlanError) as err:
        evaluate(problem, plan)
    text = str(err.value)
    assert "unknown device 'nowhere'" in text and "starts at block 12, expected 10" in text and "ghost" in text


def test_single_route_throughput_is_its_slowest_resource():
    problem = parse_instance(tiny_instance())
    req = problem.workload[0]
    bc, tc = block_costs(problem, req), transfer_costs(problem, req)
    plan = _chain(problem, [("phone", 0, 5), ("edge", 5, 22)])
    p, e = problem.topology.index["phone"], problem.topology.index["edge"]
    resources = [bc.decode_s[p, 0:5].sum() + bc.decode_overhead_s[p], bc.decode_s[e, 5:22].sum() + bc.decode_overhead_s[e],
                 tc.hop_token_s[p, e], tc.loop_token_s[e, p] + tc.return_token_s[e]]
    assert plan_throughput(problem, plan) == pytest.approx(1 / max(resources), rel=1e-12)


def test_two_free_classes_share_a_device():
    data = tiny_instance(workload=[{"id": "a", "source": "phone", "prompt_tokens": 64, "output_tokens": 16},
                                   {"id": "b", "source": "edge", "prompt_tokens": 64, "output_tokens": 16}])
    problem = parse_instance(data)
    shards = (Shard("s0", "tinyllama-1.1b", "edge", (0, 22)),)
    one = plan_throughput(problem, Plan(shards=shards, routes=(Route("a", ("s0",)),)))
    both = plan_throughput(problem, Plan(shards=shards, routes=(Route("a", ("s0",)), Route("b", ("s0",)))))
    # The edge device is the bottleneck of both classes: sharing it cannot raise the total much.
    assert one <= both <= one * 1.05


def test_weighted_objective_combines_metrics():
    problem = parse_instance(tiny_instance(objective={"latency": 1.0, "energy": 2.0}))
    m = evaluate(problem, _chain(problem, [("edge", 0, 22)]))
    r = m.requests["chat"]
    assert m.objective == pytest.approx(r.e2e_ms + 2.0 * r.energy_j)


def test_kv_reservation_follows_max_context():
    base = parse_instance(tiny_instance())
    capped = parse_instance(tiny_instance(constraints={"max_context_tokens": 2048}))
    plan = _chain(base, [("edge", 0, 22)])
    kv_base = evaluate(base, plan).devices["edge"].kv_cache_gb
    kv_capped = evaluate(capped, plan).devices["edge"].kv_cache_gb
    assert kv_capped == pytest.approx(kv_base * 2048 / (128 + 32))
    assert kv_capped * GIB == pytest.approx(22 * 2048 * 2 * 4 * 64 * 2)  # 22 blocks, 4 KV heads of 64, fp16


def test_every_contiguous_split_evaluates(tmp_path):
    problem = parse_instance(tiny_instance())
    L = 22
    for cut in range(1, L):
        for order in itertools.permutations(["phone", "edge"]):
            plan = _chain(problem, [(order[0], 0, cut), (order[1], cut, L)])
            m = evaluate(problem, plan)
            assert m.requests["chat"].e2e_ms > 0 and math.isfinite(m.objective)
    path = tmp_path / "plan.json"
    save_plan(path, plan.with_(predicted=m, objective=m.objective), problem)
    again = load_plan(path)
    assert again.shards == plan.shards and again.routes == plan.routes
    assert evaluate(problem, again).objective == m.objective


def test_slo_holds_on_every_route_not_on_average():
    # Half the requests on the fast edge, half on the slow phone: the average TTFT may meet the SLO
    # while every request sent to the phone misses it.
    problem = parse_instance(tiny_instance())
    shards = (Shard("fast", "tinyllama-1.1b", "edge", (0, 22)), Shard("slow", "tinyllama-1.1b", "phone", (0, 22)))
    both = Plan(shards=shards, routes=(Route("chat", ("fast",), fraction=0.5), Route("chat", ("slow",), fraction=0.5)))
    m = evaluate(problem, both)
    fast = evaluate(problem, Plan(shards=shards[:1], routes=(Route("chat", ("fast",)),))).requests["chat"].ttft_ms
    slow = evaluate(problem, Plan(shards=shards[1:], routes=(Route("chat", ("slow",)),))).requests["chat"].ttft_ms
    assert fast < m.requests["chat"].ttft_ms < slow
    limit = (m.requests["chat"].ttft_ms + slow) / 2  # above the average, below the slow route
    strict = parse_instance(tiny_instance(workload=[{"id": "chat", "source": "phone", "prompt_tokens": 128,
                                                     "output_tokens": 32, "slo": {"ttft_ms": limit}}]))
    m = evaluate(strict, both)
    assert not m.feasible and any(v.kind == Kind.SLO and "on its slowest route" in str(v) for v in m.violations)
