"""The matching-game solver: swap-stability, contiguity, determinism, and its objective against
evaluate() and an exhaustive optimum (all checked with evaluate, independently of the solver)."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time

import pytest

from instances.zoo import stress, zoo
from placement import Objective, Plan, Proof, Route, Shard, Status, Termination, cost_table, evaluate, parse_instance
from placement.costs import GIB
from solvers import SolveParams, solve

_DEVICES = ["rtx-3060", "jetson-orin-nx-16gb", "apple-m4", "snapdragon-8-gen3", "l4", "raspberry-pi-5-8gb"]
_OBJECTIVES = ["latency", "ttft", "tpot", "energy", "throughput", {"latency": 1.0, "energy": 5.0}]


def _config(layers: int, hidden: int = 2048) -> dict:
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 16,
            "num_key_value_heads": 4, "intermediate_size": 4 * hidden, "vocab_size": 32000, "torch_dtype": "float16"}


def random_instance(seed: int, objective=None, max_devices: int = 3, max_blocks: int = 6):
    """A small random instance: a few devices, most too small for the whole model (so it is split),
    random links, one or two request classes (some with rates or SLOs)."""
    rng = random.Random(seed)
    L, D = rng.randint(3, max_blocks), rng.randint(2, max_devices)
    devices = [{"id": f"d{i}", "type": rng.choice(_DEVICES), "reserved_memory_gb": 0.0} for i in range(D)]
    links = [{"a": f"d{i}", "b": f"d{j}", "bandwidth_mbps": rng.choice([20, 100, 1000]),
              "latency_ms": rng.choice([1, 10, 40]), "energy_nj_per_bit": rng.choice([0, 50])}
             for i in range(D) for j in range(i + 1, D) if j == i + 1 or rng.random() < 0.5]
    workload = []
    for k in range(rng.randint(1, 2)):
        req = {"id": f"r{k}", "source": f"d{rng.randrange(D)}", "prompt_tokens": rng.choice([64, 512]),
               "output_tokens": rng.choice([8, 64, 256]), "batch": rng.choice([1, 4])}
        if rng.random() < 0.3:
            req["rate_rps"] = rng.choice([0.05, 0.5])
        if rng.random() < 0.3:
            req["slo"] = {"tpot_ms": rng.choice([40, 150])}
        workload.append(req)
    data = {
        "name": f"random-{seed}", "models": [{"id": "m", "config": _config(L), "weight_format": "fp16"}],
        "devices": devices, "links": links, "workload": workload,
        "objective": objective if objective is not None else rng.choice(_OBJECTIVES),
    }
    # Memory: the engine's runtime plus 45-120% of the whole model's footprint, from the cost table.
    problem = parse_instance(data)
    table = cost_table(problem)
    whole = float(table.shard_memory_bytes("m", None, 0, L, problem.workload))
    for i, dev in enumerate(devices):
        dev["memory_gb"] = (table.runtime_bytes("fp16")[i] + rng.uniform(0.45, 1.2) * whole) / GIB
    return parse_instance(data)


def two_model_instance(seed: int):
    """Two small models sharing three devices' memory, with their own sources (rates half the time)."""
    rng = random.Random(seed)
    devices = [{"id": f"d{i}", "type": rng.choice(_DEVICES), "reserved_memory_gb": 0.0} for i in range(3)]
    links = [{"a": f"d{i}", "b": f"d{j}", "bandwidth_mbps": rng.choice([20, 100, 1000]),
              "latency_ms": rng.choice([1, 10, 40])}
             for i, j in ((0, 1), (1, 2), (0, 2)) if j == i + 1 or rng.random() < 0.5]
    workload = [{"id": "a0", "model": "a", "source": f"d{rng.randrange(3)}", "prompt_tokens": 128,
                 "output_tokens": rng.choice([8, 64])},
                {"id": "b0", "model": "b", "source": f"d{rng.randrange(3)}", "prompt_tokens": 256,
                 "output_tokens": rng.choice([8, 64])}]
    if rng.random() < 0.5:
        for req in workload:
            req["rate_rps"] = rng.choice([0.1, 1.0])
    data = {"name": f"two-models-{seed}", "devices": devices, "links": links, "workload": workload,
            "models": [{"id": "a", "config": _config(rng.randint(2, 3)), "weight_format": "fp16"},
                       {"id": "b", "config": _config(rng.randint(2, 3), hidden=1024), "weight_format": "fp16"}],
            "objective": rng.choice(_OBJECTIVES)}
    problem = parse_instance(data)
    table = cost_table(problem)
    whole = sum(float(table.shard_memory_bytes(r.model, None, 0, problem.model(r.model).num_blocks, [r]))
                for r in problem.workload)
    for i, dev in enumerate(devices):
        dev["memory_gb"] = (table.runtime_bytes("fp16")[i] + rng.uniform(0.4, 1.2) * whole) / GIB
    return parse_instance(data)


def _pipelines(problem, plan) -> dict[str, list[tuple[str, int, int]]]:
    """Each model's stages ``(device, start, end)`` in route order (one route per class, all equal)."""
    shards = {s.id: s for s in plan.shards}
    out: dict[str, list] = {}
    for route in plan.routes:
        stages = [(shards[sid].device, *shards[sid].layers) for sid in route.path]
        model = problem.request(route.request).model
        assert out.setdefault(model, stages) == stages, "all classes of a model share one pipeline"
    return out


def _plan(problem, pipelines: dict[str, list[tuple[str, int, int]]]) -> Plan:
    shards, routes = [], []
    for model, stages in pipelines.items():
        ids = []
        for d, a, b in stages:
            ids.append(f"s{len(shards)}")
            shards.append(Shard(ids[-1], model, d, (a, b)))
        routes += [Route(r.id, tuple(ids)) for r in problem.requests_for(model)]
    return Plan(shards=tuple(shards), routes=tuple(routes))


def _swap_neighbours(problem, pipelines):
    """Every plan one swap away: a moved boundary; a stage handed to a neighbour; two stages' ranges
    exchanged; two devices swapping places or one device moving in the pipeline order, each keeping
    its number of blocks; a stage moved to an unused device; a stage split with an unused device; a
    device handing its range to a neighbour and splitting another stage's range; two devices trading
    everything they hold, in every model's pipeline."""
    devices = problem.topology.ids
    for model, S in pipelines.items():
        k = len(S)
        unused = [u for u in devices if u not in {d for d, _, _ in S}]
        counts = [(d, b - a) for d, a, b in S]
        variants = []
        for i in range(k - 1):
            (d1, a1, b1), (d2, _, b2) = S[i], S[i + 1]
            variants += [S[:i] + [(d1, a1, c), (d2, c, b2)] + S[i + 2:] for c in range(a1 + 1, b2) if c != b1]
        for i, (d, a, b) in enumerate(S):
            reduced = []
            if i > 0:
                reduced.append(S[:i - 1] + [(S[i - 1][0], S[i - 1][1], b)] + S[i + 1:])
            if i < k - 1:
                reduced.append(S[:i] + [(S[i + 1][0], a, S[i + 1][2])] + S[i + 2:])
            variants += reduced
            for R in reduced:
                for j, (e, x, y) in enumerate(R):
                    for c in range(x + 1, y):
                        variants.append(R[:j] + [(d, x, c), (e, c, y)] + R[j + 1:])
                        variants.append(R[:j] + [(e, x, c), (d, c, y)] + R[j + 1:])
            for j in range(k):
                if i < j:
                    new = list(S)
                    new[i], new[j] = (S[j][0], a, b), (d, S[j][1], S[j][2])
                    variants.append(new)
                    order = list(counts)
                    order[i], order[j] = counts[j], counts[i]
                    variants.append(_from_counts(order))
                if abs(i - j) > 1:
                    order = counts[:i] + counts[i + 1:]
                    order.insert(j, counts[i])
                    variants.append(_from_counts(order))
            for u in unused:
                variants.append(S[:i] + [(u, a, b)] + S[i + 1:])
                for c in range(a + 1, b):
                    variants.append(S[:i] + [(u, a, c), (d, c, b)] + S[i + 1:])
                    variants.append(S[:i] + [(d, a, c), (u, c, b)] + S[i + 1:])
        for new in variants:
            yield _plan(problem, {**pipelines, model: new})
    used = {d for S in pipelines.values() for d, _, _ in S}
    for d, e in itertools.combinations(devices, 2):  # two devices trade everything, in every model
        if d in used or e in used:
            swap = {d: e, e: d}
            yield _plan(problem, {m: [(swap.get(x, x), a, b) for x, a, b in S] for m, S in pipelines.items()})


def _from_counts(counts):
    bounds = list(itertools.accumulate([n for _, n in counts], initial=0))
    return [(d, a, b) for (d, _), a, b in zip(counts, bounds, bounds[1:])]


def _better(problem, value: float, than: float, rel: float = 1e-7) -> bool:
    if problem.objective.sense == "max":
        return value > than * (1 + rel)
    return value < than - rel * abs(than)


def _improving_swaps(problem, plan) -> list[float]:
    """Objectives of the distinct feasible plans one swap away that are better than ``plan``."""
    base = evaluate(problem, plan).objective
    found, seen = [], set()
    for other in _swap_neighbours(problem, _pipelines(problem, plan)):
        key = tuple((s.model, s.device, s.layers) for s in other.shards)
        if key in seen:
            continue
        seen.add(key)
        m = evaluate(problem, other)
        if m.feasible and _better(problem, m.objective, base):
            found.append(m.objective)
    return found


def _exhaustive_optimum(problem) -> float | None:
    """Best feasible objective over every ordered device sequence and contiguous split (one model)."""
    model = problem.models[0]
    L, best = model.num_blocks, None
    for k in range(1, min(len(problem.topology.ids), L) + 1):
        for devices in itertools.permutations(problem.topology.ids, k):
            for cuts in itertools.combinations(range(1, L), k - 1):
                bounds = [0, *cuts, L]
                plan = _plan(problem, {model.id: list(zip(devices, bounds, bounds[1:]))})
                m = evaluate(problem, plan)
                if m.feasible and (best is None or _better(problem, m.objective, best, rel=0.0)):
                    best = m.objective
    return best


def _assert_contiguous(problem, plan):
    pipelines = _pipelines(problem, plan)
    for model, stages in pipelines.items():
        devices = [d for d, _, _ in stages]
        assert len(set(devices)) == len(devices), f"{model}: a device holds more than one range"
        assert stages[0][1] == 0 and stages[-1][2] == problem.model(model).num_blocks
        assert all(x[2] == y[1] for x, y in zip(stages, stages[1:]))
    assert len(plan.shards) == sum(len(s) for s in pipelines.values()), "every shard is on a route"


@pytest.mark.parametrize("objective", _OBJECTIVES, ids=str)
def test_swap_stable_contiguous_and_objective_is_evaluate(objective):
    checked = 0
    for seed in range(12):
        problem = random_instance(seed, objective=objective, max_devices=4, max_blocks=8)
        plan = solve(problem, "matching", options={"precheck": False})
        if not plan.has_solution:
            continue
        checked += 1
        assert plan.status is Status.FEASIBLE and plan.bound is None and plan.termination is Termination.HEURISTIC
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
        assert plan.stats["stable"] is True and plan.stats["blocking_pairs"] == []
        _assert_contiguous(problem, plan)
        assert _improving_swaps(problem, plan) == []
        if checked == 3:
            break
    assert checked == 3


def test_never_beats_the_exhaustive_optimum():
    checked = 0
    for seed in range(10, 22):
        problem = random_instance(seed)
        best = _exhaustive_optimum(problem)
        plan = solve(problem, "matching", options={"precheck": False})
        if best is None:
            assert not plan.has_solution
            continue
        checked += 1
        assert plan.has_solution, f"seed {seed}: a feasible plan exists but matching found none"
        assert not _better(problem, plan.objective, best, rel=1e-9)
    assert checked >= 6


def test_two_models_never_beat_the_oracle():
    # Two models compete for memory: some optima need both pipelines to move at once.
    checked = 0
    for seed in range(8):
        problem = two_model_instance(seed)
        best = solve(problem, "bruteforce", options={"precheck": False})
        plan = solve(problem, "matching", options={"precheck": False})
        if best.status is not Status.OPTIMAL:
            assert not plan.has_solution
            continue
        checked += 1
        assert plan.has_solution
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
        assert not _better(problem, plan.objective, best.objective, rel=1e-9)
        _assert_contiguous(problem, plan)
        assert _improving_swaps(problem, plan) == []
    assert checked >= 4


def test_same_seed_same_plan():
    problem = random_instance(5, max_devices=4, max_blocks=10)
    runs = [solve(problem, "matching", SolveParams(seed=7), options={"precheck": False}) for _ in range(2)]
    assert runs[0].shards == runs[1].shards and runs[0].routes == runs[1].routes
    assert runs[0].objective == runs[1].objective and runs[0].stats == runs[1].stats


def test_stopped_early_reports_the_improving_swaps_left():
    # max_swaps=0 keeps the deferred-acceptance matching as it is; the improving swaps that remain
    # are exactly what an independent enumeration with evaluate() finds.
    seen = 0
    for problem in [random_instance(seed, max_devices=4, max_blocks=10) for seed in range(30)] + \
            [two_model_instance(seed) for seed in range(12)]:
        plan = solve(problem, "matching", options={"precheck": False, "max_swaps": 0, "restarts": 1})
        if not plan.has_solution:
            continue
        left = _improving_swaps(problem, plan)
        assert len(plan.stats["blocking_pairs"]) == len(left)
        assert plan.stats["stable"] is (not left)
        if left:
            seen += 1
            assert plan.termination is Termination.ITERATION_LIMIT
            assert all(p["improvement"] > 0 for p in plan.stats["blocking_pairs"])
    assert seen, "no deferred-acceptance matching needed a swap on these instances"


def test_two_models_and_free_classes():
    # Two models share devices' memory; three classes without rates make throughput an LP.
    problem = parse_instance({
        "name": "two-models",
        "models": [{"id": "a", "config": _config(4), "weight_format": "fp16"},
                   {"id": "b", "config": _config(5, hidden=1024), "weight_format": "fp16"}],
        "devices": [{"id": "x", "type": "rtx-3060", "memory_gb": 2.0, "reserved_memory_gb": 0.1},
                    {"id": "y", "type": "apple-m4", "memory_gb": 1.6, "reserved_memory_gb": 0.1},
                    {"id": "z", "type": "jetson-orin-nx-16gb", "memory_gb": 1.2, "reserved_memory_gb": 0.1}],
        "links": [{"a": "x", "b": "y", "bandwidth_mbps": 100, "latency_ms": 5},
                  {"a": "y", "b": "z", "bandwidth_mbps": 1000, "latency_ms": 1}],
        "workload": [{"id": "p", "source": "x", "model": "a", "prompt_tokens": 256, "output_tokens": 64},
                     {"id": "q", "source": "z", "model": "a", "prompt_tokens": 64, "output_tokens": 16},
                     {"id": "r", "source": "y", "model": "b", "prompt_tokens": 128, "output_tokens": 32}],
        "objective": "throughput",
    })
    for objective in ("throughput", "latency"):
        problem = dataclasses.replace(problem, objective=Objective.of(objective))
        plan = solve(problem, "matching")
        assert plan.has_solution
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
        assert plan.stats["stable"]
        _assert_contiguous(problem, plan)
        assert _improving_swaps(problem, plan) == []


def test_throughput_profiles_and_device_order():
    devices = [{"id": "n0", "type": "a100-sxm-40gb",
                "profile": {"model": "m", "max_layers": 4, "throughput_tokens_per_s": {1: 900.0, 4: 200.0}}},
               {"id": "n1", "type": "l4", "profile": {"model": "m", "max_layers": 3,
                                                       "throughput_tokens_per_s": {1: 500.0, 3: 150.0}}},
               {"id": "n2", "type": "t4"}]
    links = [{"a": "n0", "b": "n1", "bandwidth_mbps": 1000, "latency_ms": 1},
             {"a": "n1", "b": "n2", "bandwidth_mbps": 1000, "latency_ms": 1}]
    base = {"name": "profiled", "models": [{"id": "m", "config": _config(6), "weight_format": "fp16"}],
            "devices": devices, "links": links, "objective": "throughput",
            "workload": [{"id": "w", "source": "n0", "prompt_tokens": 128, "output_tokens": 32}]}
    problem = parse_instance(base)
    plan = solve(problem, "matching")
    assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
    assert plan.objective <= _exhaustive_optimum(problem) * (1 + 1e-9)
    assert _improving_swaps(problem, plan) == []
    ordered = parse_instance({**base, "constraints": {"device_order": ["n2", "n1", "n0"]}})
    plan = solve(ordered, "matching")
    rank = {"n2": 0, "n1": 1, "n0": 2}
    devices_used = [d for d, _, _ in _pipelines(ordered, plan)["m"]]
    assert devices_used == sorted(devices_used, key=rank.__getitem__)
    assert not _better(ordered, plan.objective, solve(ordered, "bruteforce").objective, rel=1e-9)


def test_no_feasible_matching_is_no_solution_with_reasons():
    # Eight devices that each fit exactly one middle block (with workspace and runtime): together
    # they hold the model's weights on their face, but no device fits block 0 with the embedding.
    def instance(memory_gb: float):
        return parse_instance({
            "name": "tight", "models": [{"id": "m", "config": _config(4), "weight_format": "fp16"}],
            "devices": [{"id": f"d{i}", "type": "rtx-3060", "memory_gb": memory_gb, "reserved_memory_gb": 0.0}
                        for i in range(8)],
            "links": [{"a": "d0", "b": f"d{i}", "bandwidth_mbps": 100, "latency_ms": 1} for i in range(1, 8)],
            "workload": [{"id": "w", "source": "d0", "prompt_tokens": 64, "output_tokens": 8}],
        })
    roomy = instance(8.0)
    table = cost_table(roomy)

    def stage_bytes(a: int, b: int) -> float:
        return float(table.shard_memory_bytes("m", None, a, b, roomy.workload))

    problem = instance((stage_bytes(1, 2) + table.runtime_bytes("fp16")[0]) / GIB)
    assert stage_bytes(0, 1) > stage_bytes(1, 2)
    plan = solve(problem, "matching")
    assert plan.status is Status.NO_SOLUTION and not plan.shards and plan.objective is None
    assert plan.proof is Proof.NONE
    assert plan.reasons and "GB" in plan.reasons[0]


def test_time_limit_is_honoured():
    problem = parse_instance(stress(0)[1])
    plan = solve(problem, "matching", SolveParams(time_limit_s=0.05))
    assert plan.termination is Termination.TIME_LIMIT
    assert plan.solve_time_s < 2.0
    if plan.has_solution:
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)
        # Stopped early: stable only if a full scan found nothing to improve, and then nothing blocks.
        assert not (plan.stats["stable"] and plan.stats["blocking_pairs"])
    else:
        assert plan.status is Status.NO_SOLUTION and plan.reasons


@pytest.mark.slow
def test_zoo_within_ten_percent_of_the_optimum_on_average():
    ratios = []
    for name, data in zoo(0):
        problem = parse_instance(data)
        if any(len(m.formats) > 1 for m in problem.models):
            continue  # no weight-format choice in the matching game
        best = solve(problem, "bruteforce")
        plan = solve(problem, "matching")
        if best.status is not Status.OPTIMAL:
            assert not plan.has_solution, name
            continue
        assert plan.has_solution, name
        assert not _better(problem, plan.objective, best.objective, rel=1e-9), name
        ratios.append(plan.objective / best.objective if problem.objective.sense == "min"
                      else best.objective / plan.objective)
    assert len(ratios) >= 20 and sum(ratios) / len(ratios) <= 1.10


def _star(n_devices: int, num_blocks: int) -> dict:
    """A hub linked to ``n_devices - 1`` edge devices, one model of ``num_blocks`` blocks."""
    rng = random.Random(n_devices)
    devices = [{"id": "hub", "type": "a100-sxm-80gb", "tier": "cloud"}]
    devices += [{"id": f"d{i}", "type": rng.choice(["rtx-3060", "jetson-orin-nano-8gb", "apple-m1"])}
                for i in range(n_devices - 1)]
    links = [{"a": "hub", "b": f"d{i}", "bandwidth_mbps": rng.choice([100, 1000]), "latency_ms": rng.choice([1, 5])}
             for i in range(n_devices - 1)]
    return {"name": f"star-{n_devices}", "devices": devices, "links": links,
            "models": [{"id": "m", "config": _config(num_blocks, hidden=512), "weight_format": "fp16"}],
            "workload": [{"id": "chat", "source": "d0", "prompt_tokens": 256, "output_tokens": 64}]}


def test_huge_instances_are_refused_before_any_table_is_built():
    from solvers import UnsupportedProblemError
    from solvers.matching import matching_unsupported
    problem = parse_instance(_star(2000, 4096))
    started = time.perf_counter()
    with pytest.raises(UnsupportedProblemError, match=r"2,000 devices x 4,096 blocks .* GB budget"):
        solve(problem, "matching")
    assert time.perf_counter() - started < 1.0
    assert "cost_table" not in problem._cache, "the cost table was compiled for a refused instance"
    assert matching_unsupported(parse_instance(_star(1000, 32))) == []


def test_the_deadline_stops_a_scan_midway():
    # 400 devices x 64 blocks: the first scan of the swap neighbourhood (every split with every unused
    # device) scores tens of thousands of plans; a clock read only between scans would finish it.
    problem = parse_instance(_star(400, 64))
    one_scan = solve(problem, "matching", options={"restarts": 1, "max_swaps": 0})
    limit = 0.2
    started = time.perf_counter()
    plan = solve(problem, "matching", SolveParams(time_limit_s=limit), options={"restarts": 1})
    elapsed = time.perf_counter() - started
    assert plan.termination is Termination.TIME_LIMIT
    assert elapsed < limit + 0.5, f"{elapsed:.2f} s with a {limit} s limit"
    assert plan.stats["evaluations"] < one_scan.stats["evaluations"], "the first scan ran to its end"
    assert plan.stats["stable"] is False and plan.stats["swaps"] == 0
    if plan.has_solution:
        assert plan.objective == pytest.approx(evaluate(problem, plan).objective, rel=1e-9)


def test_no_cost_formula_in_the_matching_package():
    # Every number matching scores with is the cost table's: no workload, device or unit arithmetic here.
    from pathlib import Path
    forbidden = [".rate_rps", ".batch", ".output_tokens", ".prompt_tokens", "profile_for", "throughput_at",
                 "usable_memory_gb", "memory_gb", "bytes_per_s", "hidden_size", ".prefill_s", ".decode_s",
                 "_overhead_s", "power_w", "linprog", "roofline", "1e3", "1e-3"]
    package = Path(__file__).resolve().parent.parent / "solvers" / "matching"
    for path in sorted(package.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = [name for name in forbidden if name in line]
            assert not found, f"{path.name}:{number}: {found}: {line.strip()}"
            # GB appear only in words (a refusal's message), never in a computation.
            if "GIB" in line and not line.lstrip().startswith(("from ", "import ")):
                assert "/ GIB:" in line, f"{path.name}:{number}: GIB outside a message: {line.strip()}"


def _random_pipeline(rng: random.Random, devices: list[int], num_blocks: int) -> tuple[tuple[int, int, int], ...]:
    k = rng.randint(1, min(len(devices), num_blocks))
    chosen = rng.sample(devices, k)
    bounds = [0, *sorted(rng.sample(range(1, num_blocks), k - 1)), num_blocks]
    return tuple(zip(chosen, bounds, bounds[1:]))


def test_scores_are_evaluates_numbers():
    # The scorer ranks states by evaluate()'s own numbers: its value is the objective (negated when
    # maximised) and it finds a limit broken exactly when evaluate() does.
    from solvers.matching.scoring import Scorer
    from solvers.matching.tables import build_tables
    rng = random.Random(3)
    problems = [random_instance(seed, objective=obj, max_devices=4, max_blocks=8)
                for seed, obj in zip(range(40, 46), _OBJECTIVES)]
    problems += [two_model_instance(seed) for seed in range(2)]
    compared = broken = 0
    for problem in problems:
        models, _ = build_tables(problem, cost_table(problem))
        scorer = Scorer(problem, cost_table(problem), models)
        ids = problem.topology.ids
        for _ in range(10):
            state = tuple(_random_pipeline(rng, list(mt.candidates), mt.num_blocks) for mt in models)
            score = scorer.score(state)
            metrics = evaluate(problem, _plan(problem, {mt.id: [(ids[d], a, b) for d, a, b in st]
                                                        for mt, st in zip(models, state)}))
            sign = -1.0 if problem.objective.sense == "max" else 1.0
            assert score.value == pytest.approx(sign * metrics.objective, rel=1e-9)
            assert (score.violation == 0) == metrics.feasible, (problem.name, state, metrics.violations)
            compared += 1
            broken += not metrics.feasible
    assert compared == 80 and 10 < broken < 70
