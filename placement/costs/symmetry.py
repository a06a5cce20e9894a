"""Interchangeable devices: classes of devices that every cost of the model treats alike.

Two devices are interchangeable when swapping them (and nothing else) maps the
instance onto itself: the same device spec, engine, tier, count, threads, NIC and
measured profiles, and the same link to every third device (bandwidth, latency,
energy, wireless channel, rate samples). A request source is never interchangeable
with another device (its transfers to itself are free), and neither is any device
when ``constraints.device_order`` fixes the pipeline order.

Swapping two interchangeable devices turns any plan into one with the same cost on
every metric, so a search over pipelines may count how many devices of each class a
pipeline uses instead of which ones (:mod:`solvers.dp`), and a program may order the
members of a class (:mod:`solvers.ilp`). Classes are confirmed on the compiled cost
table (per-block times, power, memory, transfers, every swap within the class), so a
cost input this module does not know of splits a class rather than merging it wrongly.

Examples
--------
>>> from placement import parse_instance
>>> data = {"name": "pair", "models": [{"id": "tinyllama-1.1b", "weight_format": "q4_0"}],
...         "devices": [{"id": "src", "type": "snapdragon-8-gen3"}, {"id": "g1", "type": "t4"},
...                     {"id": "g2", "type": "t4"}, {"id": "g3", "type": "l4"}],
...         "links": [{"a": x, "b": y, "bandwidth_mbps": 1000, "latency_ms": 1}
...                   for x, y in [("src", "g1"), ("src", "g2"), ("src", "g3"), ("g1", "g2"), ("g1", "g3"),
...                                ("g2", "g3")]],
...         "workload": [{"id": "r", "source": "src", "prompt_tokens": 64, "output_tokens": 8}]}
>>> interchangeable_devices(parse_instance(data))
((0,), (1, 2), (3,))
"""

from __future__ import annotations

import dataclasses

import numpy as np

from placement.costs.tables import cost_table
from placement.problem import Problem

__all__ = ["interchangeable_devices", "MAX_SYMMETRY_DEVICES"]

# Confirming a class on the table compares every transfer of each member: O(D^2) per class.
# Above this many devices every device is its own class (nothing is merged).
MAX_SYMMETRY_DEVICES = 512


def _node_key(node) -> str:
    return repr(dataclasses.replace(node, id=""))


def _links_by_node(problem: Problem) -> list[dict[int, tuple]]:
    topo = problem.topology
    out: list[dict[int, tuple]] = [dict() for _ in topo.nodes]
    for link in topo.links:
        a, b = topo.index[link.a], topo.index[link.b]
        attrs = tuple(getattr(link, f.name) for f in dataclasses.fields(link) if f.name not in ("a", "b"))
        out[a][b] = attrs
        out[b][a] = attrs
    return out


def _swap_keeps_links(links: list[dict[int, tuple]], r: int, m: int) -> bool:
    others = (set(links[r]) | set(links[m])) - {r, m}
    return all(links[r].get(x) == links[m].get(x) for x in others)


def _swap_keeps_table(problem: Problem, r: int, m: int) -> bool:
    """Every table array the solvers read is unchanged by swapping devices ``r`` and ``m``."""
    table = cost_table(problem)
    perm = np.arange(table.num_devices)
    perm[[r, m]] = perm[[m, r]]
    arrays = [table.capacity_bytes]
    for model in problem.models:
        arrays.append(table.max_blocks(model.id))
        for fmt in model.formats:
            arrays.append(table.runtime_bytes(fmt))
            for req in problem.requests_for(model.id):
                bc = table.blocks(req, weight_format=fmt)
                arrays += [bc.prefill_s, bc.decode_s, bc.prefill_overhead_s, bc.decode_overhead_s,
                           bc.measured_token_s, bc.active_power_w, bc.idle_power_w]
    for vec in arrays:
        if not np.array_equal(vec, vec[perm], equal_nan=True):
            return False
    for req in problem.workload:
        tc = table.transfers(req)
        for vec in (tc.upload_s, tc.return_s, tc.upload_j, tc.return_j, tc.return_token_s):
            if not np.array_equal(vec, vec[perm], equal_nan=True):
                return False
        for mat in (tc.prefill_hop_s, tc.decode_hop_s, tc.loop_s, tc.prefill_hop_j, tc.decode_hop_j, tc.loop_j,
                    tc.hop_token_s, tc.loop_token_s):
            if not np.array_equal(mat, mat[np.ix_(perm, perm)], equal_nan=True):
                return False
    return True


def interchangeable_devices(problem: Problem) -> tuple[tuple[int, ...], ...]:
    """The devices in classes of interchangeable ones (topology indices, each class and the
    classes in index order); every device is in exactly one class.

    Within a class every swap of two members maps the instance onto itself (see the
    module notes), so members may be used in index order without loss.
    """
    cache = problem._cache
    if "interchangeable_devices" in cache:
        return cache["interchangeable_devices"]
    topo = problem.topology
    D = len(topo.nodes)
    fixed = {topo.index[r.source] for r in problem.workload}
    if problem.constraints.device_order or D > MAX_SYMMETRY_DEVICES:
        fixed = set(range(D))
    links = _links_by_node(problem)
    groups: dict[str, list[int]] = {}
    for d, node in enumerate(topo.nodes):
        if d not in fixed:
            groups.setdefault(_node_key(node), []).append(d)
    classes: list[tuple[int, ...]] = [(d,) for d in sorted(fixed)]
    for members in groups.values():
        while members:  # split off, around the first member, those every swap with it keeps
            r = members[0]
            same = [m for m in members[1:] if _swap_keeps_links(links, r, m) and _swap_keeps_table(problem, r, m)]
            classes.append((r, *same))
            members = [m for m in members[1:] if m not in same]
    out = tuple(sorted(classes))
    cache["interchangeable_devices"] = out
    return out
