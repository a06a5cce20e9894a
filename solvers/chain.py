"""Helpers shared by solvers that split a model into a pipeline of stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from placement import Problem, RequestClass, Route, Shard, block_costs, transfer_costs

__all__ = ["StageSpec", "Pipeline", "chain_order", "assemble", "memory_order", "AdditiveTerms",
           "additive_terms", "objective_coefficients"]


@dataclass(frozen=True)
class StageSpec:
    """Blocks ``[start, end)`` of a model on ``device`` (optionally in another format)."""

    device: str
    start: int
    end: int
    weight_format: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """A model split into stages, serving the listed request classes."""

    model: str
    requests: tuple[str, ...]
    stages: tuple[StageSpec, ...]


def memory_order(problem: Problem, device_ids: Sequence[str]) -> list[str]:
    """``device_ids`` by usable memory, largest first (ties by id, for determinism)."""
    topo = problem.topology
    return sorted(device_ids, key=lambda d: (-topo.node(d).usable_memory_gb, d))


def chain_order(problem: Problem, model_id: str) -> list[str]:
    """The devices a chain solver may use for ``model_id``, in pipeline order.

    ``constraints.device_order`` when the instance gives one; otherwise the
    devices reachable from the model's request sources, largest memory first.
    """
    if problem.constraints.device_order:
        return list(problem.constraints.device_order)
    topo = problem.topology
    reach: set[str] = set()
    for req in problem.requests_for(model_id):
        reach |= topo.reachable(req.source)
    return memory_order(problem, [n.id for n in topo.nodes if n.id in reach])


def assemble(pipelines: Sequence[Pipeline]) -> tuple[tuple[Shard, ...], tuple[Route, ...]]:
    """Shards and routes for ``pipelines``: one shard per stage, one route per request class."""
    shards: list[Shard] = []
    routes: list[Route] = []
    for pipe in pipelines:
        path = []
        for st in pipe.stages:
            sid = f"s{len(shards)}"
            shards.append(Shard(sid, pipe.model, st.device, (st.start, st.end), st.weight_format))
            path.append(sid)
        routes.extend(Route(rid, tuple(path)) for rid in pipe.requests)
    return tuple(shards), tuple(routes)


@dataclass(frozen=True)
class AdditiveTerms:
    """A quantity that adds up along a pipeline, over every device of the topology.

    A pipeline ``(d1, [a1, b1)), ..., (dk, [ak, bk))`` costs
    ``sum_i (per_block[di, ai:bi].sum() + per_stage[di]) + sum_i hop[di, di+1]
    + first[d1] + last[dk] + loop[dk, d1]``. Entries a zero coefficient leaves
    out are 0, even where a transfer is impossible (``inf``).
    """

    per_block: np.ndarray  # [D, L]
    per_stage: np.ndarray  # [D]
    hop: np.ndarray  # [D, D] between consecutive stages
    first: np.ndarray  # [D] paid by the first stage's device
    last: np.ndarray  # [D] paid by the last stage's device
    loop: np.ndarray  # [D(last), D(first)]


def _times(coef: float, table: np.ndarray) -> np.ndarray | float:
    # 0 x inf (a transfer that a zero coefficient does not count) must stay 0.
    return coef * table if coef else 0.0


def additive_terms(problem: Problem, requests: Sequence[RequestClass],
                   coefs: Sequence[tuple[float, float, float]]) -> AdditiveTerms:
    """``sum_c a_c TTFT_c + b_c TPOT_c + e_c energy_c`` (seconds, joules) as :class:`AdditiveTerms`.

    The decomposition of :func:`placement.costs.route_times`: TTFT is the
    prompt's upload to the first stage, every stage's prefill, the activation
    hops and the first token's way back from the last stage; TPOT every stage's
    decode step, the per-step hops and the token's loop from the last stage to the
    first; energy is the active devices' busy time and the links' bytes, per
    request of a batch. ``coefs[c]`` goes with ``requests[c]`` (same model).

    Examples
    --------
    >>> terms = additive_terms(problem, problem.workload, [(1.0, 0.0, 0.0)])   # doctest: +SKIP
    >>> float(terms.per_block[0].sum() + terms.per_stage[0] + terms.first[0] + terms.last[0])  # doctest: +SKIP
    0.0421
    """
    D = len(problem.topology.nodes)
    L = problem.model(requests[0].model).num_blocks
    per_block, per_stage = np.zeros((D, L)), np.zeros(D)
    hop, first, last, loop = np.zeros((D, D)), np.zeros(D), np.zeros(D), np.zeros((D, D))
    for (a, b, e), req in zip(coefs, requests):
        if not (a or b or e):
            continue
        bc, tc = block_costs(problem, req), transfer_costs(problem, req)
        steps, B = max(req.output_tokens - 1, 0), req.batch
        busy = bc.prefill_s + steps * bc.decode_s
        busy_ovh = bc.prefill_overhead_s + steps * bc.decode_overhead_s
        per_block += a * bc.prefill_s + b * bc.decode_s + e * bc.active_power_w[:, None] * busy / B
        per_stage += a * bc.prefill_overhead_s + b * bc.decode_overhead_s + e * bc.active_power_w * busy_ovh / B
        hop += (_times(a, tc.prefill_hop_s) + _times(b, tc.decode_hop_s)
                + _times(e / B, tc.prefill_hop_j + steps * tc.decode_hop_j))
        first += _times(a, tc.upload_s) + _times(e, tc.upload_j)
        last += _times(a, tc.return_s) + _times(e * max(req.output_tokens, 1), tc.return_j)
        loop += _times(b, tc.loop_s) + _times(e * steps / B, tc.loop_j)
    return AdditiveTerms(per_block, per_stage, hop, first, last, loop)


def objective_coefficients(problem: Problem, requests: Sequence[RequestClass]) -> list[tuple[float, float, float]]:
    """Per request: the weights of its TTFT (s), TPOT (s) and energy (J) in ``problem``'s
    additive objective, in the objective's units (ms for times).

    ``latency`` is E2E = TTFT + (g - 1) TPOT; every metric is weighted by the
    request class's share (:meth:`Problem.request_weights`). ``throughput`` is
    not additive and contributes nothing here.
    """
    weights = problem.request_weights()
    out = []
    for req in requests:
        a = b = e = 0.0
        steps = max(req.output_tokens - 1, 0)
        for name, lam in problem.objective.terms:
            w = weights[req.id] * lam
            if name == "latency":
                a, b = a + 1e3 * w, b + 1e3 * w * steps
            elif name == "ttft":
                a += 1e3 * w
            elif name == "tpot":
                b += 1e3 * w
            elif name == "energy":
                e += w
        out.append((a, b, e))
    return out
