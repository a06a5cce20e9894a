"""The solver registry: what each solver can do, which plans it searches, its typed
options, whether its backend imports, and where its code lives (imported only when
the solver runs).

A solver is a function ``(problem, params, options, deadline) -> Plan``: ``params``
are the :class:`~solvers.api.SolveParams` every solver honours, ``options`` its own
declared options (validated, defaults filled in), ``deadline`` the
:class:`~solvers.deadline.Deadline` its inner loops watch.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from placement import Problem
from solvers.options import Option

__all__ = ["WITH_GOODPUT", "Capabilities", "SolverInfo", "PlanSpace", "PLAN_SPACES", "PIPELINE", "REPLICATED", "RANGES",
           "CACHE", "ROUTING", "register",
           "registered", "solver_info", "UnknownSolverError"]

ALL_OBJECTIVES = frozenset({"latency", "ttft", "tpot", "energy", "throughput", "weighted"})
# Goodput is a search over request rates on top of queueing; only solvers that judge whole plans by
# evaluate() can aim at it.
WITH_GOODPUT = ALL_OBJECTIVES | {"goodput"}
# What the model-caching solvers optimise: per-request metrics, quality, churn, unserved demand and their mixes.
CACHING_OBJECTIVES = frozenset({"latency", "ttft", "tpot", "energy", "weighted", "quality", "churn", "unserved"})


class UnknownSolverError(LookupError):
    def __init__(self, name: str, known: list[str]):
        self.name = name
        super().__init__(f"unknown solver {name!r} (registered: {', '.join(known)})")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class PlanSpace:
    """A set of plans a solver searches.

    ``complete(problem)`` says whether the set holds a plan that keeps every limit
    whenever ``problem`` has one; then "no plan of the set meets the limits" proves
    the instance infeasible. It says nothing about optima: an optimum over the set
    is reported as one over the set (the plan space is printed with the plan).
    ``outside`` names the plans the set leaves out, for the message of a proof that
    does not reach them.
    """

    name: str
    description: str
    complete: Callable[[Problem], bool]
    outside: str = ""


def _pipeline_complete(problem: Problem) -> bool:
    # Every model serves one class and no rates are given: every route of a feasible plan is then
    # a feasible pipeline on its own (SLOs hold per route, dropping shards frees memory). Several
    # classes (different sources or SLOs) or rates (replicas can share the load) break that.
    return all(len(problem.requests_for(m.id)) <= 1 for m in problem.models) and \
        not problem.has_request_rates()


PIPELINE = PlanSpace(
    "pipeline", "one pipeline per model: distinct devices, each holding one contiguous range of blocks, shared by "
                "all of the model's request classes", _pipeline_complete,
    outside="replicated shards, several routes per class")
REPLICATED = PlanSpace(
    "replicated", "copies of a model (whole, or pipelines), one or more per model, each request class routed "
                  "through one or several of them", lambda problem: False)


def _cache_complete(problem: Problem) -> bool:
    # Whole-model instances are all a plan can use when each class's source reaches no other device (a
    # pipeline over one device only adds stage overheads) and no model offers a choice of formats (which
    # a pipeline could mix); elsewhere a partitioned instance could do better.
    return all(len(problem.topology.reachable(r.source)) == 1 for r in problem.workload) and \
        all(len(m.formats) == 1 for m in problem.models)


CACHE = PlanSpace(
    "cache", "model instances, each a whole model in one weight format on one device, each request class routed "
             "by fractions over the instances of models it accepts and over its declared cascades, the rest "
             "declared unserved with a reason", _cache_complete,
    outside="a model partitioned over several devices, a device holding one model in two formats")
ROUTING = PlanSpace(
    "routing", "routings of the instance's current cache: shares of each request class over its whole-model "
               "instances and declared cascades, the rest declared unserved with a reason", lambda problem: False,
    outside="caches other than the current one")
RANGES = PlanSpace(
    "ranges", "one model; each device holds at most one contiguous range of its blocks (fitting with the KV cache "
              "of every request class; replicas and overlaps allowed); the classes routed over the shards by "
              "max-flow, every route meeting its SLOs", _pipeline_complete,
    outside="a device holding more than one range of blocks")
PLAN_SPACES = {s.name: s for s in (PIPELINE, REPLICATED, RANGES, CACHE, ROUTING)}


@dataclass(frozen=True)
class Capabilities:
    """Problem features a solver handles.

    Attributes
    ----------
    objectives : frozenset of str
        Objective names it optimises (``weighted`` for mixes).
    multi_model : bool
        More than one model in the instance.
    multi_request : bool
        More than one request class (per model).
    format_choice : bool
        Chooses a weight format per shard from ``models[].allowed_formats``.
    throughput_profiles : bool
        Devices with measured throughput-by-layers tables (non-additive stage times).
    portfolio : bool
        Model-caching features (:meth:`Problem.portfolio_features`): classes accepting several
        models or a minimum quality, cascades, a current cache, a utilisation limit, objective
        terms quality, churn, unserved.
    queueing : bool
        ``constraints.queueing``: TTFT and end-to-end latency include the wait for a free slot at
        the request rates, which depends on everything a device serves (only solvers that price
        whole plans, or model the wait exactly, take it).
    max_devices, max_blocks : int or None
        Largest instance it accepts (``None``: no limit).
    """

    objectives: frozenset[str] = ALL_OBJECTIVES
    multi_model: bool = True
    multi_request: bool = True
    format_choice: bool = False
    throughput_profiles: bool = True
    portfolio: bool = False
    queueing: bool = False
    max_devices: int | None = None
    max_blocks: int | None = None

    def unsupported(self, problem: Problem) -> list[str]:
        """Why this solver cannot take ``problem`` (empty if it can)."""
        why = []
        if problem.objective.name not in self.objectives:
            why.append(f"objective {problem.objective.name!r}")
        if len(problem.models) > 1 and not self.multi_model:
            why.append("more than one model")
        if not self.multi_request and any(len(problem.requests_for(m.id)) > 1 for m in problem.models):
            why.append("more than one request class per model")
        if not self.format_choice and any(len(m.formats) > 1 for m in problem.models):
            why.append("a choice of weight formats (allowed_formats)")
        if not self.throughput_profiles and any(p.throughput_tokens_per_s for n in problem.topology.nodes
                                                for p in n.profiles):
            why.append("measured throughput profiles")
        if not self.portfolio:
            why.extend(problem.portfolio_features())
        if problem.constraints.queueing and not self.queueing:
            why.append("queueing (constraints.queueing: waits for a free slot in TTFT)")
        if self.max_devices is not None and len(problem.topology.nodes) > self.max_devices:
            why.append(f"more than {self.max_devices} devices")
        if self.max_blocks is not None and any(m.num_blocks > self.max_blocks for m in problem.models):
            why.append(f"more than {self.max_blocks} blocks")
        return why


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver.

    ``entry`` is ``"module:function"`` (see the module docstring for its signature).
    ``requires`` lists the Python modules every run needs; ``backend_requires`` pairs a
    backend (the value of its ``backend`` option) with the modules that backend alone
    needs, so that a missing one refuses that backend only. ``plan_space`` is the
    set of plans it searches: an exact solver's ``optimal`` and ``bound`` are claims
    about that set. ``options`` declares its own settings. ``precondition``
    (``"module:function"``, optional) names a function ``problem -> list of reasons``
    for refusals that capability flags cannot express; it may import the solver's
    module but not its backends.
    """

    name: str
    family: str
    summary: str
    exact: bool
    entry: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    requires: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    backend_requires: tuple[tuple[str, tuple[str, ...]], ...] = ()
    options: tuple[Option, ...] = ()
    plan_space: PlanSpace = PIPELINE
    precondition: str | None = None

    def available(self) -> bool:
        """Whether the modules every run needs import."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def backend_missing(self, backend: str | None) -> list[str]:
        """The modules ``backend`` needs beyond :attr:`requires` that do not import (empty if none).

        >>> info = SolverInfo(name="x", family="x", summary="", exact=True, entry="x:x",
        ...                   backend_requires=(("cbc", ("no_such_module_here",)),))
        >>> info.backend_missing("cbc"), info.backend_missing("highs")
        (['no_such_module_here'], [])
        """
        needs = dict(self.backend_requires).get(backend, ())
        return [m for m in needs if importlib.util.find_spec(m) is None]

    def unsupported(self, problem: Problem) -> list[str]:
        """Why this solver cannot take ``problem`` (empty if it can)."""
        why = self.capabilities.unsupported(problem)
        if not why and self.precondition:
            why = list(_resolve(self.precondition)(problem))
        return why

    def option(self, name: str) -> Option:
        return {o.name: o for o in self.options}[name]

    def load(self) -> Callable:
        return _resolve(self.entry)


def _resolve(entry: str) -> Callable:
    module, func = entry.split(":")
    return getattr(importlib.import_module(module), func)


_REGISTRY: dict[str, SolverInfo] = {}


def register(info: SolverInfo) -> SolverInfo:
    if info.name in _REGISTRY:
        raise ValueError(f"solver {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def registered() -> list[SolverInfo]:
    """Every registered solver, in registration order."""
    return list(_REGISTRY.values())


def solver_info(name: str) -> SolverInfo:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownSolverError(str(name), list(_REGISTRY)) from None
