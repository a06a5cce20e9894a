"""The DP solver: the PipeEdge same-type-hosts regression, device orders, SLOs, long chains, and the
engine against exhaustive enumeration (every expected value from the instance or an oracle)."""

from __future__ import annotations

import copy
import functools
import itertools
import math
import time

import numpy as np
import pytest

from instances import zoo as zoo_module
from instances.zoo import stress
from placement import Plan, Route, Shard, Status, Termination, cost_table, evaluate, parse_instance
from placement.evaluate import route_resource_seconds as _route_use
from solvers import SolveParams, UnsupportedProblemError, solve
from solvers.bruteforce import candidate_pipelines, count_plans
from solvers.chain import Pipeline, assemble
from solvers.dp import price_chain
from solvers.dp.search import best_chain, best_chain_within


@functools.lru_cache(maxsize=None)
def _zoo(seed: int) -> tuple:
    return tuple(zoo_module.zoo(seed))


def zoo(seed: int) -> list[tuple[str, dict]]:
    """The zoo, generated once per seed; each call gets its own copies to change."""
    return copy.deepcopy(list(_zoo(seed)))


def _config(layers: int, hidden: int = 1024) -> dict:
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 16,
            "num_key_value_heads": 4, "intermediate_size": 3 * hidden, "vocab_size": 8000}


def _stages(plan) -> list[tuple[str, int, int]]:
    shards = {s.id: s for s in plan.shards}
    return [(shards[sid].device, *shards[sid].layers) for sid in plan.routes[0].path]


def _agree(problem, options=None):
    """dp and the brute-force oracle on ``problem``: same status, same optimum."""
    plan = solve(problem, "dp", options={"precheck": False, **(options or {})})
    ref = solve(problem, "bruteforce", options={"precheck": False})
    assert plan.status == ref.status, (plan.status, ref.status, plan.reasons, ref.reasons)
    if ref.status == Status.OPTIMAL:
        assert plan.objective == pytest.approx(ref.objective, rel=1e-6)
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
        assert evaluate(problem, plan).feasible
        assert plan.bound == plan.objective
    return plan, ref


# -- PipeEdge: two device types, two hosts each ---------------------------------------------


def _pipeedge(hosts_per_type: int = 2, **overrides) -> dict:
    """8 layers; type A 1.0 s/layer, type B 0.1 s/layer; memory to spare; 1000 Mbps everywhere."""
    devices = []
    for kind, seconds, dtype in (("A", 1.0, "rtx-3060"), ("B", 0.1, "rtx-4090")):
        for host in range(1, hosts_per_type + 1):
            devices.append({"id": f"{kind}{host}", "type": dtype, "memory_gb": 1000,
                            "profile": {"model": "m", "prefill_ms_per_layer": seconds * 1e3,
                                        "decode_ms_per_layer": seconds * 1e3}})
    ids = [d["id"] for d in devices]
    data = {
        "name": "pipeedge-toy", "models": [{"id": "m", "config": _config(8, hidden=128), "weight_format": "fp32"}],
        "devices": devices,
        "links": [{"a": a, "b": b, "bandwidth_mbps": 1000, "latency_ms": 0.1} for a, b in itertools.combinations(ids, 2)],
        "workload": [{"id": "r", "source": "A1", "prompt_tokens": 16, "output_tokens": 16}],
        "objective": "throughput",
    }
    data.update(overrides)
    return data


def route_resource_seconds(problem, plan, i):
    return _route_use(problem, plan)[i]


def _device_seconds(problem, plan) -> dict[str, float]:
    return {res[1]: sec for res, sec in route_resource_seconds(problem, plan, 0).items() if res[0] == "device"}


def test_pipeedge_two_types_two_hosts_regression():
    # The scheduler once looked hosts up by type index and planned A[1,2] A[3,4] B[5,6] B[7,8]
    # (bottleneck 2.0 s); the optimum is B[1,4] B[5,8] on the two B hosts, bottleneck 0.4 s.
    problem = parse_instance(_pipeedge())
    plan, _ = _agree(problem)
    stages = _stages(plan)
    assert sorted(d for d, _, _ in stages) == ["B1", "B2"]
    assert [(a, b) for _, a, b in stages] == [(0, 4), (4, 8)]
    seconds = _device_seconds(problem, plan)
    assert max(seconds.values()) == pytest.approx(4 * 0.1, rel=1e-12)
    assert plan.objective == pytest.approx(1 / 0.4, rel=1e-9)  # every channel is far below 0.4 s per token


def test_pipeedge_one_host_per_type_puts_everything_on_b():
    problem = parse_instance(_pipeedge(hosts_per_type=1))
    plan, _ = _agree(problem)
    assert _stages(plan) == [("B1", 0, 8)]
    assert plan.objective == pytest.approx(1 / 0.8, rel=1e-9)


def test_hosts_of_one_type_keep_their_own_memory_and_links():
    # B1 holds at most 2 blocks (its own profile) and B2 sits behind a slow link: a DP that
    # looked profiles up by type would put 4 blocks on B1 or ignore B2's link.
    data = _pipeedge()
    data["devices"][2]["profile"]["max_layers"] = 2
    data["links"] = [link if "B2" not in (link["a"], link["b"]) else {**link, "bandwidth_mbps": 0.01}
                     for link in data["links"]]
    problem = parse_instance(data)
    plan, _ = _agree(problem)
    by_device = {d: b - a for d, a, b in _stages(plan)}
    assert by_device.get("B1", 0) <= 2
    assert evaluate(problem, plan).feasible
    for objective in ("latency", "energy", "tpot"):
        _agree(parse_instance({**data, "objective": objective}))


def _slow_direct_loop() -> dict:
    """x-y and y-z are wide but far; x-z is narrow but near. Big messages go round through y,
    the 4-byte token takes the narrow link, so a chain from z back to x is bound by its loop."""
    devices = [{"id": d, "type": "rtx-4090", "profile": {"model": "m", "max_layers": 3,
                                                        "prefill_ms_per_layer": 0.1, "decode_ms_per_layer": 0.01}}
               for d in ("x", "y", "z")]
    return {"name": "slow-direct-loop", "models": [{"id": "m", "config": _config(8), "weight_format": "fp16"}],
            "devices": devices,
            "links": [{"a": "x", "b": "y", "bandwidth_mbps": 10000, "latency_ms": 20},
                      {"a": "y", "b": "z", "bandwidth_mbps": 10000, "latency_ms": 20},
                      {"a": "x", "b": "z", "bandwidth_mbps": 0.01, "latency_ms": 0.5}],
            "workload": [{"id": "r0", "source": "x", "prompt_tokens": 32, "output_tokens": 16}],
            "objective": "throughput"}


def _memory_on_the_edge() -> dict:
    """Memory right at the limits' edges: the phone holds every block but not the head's logits
    workspace too; the edge box holds the whole model only because a tied head then shares the
    embedding."""
    data = {"name": "memory-on-the-edge",
            "models": [{"id": "m", "config": {**_config(4), "vocab_size": 150000, "tie_word_embeddings": True},
                        "weight_format": "q4_0"}],
            "devices": [{"id": "phone", "type": "snapdragon-8-gen3", "reserved_memory_gb": 0},
                        {"id": "edge", "type": "rtx-3060", "reserved_memory_gb": 0}],
            "links": [{"a": "phone", "b": "edge", "bandwidth_mbps": 100, "latency_ms": 5}],
            "workload": [{"id": "r0", "source": "phone", "prompt_tokens": 64, "output_tokens": 16, "batch": 16}],
            "objective": "latency"}
    problem = parse_instance(data)
    table = cost_table(problem)
    head_ws, tied = table.kv("r0").head_workspace_bytes, table.weights("m").tied_head_bytes
    for dev, delta in zip(data["devices"], (-head_ws / 2, tied / 2)):
        whole = evaluate(problem, _plan_of(problem, [(dev["id"], 0, 4)])).devices[dev["id"]]
        dev["memory_gb"] = whole.memory_gb + delta / 2**30
    return data


def _load_on_the_edge() -> dict:
    """Two hosts at 0.1 s per block and request rates at which a host holding 3 blocks is 77 %
    busy and one holding 4 is 102 % (each block: 0.1 s prefill + 15 x 0.1 s decode, 0.16 requests/s)."""
    data = _pipeedge(hosts_per_type=1, objective="latency")
    for dev in data["devices"]:
        dev["profile"].update(prefill_ms_per_layer=100.0, decode_ms_per_layer=100.0)
    data["workload"][0]["rate_rps"] = 0.16
    return data


def test_dp_tables_price_every_chain_as_evaluate_does():
    named = dict(zoo(seed=0))
    datas = [_slow_direct_loop(), _memory_on_the_edge(), _load_on_the_edge()] + [named[n] for n in named if n.startswith((
        "throughput-3dev-6blk-star-mixed-2cls-rates", "weighted-3dev-6blk-star-tight-2cls",
        "energy-4dev-5blk-star-tight-2cls-rates", "ttft-3dev-6blk-mesh-ample-2cls", "throughput-table-profiles",
        "infeasible-disconnected-source", "ttft-3dev-4blk-mesh-tight-2cls-slo-tpot", "infeasible-kv-two-classes",
        "latency-3dev-6blk-mesh-tight-rates", "measured-latency-maxlayers", "infeasible-fragmentation"))]
    assert len(datas) == 14
    loop_binds = False
    for data in datas:
        problem = parse_instance(data)
        model = problem.models[0]
        for stages in candidate_pipelines(problem, model):
            shards, routes = assemble([Pipeline(model.id, tuple(r.id for r in problem.workload), stages)])
            plan = Plan(shards=shards, routes=routes)
            metrics = evaluate(problem, plan)
            expected = metrics.objective
            got, feasible = price_chain(problem, [(s.device, s.start, s.end) for s in stages])
            assert feasible == metrics.feasible, (data["name"], stages)
            if math.isfinite(expected) and expected > 0:
                assert got == pytest.approx(expected, rel=1e-9), (data["name"], stages)
            else:  # a device cut off from a source
                assert got in (0.0, math.inf)
            if data["name"] == "slow-direct-loop":
                use = route_resource_seconds(problem, plan, 0)
                loop_binds |= max(use, key=use.get) in (("link", "z", "x"), ("link", "x", "z"))
    assert loop_binds  # the instance does exercise the token's loop channel
    _agree(parse_instance(_slow_direct_loop()))


# -- device order --------------------------------------------------------------------------


def test_device_order_is_a_pipeline_order_and_costs_at_most_what_the_free_search_finds():
    instances = [(n, d) for n, d in zoo(seed=0) if not n.startswith(("infeasible", "two-models", "format"))]
    checked = 0
    for name, data in instances:
        free = solve(parse_instance(data), "dp", options={"precheck": False})
        if free.status != Status.OPTIMAL or len(free.shards) < 2:
            continue
        used = [d for d, _, _ in _stages(free)]
        others = [d["id"] for d in data["devices"] if d["id"] not in used]
        for order in (used + others, others + used[::-1]):
            problem = parse_instance({**data, "constraints": {**data.get("constraints", {}), "device_order": order}})
            plan, _ = _agree(problem)  # the oracle enumerates subsequences of the order too
            if plan.status != Status.OPTIMAL:
                continue
            devices = [d for d, _, _ in _stages(plan)]
            assert devices == [d for d in order if d in devices], (name, order, devices)
            better = (plan.objective > free.objective * (1 + 1e-9) if problem.objective.sense == "max"
                      else plan.objective < free.objective * (1 - 1e-9))
            assert not better, name
        # The free optimum's own order contains it: the ordered DP finds the same value.
        same = solve(parse_instance({**data, "constraints": {**data.get("constraints", {}),
                                                             "device_order": used + others}}), "dp")
        assert same.objective == pytest.approx(free.objective, rel=1e-9), name
        checked += 1
    assert checked >= 5


# -- against the oracle ----------------------------------------------------------------------


def _small_dp_instances(seed: int, max_plans: int):
    for name, data in zoo(seed=seed):
        problem = parse_instance(data)
        if len(problem.models) == 1 and len(problem.models[0].formats) == 1 and count_plans(problem) <= max_plans:
            yield name, problem


@pytest.mark.parametrize("seed", [1, 2])
def test_dp_equals_bruteforce_on_random_chains(seed):
    names = []
    for name, problem in _small_dp_instances(seed, max_plans=600):
        _agree(problem)
        names.append(name)
    assert len(names) >= 20


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 13))
def test_dp_equals_bruteforce_on_many_random_chains(seed):
    for _, problem in _small_dp_instances(seed, max_plans=2000):
        _agree(problem)


def test_slo_that_rules_out_the_unconstrained_optimum():
    # TPOT SLO halfway between the best TPOT any plan reaches and the unconstrained optimum's TPOT.
    checked = 0
    for name, data in zoo(seed=0):
        problem = parse_instance(data)
        if name.startswith(("infeasible", "two-models", "format")) or len(problem.workload) > 1 \
                or problem.workload[0].slo.items() or problem.objective.name in ("tpot", "throughput"):
            continue
        free = solve(problem, "dp")
        fastest = solve(parse_instance({**data, "objective": "tpot"}), "dp")
        free_tpot = evaluate(problem, free).requests["r0"].tpot_ms
        if not fastest.objective < free_tpot * (1 - 1e-6):
            continue  # the optimum is also the fastest: an SLO on TPOT would not bind
        data["workload"][0]["slo"] = {"tpot_ms": (fastest.objective + free_tpot) / 2}
        constrained = parse_instance(data)
        plan, _ = _agree(constrained)
        assert "unconstrained_optimum" in plan.stats and plan.stats["search_nodes"] > 0
        assert _better_or_equal(problem, free.objective, plan.objective)
        assert evaluate(constrained, plan).requests["r0"].tpot_ms <= data["workload"][0]["slo"]["tpot_ms"]
        checked += 1
    assert checked >= 3


def _better_or_equal(problem, a: float, b: float) -> bool:
    return a >= b * (1 - 1e-12) if problem.objective.sense == "max" else a <= b * (1 + 1e-12)


# -- long chains, heuristic mode, time limit -------------------------------------------------


def _local_moves(stages: list[tuple[str, int, int]]):
    """Plans one block boundary away from ``stages``."""
    for i in range(len(stages) - 1):
        (d1, a1, b1), (d2, _, b2) = stages[i], stages[i + 1]
        for cut in (b1 - 1, b1 + 1):
            if a1 < cut < b2:
                yield stages[:i] + [(d1, a1, cut), (d2, cut, b2)] + stages[i + 2:]


def _plan_of(problem, stages) -> Plan:
    shards = tuple(Shard(f"s{i}", "m", d, (a, b)) for i, (d, a, b) in enumerate(stages))
    return Plan(shards=shards, routes=(Route("r0", tuple(s.id for s in shards)),))


def test_eighty_blocks_on_eight_ordered_devices():
    name, data = stress(seed=3, devices=8, blocks=80)
    problem = parse_instance(data)
    free = solve(problem, "dp")
    assert free.status == Status.OPTIMAL and len(free.shards) >= 2
    used = [d for d, _, _ in _stages(free)]
    order = used + [d["id"] for d in data["devices"] if d["id"] not in used]
    ordered = parse_instance({**data, "constraints": {"device_order": order}})
    plan = solve(ordered, "dp")
    assert plan.status == Status.OPTIMAL and plan.stats["mode"] == "ordered"
    assert plan.objective == pytest.approx(free.objective, rel=1e-9)
    assert plan.objective == pytest.approx(evaluate(ordered, plan).objective, rel=1e-9)
    # Independent check: no plan one block boundary away is feasible and better.
    stages = _stages(plan)
    for moved in _local_moves(stages):
        m = evaluate(ordered, _plan_of(ordered, moved))
        assert not (m.feasible and m.objective < plan.objective * (1 - 1e-12)), moved
    # And the same DP on a 12-block, 4-device cut of it equals exhaustive enumeration.
    small_name, small = stress(seed=3, devices=4, blocks=12)
    small["constraints"] = {"device_order": [d["id"] for d in small["devices"]][::-1]}
    _agree(parse_instance(small))


def test_beyond_max_exact_devices_is_a_heuristic_without_bound():
    name, data = next((n, d) for n, d in zoo(seed=0) if n.startswith("latency-4dev-8blk-mesh-tight-sametypes"))
    problem = parse_instance(data)
    exact = solve(problem, "dp")
    plan = solve(problem, "dp", options={"max_exact_devices": 2})
    assert plan.stats["mode"] == "orders"
    assert plan.status in (Status.FEASIBLE, Status.NO_SOLUTION) and plan.bound is None
    if plan.status == Status.FEASIBLE:
        assert plan.termination == Termination.HEURISTIC
        assert plan.objective >= exact.objective * (1 - 1e-12)
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)


def test_time_limit_stops_the_subset_search():
    name, data = stress(seed=1, devices=10, blocks=64)
    for d in data["devices"]:
        d.pop("memory_gb")  # memory to spare: every subset is a state
    problem = parse_instance(data)
    started = time.perf_counter()
    plan = solve(problem, "dp", SolveParams(time_limit_s=0.01))
    assert time.perf_counter() - started < 1.0
    assert plan.termination == Termination.TIME_LIMIT and plan.bound is None
    assert plan.status in (Status.FEASIBLE, Status.NO_SOLUTION)
    if plan.status == Status.FEASIBLE:
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)


# -- what it refuses and how it explains infeasibility ----------------------------------------


def test_throughput_over_classes_without_rates_is_refused():
    data = _pipeedge()
    data["workload"] = [{"id": "r", "source": "A1", "prompt_tokens": 16, "output_tokens": 16},
                        {"id": "s", "source": "B1", "prompt_tokens": 64, "output_tokens": 4}]
    with pytest.raises(UnsupportedProblemError, match="rate_rps"):
        solve(parse_instance(data), "dp")
    data["workload"][0]["rate_rps"], data["workload"][1]["rate_rps"] = 0.1, 0.3
    _agree(parse_instance(data))


@pytest.mark.parametrize("name, words", [
    ("infeasible-fragmentation", ["memory", "contiguous"]),
    ("infeasible-memory-total", ["memory", "needs at least"]),
    ("infeasible-load", ["load", "busy"]),
    ("infeasible-slo-needs-small-device", ["SLO", "TPOT"]),
    ("infeasible-disconnected-source", ["memory", "not reachable"]),
    ("infeasible-profile-max-layers", ["max_layers"]),
])
def test_infeasible_reasons_name_the_binding_limit(name, words):
    data = dict(zoo(seed=0))[name]
    problem = parse_instance(data)
    plan = solve(problem, "dp", options={"precheck": False})
    # With request rates, replicas could share the load: no feasible pipeline then proves nothing.
    expected = Status.NO_SOLUTION if any(r.rate_rps for r in problem.workload) else Status.INFEASIBLE
    assert plan.status == expected and plan.termination == Termination.CONVERGED
    text = " ".join(plan.reasons)
    assert all(w in text for w in words), plan.reasons


# -- the engine against exhaustive enumeration -------------------------------------------------


def _chains(n: int, L: int, ordered: bool):
    for k in range(1, min(n, L) + 1):
        for devices in (itertools.combinations(range(n), k) if ordered else itertools.permutations(range(n), k)):
            for cuts in itertools.combinations(range(1, L), k - 1):
                bounds = (0, *cuts, L)
                yield list(zip(devices, bounds, bounds[1:]))


def _chain_cost(chain, stage, hop, first, end, op=np.add) -> float:
    d = [c[0] for c in chain]
    terms = [first[d[0]], end[d[-1], d[0]]] + [stage[c] for c in chain] + [hop[u, v] for u, v in zip(d, d[1:])]
    return float(sum(terms) if op is np.add else max(terms))


def _enumerate_chains(stage, hop, first, end, op, ordered):
    n, L = stage.shape[0], stage.shape[1] - 1
    return min(_chain_cost(c, stage, hop, first, end, op) for c in _chains(n, L, ordered))


@pytest.mark.parametrize("seed", range(6))
def test_best_chain_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    n, L = 4, 6
    stage = np.where(np.triu(np.ones((L + 1, L + 1)), 1)[None] > 0, rng.uniform(0, 10, (n, L + 1, L + 1)), np.inf)
    stage[rng.uniform(size=stage.shape) < 0.3] = np.inf  # stages some limit forbids
    hop, first, end = rng.uniform(0, 3, (n, n)), rng.uniform(0, 3, n), rng.uniform(0, 3, (n, n))
    for op in (np.add, np.maximum):
        for ordered in (False, True):
            found = best_chain(stage, hop, first, end, op=op, ordered=ordered)
            expected = _enumerate_chains(stage, hop, first, end, op, ordered)
            assert found.value == pytest.approx(expected, rel=1e-12)
            if found.chain:  # the chain it returns has the value it claims
                d = [c[0] for c in found.chain]
                assert _chain_cost(found.chain, stage, hop, first, end, op) == pytest.approx(found.value, rel=1e-12)
                assert [a for _, a, _ in found.chain][0] == 0 and found.chain[-1][2] == L
                assert all(x[2] == y[1] for x, y in zip(found.chain, found.chain[1:]))
                assert len(set(d)) == len(d) and (not ordered or d == sorted(d))


def _additive_tables(rng, n: int, L: int):
    """Random additive tables (per-block costs + a per-stage constant) and valid lower bounds."""
    per_block, per_stage = rng.uniform(0, 5, (n, L)), rng.uniform(0, 2, n)
    hop, first, end = rng.uniform(0, 3, (n, n)), rng.uniform(0, 3, n), rng.uniform(0, 12, (n, n))
    cum = np.concatenate([np.zeros((n, 1)), per_block.cumsum(axis=1)], axis=1)
    upper = np.triu(np.ones((L + 1, L + 1)), 1)[None] > 0
    stage = np.where(upper, cum[:, None, :] - cum[:, :, None] + per_stage[:, None, None], np.inf)
    suffix = np.concatenate([per_block.min(axis=0)[::-1].cumsum()[::-1], [0.0]])
    more = np.where(np.arange(L + 1) < L, per_stage.min() + hop[~np.eye(n, dtype=bool)].min(), 0.0)
    return stage, hop, first, end, (suffix + more + end.min()) * (1 - 1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_best_chain_within_limits_equals_enumeration(seed):
    rng = np.random.default_rng(100 + seed)
    n, L = 4, 6
    stage, hop, first, end, lb = _additive_tables(rng, n, L)
    stage[rng.uniform(size=stage.shape) < 0.2] = np.inf
    cons = [_additive_tables(rng, n, L) for _ in range(2)]
    for op in (np.add, np.maximum):
        for ordered in (False, True):
            chains = [c for c in _chains(n, L, ordered) if all(np.isfinite(stage[x]) for x in c)]
            quantities = np.array([[_chain_cost(c, *t[:4]) for t in cons] for c in chains])
            # Limits that rule out most chains, including (usually) the unconstrained best.
            limits = np.quantile(quantities, 0.35, axis=0)
            ok = [c for c, q in zip(chains, quantities) if (q <= limits).all()]
            expected = min((_chain_cost(c, stage, hop, first, end, op) for c in ok), default=math.inf)
            found = best_chain_within(stage, hop, first, end, op, lb if op is np.add else np.zeros(L + 1),
                                      [(*t, lim) for t, lim in zip(cons, limits)], ordered)
            assert found.complete and found.value == pytest.approx(expected, rel=1e-12)
            if found.chain:
                assert _chain_cost(found.chain, stage, hop, first, end, op) == pytest.approx(found.value, rel=1e-12)
                assert all(_chain_cost(found.chain, *t[:4]) <= lim for t, lim in zip(cons, limits))
