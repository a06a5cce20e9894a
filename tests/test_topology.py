"""Best-path transfers: checked against an exhaustive search over simple paths."""

from __future__ import annotations

import math
import random

import networkx as nx
import numpy as np
import pytest

from models import Link, Node, Topology, device_spec


def _topology(n: int, links: list[tuple[int, int, float, float]]) -> Topology:
    spec = device_spec("rtx-3060")
    nodes = tuple(Node(f"n{i}", spec) for i in range(n))
    return Topology(nodes, tuple(Link(f"n{a}", f"n{b}", bandwidth_mbps=bw, latency_ms=lat) for a, b, bw, lat in links))


def _brute(topo: Topology, nbytes: float) -> np.ndarray:
    g = topo.graph
    n = len(topo.nodes)
    out = np.full((n, n), math.inf)
    for i, u in enumerate(topo.ids):
        out[i, i] = 0.0
        for j, v in enumerate(topo.ids):
            if i == j:
                continue
            for path in nx.all_simple_paths(g, u, v):
                edges = list(zip(path, path[1:]))
                lat = sum(g.edges[e]["latency_ms"] for e in edges) * 1e-3
                bw = min(g.edges[e]["bandwidth_mbps"] for e in edges) * 1e6 / 8
                out[i, j] = min(out[i, j], lat + nbytes / bw)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_best_path_matches_exhaustive_search(seed):
    rng = random.Random(seed)
    n = 6
    links = []
    for a in range(n):
        for b in range(a + 1, n):
            if rng.random() < 0.5:
                links.append((a, b, rng.choice([10, 100, 1000, 10000]), rng.choice([0.1, 1, 5, 30])))
    topo = _topology(n, links)
    for nbytes in (4, 8192, 10_000_000):
        np.testing.assert_allclose(topo.transfer_time_s(nbytes), _brute(topo, nbytes), rtol=1e-12)


def test_path_choice_depends_on_message_size():
    # n0-n1 direct: slow and short; n0-n2-n1: fast but two long hops.
    topo = _topology(3, [(0, 1, 10, 1), (0, 2, 10000, 10), (2, 1, 10000, 10)])
    assert topo.path("n0", "n1", 100) == ["n0", "n1"]
    assert topo.path("n0", "n1", 10_000_000) == ["n0", "n2", "n1"]
    assert topo.bottleneck_bytes_per_s(10_000_000)[0, 1] == pytest.approx(10000e6 / 8)


def test_disconnected_pairs_are_infinite():
    topo = _topology(3, [(0, 1, 100, 1)])
    t = topo.transfer_time_s(1000)
    assert math.isinf(t[0, 2]) and t[0, 1] < math.inf and t[2, 2] == 0
    assert topo.path("n0", "n2", 1000) == []


def test_wireless_and_sampled_rates():
    shannon = Link("a", "b", channel_mhz=20, snr_db=15)
    assert shannon.rate_mbps == pytest.approx(20 * math.log2(1 + 10 ** 1.5))
    sampled = Link("a", "b", rate_samples_mbps=(100, 300))
    assert sampled.rate_mbps == pytest.approx(150)  # harmonic mean: mean transfer time over the samples


def test_link_energy_follows_the_chosen_path():
    spec = device_spec("rtx-3060")
    topo = Topology(tuple(Node(f"n{i}", spec) for i in range(3)),
                    (Link("n0", "n1", 100, 1, energy_nj_per_bit=10), Link("n1", "n2", 100, 1, energy_nj_per_bit=5)))
    e = topo.transfer_energy_j(1000)
    assert e[0, 2] == pytest.approx(1000 * 8 * 15e-9)
