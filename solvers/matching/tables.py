"""What the matching game reads off the cost table, per placed model, once per solve.

Nothing here prices anything: every number is the compiled cost table's
(:func:`placement.costs.cost_table`), read through its functions and the chain
views of :mod:`placement.costs.chains`:

- the additive objective and each SLO as :class:`Chain` (the table's
  :func:`~placement.costs.chains.additive_terms`), summed along a pipeline;
- per device: usable memory, engine runtime, a profile's ``max_layers``;
- the preferences deferred acceptance starts from (:class:`Preferences`): the
  additive objective's own terms, or under a throughput objective each block's
  decode-token seconds on each device weighted by its classes' demand;
- each block's memory as the table gives it, for the devices' quotas.

:func:`matching_unsupported` refuses, before anything is compiled, instances
whose tables would not fit in :data:`TABLE_BUDGET_BYTES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from placement import Problem, RequestClass
from placement.costs import GIB, BlockCosts, CostTable
from placement.costs.chains import AdditiveTerms, additive_terms, metric_coefficients, objective_coefficients

__all__ = ["Chain", "Slo", "Preferences", "ModelTables", "build_tables", "matching_unsupported",
           "TABLE_BUDGET_BYTES"]

TABLE_BUDGET_BYTES = 2**30  # the per-block and per-device-pair arrays a solve compiles and builds, at most
_LIST_CELLS = 1 << 16  # arrays up to this size are read as Python lists (faster to index one cell at a time)

# Arrays of [devices x (blocks + 1)] cells alive in a solve: the table's block costs per request class
# (prefill, decode, their prefix sums, measured tokens), and per model the objective's terms and their
# prefix sums with their temporaries, the preferences, deferred acceptance's costs, ranks, regrets and
# noise; per SLO its terms and prefix sums.
_BLOCK_ARRAYS_PER_CLASS, _BLOCK_ARRAYS_PER_MODEL, _BLOCK_ARRAYS_PER_SLO = 5, 10, 2
# Arrays of [devices x devices]: the table's transfers per class (times, joules, per-token seconds),
# per model the objective's hop and loop and the preferences', per SLO its hop and loop.
_PAIR_ARRAYS_PER_CLASS, _PAIR_ARRAYS_PER_MODEL, _PAIR_ARRAYS_PER_SLO = 13, 4, 2


def _readable(values: np.ndarray):
    """``values`` as nested lists when small (fast scalar reads), else the read-only array itself."""
    return values.tolist() if values.size <= _LIST_CELLS else values


@dataclass(frozen=True)
class Chain:
    """An additive quantity of one model's pipelines: the cells of :class:`AdditiveTerms`, readable
    one at a time. ``value(stages)`` adds them along a pipeline, as ``AdditiveTerms.chain_value`` does."""

    cum: object        # [D][L+1] prefix sums of the per-block terms
    per_stage: object  # [D]
    hop: object        # [D][D]
    first: object      # [D]
    last: object       # [D]
    loop: object       # [D(last)][D(first)]

    @staticmethod
    def of(terms: AdditiveTerms) -> Chain:
        return Chain(_readable(terms.cum), _readable(terms.per_stage), _readable(terms.hop),
                     _readable(terms.first), _readable(terms.last), _readable(terms.loop))

    def value(self, stages: Sequence[tuple[int, int, int]]) -> float:
        """The quantity for ``stages`` (``(device, start, end)`` in pipeline order)."""
        f, l = stages[0][0], stages[-1][0]
        cum, per_stage, hop = self.cum, self.per_stage, self.hop
        total = self.first[f] + self.last[l] + self.loop[l][f]
        prev = -1
        for d, a, b in stages:
            row = cum[d]
            total += row[b] - row[a] + per_stage[d]
            if prev >= 0:
                total += hop[prev][d]
            prev = d
        return float(total)


@dataclass(frozen=True)
class Slo:
    """One SLO of one request class: its metric in ms along the pipeline, against ``limit_ms``."""

    request: str
    metric: str  # ttft_ms | tpot_ms | e2e_ms
    limit_ms: float
    chain: Chain


@dataclass(frozen=True)
class Preferences:
    """What a block costs on each device, as deferred acceptance sees it (arrays over every device):
    per block ``[D, L]``, per stage opened, per hop between consecutive stages, at the first and the
    last stage, and for the loop from the last stage to the first."""

    per_block: np.ndarray
    per_stage: np.ndarray
    hop: np.ndarray
    first: np.ndarray
    last: np.ndarray
    loop: np.ndarray
    congestion: bool  # a min-max objective: a block also pays the load its device already carries


@dataclass(frozen=True)
class ModelTables:
    """One placed model: its classes, candidate devices and everything its pipelines are scored on."""

    id: str
    num_blocks: int
    weight_format: str
    requests: tuple[RequestClass, ...]  # the model's classes, by id (evaluate's order for a shard's memory)
    blocks: tuple[BlockCosts, ...]      # per class, in the order of ``requests``
    candidates: tuple[int, ...]         # devices every source of the model reaches (within device_order)
    rank: dict[int, int] | None         # device -> position in constraints.device_order
    objective: Chain                    # the additive objective (all zeros under throughput)
    slos: tuple[Slo, ...]
    runtime: list                       # [D] engine runtime bytes for the model's format
    max_blocks: list                    # [D] a profile's max_layers (inf without one)
    rated: bool                         # some class gives a request rate (device load is a limit)
    block_bytes: np.ndarray             # [L] each block's weights and KV cache, for the quotas
    stage_bytes: float                  # what a device holding any block adds once (the largest workspace)
    preferences: Preferences


def _candidates(problem: Problem, requests: Sequence[RequestClass]) -> tuple[tuple[int, ...], dict | None]:
    topo = problem.topology
    reach = set(topo.ids)
    for r in requests:
        reach &= topo.reachable(r.source)
    rank = None
    if problem.constraints.device_order:
        rank = {topo.index[d]: i for i, d in enumerate(problem.constraints.device_order) if d in topo.index}
        reach &= {topo.nodes[d].id for d in rank}
    return tuple(sorted(topo.index[d] for d in reach)), rank


def _slos(table: CostTable, requests: Sequence[RequestClass]) -> tuple[Slo, ...]:
    out = []
    for k, req in enumerate(requests):
        for metric, limit in req.slo.items():
            coefs = [(0.0, 0.0, 0.0)] * len(requests)
            coefs[k] = metric_coefficients(req, metric.replace("_ms", ""))
            out.append(Slo(req.id, metric, float(limit), Chain.of(additive_terms(table, requests, coefs))))
    return tuple(out)


def _finite(values: np.ndarray) -> np.ndarray:
    # Devices without a path never share a pipeline (candidates reach every source); their
    # cells must not turn the congestion sums into nan.
    return np.where(np.isfinite(values), values, 0.0)


def _token_preferences(table: CostTable, requests: Sequence[RequestClass], blocks: Sequence[BlockCosts]
                       ) -> Preferences:
    """Throughput: each block's share of a stage's decode-token seconds (the table's stage token
    time from block 0, block by block), the stage's own part, and the hops' token seconds, each
    class weighted by its demand."""
    D, L = blocks[0].num_devices, blocks[0].num_blocks
    d = np.arange(D)[:, None]
    ends = np.arange(L + 1)[None, :]
    per_block, per_stage, hop = np.zeros((D, L)), np.zeros(D), np.zeros((D, D))
    for req, bc in zip(requests, blocks):
        weight = table.decode_demand(req)
        from_zero = bc.stage_token_s(d, np.zeros_like(ends), ends)  # [D, L+1]
        per_block += weight * np.diff(from_zero, axis=1)
        per_stage += weight * from_zero[:, 0]
        hop += weight * _finite(table.transfers(req).hop_token_s)
    zeros = np.zeros(D)
    return Preferences(per_block, per_stage, hop, zeros, zeros, np.zeros((D, D)), congestion=True)


def _objective_preferences(terms: AdditiveTerms) -> Preferences:
    return Preferences(np.asarray(terms.per_block), np.asarray(terms.per_stage), np.asarray(terms.hop),
                       np.asarray(terms.first), np.asarray(terms.last), np.asarray(terms.loop), congestion=False)


def _block_memory(table: CostTable, model: str, fmt: str, requests: Sequence[RequestClass]
                  ) -> tuple[np.ndarray, float]:
    """Each block's weights and KV cache (one-block shards' entries of the table), and the largest
    workspace a stage may need (its last block's, with the logits)."""
    L = table.problem.model(model).num_blocks
    a = np.arange(L)
    kvs = [table.kv(r, model) for r in requests]
    per_block = np.asarray(table.weights(model, fmt).shard_bytes(a, a + 1), dtype=float)
    for kv in kvs:
        per_block = per_block + kv.shard_kv_bytes(a, a + 1)
    return per_block, max(float(kv.shard_workspace_bytes(L)) for kv in kvs)


def build_tables(problem: Problem, table: CostTable) -> tuple[list[ModelTables], list[str]]:
    """Tables of every model some class asks for, and why a model has no candidate device."""
    throughput = problem.objective.name == "throughput"
    out, missing = [], []
    for model in problem.models:
        requests = tuple(sorted(problem.requests_for(model.id), key=lambda r: r.id))
        if not requests:
            continue
        candidates, rank = _candidates(problem, requests)
        if not candidates:
            missing.append(f"network: no device is reachable from every source of {model.id}'s requests"
                           + (" within constraints.device_order" if rank is not None else ""))
        fmt = model.weight_format
        blocks = tuple(table.blocks(r) for r in requests)
        terms = additive_terms(table, requests, objective_coefficients(problem, requests))
        block_bytes, stage_bytes = _block_memory(table, model.id, fmt, requests)
        out.append(ModelTables(
            id=model.id, num_blocks=model.num_blocks, weight_format=fmt, requests=requests, blocks=blocks,
            candidates=candidates, rank=rank, objective=Chain.of(terms), slos=_slos(table, requests),
            runtime=table.runtime_bytes(fmt).tolist(), max_blocks=table.max_blocks(model.id).tolist(),
            rated=any(table.rates_given([r]) for r in requests),
            block_bytes=block_bytes, stage_bytes=stage_bytes,
            preferences=_token_preferences(table, requests, blocks) if throughput else _objective_preferences(terms),
        ))
    return out, missing


def table_bytes(problem: Problem) -> int:
    """Bytes of the per-block and per-device-pair arrays a matching solve of ``problem`` builds
    (the cost table's, for its request classes, and its own)."""
    D = len(problem.topology.nodes)
    cells = 0
    for model in problem.models:
        requests = problem.requests_for(model.id)
        if not requests:
            continue
        C, S = len(requests), sum(len(r.slo.items()) for r in requests)
        per_block = _BLOCK_ARRAYS_PER_CLASS * C + _BLOCK_ARRAYS_PER_MODEL + _BLOCK_ARRAYS_PER_SLO * S
        per_pair = _PAIR_ARRAYS_PER_CLASS * C + _PAIR_ARRAYS_PER_MODEL + _PAIR_ARRAYS_PER_SLO * S
        cells += per_block * D * (model.num_blocks + 1) + per_pair * D * D
    return 8 * cells


def matching_unsupported(problem: Problem) -> list[str]:
    """What matching cannot take beyond its capability flags (the registry's precondition): instances
    whose tables would not fit in :data:`TABLE_BUDGET_BYTES`.

    Examples
    --------
    >>> from placement import load_instance
    >>> matching_unsupported(load_instance("instances/device-edge-cloud.yaml"))
    []
    """
    need = table_bytes(problem)
    if need <= TABLE_BUDGET_BYTES:
        return []
    D = len(problem.topology.nodes)
    L = max(m.num_blocks for m in problem.models)
    classes = len(problem.workload)
    return [f"{D:,} devices x {L:,} blocks x {classes} request class(es): its tables would take "
            f"{need / GIB:.1f} GB, more than its {TABLE_BUDGET_BYTES / GIB:.0f} GB budget "
            "(use greedy, or fewer devices, blocks or request classes)"]
