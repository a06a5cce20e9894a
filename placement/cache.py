"""What a plan changes against the current cache: shards loaded, evicted and kept.

A plan's shard is *kept* when the current cache (``Problem.cache``) holds the very same
shard (device, model, format, blocks), and *loaded* otherwise, whole; a cached shard the
plan does not keep is *evicted*. A load takes the shard's weight bytes over the device's
``load_gbs`` and, while it runs, the device's active power (see
:meth:`~placement.costs.tables.CostTable.load_seconds`). Devices load in parallel, one
shard after another each, so the new cache is ready after the slowest device's sum.

Without a ``cache:`` section nothing is resident: every shard is a load.

Examples
--------
>>> from placement import load_instance, Plan, Shard
>>> problem = load_instance("instances/portfolio.yaml")
>>> changes = cache_changes(problem, Plan(shards=(Shard("s0", "llama-3.2-1b", "phone-1", (0, 16), "q4_k_m"),)))
>>> [(c.device, c.model) for c in changes.kept], len(changes.evicted) == len(problem.cache) - 1
([('phone-1', 'llama-3.2-1b')], True)
"""

from __future__ import annotations

import math
from collections import defaultdict

from placement.costs.tables import GIB, cost_table
from placement.metrics import CacheChanges, ShardChange
from placement.plan import Plan
from placement.problem import Problem

__all__ = ["ShardChange", "CacheChanges", "cache_changes"]


def _known(value: float) -> float | None:
    return None if math.isnan(value) else value


def cache_changes(problem: Problem, plan: Plan) -> CacheChanges:
    """The loads, evictions and kept shards that take the current cache to ``plan``'s shards."""
    table = cost_table(problem)
    index = problem.topology.index
    resident = {(c.device, c.model, c.weight_format, c.layers) for c in (problem.cache or ())}
    wanted = set()
    loads, kept = [], []
    per_device: dict[str, float] = defaultdict(float)
    for s in plan.shards:
        fmt = s.weight_format or problem.model(s.model).weight_format
        key = (s.device, s.model, fmt, s.layers)
        wanted.add(key)
        gb = float(table.weights(s.model, fmt).shard_bytes(*s.layers)) / GIB
        if key in resident:
            kept.append(ShardChange(s.device, s.model, fmt, s.layers, gb))
            continue
        d = index[s.device]
        seconds = float(table.load_seconds(s.model, fmt, *s.layers)[d])
        loads.append(ShardChange(s.device, s.model, fmt, s.layers, gb, _known(seconds),
                                 _known(float(table.load_energy_j(s.model, fmt, *s.layers)[d]))))
        per_device[s.device] += seconds
    evicted = [ShardChange(c.device, c.model, c.weight_format, c.layers,
                           float(table.weights(c.model, c.weight_format).shard_bytes(*c.layers)) / GIB)
               for c in (problem.cache or ()) if (c.device, c.model, c.weight_format, c.layers) not in wanted]
    total = sum(per_device.values())
    return CacheChanges(tuple(loads), tuple(evicted), tuple(kept), _known(total),
                        _known(max(per_device.values(), default=0.0)),
                        _known(sum(c.load_j for c in loads) if all(c.load_j is not None for c in loads) else math.nan))
