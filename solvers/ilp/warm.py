"""Warm starts for the placement program: any plan in, the best pipeline plan it holds out.

A *provider* is a function ``(problem, params, deadline) -> Plan | None`` that
quickly finds a plan (``dp`` is registered here; a fast max-flow placement can
register itself with :func:`register_warm_start`). :func:`warm_starts` runs the
providers an option names, and :func:`best_pipeline_plan` turns each plan into
the pipeline plans it holds (one pipeline per model: the plan itself when it is
one; for a plan with several routes per class, each route's path as the model's
pipeline) and keeps the best one that keeps every limit, judged by
:func:`placement.evaluate`. The ilp solver then

- starts its backend from it (:func:`start_vector`, with interchangeable devices
  renumbered so that it keeps the program's symmetry rows),
- for throughput, searches only for strictly better plans (segments whose own load
  already reaches the warm start's bottleneck are dropped), and
- answers at least that plan, whatever the backend returns.

Examples
--------
>>> from placement import load_instance
>>> from solvers import SolveParams
>>> from solvers.deadline import Deadline
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> found = warm_starts(problem, ["dp"], SolveParams(), Deadline(10))
>>> [w.source for w in found], found[0].proven   # dp proved it optimal over the same pipelines
(['dp'], True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from placement import Plan, Problem, Status, evaluate
from placement.costs.symmetry import interchangeable_devices
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.deadline import Deadline

__all__ = ["WarmStart", "register_warm_start", "warm_starts", "best_pipeline_plan", "pipelines_of",
           "start_vector", "canonical", "PROVIDERS"]

Provider = Callable[[Problem, Any, Deadline], "Plan | None"]

# name -> "module:function" (imported when used) or the function itself.
PROVIDERS: dict[str, str | Provider] = {"dp": "solvers.ilp.warm:dp_start"}
SHARE_OF_TIME = 0.3  # of the time left, the most the providers together may take


def register_warm_start(name: str, provider: str | Provider) -> None:
    """Make ``provider`` available as ``-O warm_start=NAME`` of ilp (``auto`` runs every one)."""
    PROVIDERS[name] = provider


@dataclass(frozen=True)
class WarmStart:
    """A pipeline plan a provider found, its objective (as ``evaluate`` has it) and the pipelines."""

    source: str
    plan: Plan
    objective: float
    pipelines: tuple[Pipeline, ...]
    proven: bool  # the provider proved it optimal over the plans ilp searches


def _provider(name: str) -> Provider:
    entry = PROVIDERS[name]
    if isinstance(entry, str):
        module, func = entry.split(":")
        return getattr(importlib.import_module(module), func)
    return entry


def dp_start(problem: Problem, params: Any, deadline: Deadline) -> Plan | None:
    """dp's plan when dp takes the instance (one model, its one format), else ``None``."""
    from solvers.dp import dp_unsupported, solve_dp
    from solvers.registry import solver_info
    info = solver_info("dp")
    if info.unsupported(problem) or dp_unsupported(problem):
        return None
    options = {o.name: o.default for o in info.options}
    return solve_dp(problem, params, options, deadline)


def pipelines_of(problem: Problem, plan: Plan) -> list[list[Pipeline]]:
    """Candidate pipeline plans (one :class:`Pipeline` per placed model) held in ``plan``.

    A plan whose every class of a model routes through one path gives that pipeline;
    a model whose classes take several paths gives one candidate per path (every class
    of the model through it). Models without a route give no candidate.
    """
    shards = {s.id: s for s in plan.shards}
    per_model: list[list[Pipeline]] = []
    for model in problem.models:
        requests = tuple(r.id for r in problem.requests_for(model.id))
        if not requests:
            continue
        paths = list(dict.fromkeys(route.path for route in plan.routes if route.request in requests))
        options = []
        for path in paths:
            try:
                stages = tuple(StageSpec(shards[s].device, *shards[s].layers, shards[s].weight_format) for s in path)
            except KeyError:
                continue
            options.append(Pipeline(model.id, requests, stages))
        if not options:
            return []
        per_model.append(options)
    # Every model's first path with every other model's: the paths of one model are compared
    # with the others' fixed (a cross product could be large and buys little).
    out = [[opts[0] for opts in per_model]]
    for m, opts in enumerate(per_model):
        for alt in opts[1:]:
            out.append([alt if k == m else o[0] for k, o in enumerate(per_model)])
    return out


def best_pipeline_plan(problem: Problem, source: str, plan: Plan) -> WarmStart | None:
    """The best pipeline plan held in ``plan`` that keeps every limit, or ``None``."""
    best = None
    sense = 1.0 if problem.objective.sense == "min" else -1.0
    candidates = pipelines_of(problem, plan)
    single = len(candidates) == 1  # the plan is itself one pipeline per model
    for pipes in candidates:
        shards, routes = assemble(pipes)
        candidate = Plan(shards=shards, routes=routes)
        metrics = evaluate(problem, candidate)
        if not metrics.feasible:
            continue
        value = float(metrics.objective)
        if best is None or sense * value < sense * best.objective:
            best = WarmStart(source, candidate, value, tuple(pipes), plan.status is Status.OPTIMAL and single)
    return best


def warm_starts(problem: Problem, names: Sequence[str], params: Any, deadline: Deadline) -> list[WarmStart]:
    """Run the providers ``names`` within :data:`SHARE_OF_TIME` of what ``deadline`` has left; each
    one's best pipeline plan that keeps every limit."""
    share = Deadline(deadline.left() * SHARE_OF_TIME)
    out = []
    for name in names:
        if share.expired():
            break
        plan = _provider(name)(problem, params, share)
        if plan is None or not plan.shards:
            continue
        found = best_pipeline_plan(problem, name, plan)
        if found is not None:
            out.append(found)
    return out


def canonical(problem: Problem, pipelines: Sequence[Pipeline]) -> tuple[Pipeline, ...]:
    """``pipelines`` with interchangeable devices renumbered: in each class, the members a plan uses
    are its lowest-indexed ones, the most used first (by how many models use them, then pipeline
    position). Interchangeable devices cost alike, so the plan's every metric is unchanged."""
    topo = problem.topology
    use: dict[int, list[int]] = {}
    order = 0
    for pipe in pipelines:
        for st in pipe.stages:
            d = topo.index[st.device]
            use.setdefault(d, [0, order])[0] -= 1
            order += 1
    rename: dict[str, str] = {}
    for cls in interchangeable_devices(problem):
        used = sorted((use[d][0], use[d][1], d) for d in cls if d in use)
        for (_, _, d), target in zip(used, cls):
            rename[topo.nodes[d].id] = topo.nodes[target].id
    return tuple(Pipeline(p.model, p.requests, tuple(StageSpec(rename.get(s.device, s.device), s.start, s.end,
                                                              s.weight_format) for s in p.stages), p.fraction)
                 for p in pipelines)


def start_vector(form, pipelines: Sequence[Pipeline]) -> np.ndarray | None:
    """The formulation's binaries for ``pipelines`` (segments, hops, loops, runtime levels), or ``None``
    when one of their shards or transfers is not a variable of the program."""
    problem = form.problem
    topo = problem.topology
    x = np.zeros(form.num_vars)
    seg_at = {key: i for i, key in enumerate(zip(*(form.seg[k].tolist() for k in "mdabf")))}
    hop_at = {key: i for i, key in enumerate(zip(*(form.hop[k].tolist() for k in "muvb")))}
    loop_at = {key: i for i, key in enumerate(zip(*(form.loop[k].tolist() for k in "med")))}
    off_h, off_w, off_r = form.offsets
    model_pos = {model.id: mi for mi, (model, _, _) in enumerate(form.models)}
    for pipe in pipelines:
        mi = model_pos.get(pipe.model)
        if mi is None:
            return None
        model, _, fmts = form.models[mi]
        devs = []
        for st in pipe.stages:
            fmt = st.weight_format or model.weight_format
            if fmt not in fmts:
                return None
            key = (mi, topo.index[st.device], st.start, st.end, fmts.index(fmt))
            if key not in seg_at:
                return None
            x[seg_at[key]] = 1.0
            devs.append(topo.index[st.device])
        for u, v, st in zip(devs, devs[1:], pipe.stages[1:]):
            key = (mi, u, v, st.start)
            if key not in hop_at:
                return None
            x[off_h + hop_at[key]] = 1.0
        key = (mi, devs[-1], devs[0])
        if key not in loop_at:
            return None
        x[off_w + loop_at[key]] = 1.0
    for k, members in form.level_members:  # a runtime level is paid when any shard it covers is held
        x[off_r + k] = float(x[: len(form.seg["m"])][members].any())
    return x
