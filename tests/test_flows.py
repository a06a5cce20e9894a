"""Max-flow routing (placement.costs.flows): cross-checked against networkx on the table's own numbers,
between its three programs, and against evaluate()."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import networkx as nx
import pytest

from placement import Plan, Shard, cost_table, evaluate, parse_instance
from placement.costs.flows import MIN_SHARE, route_shards
from placement.costs.throughput import combine_usage
from placement.costs.routes import Stage, route_usage

MODEL = "tinyllama-1.1b"  # 22 blocks


def _cluster(n: int, rng: random.Random, nic: bool = False, classes: int = 1, rates: bool = False,
             slo_ms: float | None = None, relays: bool = True) -> dict:
    types = ["rtx-3060", "rtx-4090", "jetson-agx-orin-32gb", "l4"]
    devices = [{"id": "gw", "type": "intel-i3-1315u", "holds_blocks": False, "relays": relays}]
    devices += [{"id": f"g{i}", "type": rng.choice(types), "relays": relays, **({"nic_mbps": 200} if nic else {})}
                for i in range(n)]
    links = [{"a": "gw", "b": f"g{i}", "bandwidth_mbps": 1000, "latency_ms": 1} for i in range(n)]
    links += [{"a": f"g{i}", "b": f"g{j}", "bandwidth_mbps": rng.choice((20, 100, 1000)), "latency_ms": 2}
              for i in range(n) for j in range(i + 1, n)]
    workload = []
    for c in range(classes):
        req = {"id": f"r{c}", "source": "gw", "prompt_tokens": 64, "output_tokens": 16 * (c + 1)}
        if rates:
            req["rate_rps"] = 0.5 * (c + 1)
        if slo_ms is not None:
            req["slo"] = {"tpot_ms": slo_ms}
        workload.append(req)
    return {"name": "cluster", "models": [{"id": MODEL, "weight_format": "q4_0"}], "devices": devices,
            "links": links, "workload": workload, "objective": "throughput"}


def _shards(n: int, rng: random.Random, overlap: bool) -> tuple[Shard, ...]:
    """One range per device: cut points shared where ``overlap`` is False, random ones otherwise."""
    L = 22
    out = []
    cuts = sorted(rng.sample(range(1, L), 3))
    bounds = [0, *cuts, L]
    for i in range(n):
        if overlap:
            k = rng.randrange(len(bounds) - 1)
            a, b = bounds[k], bounds[min(len(bounds) - 1, k + rng.choice((1, 2)))]
        else:
            a, b = bounds[i % (len(bounds) - 1)], bounds[i % (len(bounds) - 1) + 1]
        out.append(Shard(f"s{i}", MODEL, f"g{i}", (a, b)))
    return tuple(out)


def _networkx_value(problem, shards) -> float:
    """The same network built with networkx from the table: node capacity 1 / seconds per token, each hop
    and closing transfer 1 / its busiest resource (exclusive when the integer max-flow applies)."""
    table = cost_table(problem)
    req = problem.workload[0]
    index = problem.topology.index
    L = problem.models[0].num_blocks
    g = nx.DiGraph()
    first = [s for s in shards if s.layers[0] == 0][0]
    for s in shards:
        d = index[s.device]
        g.add_edge(f"{s.id}-in", f"{s.id}-out", capacity=1 / float(table.blocks(req).stage_token_s(d, *s.layers)))
        for t in shards:
            if s.layers[1] == t.layers[0]:
                use = table.hop_usage(req, d, index[t.device])
                g.add_edge(f"{s.id}-out", f"{t.id}-in", capacity=1 / max(use.values()))
        if s.layers[1] == L:
            use = combine_usage([(1, table.return_usage(req, d)), (1, table.loop_usage(req, d, index[first.device]))])
            g.add_edge(f"{s.id}-out", "sink", capacity=1 / max(use.values()))
    g.add_edge("source", f"{first.id}-in")
    return nx.maximum_flow_value(g, "source", "sink")


def _loads(problem, shards, routing) -> dict[int, float]:
    """Each resource's load at the routes' rates, summed here from the routes' own usage."""
    table = cost_table(problem)
    index = problem.topology.index
    by_id = {s.id: s for s in shards}
    load: dict[int, float] = defaultdict(float)
    for r in routing.routes:
        req = problem.request(r.request)
        stages = [Stage(index[by_id[sid].device], *by_id[sid].layers, table.blocks(req)) for sid in r.path]
        for k, v in route_usage(table, req, stages).items():
            load[k] += r.rate_tok_s * v
    return load


@pytest.mark.parametrize("seed", range(6))
def test_integer_max_flow_matches_networkx(seed):
    rng = random.Random(seed)
    problem = parse_instance(_cluster(4, rng, relays=False))
    # One shard starts at block 0, every device holds one range and no device relays (every transfer
    # takes its own link): each resource serves one element, so the integer max-flow applies.
    shards = (Shard("s0", MODEL, "g0", (0, 8)), Shard("s1", MODEL, "g1", (8, 22)), Shard("s2", MODEL, "g2", (8, 15)),
              Shard("s3", MODEL, "g3", (15, 22)))
    routing = route_shards(problem, shards)
    assert routing.method == "max-flow" and 0 <= routing.rounding_error_tok_s < 1e-6
    assert routing.throughput_tok_s == pytest.approx(_networkx_value(problem, shards), rel=1e-9)
    assert route_shards(problem, shards, method="lp").throughput_tok_s == pytest.approx(routing.throughput_tok_s,
                                                                                         rel=1e-7)
    m = evaluate(problem, Plan(shards=shards))
    assert m.routing == "max-flow" and m.feasible
    assert m.throughput_tok_s == pytest.approx(routing.throughput_tok_s, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_shared_resources_programs_agree_and_keep_capacities(seed):
    rng = random.Random(seed)
    problem = parse_instance(_cluster(4, rng, nic=True))
    shards = _shards(4, rng, overlap=True)
    lp = route_shards(problem, shards)
    paths = route_shards(problem, shards, method="path-lp")
    assert lp.method in ("lp", "none", "max-flow")
    assert lp.throughput_tok_s == pytest.approx(paths.throughput_tok_s, rel=1e-6, abs=1e-9)
    assert max(_loads(problem, shards, lp).values(), default=0.0) <= 1 + 1e-9
    if lp.routes:
        m = evaluate(problem, Plan(shards=shards, routes=lp.routes))
        assert not [v for v in m.violations if v.kind.value == "capacity"]
        assert m.throughput_tok_s == pytest.approx(lp.throughput_tok_s, rel=1e-9)


def test_a_device_holding_two_shards_shares_its_time():
    problem = parse_instance(_cluster(2, random.Random(1)))
    one = route_shards(problem, (Shard("a", MODEL, "g0", (0, 22)),))
    two = route_shards(problem, (Shard("a", MODEL, "g0", (0, 11)), Shard("b", MODEL, "g0", (11, 22))))
    assert two.method == "lp"
    # The same device in two halves serves no more than it does whole (its time is shared).
    assert two.throughput_tok_s <= one.throughput_tok_s * (1 + 1e-6)


def test_classes_keep_their_mix_of_rates():
    problem = parse_instance(_cluster(3, random.Random(2), classes=2, rates=True))
    shards = (Shard("a", MODEL, "g0", (0, 22)), Shard("b", MODEL, "g1", (0, 22)), Shard("c", MODEL, "g2", (0, 22)))
    routing = route_shards(problem, shards)
    totals = defaultdict(float)
    for r in routing.routes:
        totals[r.request] += r.rate_tok_s
    table = cost_table(problem)
    demand = {r.id: table.decode_demand(r) for r in problem.workload}
    assert totals["r0"] / totals["r1"] == pytest.approx(demand["r0"] / demand["r1"], rel=1e-6)
    m = evaluate(problem, Plan(shards=shards))
    assert m.feasible and all((d.utilization or 0) <= 1 + 1e-9 for d in m.devices.values())


def test_free_mix_keeps_every_class():
    problem = parse_instance(_cluster(2, random.Random(3), classes=2))
    shards = (Shard("a", MODEL, "g0", (0, 22)), Shard("b", MODEL, "g1", (0, 22)))
    routing = route_shards(problem, shards)
    totals = defaultdict(float)
    for r in routing.routes:
        totals[r.request] += r.rate_tok_s
    assert set(totals) == {"r0", "r1"}
    assert min(totals.values()) >= MIN_SHARE / 2 * routing.throughput_tok_s * (1 - 1e-6)


def test_every_route_meets_the_slo_and_an_impossible_one_serves_nothing():
    rng = random.Random(4)
    base = parse_instance(_cluster(3, rng))
    shards = (Shard("a", MODEL, "g0", (0, 11)), Shard("b", MODEL, "g1", (11, 22)), Shard("c", MODEL, "g2", (0, 22)))
    tpots = sorted(evaluate(base, Plan(shards=shards, routes=(r,))).requests["r0"].tpot_ms
                   for r in route_shards(base, shards, method="path-lp").routes)
    data = _cluster(3, random.Random(4), slo_ms=(tpots[0] + tpots[-1]) / 2)
    problem = parse_instance(data)
    routing = route_shards(problem, shards)
    assert routing.method == "path-lp" and routing.routes
    m = evaluate(problem, Plan(shards=shards))
    assert m.feasible, m.violations
    for r in routing.routes:
        one = evaluate(problem, Plan(shards=shards, routes=(r.__class__(r.request, r.path),)))
        assert one.requests["r0"].tpot_ms <= data["workload"][0]["slo"]["tpot_ms"]
    hopeless = parse_instance(_cluster(3, random.Random(4), slo_ms=tpots[0] / 10))
    assert route_shards(hopeless, shards).unserved == ("r0",)
    assert not evaluate(hopeless, Plan(shards=shards)).feasible


def test_rates_split_into_routes_that_add_up():
    problem = parse_instance(_cluster(4, random.Random(5)))
    shards = _shards(4, random.Random(5), overlap=False)
    routing = route_shards(problem, shards)
    if routing.routes:
        assert sum(r.fraction for r in routing.routes) == pytest.approx(1.0)
        assert all(r.rate_tok_s > 0 and 0 < r.fraction <= 1 for r in routing.routes)
        assert math.isclose(sum(r.rate_tok_s for r in routing.routes), routing.throughput_tok_s)


def test_unknown_method_is_refused():
    problem = parse_instance(_cluster(2, random.Random(0)))
    with pytest.raises(ValueError, match="unknown routing method"):
        route_shards(problem, (), method="magic")
