"""The compiled cost table: every number a plan's metrics are reduced from, built once per problem.

:func:`cost_table` compiles a :class:`~placement.problem.Problem` into read-only
numpy arrays, cached on the problem so that :func:`placement.evaluate` and every
solver read the very same numbers:

- :class:`BlockCosts`, per (request class, model, weight format): each block's
  prefill and decode seconds on every device, the per-step overheads, their
  prefix sums (a stage's time is two lookups), the devices' power and, where a
  device carries a measured profile, its seconds per decode token when holding
  ``k`` blocks;
- :class:`WeightCosts`, per (model, format): weight bytes per block and the tied
  head's shared copy; :class:`KVCosts`, per (request class, model): KV-cache
  reservation per block and the prefill workspace;
- per device: usable memory, engine runtime per format, ``max_layers``;
- per (model, format): benchmark scores (:meth:`CostTable.quality_score`) and the seconds
  and joules it takes a device to load a shard's weights (:meth:`CostTable.load_seconds`);
- :class:`TransferCosts`, per (request class, model): seconds and joules of every
  transfer between every pair of devices (best paths), and the per-token use of
  the network's resources (links, NICs) for throughput.

A *resource* is anything busy at most all of the time: each device (index ``d``
of ``topology.nodes``) and each network resource of :attr:`models.Topology.resources`
(index ``D + k``). Usage is in seconds per decode token.

Every array is read-only: a solver that tried to change what ``evaluate()``
sees gets ``ValueError: assignment destination is read-only``.

Examples
--------
>>> from placement import load_instance
>>> from placement.costs import cost_table
>>> table = cost_table(load_instance("instances/device-edge-cloud.yaml"))
>>> bc = table.blocks("chat")
>>> bc.prefill_s.shape == (3, 80), bc.prefill_s.flags.writeable
(True, False)
>>> float(bc.stage_decode_s(1, 0, 41)) > 0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from models import formats
from placement.costs.roofline import (
    ACTIVATION_BYTES, GIB, TOKEN_ID_BYTES, block_weight_bytes, execution_rates, fold_nodes, kv_reservation_bytes,
    node_times, runtime_bytes, workspace_bytes,
)
from placement.problem import ModelSpec, Problem, RequestClass

__all__ = ["CostTable", "BlockCosts", "WeightCosts", "KVCosts", "TransferCosts", "cost_table", "block_costs",
           "transfer_costs", "readonly"]


_GB = 1e9  # load rates are decimal GB/s, as disks and links are rated


def readonly(values, dtype=float) -> np.ndarray:
    """A read-only copy of ``values``."""
    out = np.array(values, dtype=dtype)
    out.setflags(write=False)
    return out


def _prefix(per_block: np.ndarray) -> np.ndarray:
    return readonly(np.concatenate([np.zeros((per_block.shape[0], 1)), np.cumsum(per_block, axis=1)], axis=1))


@dataclass(frozen=True)
class BlockCosts:
    """Times and power of one model's blocks on every device, for one request class in one format.

    A stage ``(d, a, b)`` (device ``d`` holding blocks ``[a, b)``) prefills the class's
    batch in ``prefill_cum[d, b] - prefill_cum[d, a] + prefill_overhead_s[d]`` seconds,
    and likewise for one decode step. The stage methods take scalars or arrays.

    Attributes
    ----------
    prefill_s, decode_s : ndarray [D, L]
        Seconds per block for the batch's prefill and for one decode step.
    prefill_overhead_s, decode_overhead_s : ndarray [D]
        Fixed seconds a stage pays per prefill and per decode step.
    prefill_cum, decode_cum : ndarray [D, L+1]
        Their prefix sums over blocks.
    measured_token_s : ndarray [D, L+1]
        Seconds per decode token of a device's measured throughput profile when it
        holds ``k`` blocks (``nan`` where the device has none).
    active_power_w, idle_power_w : ndarray [D]
    calibrated : ndarray [D] of bool
        Whether the device's efficiencies come from a calibrated engine profile or a measurement.
    batch : int
        Sequences per forward step.
    steps : int
        Decode steps after the first token (``output_tokens - 1``).
    """

    model: str
    request: str
    weight_format: str
    prefill_s: np.ndarray
    decode_s: np.ndarray
    prefill_overhead_s: np.ndarray
    decode_overhead_s: np.ndarray
    prefill_cum: np.ndarray
    decode_cum: np.ndarray
    measured_token_s: np.ndarray
    active_power_w: np.ndarray
    idle_power_w: np.ndarray
    calibrated: np.ndarray
    batch: int
    steps: int

    @property
    def num_blocks(self) -> int:
        return self.prefill_s.shape[1]

    @property
    def num_devices(self) -> int:
        return self.prefill_s.shape[0]

    def stage_prefill_s(self, d, a, b):
        """Seconds to prefill the batch through blocks ``[a, b)`` on device ``d``."""
        return self.prefill_cum[d, b] - self.prefill_cum[d, a] + self.prefill_overhead_s[d]

    def stage_decode_s(self, d, a, b):
        """Seconds per decode step of blocks ``[a, b)`` on device ``d``."""
        return self.decode_cum[d, b] - self.decode_cum[d, a] + self.decode_overhead_s[d]

    def stage_busy_s(self, d, a, b):
        """Seconds device ``d`` works on one batch through blocks ``[a, b)``: its prefill and every decode step."""
        return self.stage_prefill_s(d, a, b) + self.steps * self.stage_decode_s(d, a, b)

    def stage_energy_j(self, d, a, b):
        """Joules per request the stage's device spends active (a batch shares its device time)."""
        return self.active_power_w[d] * self.stage_busy_s(d, a, b) / self.batch

    def stage_token_s(self, d, a, b):
        """Seconds of device ``d`` per decode token through blocks ``[a, b)``: its measured
        throughput profile where it has one, else a decode step over the batch."""
        measured = self.measured_token_s[d, np.subtract(b, a)]
        return np.where(np.isnan(measured), self.stage_decode_s(d, a, b) / self.batch, measured)


@dataclass(frozen=True)
class WeightCosts:
    """Weight bytes of one model in one format.

    ``weight_bytes[i]`` holds block ``i`` (the embedding is folded into block 0, the
    head and a tied head's copy of the embedding into block ``L-1``); a shard holding
    every block keeps one copy of a tied matrix, so it subtracts ``tied_head_bytes``.
    """

    model: str
    weight_format: str
    weight_bytes: np.ndarray
    weight_cum: np.ndarray
    tied_head_bytes: float
    quality: float

    @property
    def num_blocks(self) -> int:
        return len(self.weight_bytes)

    def shard_bytes(self, a, b):
        """Weight bytes of a shard holding blocks ``[a, b)`` (scalars or arrays)."""
        whole = (np.asarray(a) == 0) & (np.asarray(b) == self.num_blocks)
        return self.weight_cum[b] - self.weight_cum[a] - np.where(whole, self.tied_head_bytes, 0.0)

    def quality_loss(self, a, b):
        """Share of the model's route quality lost by blocks ``[a, b)`` in this format
        (a route's quality is the block-weighted mean of its formats')."""
        return (1.0 - self.quality) * (np.asarray(b) - np.asarray(a)) / self.num_blocks


@dataclass(frozen=True)
class KVCosts:
    """Memory one request class reserves in a shard of one model beyond the weights.

    ``kv_bytes[i]``: KV cache of the class's sequences in block ``i``;
    ``workspace_bytes``: activations of one prefill step on any stage, and
    ``head_workspace_bytes`` more (the logits) on the stage holding the last block.
    """

    model: str
    request: str
    kv_bytes: np.ndarray
    kv_cum: np.ndarray
    workspace_bytes: float
    head_workspace_bytes: float

    def shard_kv_bytes(self, a, b):
        return self.kv_cum[b] - self.kv_cum[a]

    def shard_workspace_bytes(self, b):
        """Workspace of the stage ending at block ``b``."""
        return self.workspace_bytes + np.where(np.asarray(b) == len(self.kv_bytes), self.head_workspace_bytes, 0.0)


@dataclass(frozen=True)
class TransferCosts:
    """Transfers of one request class between every pair of devices, on best paths.

    ``upload_s[d]``: the prompt's token ids from the source to ``d``;
    ``return_s[d]``: one token from ``d`` back to the source;
    ``prefill_hop_s[u, v]``: the batch's prompt activations from ``u`` to ``v``;
    ``decode_hop_s[u, v]``: one decode step's activations;
    ``loop_s[u, v]``: the sampled tokens from the last stage ``u`` to the first ``v``.
    ``*_j``: the links' joules for the same transfers.

    For throughput, ``hop_token_s[u, v]``, ``loop_token_s[u, v]`` and
    ``return_token_s[d]`` are the seconds one decode token's bytes keep the most
    loaded resource of the path busy (bytes over the path's bottleneck rate): the
    exact usage of every resource is :meth:`CostTable.hop_usage` and its siblings.
    """

    source: int
    activation_bytes: float
    token_bytes: float
    decode_message_bytes: float
    loop_message_bytes: float
    upload_s: np.ndarray
    return_s: np.ndarray
    prefill_hop_s: np.ndarray
    decode_hop_s: np.ndarray
    loop_s: np.ndarray
    upload_j: np.ndarray
    return_j: np.ndarray
    prefill_hop_j: np.ndarray
    decode_hop_j: np.ndarray
    loop_j: np.ndarray
    hop_token_s: np.ndarray
    loop_token_s: np.ndarray
    return_token_s: np.ndarray


def _per_token(nbytes: float, rate: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return readonly(np.where(rate > 0, nbytes / rate, np.inf))


class CostTable:
    """The compiled, read-only cost table of one problem (see the module docstring).

    Build it with :func:`cost_table`, which caches it on the problem. Parts are
    compiled on first use and kept, so a table is never recomputed.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.topology = problem.topology
        self.num_devices = len(problem.topology.nodes)
        self._parts: dict[tuple, object] = {}

    # -- identities ----------------------------------------------------------------------

    def request(self, request: RequestClass | str) -> RequestClass:
        return self.problem.request(request) if isinstance(request, str) else request

    def _model(self, req: RequestClass, model: str | None) -> ModelSpec:
        return self.problem.model(model or req.model)

    def _memo(self, key: tuple, build):
        if key not in self._parts:
            self._parts[key] = build()
        return self._parts[key]

    # -- devices ---------------------------------------------------------------------------

    def _distinct_nodes(self) -> list:
        """One device of each kind that the roofline tells apart (spec, engine, count, threads)."""
        seen: dict[tuple, object] = {}
        for n in self.topology.nodes:
            seen.setdefault((n.spec, n.engine, n.count, n.threads), n)
        return list(seen.values())

    @cached_property
    def capacity_bytes(self) -> np.ndarray:
        """Usable memory of each device: (capacity - reserved) x (1 - the instance's headroom)."""
        keep = 1.0 - self.problem.constraints.memory_headroom
        return readonly([n.usable_memory_gb * GIB * keep for n in self.topology.nodes])

    def runtime_bytes(self, weight_format: str) -> np.ndarray:
        """Each device's engine runtime overhead for ``weight_format``, paid once by a device holding a shard."""
        def build():
            fmt = formats.weight_format(weight_format)
            return readonly([runtime_bytes(n, execution_rates(n, fmt)) for n in self.topology.nodes])
        return self._memo(("runtime", weight_format), build)

    @cached_property
    def may_hold(self) -> np.ndarray:
        """Whether each device may hold blocks at all (``devices[].holds_blocks``: False for a
        gateway or coordinator)."""
        return readonly([n.holds_blocks for n in self.topology.nodes], dtype=bool)

    def max_blocks(self, model: str) -> np.ndarray:
        """Most blocks of ``model`` each device may hold: 0 where it holds none (:attr:`may_hold`),
        its measured profile's ``max_layers``, else ``inf``."""
        def build():
            out = []
            for n in self.topology.nodes:
                p = n.profile_for(model)
                most = p.max_layers if p is not None and p.max_layers is not None else np.inf
                out.append(most if n.holds_blocks else 0)
            return readonly(out)
        return self._memo(("max_blocks", model), build)

    def calibrated(self, model: str, weight_format: str) -> np.ndarray:
        """Whether each device's predictions for ``model`` in ``weight_format`` rest on calibrated
        efficiencies or a measured profile."""
        def build():
            fmt = formats.weight_format(weight_format)
            return readonly([execution_rates(n, fmt).profile.calibrated or n.profile_for(model) is not None
                             for n in self.topology.nodes], dtype=bool)
        return self._memo(("calibrated", model, weight_format), build)

    # -- models ------------------------------------------------------------------------------

    def weights(self, model: str, weight_format: str | None = None) -> WeightCosts:
        spec = self.problem.model(model)
        fmt_id = weight_format or spec.weight_format

        def build():
            fmt = formats.weight_format(fmt_id)
            per_block, tied = block_weight_bytes(spec, fmt)
            cum = readonly(np.concatenate([[0.0], np.cumsum(per_block)]))
            return WeightCosts(spec.id, fmt_id, readonly(per_block), cum, float(tied), fmt.quality)
        return self._memo(("weights", spec.id, fmt_id), build)

    def kv(self, request: RequestClass | str, model: str | None = None) -> KVCosts:
        req = self.request(request)
        spec = self._model(req, model)

        def build():
            ctx = self.problem.context_tokens(req)
            kv = readonly(kv_reservation_bytes(spec, req.batch, ctx))
            steps = {execution_rates(node, formats.weight_format(fmt_id)).profile.max_tokens_per_step
                     for node in self._distinct_nodes() for fmt_id in spec.formats}
            ws = head = 0.0
            for step in steps:
                w, h = workspace_bytes(spec.graph, req, ctx, step)
                ws, head = max(ws, w), max(head, h)
            return KVCosts(spec.id, req.id, kv, readonly(np.concatenate([[0.0], np.cumsum(kv)])), ws, head)
        return self._memo(("kv", req.id, spec.id), build)

    def shard_memory_bytes(self, model: str, weight_format: str | None, a, b, requests) -> np.ndarray | float:
        """Bytes a shard holding blocks ``[a, b)`` of ``model`` needs before its device's runtime:
        weights + the KV cache of every class in ``requests`` + the largest prefill workspace
        among them (scalars or arrays ``a``, ``b``)."""
        total = self.weights(model, weight_format).shard_bytes(a, b)
        if requests:
            kvs = [self.kv(r, model) for r in requests]
            total = total + sum(k.shard_kv_bytes(a, b) for k in kvs)
            total = total + np.maximum.reduce([np.asarray(k.shard_workspace_bytes(b)) for k in kvs])
        return total

    def quality_score(self, model: str, weight_format: str | None, benchmark: str | None) -> float | None:
        """Benchmark score (percent) of ``model``'s answers in ``weight_format`` (``None``: no figure,
        or no benchmark). See :mod:`models.quality`."""
        spec = self.problem.model(model)
        if benchmark is None or spec.scores is None:
            return None
        return spec.scores.score(benchmark, weight_format or spec.weight_format)

    def load_seconds(self, model: str, weight_format: str | None, a: int, b: int) -> np.ndarray:
        """Seconds each device takes to load the weights of blocks ``[a, b)`` of ``model`` at its
        ``load_gbs`` (``nan`` where the instance gives no load rate)."""
        fmt_id = weight_format or self.problem.model(model).weight_format

        def build():
            nbytes = float(self.weights(model, fmt_id).shard_bytes(a, b))
            rates = np.array([n.load_gbs or np.nan for n in self.topology.nodes], dtype=float)
            return readonly(nbytes / (rates * _GB))
        return self._memo(("load_s", model, fmt_id, a, b), build)

    def load_energy_j(self, model: str, weight_format: str | None, a: int, b: int) -> np.ndarray:
        """Joules each device spends loading blocks ``[a, b)``: busy at its active power while it reads
        and unpacks the weights (an upper estimate; ``nan`` without a load rate)."""
        power = np.array([n.spec.power_active_w * n.count for n in self.topology.nodes], dtype=float)
        return readonly(self.load_seconds(model, weight_format, a, b) * power)

    # -- blocks --------------------------------------------------------------------------------

    def blocks(self, request: RequestClass | str, model: str | None = None,
               weight_format: str | None = None) -> BlockCosts:
        """:class:`BlockCosts` of ``request`` on ``model`` (default: the class's) in ``weight_format``
        (default: the model's)."""
        req = self.request(request)
        spec = self._model(req, model)
        fmt_id = weight_format or spec.weight_format
        return self._memo(("blocks", req.id, spec.id, fmt_id), lambda: self._compile_blocks(req, spec, fmt_id))

    def _compile_blocks(self, req: RequestClass, spec: ModelSpec, fmt_id: str) -> BlockCosts:
        fmt = formats.weight_format(fmt_id)
        nodes = self.topology.nodes
        D, L = len(nodes), spec.num_blocks
        prefill, decode = np.zeros((D, L)), np.zeros((D, L))
        pre_ovh, dec_ovh = np.zeros(D), np.zeros(D)
        measured_token = np.full((D, L + 1), np.nan)
        alike: dict[tuple, tuple] = {}  # devices of one spec, engine, count and threads run alike: compute once
        for d, node in enumerate(nodes):
            key = (node.spec, node.engine, node.count, node.threads)
            if key not in alike:
                rates = execution_rates(node, fmt)
                times = node_times(spec.graph, fmt, spec.kv_fmt, rates, req)
                step_s = rates.profile.step_overhead_ms * 1e-3
                alike[key] = (fold_nodes(times.prefill_s), fold_nodes(times.decode_s), times.prefill_steps * step_s,
                              step_s)
            prefill[d], decode[d], pre_ovh[d], dec_ovh[d] = alike[key]
            measured = node.profile_for(spec.id)
            if measured is None:
                continue
            if measured.prefill_ms_per_layer is not None:
                prefill[d], pre_ovh[d] = measured.prefill_ms_per_layer * 1e-3, 0.0
            if measured.decode_ms_per_layer is not None:
                decode[d], dec_ovh[d] = measured.decode_ms_per_layer * 1e-3, 0.0
            if measured.throughput_tokens_per_s:
                measured_token[d, 1:] = [1.0 / measured.throughput_at(k) for k in range(1, L + 1)]
                measured_token[d, 0] = 0.0
        return BlockCosts(
            model=spec.id, request=req.id, weight_format=fmt_id,
            prefill_s=readonly(prefill), decode_s=readonly(decode),
            prefill_overhead_s=readonly(pre_ovh), decode_overhead_s=readonly(dec_ovh),
            prefill_cum=_prefix(prefill), decode_cum=_prefix(decode), measured_token_s=readonly(measured_token),
            active_power_w=readonly([n.spec.power_active_w * n.count for n in nodes]),
            idle_power_w=readonly([n.spec.power_idle_w * n.count for n in nodes]),
            calibrated=self.calibrated(spec.id, fmt_id),
            batch=req.batch, steps=max(req.output_tokens - 1, 0),
        )

    # -- transfers -----------------------------------------------------------------------------

    def transfers(self, request: RequestClass | str, model: str | None = None) -> TransferCosts:
        """:class:`TransferCosts` of ``request`` on ``model`` (default: the class's)."""
        req = self.request(request)
        spec = self._model(req, model)
        return self._memo(("transfers", req.id, spec.id), lambda: self._compile_transfers(req, spec))

    def _compile_transfers(self, req: RequestClass, spec: ModelSpec) -> TransferCosts:
        topo = self.topology
        src = topo.index[req.source]
        act = spec.graph.arch.hidden_size * ACTIVATION_BYTES
        up_b = req.prompt_tokens * TOKEN_ID_BYTES
        pre_b, dec_b = req.batch * req.prompt_tokens * act, req.batch * act
        loop_b, ret_b = req.batch * TOKEN_ID_BYTES, TOKEN_ID_BYTES
        t, e = topo.transfer_time_s, topo.transfer_energy_j
        return TransferCosts(
            source=src, activation_bytes=float(act), token_bytes=float(TOKEN_ID_BYTES),
            decode_message_bytes=float(dec_b), loop_message_bytes=float(loop_b),
            upload_s=readonly(t(up_b)[src]), return_s=readonly(t(ret_b)[:, src]),
            prefill_hop_s=t(pre_b), decode_hop_s=t(dec_b), loop_s=t(loop_b),
            upload_j=readonly(e(up_b)[src]), return_j=readonly(e(ret_b)[:, src]),
            prefill_hop_j=e(pre_b), decode_hop_j=e(dec_b), loop_j=e(loop_b),
            hop_token_s=_per_token(act, topo.bottleneck_bytes_per_s(dec_b)),
            loop_token_s=_per_token(TOKEN_ID_BYTES, topo.bottleneck_bytes_per_s(loop_b)),
            return_token_s=readonly(_per_token(TOKEN_ID_BYTES, topo.bottleneck_bytes_per_s(ret_b))[:, src]),
        )

    # -- resources -----------------------------------------------------------------------------

    @cached_property
    def resources(self) -> tuple[tuple[str, ...], ...]:
        """Labels of every resource: ``("device", id)`` for each device, then the network's
        (:attr:`models.Topology.resources`)."""
        return tuple(("device", n.id) for n in self.topology.nodes) + self.topology.resources

    def _network_usage(self, i: int, j: int, message_bytes: float, token_bytes: float) -> dict[int, float]:
        """Seconds per decode token on each network resource a transfer from ``i`` to ``j`` occupies."""
        key = ("usage", i, j, message_bytes, token_bytes)

        def build():
            if i == j:
                return {}
            used = self.topology.transfer_resources(i, j, message_bytes)
            if used is None:
                return None
            rates = self.topology.resource_bytes_per_s
            D = self.num_devices
            return {D + int(k): token_bytes / float(rates[k]) for k in used}
        return self._memo(key, build)

    def hop_usage(self, request: RequestClass | str, u: int, v: int, model: str | None = None) -> dict[int, float] | None:
        """Resource seconds per decode token of the activations passed from stage device ``u`` to ``v``
        (``None``: no path)."""
        tc = self.transfers(request, model)
        return self._network_usage(u, v, tc.decode_message_bytes, tc.activation_bytes)

    def loop_usage(self, request: RequestClass | str, last: int, first: int,
                   model: str | None = None) -> dict[int, float] | None:
        """Resource seconds per decode token of the sampled token's way from the last stage to the first."""
        tc = self.transfers(request, model)
        return self._network_usage(last, first, tc.loop_message_bytes, tc.token_bytes)

    def return_usage(self, request: RequestClass | str, last: int, model: str | None = None) -> dict[int, float] | None:
        """Resource seconds per decode token of the token's way from the last stage to the source."""
        tc = self.transfers(request, model)
        return self._network_usage(last, tc.source, tc.token_bytes, tc.token_bytes)

    # -- workload ------------------------------------------------------------------------------

    def decode_demand(self, request: RequestClass | str) -> float:
        """Decode tokens/s a class asks for at its request rate (its weight, 1 request/s, without one)."""
        req = self.request(request)
        return (req.rate_rps or 1.0) * max(req.output_tokens, 1)

    def rates_given(self, requests=None) -> bool:
        """Whether every class in ``requests`` (default: the workload) gives a request rate."""
        reqs = [self.request(r) for r in (requests if requests is not None else self.problem.workload)]
        return bool(reqs) and all(r.rate_rps for r in reqs)

    def load_per_busy_s(self, request: RequestClass | str) -> float:
        """Share of time a device is busy, at the class's request rate, per second it works on one of
        its batches (``rate / batch``; 0 without a rate): :meth:`stage_load` is this x share x busy seconds."""
        req = self.request(request)
        return (req.rate_rps or 0.0) / req.batch

    def stage_load(self, request: RequestClass | str, bc: BlockCosts, d, a, b, share: float = 1.0):
        """Share of time device ``d`` is busy serving ``share`` of ``request``'s requests through
        blocks ``[a, b)`` at the class's request rate (0 without one)."""
        req = self.request(request)
        if not req.rate_rps:
            return 0.0 * np.asarray(bc.stage_busy_s(d, a, b))
        return req.rate_rps * share * bc.stage_busy_s(d, a, b) / req.batch


def cost_table(problem: Problem) -> CostTable:
    """The :class:`CostTable` of ``problem``, compiled once and cached on it."""
    cache = problem._cache
    if "cost_table" not in cache:
        cache["cost_table"] = CostTable(problem)
    return cache["cost_table"]


def block_costs(problem: Problem, request: RequestClass | str, weight_format: str | None = None) -> BlockCosts:
    """Shorthand for ``cost_table(problem).blocks(request, weight_format=weight_format)``."""
    return cost_table(problem).blocks(request, weight_format=weight_format)


def transfer_costs(problem: Problem, request: RequestClass | str) -> TransferCosts:
    """Shorthand for ``cost_table(problem).transfers(request)``."""
    return cost_table(problem).transfers(request)
