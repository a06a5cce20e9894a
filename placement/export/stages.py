"""The shape every engine shares: an ordered list of devices, each holding one block range of one model.

A plan's routes name chains of shards; each distinct chain is a :class:`Pipeline`
of :class:`Stage` s (a device and its half-open block range ``[start, end)``).
Engines that run one pipeline take one of them (:func:`choose_pipeline`); Petals
takes every shard (:func:`model_shards`). Both say, as warnings, what of the
plan is left out; neither guesses: when the plan holds several models or
pipelines and none is named, the export is refused with the list to choose from.
"""

from __future__ import annotations

from dataclasses import dataclass

from placement.evaluate import check_plan, route_shares
from placement.export.base import ExportArgumentError, ExportRefused
from placement.plan import Plan, Shard, Status
from placement.problem import ModelSpec, Problem, RequestClass
from models import Node

__all__ = ["Stage", "Pipeline", "choose_model", "plan_pipelines", "choose_pipeline", "model_shards",
           "pipeline_requests", "context_tokens", "largest_batch"]


@dataclass(frozen=True)
class Stage:
    """Blocks ``[start, end)`` of the model on ``device``, from one or more adjacent shards."""

    device: str
    node: Node
    start: int
    end: int
    formats: tuple[str, ...]  # the weight format of each shard in the stage
    shard_ids: tuple[str, ...]

    @property
    def num_blocks(self) -> int:
        return self.end - self.start

    @property
    def blocks(self) -> tuple[int, int]:
        return (self.start, self.end)

    def describe(self) -> str:
        return f"{'+'.join(self.shard_ids)}@{self.device} [{self.start}, {self.end})"


@dataclass(frozen=True)
class Pipeline:
    """One chain of stages covering the model's blocks in order, and the traffic the plan sends it.

    ``number`` counts the plan's distinct chains from 1, in the order routes first use them;
    ``traffic`` pairs each request class with the share of its requests routed here.
    """

    number: int
    model: ModelSpec
    stages: tuple[Stage, ...]
    traffic: tuple[tuple[str, float], ...] = ()

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(s.device for s in self.stages)

    def describe(self) -> str:
        chain = " -> ".join(s.describe() for s in self.stages)
        served = ", ".join(f"{r} {100 * f:.0f}%" for r, f in self.traffic)
        return f"pipeline {self.number}: {chain}" + (f" ({served})" if served else "")


def _format_of(model: ModelSpec, shard: Shard) -> str:
    return shard.weight_format or model.weight_format


def _stages(problem: Problem, model: ModelSpec, shards: list[Shard], engine: str, what: str) -> tuple[Stage, ...]:
    """Shards in block order as stages, adjacent shards on one device merged into one stage."""
    out: list[Stage] = []
    for s in shards:
        last = out[-1] if out else None
        if last is not None and last.device == s.device and last.end == s.layers[0]:
            out[-1] = Stage(s.device, last.node, last.start, s.layers[1], (*last.formats, _format_of(model, s)),
                            (*last.shard_ids, s.id))
            continue
        out.append(Stage(s.device, problem.topology.node(s.device), s.layers[0], s.layers[1],
                         (_format_of(model, s),), (s.id,)))
    seen: dict[str, Stage] = {}
    for st in out:
        if st.device in seen:
            raise ExportRefused(engine, f"{what} visits device {st.device} twice ({seen[st.device].describe()} and "
                                        f"{st.describe()}); an engine gives each device one contiguous range")
        seen[st.device] = st
    return tuple(out)


def choose_model(problem: Problem, plan: Plan, engine: str, model_id: str | None = None) -> ModelSpec:
    """The model to export: the one the plan places, or ``model_id`` when it places several.

    Raises
    ------
    InvalidPlanError
        If the plan does not fit the instance (unknown devices, shards, ranges).
    ExportRefused
        If the plan places nothing, or several models and none is named.
    ExportArgumentError
        If ``model_id`` is not a model of the instance.
    """
    check_plan(problem, plan)
    if not plan.shards:
        why = f"; {plan.reasons[0]}" if plan.reasons else ""
        raise ExportRefused(engine, f"the plan places no shards (status {plan.status}){why}")
    placed = list(dict.fromkeys(s.model for s in plan.shards))
    if model_id is not None:
        if model_id not in {m.id for m in problem.models}:
            raise ExportArgumentError(f"--model {model_id}: no such model in the instance "
                                      f"(models: {', '.join(m.id for m in problem.models)})")
        if model_id not in placed:
            raise ExportRefused(engine, f"the plan places no shard of {model_id} (it places {', '.join(placed)})")
        return problem.model(model_id)
    if len(placed) > 1:
        raise ExportRefused(engine, f"the plan places {len(placed)} models ({', '.join(placed)}) and an engine "
                                    "serves one per launch; choose one with --model")
    return problem.model(placed[0])


def plan_pipelines(problem: Problem, plan: Plan, model: ModelSpec, engine: str) -> tuple[Pipeline, ...]:
    """The distinct chains of shards the plan's routes take through ``model``.

    A plan without routes for the model is one pipeline when its shards tile the
    blocks exactly once; otherwise which chain to run would be a guess.
    """
    shards = {s.id: s for s in plan.shards}
    order: list[tuple[str, ...]] = []
    traffic: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    by_class: dict[str, list] = {}
    for route in plan.routes:
        by_class.setdefault(route.request, []).append(route)
    shares = {id(r): share for routes in by_class.values() for r, share in zip(routes, route_shares(routes))}
    for route in plan.routes:
        if problem.request(route.request).model != model.id:
            continue
        if route.path not in traffic:
            order.append(route.path)
            traffic[route.path] = []
        traffic[route.path].append((route.request, shares[id(route)]))
    if not order:
        own = sorted((s for s in plan.shards if s.model == model.id), key=lambda s: s.layers)
        tiles = bool(own) and own[0].layers[0] == 0 and own[-1].layers[1] == model.num_blocks and all(
            a.layers[1] == b.layers[0] for a, b in zip(own, own[1:]))
        if not tiles:
            raise ExportRefused(engine, f"the plan has no route through {model.id} and its shards do not form one "
                                        "pipeline (they overlap or leave blocks out)")
        order.append(tuple(s.id for s in own))
        traffic[order[0]] = []
    return tuple(
        Pipeline(i, model, _stages(problem, model, [shards[sid] for sid in path], engine, f"pipeline {i}"),
                 tuple(traffic[path]))
        for i, path in enumerate(order, start=1)
    )


def _status_warning(plan: Plan) -> list[str]:
    if plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        return []
    why = f": {plan.reasons[0]}" if plan.reasons else ""
    return [f"the plan's status is {plan.status}: it breaks the instance's limits{why}"]


def choose_pipeline(problem: Problem, plan: Plan, model: ModelSpec, engine: str,
                    number: int | None = None) -> tuple[Pipeline, list[str]]:
    """The one pipeline a single-pipeline engine runs, and warnings about what is left out.

    Raises
    ------
    ExportRefused
        If the plan holds several pipelines of the model and ``number`` names none.
    ExportArgumentError
        If ``number`` is not one of the plan's pipelines.
    """
    pipes = plan_pipelines(problem, plan, model, engine)
    if number is None and len(pipes) > 1:
        listing = "; ".join(p.describe() for p in pipes)
        raise ExportRefused(engine, f"the plan holds {len(pipes)} pipelines of {model.id} and {engine} runs one "
                                    f"per launch; choose one with --pipeline N ({listing})")
    if number is not None and not 1 <= number <= len(pipes):
        raise ExportArgumentError(f"--pipeline {number}: the plan holds {len(pipes)} pipeline(s) of {model.id} "
                                  f"({'; '.join(p.describe() for p in pipes)})")
    chosen = pipes[(number or 1) - 1]
    warnings = _status_warning(plan)
    others = [p for p in pipes if p is not chosen]
    if others:
        warnings.append(f"{engine} runs one pipeline per launch: exported {chosen.describe()}; not exported "
                        + "; ".join(p.describe() for p in others) + " (export each with --pipeline N)")
    used = {sid for p in pipes for st in p.stages for sid in st.shard_ids}
    idle = [s.id for s in plan.shards if s.model == model.id and s.id not in used]
    if idle:
        warnings.append(f"shards on no route are not exported: {', '.join(idle)}")
    split = [(r, f) for r, f in chosen.traffic if f < 1 - 1e-9]
    if split:
        shares = ", ".join(f"{100 * f:.0f}% of {r}" for r, f in split)
        warnings.append(f"{engine} takes no routing fractions: this pipeline serves every request it is sent; "
                        f"the plan sends it {shares}")
    return chosen, warnings


def model_shards(problem: Problem, plan: Plan, model: ModelSpec) -> tuple[tuple[Stage, ...], list[str]]:
    """Every shard of ``model`` as a one-shard stage (replicas included), in plan order."""
    stages = tuple(Stage(s.device, problem.topology.node(s.device), s.layers[0], s.layers[1],
                         (_format_of(model, s),), (s.id,)) for s in plan.shards if s.model == model.id)
    return stages, _status_warning(plan)


def pipeline_requests(problem: Problem, model: ModelSpec) -> tuple[RequestClass, ...]:
    return problem.requests_for(model.id)


def context_tokens(problem: Problem, model: ModelSpec) -> int:
    """The longest KV reservation per sequence among the model's request classes (tokens)."""
    requests = problem.requests_for(model.id)
    return max((problem.context_tokens(r) for r in requests), default=0)


def largest_batch(problem: Problem, model: ModelSpec) -> int:
    """The most sequences any of the model's request classes decodes together."""
    return max((r.batch for r in problem.requests_for(model.id)), default=1)
