"""Baselines every benchmark reports: the placements people make by hand or by rule.

- ``greedy``: blocks proportional to each device's usable memory (largest
  remainder, at least one block each), largest memory first, as exo's
  memory-weighted ring partitioning does.
- ``uniform``: the same number of blocks on every device of the chain.
- ``source``: the whole model on each request's source device (all-on-device).
- ``cloud``: the whole model on the cloud-tier device with the most memory.
- ``random``: a random contiguous split over a random subset and order of devices
  (seeded).

They construct one plan each and prove nothing: status ``feasible`` and no bound
when the plan keeps every limit, ``no_solution`` with the broken limits otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from placement import Plan, Problem, Status, Termination, cost_table
from solvers.deadline import Deadline
from solvers.chain import Pipeline, StageSpec, assemble, chain_order, memory_order

__all__ = ["solve_greedy", "solve_uniform", "solve_source", "solve_cloud", "solve_random", "proportional_split"]


def proportional_split(num_blocks: int, weights: Sequence[float]) -> list[int]:
    """Split ``num_blocks`` in proportion to ``weights``, at least one each (largest remainder).

    Examples
    --------
    >>> proportional_split(32, [24, 8])
    [24, 8]
    >>> proportional_split(10, [1, 1, 1])
    [4, 3, 3]
    """
    k = len(weights)
    if k == 0 or num_blocks < k:
        raise ValueError(f"cannot give {k} devices at least one of {num_blocks} blocks")
    spare = num_blocks - k
    total = float(sum(weights))
    shares = [spare * w / total if total > 0 else spare / k for w in weights]
    counts = [int(s) for s in shares]
    order = sorted(range(k), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: spare - sum(counts)]:
        counts[i] += 1
    return [c + 1 for c in counts]


def _stages(devices: Sequence[str], counts: Sequence[int]) -> tuple[StageSpec, ...]:
    out, start = [], 0
    for dev, c in zip(devices, counts):
        if c:
            out.append(StageSpec(dev, start, start + c))
            start += c
    return tuple(out)


def _split_plan(problem: Problem, weigh) -> Plan:
    pipelines = []
    for model in problem.models:
        requests = tuple(r.id for r in problem.requests_for(model.id))
        if not requests:
            continue
        devices = chain_order(problem, model.id)[: model.num_blocks]
        counts = proportional_split(model.num_blocks, [weigh(d) for d in devices])
        pipelines.append(Pipeline(model.id, requests, _stages(devices, counts)))
    shards, routes = assemble(pipelines)
    return Plan(shards=shards, routes=routes, status=Status.FEASIBLE, termination=Termination.HEURISTIC)


def solve_greedy(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Memory-proportional split over the chain's devices (exo's rule)."""
    capacity, index = cost_table(problem).capacity_bytes, problem.topology.index
    return _split_plan(problem, lambda d: float(capacity[index[d]]))


def solve_uniform(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Equal split over the chain's devices."""
    return _split_plan(problem, lambda d: 1.0)


def solve_source(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Each model whole on each of its request sources."""
    pipelines = []
    for model in problem.models:
        by_source: dict[str, list[str]] = {}
        for r in problem.requests_for(model.id):
            by_source.setdefault(r.source, []).append(r.id)
        for source, requests in by_source.items():
            pipelines.append(Pipeline(model.id, tuple(requests), (StageSpec(source, 0, model.num_blocks),)))
    shards, routes = assemble(pipelines)
    return Plan(shards=shards, routes=routes, status=Status.FEASIBLE, termination=Termination.HEURISTIC)


def solve_cloud(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Each model whole on the reachable cloud-tier device with the most usable memory."""
    topo = problem.topology
    pipelines = []
    for model in problem.models:
        requests = tuple(r.id for r in problem.requests_for(model.id))
        if not requests:
            continue
        clouds = [d for d in chain_order(problem, model.id) if topo.node(d).tier == "cloud"]
        if not clouds:
            return Plan(status=Status.NO_SOLUTION, termination=Termination.HEURISTIC,
                        reasons=(f"no cloud-tier device is reachable from the sources of {model.id}'s requests",))
        best = memory_order(problem, clouds)[0]
        pipelines.append(Pipeline(model.id, requests, (StageSpec(best, 0, model.num_blocks),)))
    shards, routes = assemble(pipelines)
    return Plan(shards=shards, routes=routes, status=Status.FEASIBLE, termination=Termination.HEURISTIC)


def solve_random(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """A random contiguous split over a random subset and order of the reachable devices."""
    rng = random.Random(params.seed)
    pipelines = []
    for model in problem.models:
        requests = tuple(r.id for r in problem.requests_for(model.id))
        if not requests:
            continue
        devices = sorted(chain_order(problem, model.id))
        k = rng.randint(1, min(len(devices), model.num_blocks))
        chosen = rng.sample(devices, k)
        cuts = sorted(rng.sample(range(1, model.num_blocks), k - 1))
        bounds = [0, *cuts, model.num_blocks]
        stages = tuple(StageSpec(d, a, b) for d, a, b in zip(chosen, bounds, bounds[1:]))
        pipelines.append(Pipeline(model.id, requests, stages))
    shards, routes = assemble(pipelines)
    return Plan(shards=shards, routes=routes, status=Status.FEASIBLE, termination=Termination.HEURISTIC,
                stats={"seed": params.seed})
