"""What the maxflow search may place, read off the cost table once.

A placement gives each candidate device at most one contiguous range ``[a, b)`` of the
model's blocks. :class:`Space` holds, over the candidate devices (those that may hold
blocks and have a network path to and from every request class's source):

- ``ok[i, a, b]``: the range fits device ``i``'s memory with the KV cache of *every*
  request class of the model (so it fits however the classes are routed) and its
  profile's ``max_layers``;
- ``token_s[c, i, a, b]``: seconds device ``i`` spends per decode token of class ``c``
  there (``BlockCosts.stage_token_s``: a measured profile, or a decode step over the
  batch); ``inf`` where the range is not ``ok``;
- ``weights``: each class's share of the traffic when the mix is fixed (its decode
  demand), as :func:`placement.costs.flows.route_shards` routes it;
- ``groups``: devices that are interchangeable for the search (the same ranges, the
  same seconds per token for every class, the same region);
- ``regions``: devices joined by links that can never bind (their capacity exceeds
  the compute bound), found as connected components; a transfer between regions may
  bind.

Nothing here is a cost of its own: every number is a table lookup.

Examples
--------
>>> from placement import load_instance
>>> space = build_space(load_instance("instances/helix/quality10.yaml"))
>>> space.n, [len(g) for g in space.groups], space.excluded
(10, [6, 4], {'coordinator': 'holds no blocks'})
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from placement import Problem, RequestClass, Shard, cost_table
from placement.costs.chains import PipelineViews, upper_mask
from placement.costs.tables import CostTable

__all__ = ["Space", "build_space", "Assignment"]

Assignment = tuple  # per candidate position: (a, b) or None


@dataclass
class Space:
    problem: Problem
    table: CostTable
    model: str
    L: int
    requests: tuple[RequestClass, ...]
    idx: np.ndarray  # candidate devices (topology indices)
    ok: np.ndarray  # [n, L+1, L+1]
    token_s: np.ndarray  # [C, n, L+1, L+1]
    weights: np.ndarray  # [C] traffic shares of the classes (fixed mix), or demand shares (free mix)
    fixed_mix: bool
    excluded: dict[str, str] = field(default_factory=dict)  # device id -> why it is not a candidate

    @property
    def n(self) -> int:
        return len(self.idx)

    @property
    def ids(self) -> list[str]:
        return [self.problem.topology.nodes[d].id for d in self.idx]

    @cached_property
    def effective_token_s(self) -> np.ndarray:
        """``[n, L+1, L+1]``: device seconds per token of the whole mix (``sum_c w_c token_s_c``)."""
        return np.tensordot(self.weights, self.token_s, axes=1)

    @cached_property
    def capacity(self) -> np.ndarray:
        """``[n, L+1, L+1]``: tokens/s of the mix a device carries on a range alone (0 where not ``ok``)."""
        with np.errstate(divide="ignore"):
            return np.where(self.ok, 1.0 / self.effective_token_s, 0.0)

    @cached_property
    def best_class_capacity(self) -> np.ndarray:
        """``[n, L+1, L+1]``: the most tokens/s of any one class a device carries on a range (0 where not ``ok``)."""
        with np.errstate(divide="ignore"):
            return np.where(self.ok, 1.0 / self.token_s.min(axis=0), 0.0)

    @cached_property
    def groups(self) -> list[list[int]]:
        """Positions of interchangeable devices (same ranges, times and region), in order of first appearance."""
        keys: dict[tuple, list[int]] = defaultdict(list)
        for i in range(self.n):
            keys[(self.ok[i].tobytes(), self.token_s[:, i].tobytes(), self.regions[i])].append(i)
        return list(keys.values())

    @cached_property
    def regions(self) -> list[int]:
        """Region of each candidate: devices joined through pairs whose transfers can never bind."""
        from solvers.maxflow.bounds import compute_bound
        top = compute_bound(self)
        parent = list(range(self.n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(self.n):
            for j in range(i + 1, self.n):
                if self.pair_capacity(i, j) >= top and self.pair_capacity(j, i) >= top:
                    parent[find(i)] = find(j)
        roots: dict[int, int] = {}
        return [roots.setdefault(find(i), len(roots)) for i in range(self.n)]

    def pair_capacity(self, i: int, j: int) -> float:
        """Tokens/s a hop from position ``i`` to ``j`` carries alone (the worst class; 0 without a path)."""
        key = (i, j)
        cache = self.__dict__.setdefault("_pair_capacity", {})
        if key not in cache:
            worst = 0.0
            for req in self.requests:
                use = self.table.hop_usage(req, int(self.idx[i]), int(self.idx[j]), self.model)
                if use is None:
                    worst = math.inf
                    break
                worst = max(worst, max(use.values(), default=0.0))
            cache[key] = 0.0 if math.isinf(worst) else (1.0 / worst if worst > 0 else math.inf)
        return cache[key]

    def shards(self, assignment: Assignment) -> tuple[Shard, ...]:
        """The shards of an assignment (one per device holding a range), named after their devices."""
        out = []
        for i, rng in enumerate(assignment):
            if rng is not None:
                device = self.problem.topology.nodes[int(self.idx[i])].id
                out.append(Shard(f"{device}:{rng[0]}-{rng[1]}", self.model, device, (int(rng[0]), int(rng[1]))))
        return tuple(out)

    def ranges(self, i: int) -> list[tuple[int, int]]:
        """Every range device ``i`` may hold."""
        a, b = np.nonzero(self.ok[i])
        return list(zip(a.tolist(), b.tolist()))


def build_space(problem: Problem) -> Space:
    """The candidate devices and their range tables for ``problem``'s one model."""
    table = cost_table(problem)
    model = problem.models[0]
    requests = problem.requests_for(model.id)
    topo = problem.topology
    excluded: dict[str, str] = {}
    idx = []
    for d, node in enumerate(topo.nodes):
        if not table.may_hold[d]:
            excluded[node.id] = "holds no blocks"
            continue
        unreachable = [r.id for r in requests if not (math.isfinite(float(table.transfers(r).upload_s[d]))
                                                      and math.isfinite(float(table.transfers(r).return_s[d])))]
        if unreachable:
            excluded[node.id] = f"no network path to the source of {', '.join(unreachable)}"
            continue
        idx.append(d)
    L = model.num_blocks
    views = PipelineViews(table, model.id, idx, requests=list(requests))
    ok = (views.memory_ok() & views.layers_ok()) if idx else np.zeros((0, L + 1, L + 1), dtype=bool)
    d = np.asarray(idx, dtype=int)[:, None, None]
    a = np.arange(L + 1)[None, :, None]
    b = np.arange(L + 1)[None, None, :]
    upper = upper_mask(L)[None]
    token = np.full((len(requests), len(idx), L + 1, L + 1), np.inf)
    for c, req in enumerate(requests):
        bc = table.blocks(req)
        with np.errstate(invalid="ignore"):
            values = bc.stage_token_s(d, np.minimum(a, b), b) if idx else np.zeros((0, L + 1, L + 1))
        token[c] = np.where(ok & upper, values, np.inf)
    demand = np.array([table.decode_demand(r) for r in requests])
    fixed = len(requests) == 1 or table.rates_given(list(requests))
    return Space(problem, table, model.id, L, tuple(requests), np.asarray(idx, dtype=int), ok, token,
                 demand / demand.sum(), fixed, excluded)
