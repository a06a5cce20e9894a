"""The network: devices as nodes, links as undirected edges, best-path transfers.

A transfer of ``b`` bytes from ``u`` to ``v`` takes the path minimising

    sum of link latencies + b / (bottleneck bandwidth of the path),

i.e. packets are forwarded as they arrive (cut-through), so a long path pays its
latency once per hop but its bandwidth only once. The best path depends on
``b``: small messages prefer few, low-latency hops; large ones prefer wide
links. It is found exactly by trying every bandwidth ``w`` as the bottleneck:
the shortest-latency path using only links of at least ``w``, plus ``b / w``;
the minimum over ``w`` is the optimum. The latency matrices are computed once
per topology; each message size then costs one ``min`` over them.

Examples
--------
>>> from models import Topology, Link, Node, device_spec
>>> t = Topology(
...     nodes=(Node("a", device_spec("rtx-4090")), Node("b", device_spec("rtx-4090"))),
...     links=(Link("a", "b", bandwidth_mbps=1000, latency_ms=1),),
... )
>>> round(float(t.transfer_time_s(1_000_000)[0, 1]) * 1e3, 3)   # 1 ms + 8 Mbit / 1 Gbit/s
9.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from models.devices import DeviceSpec

__all__ = ["DeviceProfile", "Node", "Link", "Topology"]

# Above this many thresholds x nodes^2 cells, bottleneck candidates are thinned to quantiles.
_MAX_THRESHOLD_CELLS = 20_000_000


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only: cached matrices are shared by every caller."""
    array.setflags(write=False)
    return array


def _hop_depths(pred: np.ndarray) -> np.ndarray:
    """Hops from each row's source to each node in a predecessor matrix (0 on the
    diagonal and for unreachable nodes), by pointer doubling: O(n^2 log depth)."""
    n = pred.shape[0]
    rows = np.arange(n)[:, None]
    reached = pred >= 0
    ancestor = np.where(reached, pred, rows)  # the source is its own ancestor
    hops = reached.astype(np.int64)
    while True:
        pending = ancestor != rows
        if not pending.any():
            return hops
        hops = np.where(pending, hops + hops[rows, ancestor], hops)
        ancestor = np.where(pending, ancestor[rows, ancestor], ancestor)


@dataclass(frozen=True)
class DeviceProfile:
    """Measured speed of one device for one model, overriding the analytic model.

    ``throughput_tokens_per_s`` maps a number of layers held to the decode
    tokens/s the device sustains (Helix-style profiles); ``prefill_ms_per_layer``
    and ``decode_ms_per_layer`` give per-block step times.
    """

    model: str
    max_layers: int | None = None
    throughput_tokens_per_s: tuple[tuple[int, float], ...] = ()
    prefill_ms_per_layer: float | None = None
    decode_ms_per_layer: float | None = None

    def throughput_at(self, layers: int) -> float:
        """Tokens/s when holding ``layers`` layers, linearly interpolated between given counts.

        Below the smallest given count the smallest's figure applies (a device
        never gets slower by holding fewer layers); above the largest, throughput
        scales as ``1 / layers`` from it.
        """
        table = self.throughput_tokens_per_s
        if not table:
            raise ValueError(f"profile for {self.model!r} has no throughput table")
        ks = [k for k, _ in table]
        vs = [v for _, v in table]
        if layers <= ks[0]:
            return vs[0]
        if layers >= ks[-1]:
            return vs[-1] * ks[-1] / layers
        return float(np.interp(layers, ks, vs))


@dataclass(frozen=True)
class Node:
    """A device placed in a topology.

    ``count`` identical accelerators form one node (tensor parallel inside it):
    memory, bandwidth, compute and power scale by ``count``. ``threads`` is how many
    threads the engine runs on a CPU device (None: one per core, the catalog's peak).
    ``nic_mbps``, when given, is the device's network interface: every link at the
    device runs at most at that rate, and all the traffic it sends (or receives,
    full duplex) shares it, including what it relays for others. ``load_gbs`` is the rate
    (GB/s, 10**9 bytes) the device reads model weights at when it loads a model: its disk,
    or the link it fetches weights over (None: not given).
    ``address`` and ``port`` say where the node is reached when a plan is exported to a
    serving engine (``None``: not given; exports then use a placeholder or the engine's
    default port); they play no part in the cost model.

    ``holds_blocks`` False marks a device that holds no model blocks (a gateway or a
    coordinator that only sends prompts and receives tokens); ``relays`` False, one that
    forwards no other device's traffic (a transfer may start or end there, never pass
    through it: a VM whose "links" are measured end-to-end paths, not cables).
    """

    id: str
    spec: DeviceSpec
    tier: str = ""
    engine: str = ""
    count: int = 1
    profiles: tuple[DeviceProfile, ...] = ()
    threads: int | None = None
    nic_mbps: float | None = None
    address: str | None = None
    port: int | None = None
    load_gbs: float | None = None
    holds_blocks: bool = True
    relays: bool = True

    def __post_init__(self) -> None:
        if not self.tier:
            object.__setattr__(self, "tier", self.spec.tier)
        if not self.engine:
            object.__setattr__(self, "engine", self.spec.default_engine)

    @property
    def memory_gb(self) -> float:
        return self.spec.memory_gb * self.count

    @property
    def usable_memory_gb(self) -> float:
        return (self.spec.memory_gb - self.spec.reserved_memory_gb) * self.count

    def profile_for(self, model_id: str) -> DeviceProfile | None:
        for p in self.profiles:
            if p.model == model_id:
                return p
        return None


@dataclass(frozen=True)
class Link:
    """An undirected link.

    Either ``bandwidth_mbps`` is given, or a wireless channel
    (``channel_mhz``, ``snr_db``) whose Shannon rate ``B log2(1 + SNR)`` is used.
    ``rate_samples_mbps`` describes a time-varying channel: a transfer then takes
    the mean of its times over the samples, i.e. the samples' harmonic mean rate.
    """

    a: str
    b: str
    bandwidth_mbps: float | None = None
    latency_ms: float = 0.0
    energy_nj_per_bit: float = 0.0
    channel_mhz: float | None = None
    snr_db: float | None = None
    rate_samples_mbps: tuple[float, ...] = ()

    @property
    def rate_mbps(self) -> float:
        """The rate a transfer sees on average, in Mbit/s."""
        if self.rate_samples_mbps:
            samples = np.asarray(self.rate_samples_mbps, dtype=float)
            return float(len(samples) / np.sum(1.0 / samples))
        if self.bandwidth_mbps is not None:
            return float(self.bandwidth_mbps)
        if self.channel_mhz is not None and self.snr_db is not None:
            return self.channel_mhz * math.log2(1.0 + 10.0 ** (self.snr_db / 10.0))
        raise ValueError(f"link {self.a}-{self.b} needs bandwidth_mbps or channel_mhz with snr_db")

    @property
    def bytes_per_s(self) -> float:
        return self.rate_mbps * 1e6 / 8.0

    @property
    def full_duplex(self) -> bool:
        """Wired links carry both directions at full rate; a wireless channel is one shared medium."""
        return self.channel_mhz is None


@dataclass(frozen=True)
class Topology:
    """Devices and links. Immutable; derived matrices are computed once and cached."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...] = ()
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @cached_property
    def index(self) -> dict[str, int]:
        """Position of each node id in :attr:`nodes` (and in every matrix)."""
        return {n.id: i for i, n in enumerate(self.nodes)}

    def node(self, node_id: str) -> Node:
        return self.nodes[self.index[node_id]]

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    @cached_property
    def graph(self) -> nx.Graph:
        """The network as a :class:`networkx.Graph` with link attributes on edges."""
        g = nx.Graph()
        for n in self.nodes:
            g.add_node(n.id, type=n.spec.id, tier=n.tier, engine=n.engine, memory_gb=n.memory_gb)
        for link in self.links:
            g.add_edge(link.a, link.b, bandwidth_mbps=link.rate_mbps, latency_ms=link.latency_ms,
                       energy_nj_per_bit=link.energy_nj_per_bit)
        return g

    # -- best paths -------------------------------------------------------------------

    @cached_property
    def link_bytes_per_s(self) -> np.ndarray:
        """Each link's rate as a transfer sees it: its own, capped by the NICs at its two ends."""
        rates = []
        for link in self.links:
            caps = [link.bytes_per_s] + [self.node(end).nic_mbps * 1e6 / 8.0 for end in (link.a, link.b)
                                         if self.node(end).nic_mbps is not None]
            rates.append(min(caps))
        return _frozen(np.array(rates, dtype=float))

    @cached_property
    def _edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.links:
            empty = np.zeros(0)
            return empty.astype(int), empty.astype(int), empty, empty, empty
        # Parallel links between the same pair keep the better one per criterion when
        # thresholds pick it; listing both is harmless for shortest paths.
        u = np.array([self.index[link.a] for link in self.links])
        v = np.array([self.index[link.b] for link in self.links])
        bw = self.link_bytes_per_s
        lat = np.array([link.latency_ms * 1e-3 for link in self.links])
        enj = np.array([link.energy_nj_per_bit for link in self.links])
        return u, v, bw, lat, enj

    @cached_property
    def _thresholds(self) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """For each candidate bottleneck ``w``: latency distances and predecessors using links >= w."""
        n = len(self.nodes)
        u, v, bw, lat, _ = self._edges
        if len(bw) == 0:
            return []
        candidates = np.unique(bw)[::-1]
        limit = max(4, _MAX_THRESHOLD_CELLS // max(1, n * n))
        if len(candidates) > limit:
            # Thin to quantiles; b / w then over-estimates paths whose bottleneck lies
            # between two kept thresholds (documented in the README).
            candidates = np.quantile(candidates, np.linspace(1.0, 0.0, limit), method="lower")
            candidates = np.unique(candidates)[::-1]
        out = []
        arrive = self._arrival_nodes
        size = n + int(np.count_nonzero(arrive != np.arange(n)))
        for w in candidates:
            keep = bw >= w
            # Zero latency is a legal link; csgraph drops explicit zeros, so nudge them.
            weights = np.maximum(lat[keep], 1e-15)
            rows = np.concatenate([u[keep], v[keep]])
            cols = np.concatenate([arrive[v[keep]], arrive[u[keep]]])
            data = np.concatenate([weights, weights])
            m = csr_matrix((data, (rows, cols)), shape=(size, size))
            dist, pred = dijkstra(m, directed=True, indices=np.arange(n), return_predecessors=True)
            dist, pred = dist[:, arrive], pred[:, arrive]
            np.fill_diagonal(dist, 0.0)
            np.fill_diagonal(pred, -9999)
            out.append((float(w), dist, pred))
        return out

    @cached_property
    def _arrival_nodes(self) -> np.ndarray:
        """Where a path arriving at each node ends in the search graph: the node itself, or for a
        device that relays nothing, a copy of it with no outgoing links (so that paths can end
        there but never pass through it). Paths leave every device from the node itself."""
        n = len(self.nodes)
        arrive = np.arange(n)
        extra = n
        for i, node in enumerate(self.nodes):
            if not node.relays:
                arrive[i] = extra
                extra += 1
        return arrive

    def _best(self, nbytes: float) -> tuple[np.ndarray, np.ndarray]:
        """Transfer times and the index of the threshold each pair's best path uses."""
        key = ("best", float(nbytes))
        if key not in self._cache:
            n = len(self.nodes)
            best = np.full((n, n), np.inf)
            which = np.full((n, n), -1, dtype=int)
            for k, (w, dist, _) in enumerate(self._thresholds):
                cost = dist + nbytes / w
                better = cost < best
                best[better] = cost[better]
                which[better] = k
            np.fill_diagonal(best, 0.0)
            np.fill_diagonal(which, -1)
            self._cache[key] = (_frozen(best), _frozen(which))
        return self._cache[key]

    def transfer_time_s(self, nbytes: float) -> np.ndarray:
        """Matrix of seconds to move ``nbytes`` between every pair (``inf`` if disconnected, 0 on the diagonal)."""
        return self._best(nbytes)[0]

    def bottleneck_bytes_per_s(self, nbytes: float) -> np.ndarray:
        """Matrix of the bottleneck rate (bytes/s) of each pair's best path for ``nbytes``.

        The best path's bottleneck is the threshold that attains the minimum (a
        wider path at that threshold would have been cheaper). ``inf`` on the
        diagonal, 0 between disconnected nodes.
        """
        key = ("bottleneck", float(nbytes))
        if key not in self._cache:
            _, which = self._best(nbytes)
            widths = np.array([w for w, _, _ in self._thresholds] + [0.0])
            rate = widths[which]  # which == -1 picks the trailing 0
            np.fill_diagonal(rate, np.inf)
            self._cache[key] = _frozen(rate)
        return self._cache[key]

    def path(self, src: str, dst: str, nbytes: float) -> list[str]:
        """Node ids along the best path for an ``nbytes`` message (``[]`` if disconnected)."""
        return [self.nodes[h].id for h in self.path_indices(self.index[src], self.index[dst], nbytes)]

    def path_indices(self, i: int, j: int, nbytes: float) -> list[int]:
        """Node indices along the best path from ``i`` to ``j`` for an ``nbytes`` message (``[]`` if disconnected)."""
        if i == j:
            return [i]
        k = self._best(nbytes)[1][i, j]
        if k < 0:
            return []
        pred = self._thresholds[k][2]
        hops = [j]
        while hops[-1] != i:
            hops.append(int(pred[i, hops[-1]]))
        return hops[::-1]

    # -- network resources ---------------------------------------------------------------

    @cached_property
    def resources(self) -> tuple[tuple[str, ...], ...]:
        """The network's shared resources, each a label: ``("link", a, b)`` for each direction
        of a full-duplex link (one ``("link", a, b)`` for a wireless one, both directions
        sharing the medium), ``("nic_out", d)`` and ``("nic_in", d)`` for a device with a NIC."""
        return tuple(label for label, _ in self._resource_table)

    @cached_property
    def resource_bytes_per_s(self) -> np.ndarray:
        """Capacity of each of :attr:`resources` in bytes per second."""
        return _frozen(np.array([rate for _, rate in self._resource_table], dtype=float))

    @cached_property
    def _resource_table(self) -> list[tuple[tuple[str, ...], float]]:
        table: list[tuple[tuple[str, ...], float]] = []
        for link in self.links:
            table.append((("link", link.a, link.b), link.bytes_per_s))
            if link.full_duplex:
                table.append((("link", link.b, link.a), link.bytes_per_s))
        for node in self.nodes:
            if node.nic_mbps is not None:
                rate = node.nic_mbps * 1e6 / 8.0
                table += [(("nic_out", node.id), rate), (("nic_in", node.id), rate)]
        return table

    @cached_property
    def _resource_index(self) -> dict[tuple[str, ...], int]:
        return {label: k for k, label in enumerate(self.resources)}

    def _hop_resources(self, u: int, v: int) -> list[int]:
        """Resources one hop from node ``u`` to its neighbour ``v`` occupies."""
        a, b = self.nodes[u].id, self.nodes[v].id
        link = self.links[self._link_index[(a, b)]]
        key = ("link", a, b) if link.full_duplex or (link.a, link.b) == (a, b) else ("link", b, a)
        out = [self._resource_index[key]]
        for label in (("nic_out", a), ("nic_in", b)):
            if label in self._resource_index:
                out.append(self._resource_index[label])
        return out

    def transfer_resources(self, i: int, j: int, nbytes: float) -> np.ndarray:
        """Indices into :attr:`resources` that a message of ``nbytes`` from node ``i`` to ``j`` occupies
        on its best path: every link of the path and the NIC of every device that sends, relays or
        receives it (empty for ``i == j``; ``None`` when no path exists)."""
        key = ("resources", i, j, float(nbytes))
        if key not in self._cache:
            path = self.path_indices(i, j, nbytes)
            if not path:
                self._cache[key] = None
            else:
                used = [r for u, v in zip(path, path[1:]) for r in self._hop_resources(u, v)]
                self._cache[key] = _frozen(np.array(sorted(set(used)), dtype=np.int64))
        return self._cache[key]

    @cached_property
    def _link_index(self) -> dict[tuple[str, str], int]:
        # For parallel links, the widest serves (the threshold search picks it first).
        out: dict[tuple[str, str], int] = {}
        for k, link in enumerate(self.links):
            for key in ((link.a, link.b), (link.b, link.a)):
                if key not in out or self.links[out[key]].rate_mbps < link.rate_mbps:
                    out[key] = k
        return out

    def transfer_energy_j(self, nbytes: float) -> np.ndarray:
        """Matrix of joules the links spend moving ``nbytes`` along the best path."""
        key = ("energy", float(nbytes))
        if key not in self._cache:
            n = len(self.nodes)
            energy = np.zeros((n, n))
            if any(link.energy_nj_per_bit for link in self.links):
                _, which = self._best(nbytes)
                for k in np.unique(which[which >= 0]):
                    along = self._path_energy_nj_per_bit(int(k))
                    use = which == k
                    energy[use] = along[use]
            energy *= nbytes * 8 * 1e-9
            self._cache[key] = _frozen(energy)
        return self._cache[key]

    @cached_property
    def _hop_energy_nj_per_bit(self) -> np.ndarray:
        """nJ/bit of the link each ordered neighbour pair uses (the widest of parallel links)."""
        n = len(self.nodes)
        hop = np.zeros((n, n))
        for (a, b), k in self._link_index.items():
            hop[self.index[a], self.index[b]] = self.links[k].energy_nj_per_bit
        return hop

    def _path_energy_nj_per_bit(self, k: int) -> np.ndarray:
        """nJ/bit summed along every pair's path in threshold ``k``'s shortest-path trees.

        Walks each tree from its root outwards, one hop depth at a time, adding each
        hop to its parent's sum in the order a path is read from its source, so the
        sums equal those of :meth:`path` hop by hop (the per-pair walk took
        minutes on a thousand devices).
        """
        key = ("path_energy", k)
        if key in self._cache:
            return self._cache[key]
        pred = self._thresholds[k][2]
        n = len(self.nodes)
        depth = _hop_depths(pred)
        order = np.argsort(depth, axis=None, kind="stable")
        flat_depth = depth.ravel()[order]
        starts = np.searchsorted(flat_depth, np.arange(1, flat_depth.max(initial=0) + 2))
        hop = self._hop_energy_nj_per_bit
        along = np.zeros((n, n))
        for lo, hi in zip(starts, starts[1:]):
            cells = order[lo:hi]
            i, j = cells // n, cells % n
            parent = pred[i, j]
            along[i, j] = along[i, parent] + hop[parent, j]
        self._cache[key] = along
        return along

    def reachable(self, src: str) -> set[str]:
        """Ids of the nodes a transfer from ``src`` can reach (itself included): its connected
        component, less what lies only behind devices that relay nothing."""
        if all(n.relays for n in self.nodes):
            return set(nx.node_connected_component(self.graph, src))
        if not self._thresholds:
            return {src}
        widest_set = self._thresholds[-1][1]  # the last threshold keeps every link
        return {self.nodes[j].id for j in np.flatnonzero(np.isfinite(widest_set[self.index[src]]))}
