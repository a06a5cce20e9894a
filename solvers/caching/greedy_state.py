"""The greedy's working data: every way to serve a class as flat arrays, and a feasible plan under construction.

:class:`ServingOptions` lists, once per instance, every *option* ``k`` of the caching view: a
class served on one candidate instance (``second[k] == -1``), or a declared cascade over two
(``cascade[k]`` its index in the view's :class:`~placement.costs.caching.CascadeOptions`), with
its class-weighted cost per unit share and the busy share per unit share it keeps on each of
its (at most two) devices. Every number is the view's: the arrays are gathered, never computed.

:class:`Serving` is a plan the search keeps feasible at every step: the resident instances,
each option's share, each class's unserved share, each device's busy share and free memory
(weights, the largest engine runtime, and each class's KV cache and the largest workspace on
every instance it reserves room on), as :func:`placement.evaluate` counts them. Its
:meth:`Serving.value` is the objective of the plan it stands for.

Examples
--------
>>> from placement import load_instance
>>> from placement.costs.caching import caching_view
>>> view = caching_view(load_instance("instances/portfolio.yaml"))
>>> options = ServingOptions.of(view)
>>> state = Serving.empty(options)
>>> bool(state.value() == options.unserved_cost.sum())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placement.costs.caching import CachingView
from solvers.caching.formulation import MARGIN
from solvers.caching.plans import Solution

__all__ = ["ServingOptions", "Serving", "SHARE_TOL"]

SHARE_TOL = 1e-12  # a share below this is none


@dataclass(frozen=True)
class ServingOptions:
    """Every option of the view as arrays over ``k`` (see the module docstring); ``touching(t)``:
    the options that use instance ``t``; ``unserved_cost[c]``: a class's weighted cost of leaving
    all of it unserved."""

    view: CachingView
    cls: np.ndarray
    cost: np.ndarray
    first: np.ndarray
    second: np.ndarray
    cascade: np.ndarray
    dev1: np.ndarray
    busy1: np.ndarray
    dev2: np.ndarray
    busy2: np.ndarray
    touching_index: np.ndarray  # options using each instance, instance by instance
    touching_start: np.ndarray  # [T + 1]: where each instance's run starts in touching_index
    unserved_cost: np.ndarray
    direct_cost: np.ndarray  # [C, T]: weighted cost of class c on t alone (inf where it cannot)
    direct_busy: np.ndarray  # [C, T]
    has_cascade: np.ndarray  # [T]: some cascade option uses the instance

    @property
    def size(self) -> int:
        return len(self.cls)

    @classmethod
    def of(cls, view: CachingView) -> "ServingOptions":
        """The options of ``view``: instances that fit their device, cascades over two of them."""
        weight = view.class_weight
        c_d, t_d = np.nonzero(view.eligible & view.fits[None, :])
        cas = view.cascades
        keep = np.flatnonzero(view.fits[cas.first] & view.fits[cas.second]) if len(cas) else np.zeros(0, np.int64)
        c_p, i_p, j_p = cas.cls[keep], cas.first[keep], cas.second[keep]
        # A cascade whose two instances share a device keeps that one device busy for both.
        same = view.device[i_p] == view.device[j_p]
        busy_second = cas.busy_second[keep]
        rates = 1.0 if view.rates else 0.0  # without rates no device's time is limited
        options = dict(
            cls=np.concatenate([c_d, c_p]).astype(np.int64),
            cost=np.concatenate([weight[c_d] * view.cost[c_d, t_d], weight[c_p] * cas.cost[keep]]),
            first=np.concatenate([t_d, i_p]).astype(np.int64),
            second=np.concatenate([np.full(len(t_d), -1), j_p]).astype(np.int64),
            cascade=np.concatenate([np.full(len(t_d), -1), keep]).astype(np.int64),
            busy1=rates * np.concatenate([view.busy[c_d, t_d],
                                          cas.busy_first[keep] + np.where(same, busy_second, 0.0)]),
            dev2=np.concatenate([np.full(len(t_d), -1), np.where(same, -1, view.device[j_p])]).astype(np.int64),
            busy2=rates * np.concatenate([np.zeros(len(t_d)), np.where(same, 0.0, busy_second)]),
        )
        options["dev1"] = view.device[options["first"]]
        T = view.num_candidates
        ends = np.concatenate([options["first"], options["second"]])
        index = np.concatenate([np.arange(len(ends) // 2)] * 2)
        mine = ends >= 0
        order = np.lexsort((index[mine], ends[mine]))
        touching_index = index[mine][order]
        touching_start = np.searchsorted(ends[mine][order], np.arange(T + 1))
        direct_cost = np.full(view.eligible.shape, np.inf)
        direct_cost[c_d, t_d] = options["cost"][:len(c_d)]
        direct_busy = np.zeros(view.eligible.shape)
        direct_busy[c_d, t_d] = options["busy1"][:len(c_d)]
        unserved_cost = weight * view.unserved_cost
        has_cascade = np.zeros(T, dtype=bool)
        has_cascade[np.concatenate([i_p, j_p]).astype(np.int64)] = True
        return cls(view=view, touching_index=touching_index, touching_start=touching_start, unserved_cost=unserved_cost, direct_cost=direct_cost,
                   direct_busy=direct_busy,
                   has_cascade=has_cascade, **options)

    def touching(self, t: int) -> np.ndarray:
        """The options that use instance ``t``."""
        return self.touching_index[self.touching_start[t]:self.touching_start[t + 1]]

    def devices_of(self, k: int) -> tuple[tuple[int, float], ...]:
        """``(device, busy share per unit share)`` of option ``k``."""
        if self.dev2[k] >= 0:
            return (int(self.dev1[k]), float(self.busy1[k])), (int(self.dev2[k]), float(self.busy2[k]))
        return ((int(self.dev1[k]), float(self.busy1[k])),)

    def instances_of(self, k: int) -> tuple[int, ...]:
        return (int(self.first[k]),) if self.second[k] < 0 else (int(self.first[k]), int(self.second[k]))


class Serving:
    """A feasible plan under construction (see the module docstring). ``active[c]``: the options
    of class ``c`` with a share, and that share."""

    __slots__ = ("options", "cache", "share", "unserved", "load", "reserved", "workspace", "runtime", "free",
                 "time_limit", "active")

    def __init__(self, options: ServingOptions, cache, share, unserved, load, reserved, workspace, runtime, free,
                 active):
        self.options = options
        self.cache, self.share, self.unserved, self.load = cache, share, unserved, load
        self.reserved, self.workspace, self.runtime, self.free = reserved, workspace, runtime, free
        self.active = active
        view = options.view
        self.time_limit = view.max_utilization * (1 - MARGIN) if view.rates else np.inf

    @classmethod
    def empty(cls, options: ServingOptions) -> "Serving":
        """Nothing resident, every class unserved."""
        view = options.view
        C, T, D = len(view.requests), view.num_candidates, len(view.capacity_bytes)
        return cls(options, np.zeros(T, dtype=bool), np.zeros(options.size), np.ones(C), np.zeros(D),
                   np.zeros((C, T), dtype=bool), np.zeros(T), np.zeros(D),
                   np.asarray(view.capacity_bytes, dtype=float) * (1 - MARGIN), [dict() for _ in range(C)])

    def copy(self) -> "Serving":
        return Serving(self.options, self.cache.copy(), self.share.copy(), self.unserved.copy(), self.load.copy(),
                       self.reserved.copy(), self.workspace.copy(), self.runtime.copy(), self.free.copy(),
                       [dict(a) for a in self.active])

    # -- what the plan costs -------------------------------------------------------------------

    def used(self) -> np.ndarray:
        """Instances some share is routed to (the plan keeps only these)."""
        o = self.options
        on = self.share > SHARE_TOL
        used = np.zeros(len(self.cache), dtype=bool)
        used[o.first[on]] = True
        second = o.second[on]
        used[second[second >= 0]] = True
        return used

    def value(self) -> float:
        """The objective of the plan this state stands for (to be minimised)."""
        o = self.options
        return float(o.cost @ self.share + o.unserved_cost @ self.unserved + o.view.churn_cost[self.used()].sum())

    def time_left(self) -> np.ndarray:
        return self.time_limit - self.load

    # -- memory --------------------------------------------------------------------------------

    def load_bytes(self, t: int) -> float:
        """Memory resident ``t`` adds on its device (0 when resident): weights, and the runtime it raises."""
        if self.cache[t]:
            return 0.0
        view = self.options.view
        return float(view.weight_mem_bytes[t] + max(0.0, view.runtime_mem_bytes[t] - self.runtime[view.device[t]]))

    def load_bytes_all(self) -> np.ndarray:
        """:meth:`load_bytes` of every candidate."""
        view = self.options.view
        grow = view.weight_mem_bytes + np.maximum(0.0, view.runtime_mem_bytes - self.runtime[view.device])
        return np.where(self.cache, 0.0, grow)

    def reserve_bytes(self, c: int, t: int, workspace: np.ndarray | None = None) -> float:
        """Memory class ``c`` adds on ``t``'s device to reserve room on ``t`` (0 when it has)."""
        if self.reserved[c, t]:
            return 0.0
        view = self.options.view
        kept = self.workspace[t] if workspace is None else workspace[t]
        return float(view.kv_mem_bytes[c, t] + max(0.0, view.workspace_mem_bytes[c, t] - kept))

    # -- changes -------------------------------------------------------------------------------

    def add(self, t: int) -> None:
        if self.cache[t]:
            return
        view = self.options.view
        d = int(view.device[t])
        self.free[d] -= self.load_bytes(t)
        self.runtime[d] = max(self.runtime[d], float(view.runtime_mem_bytes[t]))
        self.cache[t] = True

    def reserve(self, c: int, t: int) -> None:
        if self.reserved[c, t]:
            return
        view = self.options.view
        self.free[int(view.device[t])] -= self.reserve_bytes(c, t)
        self.workspace[t] = max(self.workspace[t], float(view.workspace_mem_bytes[c, t]))
        self.reserved[c, t] = True

    def move(self, k: int, j: int, amount: float) -> None:
        """Move ``amount`` of option ``k``'s class onto ``k``, from option ``j`` (``-1``: unserved)."""
        o = self.options
        c = int(o.cls[k])
        for t in o.instances_of(k):
            self.add(t)
            self.reserve(c, t)
        self._shift(k, amount)
        if j < 0:
            self.unserved[c] -= amount
        else:
            self._shift(j, -amount)

    def _shift(self, k: int, amount: float) -> None:
        o = self.options
        c = int(o.cls[k])
        self.share[k] += amount
        for d, busy in o.devices_of(k):
            self.load[d] += amount * busy
        if self.share[k] > SHARE_TOL:
            self.active[c][k] = float(self.share[k])
        else:
            self.active[c].pop(k, None)

    def compact(self) -> "Serving":
        """This plan without the instances and reservations no share uses, its memory counted anew."""
        o = self.options
        view = o.view
        out = self.copy()
        on = self.share > SHARE_TOL
        out.cache = self.used()
        out.reserved = np.zeros_like(self.reserved)
        out.reserved[o.cls[on], o.first[on]] = True
        two = on & (o.second >= 0)
        out.reserved[o.cls[two], o.second[two]] = True
        D = len(self.load)
        resident = np.flatnonzero(out.cache)
        dev = view.device[resident]
        out.workspace = np.where(out.reserved, view.workspace_mem_bytes, 0.0).max(axis=0, initial=0.0)
        out.runtime = np.zeros(D)
        np.maximum.at(out.runtime, dev, view.runtime_mem_bytes[resident])
        used = (np.bincount(dev, weights=view.weight_mem_bytes[resident] + out.workspace[resident], minlength=D) +
                out.runtime + np.bincount(view.device[np.nonzero(out.reserved)[1]],
                                          weights=view.kv_mem_bytes[out.reserved], minlength=D))
        out.free = np.asarray(view.capacity_bytes, dtype=float) * (1 - MARGIN) - used
        return out

    def without(self, s: int) -> "Serving":
        """This plan with instance ``s`` dropped: its shares unserved, its memory released."""
        o = self.options
        out = self.copy()
        for k in o.touching(s).tolist():
            if out.share[k] > 0:
                out.unserved[o.cls[k]] += out.share[k]
                out._shift(k, -out.share[k])
                out.share[k] = 0.0
        out.cache[s] = False
        return out.compact()

    def solution(self) -> Solution:
        """The shares as a :class:`~solvers.caching.plans.Solution`."""
        o = self.options
        direct, cascade = {}, {}
        for k in np.flatnonzero(self.share > SHARE_TOL):
            if o.cascade[k] < 0:
                direct[(int(o.cls[k]), int(o.first[k]))] = float(self.share[k])
            else:
                cascade[int(o.cascade[k])] = float(self.share[k])
        return Solution(direct, cascade)
