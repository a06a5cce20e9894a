"""Helpers shared by solvers that split a model into a pipeline of stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from placement import Problem, Route, Shard, cost_table

__all__ = ["StageSpec", "Pipeline", "chain_order", "assemble", "memory_order"]


@dataclass(frozen=True)
class StageSpec:
    """Blocks ``[start, end)`` of a model on ``device`` (optionally in another format)."""

    device: str
    start: int
    end: int
    weight_format: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """A model split into stages, serving the listed request classes (``fraction`` of each: all when ``None``)."""

    model: str
    requests: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    fraction: float | None = None


def memory_order(problem: Problem, device_ids: Sequence[str]) -> list[str]:
    """``device_ids`` by usable memory, largest first (ties by id, for determinism)."""
    capacity, index = cost_table(problem).capacity_bytes, problem.topology.index
    return sorted(device_ids, key=lambda d: (-float(capacity[index[d]]), d))


def chain_order(problem: Problem, model_id: str) -> list[str]:
    """The devices a chain solver may use for ``model_id``, in pipeline order.

    ``constraints.device_order`` when the instance gives one; otherwise the
    devices reachable from the model's request sources, largest memory first;
    either way without the devices that hold no blocks (``holds_blocks: false``).
    """
    topo = problem.topology
    may_hold = cost_table(problem).may_hold  # gateways and coordinators hold no blocks
    if problem.constraints.device_order:
        return [d for d in problem.constraints.device_order if may_hold[topo.index[d]]]
    reach: set[str] = set()
    for req in problem.requests_for(model_id):
        reach |= topo.reachable(req.source)
    return memory_order(problem, [n.id for d, n in enumerate(topo.nodes) if n.id in reach and may_hold[d]])


def assemble(pipelines: Sequence[Pipeline]) -> tuple[tuple[Shard, ...], tuple[Route, ...]]:
    """Shards and routes for ``pipelines``: one shard per stage, one route per request class."""
    shards: list[Shard] = []
    routes: list[Route] = []
    for pipe in pipelines:
        path = []
        for st in pipe.stages:
            sid = f"s{len(shards)}"
            shards.append(Shard(sid, pipe.model, st.device, (st.start, st.end), st.weight_format))
            path.append(sid)
        routes.extend(Route(rid, tuple(path), fraction=pipe.fraction) for rid in pipe.requests)
    return tuple(shards), tuple(routes)
