"""Unserved demand: why a share of a request class is not served, and whether a plan's reason holds.

A plan may declare part of a class unserved (:class:`~placement.plan.Unserved`) with a reason:

- ``quality``: no accepted model, in any allowed format, meets the class's ``min_quality`` and
  its SLOs (whole, on any device its requests can reach, memory aside);
- ``memory``: some model would, but no device has room for it (or for the class's KV cache on
  an instance already there);
- ``capacity``: the instances that could serve it are busy up to ``constraints.max_utilization``;
- ``cost``: serving it would cost more than leaving it unserved, by the objective's own
  ``unserved`` weight or its ``churn`` (a load that costs more than it gains);
- ``cache``: the plan keeps the current cache (it loads nothing), and no instance of that
  cache that would serve the class has room and time left (routing over a given cache).

:func:`refutation` tests a declared reason against the evidence the cost table gives, and
says what contradicts it: a class the catalog says can be served is not a ``quality`` case;
a device with room and time left for an instance that would serve it, or an instance of the
plan with time left that could take more of it, contradict ``memory`` and ``capacity``; and
``cost`` needs an objective that can make serving a loss. These are sound tests (they refute
only what certainly could have been served, by whole-model instances), not a search.
:func:`choose_reason` picks the reason that holds, with its numbers, for a solver to declare.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from placement.costs.caching import CachingView
from placement.costs.tables import GIB
from placement.plan import Reason
from placement.problem import Problem

__all__ = ["DeviceState", "refutation", "choose_reason", "servable"]

_SLACK = 1e-6  # a device busier than (1 - this) x its limit has no time left


@dataclass(frozen=True)
class DeviceState:
    """What a plan leaves on each device (index ``d``): bytes used and usable, the engine runtime it
    pays, its busy share (0 without request rates), and the whole-model instances it holds as
    ``(candidate index, classes routed to it)``."""

    used_bytes: np.ndarray
    capacity_bytes: np.ndarray
    runtime_bytes: np.ndarray
    load: np.ndarray
    instances: tuple[tuple[tuple[int, frozenset[str]], ...], ...]
    loads: bool = False  # whether the plan loads any shard the current cache does not hold
    cached: frozenset[int] = frozenset()  # candidates the current cache holds whole

    def free_bytes(self, d: int) -> float:
        return float(self.capacity_bytes[d] - self.used_bytes[d])

    def has_time(self, d: int, limit: float) -> bool:
        return float(self.load[d]) < limit * (1 - _SLACK)


def servable(view: CachingView, c: int) -> bool:
    """Whether some accepted model meets class ``c``'s quality floor and SLOs whole on a reachable device."""
    return bool(np.any(view.eligible[c]))


def _new_instance_bytes(view: CachingView, state: DeviceState, c: int, t: int) -> float:
    """Bytes a new instance of candidate ``t`` for class ``c`` takes on its device: weights, the class's
    KV cache and workspace, and the engine runtime beyond what the device already pays."""
    return (view.weight_mem_bytes[t] + view.kv_mem_bytes[c, t] + view.workspace_mem_bytes[c, t]
            + max(0.0, view.runtime_mem_bytes[t] - state.runtime_bytes[int(view.device[t])]))


def _new_instance(view: CachingView, state: DeviceState, c: int) -> int | None:
    """A candidate that would serve class ``c`` and fits, with time left, on a device as the plan leaves it."""
    for t in np.flatnonzero(view.eligible[c] & view.fits):
        d = int(view.device[t])
        need = _new_instance_bytes(view, state, c, t)
        if need <= state.free_bytes(d) and state.has_time(d, view.max_utilization):
            return int(t)
    return None


def _residents_with_time(view: CachingView, state: DeviceState, c: int) -> Iterator[int]:
    """The plan's instances that would serve class ``c`` and have time (and room for its KV) left."""
    for d, held in enumerate(state.instances):
        if not state.has_time(d, view.max_utilization):
            continue
        for t, classes in held:
            if view.eligible[c, t] and (view.requests[c] in classes or view.kv_mem_bytes[c, t]
                                        + view.workspace_mem_bytes[c, t] <= state.free_bytes(d)):
                yield t


def _cost_possible(problem: Problem) -> bool:
    terms = {name for name, _ in problem.objective.terms}
    return "unserved" in terms or "churn" in terms


def _worth_serving(view: CachingView, state: DeviceState, c: int, share: float) -> str:
    """An instance that would serve some of class ``c``'s unserved ``share`` for less than leaving it
    unserved costs (its load included), or ""."""
    gain = view.unserved_cost - view.cost[c]  # per request, by candidate
    for t in _residents_with_time(view, state, c):
        if gain[t] > 0:
            return f"{view.model[t]} ({view.weight_format[t]}) is resident and would serve it for less"
    for t in np.flatnonzero(view.eligible[c] & view.fits):
        d = int(view.device[t])
        need = _new_instance_bytes(view, state, c, t)
        if need > state.free_bytes(d) or not state.has_time(d, view.max_utilization):
            continue
        room = view.max_utilization - float(state.load[d])
        carried = min(share, room / view.busy[c, t]) if view.busy[c, t] > 0 else share
        if view.class_weight[c] * carried * gain[t] > view.churn_cost[t] * (1 + 1e-9):
            return (f"loading {view.model[t]} ({view.weight_format[t]}) on a device with room and time would serve "
                    "it for less than leaving it unserved, its load included")
    return ""


def refutation(problem: Problem, view: CachingView, state: DeviceState, c: int, reason: Reason,
               share: float = 1.0) -> str:
    """What contradicts ``reason`` for leaving ``share`` of class ``c`` unserved ("" when nothing does)."""
    if reason is Reason.QUALITY:
        if servable(view, c):
            t = int(np.flatnonzero(view.eligible[c])[0])
            return (f"{view.model[t]} ({view.weight_format[t]}) meets its quality floor and SLOs on "
                    f"{problem.topology.nodes[int(view.device[t])].id}")
        return ""
    if not servable(view, c):
        return "no accepted model meets its quality floor and SLOs on any reachable device (reason quality)"
    if reason is Reason.CACHE:
        return _cache_refutation(problem, view, state, c)
    if reason is Reason.COST:
        if not _cost_possible(problem):
            return ("the objective weighs no unserved demand nor churn, so leaving a servable request unserved is "
                    "never cheaper")
        return _worth_serving(view, state, c, share)
    t = _new_instance(view, state, c)
    if t is not None:
        d = problem.topology.nodes[int(view.device[t])].id
        return f"{d} has room and time left for {view.model[t]} ({view.weight_format[t]}), which would serve it"
    t = next(_residents_with_time(view, state, c), None)
    if t is not None:
        d = problem.topology.nodes[int(view.device[t])].id
        return f"the plan's {view.model[t]} ({view.weight_format[t]}) on {d} would serve it and has time left"
    if reason is Reason.CAPACITY and state.load.max(initial=0.0) == 0.0 and not view.rates:
        return "without request rates no device is ever busy"
    return ""


def _cache_refutation(problem: Problem, view: CachingView, state: DeviceState, c: int) -> str:
    if problem.cache is None:
        return "the instance has no current cache"
    if state.loads:
        return "the plan loads shards the current cache does not hold, so it does not keep the cache"
    held = {t for d in state.instances for t, _ in d}
    for t in sorted(state.cached):
        if not view.eligible[c, t]:
            continue
        d = int(view.device[t])
        need = view.kv_mem_bytes[c, t] + view.workspace_mem_bytes[c, t]
        if t not in held:
            need += view.weight_mem_bytes[t] + max(0.0, view.runtime_mem_bytes[t] - state.runtime_bytes[d])
        in_plan = any(t == k and view.requests[c] in classes for k, classes in state.instances[d])
        if state.has_time(d, view.max_utilization) and (in_plan or need <= state.free_bytes(d)):
            return (f"the cached {view.model[t]} ({view.weight_format[t]}) on {problem.topology.nodes[d].id} would "
                    "serve it and has time left")
    return ""


def _gb(nbytes: float) -> str:
    return f"{nbytes / GIB:.2f} GB"


def _quality_detail(problem: Problem, view: CachingView, c: int) -> str:
    req = problem.workload[c]
    options = np.flatnonzero(view.accepts[c] & view.reach_ok[c])
    if not len(options):
        return f"no accepted model ({', '.join(req.accepted)}) has a network path to and from {req.source}"
    parts = []
    if req.min_quality is not None:
        scores = view.score[c, options]
        best = options[int(np.nanargmax(scores))] if np.any(~np.isnan(scores)) else None
        if best is None:
            parts.append(f"no accepted model has a {req.benchmark} score")
        else:
            parts.append(f"min_quality {req.min_quality:g} on {req.benchmark}: best {view.model[best]} "
                         f"({view.weight_format[best]}) {view.score[c, best]:.1f}")
    good = options[view.quality_ok[c, options]]
    if req.slo.items() and len(good):
        fastest = good[int(np.argmin(view.e2e_ms[c, good]))]
        slo = ", ".join(f"{k.replace('_ms', '').upper()} {v:g} ms" for k, v in req.slo.items())
        parts.append(f"those good enough miss its SLO ({slo}): fastest {view.model[fastest]} "
                     f"({view.weight_format[fastest]}) on {problem.topology.nodes[int(view.device[fastest])].id}, "
                     f"E2E {view.e2e_ms[c, fastest]:,.0f} ms")
    return "; ".join(parts) or "no accepted model meets its quality floor within its SLO"


def _memory_detail(problem: Problem, view: CachingView, state: DeviceState, c: int) -> str:
    options = np.flatnonzero(view.eligible[c])
    t = int(options[np.argmin(view.cost[c, options])])
    d = int(view.device[t])
    need = view.weight_mem_bytes[t] + view.kv_mem_bytes[c, t] + view.workspace_mem_bytes[c, t]
    free = [(state.free_bytes(int(view.device[k])), problem.topology.nodes[int(view.device[k])].id) for k in options]
    most, where = max(free)
    return (f"its cheapest instance, {view.model[t]} ({view.weight_format[t]}) on {problem.topology.nodes[d].id}, "
            f"needs {_gb(need)}; the devices that could hold an instance for it have at most {_gb(max(most, 0.0))} "
            f"free ({where})")


def _capacity_detail(problem: Problem, view: CachingView, state: DeviceState, c: int) -> str:
    devices = sorted({int(view.device[t]) for t in np.flatnonzero(view.eligible[c])})
    busy = ", ".join(f"{problem.topology.nodes[d].id} {state.load[d]:.0%}" for d in devices[:6])
    return f"the devices that could serve it are busy ({busy}; limit {view.max_utilization:.0%})"


def _kept_cache_detail(problem: Problem, view: CachingView, state: DeviceState, c: int) -> str:
    usable = [t for t in sorted(state.cached) if view.eligible[c, t]]
    if not usable:
        return "no instance of the current cache meets its quality floor and SLOs"
    where = ", ".join(f"{view.model[t]} on {problem.topology.nodes[int(view.device[t])].id} "
                      f"(busy {state.load[int(view.device[t])]:.0%})" for t in usable[:4])
    return f"the cached instances that would serve it have no time or room left: {where}"


def _time_is_short(view: CachingView, state: DeviceState, c: int) -> bool:
    """Whether time, not room, is what stops more of class ``c`` being served: an instance of the plan
    that would serve it is at the limit, or a device with room for a new one has no time left."""
    for d, held in enumerate(state.instances):
        if any(view.eligible[c, t] for t, _ in held) and not state.has_time(d, view.max_utilization):
            return True
    for t in np.flatnonzero(view.eligible[c] & view.fits):
        d = int(view.device[t])
        need = _new_instance_bytes(view, state, c, t)
        if need <= state.free_bytes(d) and not state.has_time(d, view.max_utilization):
            return True
    return False


def choose_reason(problem: Problem, view: CachingView, state: DeviceState, c: int, share: float = 1.0,
                  keep_cache: bool = False) -> tuple[Reason, str]:
    """The reason (with its numbers) for leaving part of class ``c`` unserved in a plan whose devices
    are as ``state`` says: quality when nothing could serve it; else capacity or memory, whichever
    stops more being served, when nothing refutes it; else cost, when the objective allows it
    (else ``memory`` with what refutes it: the plan then breaks a limit)."""
    if not servable(view, c):
        return Reason.QUALITY, _quality_detail(problem, view, c)
    if keep_cache and not refutation(problem, view, state, c, Reason.CACHE):
        return Reason.CACHE, _kept_cache_detail(problem, view, state, c)
    if not refutation(problem, view, state, c, Reason.MEMORY):
        if _time_is_short(view, state, c):
            return Reason.CAPACITY, _capacity_detail(problem, view, state, c)
        return Reason.MEMORY, _memory_detail(problem, view, state, c)
    if not refutation(problem, view, state, c, Reason.COST, share):
        return Reason.COST, "serving it would cost more than leaving it unserved, at the objective's weights"
    return Reason.MEMORY, refutation(problem, view, state, c, Reason.MEMORY)
