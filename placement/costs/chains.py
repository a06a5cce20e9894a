"""Dense views of the cost table for solvers that build pipelines (chains of stages).

A pipeline ``(d1, [a1, b1)), ..., (dk, [ak, bk))`` of one model serves its request
classes. Everything a chain solver needs to know about it is here, read off the
table (:mod:`placement.costs.tables`) and combined exactly as
:mod:`placement.costs.routes` combines a route, so a solver searching these views
and ``evaluate()`` on its plan agree by construction:

- :func:`additive_terms`: any weighted sum of the classes' TTFT, TPOT and energy
  (hence latency, every SLO and every additive objective) as per-block,
  per-stage, per-hop and endpoint terms;
- :class:`PipelineViews`: over a set of candidate devices, the tables of every
  stage ``(d, a, b)``: memory against capacity, load at the request rates, a
  profile's ``max_layers``, and the decode-token load of each resource for
  throughput (stages, hops and the chain's closing transfers).

Examples
--------
>>> from placement import load_instance
>>> from placement.costs import cost_table
>>> from placement.costs.chains import PipelineViews
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> views = PipelineViews(cost_table(problem), "llama-3.1-70b", [0, 1, 2])
>>> views.memory_ok().shape, bool(views.memory_ok()[0, 0, 80])   # the phone cannot hold it all
((3, 81, 81), False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from placement.costs.tables import CostTable, readonly
from placement.problem import Problem, RequestClass

__all__ = ["AdditiveTerms", "additive_terms", "objective_coefficients", "metric_coefficients", "PipelineViews",
           "upper_mask", "LIMIT_TOL"]

LIMIT_TOL = 1e-9  # evaluate()'s tolerance on memory and load


def upper_mask(L: int) -> np.ndarray:
    """``[L+1, L+1]`` mask of the stages ``[a, b)`` with ``a < b``."""
    return np.triu(np.ones((L + 1, L + 1), dtype=bool), k=1)


@dataclass(frozen=True)
class AdditiveTerms:
    """A quantity that adds up along a pipeline, over every device of the topology.

    A pipeline costs ``sum_i stage(d_i, a_i, b_i) + sum_i hop[d_i, d_i+1] + first[d1]
    + last[dk] + loop[dk, d1]``, with ``stage(d, a, b) = per_block[d, a:b].sum() +
    per_stage[d]``. Entries a zero coefficient leaves out are 0, even where a
    transfer is impossible (``inf``).
    """

    per_block: np.ndarray  # [D, L]
    per_stage: np.ndarray  # [D]
    hop: np.ndarray  # [D, D] between consecutive stages
    first: np.ndarray  # [D] paid by the first stage's device
    last: np.ndarray  # [D] paid by the last stage's device
    loop: np.ndarray  # [D(last), D(first)]

    @cached_property
    def cum(self) -> np.ndarray:
        """Prefix sums ``[D, L+1]`` of ``per_block``."""
        return readonly(np.concatenate([np.zeros((self.per_block.shape[0], 1)), np.cumsum(self.per_block, axis=1)],
                                       axis=1))

    def stage(self, d, a, b):
        """``per_block[d, a:b].sum() + per_stage[d]`` for scalars or arrays."""
        return self.cum[d, b] - self.cum[d, a] + self.per_stage[d]

    def stage_table(self, idx: Sequence[int] | None = None) -> np.ndarray:
        """Every stage's value ``[n, L+1, L+1]`` over devices ``idx`` (default: all), ``inf`` where ``a >= b``."""
        cum = self.cum if idx is None else self.cum[np.asarray(idx)]
        per_stage = self.per_stage if idx is None else self.per_stage[np.asarray(idx)]
        L = cum.shape[1] - 1
        table = cum[:, None, :] - cum[:, :, None] + per_stage[:, None, None]
        return np.where(upper_mask(L)[None], table, np.inf)

    def chain_value(self, chain: Sequence[tuple[int, int, int]]) -> float:
        """The quantity for a pipeline given as ``(device, start, end)`` triples."""
        f, l = chain[0][0], chain[-1][0]
        total = float(self.first[f]) + float(self.last[l]) + float(self.loop[l, f])
        total += sum(float(self.stage(d, a, b)) for d, a, b in chain)
        total += sum(float(self.hop[u, v]) for (u, _, _), (v, _, _) in zip(chain, chain[1:]))
        return total


def _times(coef: float, table: np.ndarray) -> np.ndarray | float:
    # 0 x inf (a transfer that a zero coefficient does not count) must stay 0.
    return coef * table if coef else 0.0


def additive_terms(table: CostTable, requests: Sequence[RequestClass],
                   coefs: Sequence[tuple[float, float, float]], weight_format: str | None = None) -> AdditiveTerms:
    """``sum_c a_c TTFT_c + b_c TPOT_c + e_c energy_c`` (seconds, joules) as :class:`AdditiveTerms`.

    The decomposition of :func:`placement.costs.routes.route_times`: TTFT is the
    prompt's upload to the first stage, every stage's prefill, the activation
    hops and the first token's way back from the last stage; TPOT every stage's
    decode step, the per-step hops and the token's loop from the last stage to the
    first; energy is the active devices' busy time and the links' bytes, per
    request of a batch. ``coefs[c]`` goes with ``requests[c]`` (one model).

    Examples
    --------
    >>> from placement import load_instance
    >>> from placement.costs import cost_table
    >>> problem = load_instance("instances/device-edge-cloud.yaml")
    >>> ttft = additive_terms(cost_table(problem), problem.workload, [(1.0, 0.0, 0.0)])
    >>> seconds = ttft.chain_value([(1, 0, 41), (2, 41, 80)])   # edge holds [0, 41), cloud [41, 80)
    >>> from placement import Plan, Route, Shard, evaluate
    >>> plan = Plan(shards=(Shard("a", "llama-3.1-70b", "edge", (0, 41)), Shard("b", "llama-3.1-70b", "cloud", (41, 80))),
    ...             routes=(Route("chat", ("a", "b")),))
    >>> abs(seconds * 1e3 - evaluate(problem, plan).requests["chat"].ttft_ms) < 1e-9   # as evaluate() has it
    True
    """
    D = table.num_devices
    L = table.problem.model(requests[0].model).num_blocks
    per_block, per_stage = np.zeros((D, L)), np.zeros(D)
    hop, first, last, loop = np.zeros((D, D)), np.zeros(D), np.zeros(D), np.zeros((D, D))
    for (a, b, e), req in zip(coefs, requests):
        if not (a or b or e):
            continue
        bc, tc = table.blocks(req, weight_format=weight_format), table.transfers(req)
        steps, B = bc.steps, bc.batch
        busy = bc.prefill_s + steps * bc.decode_s
        busy_ovh = bc.prefill_overhead_s + steps * bc.decode_overhead_s
        per_block += a * bc.prefill_s + b * bc.decode_s + e * bc.active_power_w[:, None] * busy / B
        per_stage += a * bc.prefill_overhead_s + b * bc.decode_overhead_s + e * bc.active_power_w * busy_ovh / B
        hop += (_times(a, tc.prefill_hop_s) + _times(b, tc.decode_hop_s)
                + _times(e / B, tc.prefill_hop_j + steps * tc.decode_hop_j))
        first += _times(a, tc.upload_s) + _times(e, tc.upload_j)
        last += _times(a, tc.return_s) + _times(e * max(req.output_tokens, 1), tc.return_j)
        loop += _times(b, tc.loop_s) + _times(e * steps / B, tc.loop_j)
    return AdditiveTerms(*(readonly(x) for x in (per_block, per_stage, hop, first, last, loop)))


def metric_coefficients(request: RequestClass, metric: str, scale: float = 1e3) -> tuple[float, float, float]:
    """``(TTFT, TPOT, energy)`` weights of one class's ``metric`` (``ttft``, ``tpot``, ``e2e``/``latency``,
    ``energy``), times in ``1 / scale`` seconds (ms by default)."""
    steps = max(request.output_tokens - 1, 0)
    return {"ttft": (scale, 0.0, 0.0), "tpot": (0.0, scale, 0.0), "e2e": (scale, scale * steps, 0.0),
            "latency": (scale, scale * steps, 0.0), "energy": (0.0, 0.0, 1.0)}[metric]


def objective_coefficients(problem: Problem, requests: Sequence[RequestClass]) -> list[tuple[float, float, float]]:
    """Per request: the weights of its TTFT (s), TPOT (s) and energy (J) in ``problem``'s
    additive objective, in the objective's units (ms for times).

    Every metric is weighted by the request class's share (:meth:`Problem.request_weights`).
    ``throughput`` is not additive and contributes nothing here.
    """
    weights = problem.request_weights()
    out = []
    for req in requests:
        a = b = e = 0.0
        for name, lam in problem.objective.terms:
            if name == "throughput":
                continue
            ca, cb, ce = metric_coefficients(req, name)
            w = weights[req.id] * lam
            a, b, e = a + w * ca, b + w * cb, e + w * ce
        out.append((a, b, e))
    return out


class PipelineViews:
    """Stage tables of one model's pipelines over candidate devices ``idx`` (topology indices).

    Position ``i`` of every ``[n, ...]`` array is device ``idx[i]``. ``requests``
    (default: every class of the model) share the pipeline; ``weight_format``
    (default: the model's) is the format of every stage.
    """

    def __init__(self, table: CostTable, model: str, idx: Sequence[int], requests: Sequence[RequestClass] | None = None,
                 weight_format: str | None = None):
        self.table, self.model = table, model
        self.idx = np.asarray(idx, dtype=int)
        self.requests = list(requests if requests is not None else table.problem.requests_for(model))
        self.weight_format = weight_format or table.problem.model(model).weight_format
        self.n, self.L = len(self.idx), table.problem.model(model).num_blocks
        self._a = np.arange(self.L + 1)[:, None]
        self._b = np.arange(self.L + 1)[None, :]

    def _pair(self, arr: np.ndarray) -> np.ndarray:
        return arr[np.ix_(self.idx, self.idx)]

    def terms(self, coefs: Sequence[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray, AdditiveTerms]:
        """``(stage [n, L+1, L+1], hop [n, n], first [n], end [n(last), n(first)], terms)`` of an additive
        quantity over the candidates; ``end`` holds the last stage's return and the loop to the first."""
        t = additive_terms(self.table, self.requests, coefs, self.weight_format)
        end = self._pair(t.loop) + t.last[self.idx][:, None]
        return t.stage_table(self.idx), self._pair(t.hop), t.first[self.idx], end, t

    # -- per-stage limits -------------------------------------------------------------------

    def stage_memory_bytes(self) -> np.ndarray:
        """``[L+1, L+1]``: bytes a stage ``[a, b)`` needs before its device's runtime."""
        a, b = np.broadcast_arrays(self._a, self._b)
        ok = upper_mask(self.L)
        used = np.zeros((self.L + 1, self.L + 1))
        used[ok] = self.table.shard_memory_bytes(self.model, self.weight_format, a[ok], b[ok], self.requests)
        return used

    def memory_ok(self) -> np.ndarray:
        """``[n, L+1, L+1]``: the stage fits its device's usable memory with the engine runtime."""
        runtime = self.table.runtime_bytes(self.weight_format)[self.idx]
        capacity = self.table.capacity_bytes[self.idx]
        need = self.stage_memory_bytes()[None] + runtime[:, None, None]
        return (need <= capacity[:, None, None] * (1 + LIMIT_TOL)) & upper_mask(self.L)[None]

    def layers_ok(self) -> np.ndarray:
        """``[n, L+1, L+1]``: the stage keeps within its device profile's ``max_layers``."""
        most = self.table.max_blocks(self.model)[self.idx]
        return ((self._b - self._a)[None] <= most[:, None, None]) & upper_mask(self.L)[None]

    def load(self) -> np.ndarray:
        """``[n, L+1, L+1]``: share of time the stage keeps its device busy at the request rates."""
        total = np.zeros((self.n, self.L + 1, self.L + 1))
        d = self.idx[:, None, None]
        for req in self.requests:
            if req.rate_rps:
                bc = self.table.blocks(req, weight_format=self.weight_format)
                total += np.where(upper_mask(self.L)[None], self.table.stage_load(req, bc, d, self._a, self._b), 0.0)
        return total

    def load_ok(self) -> np.ndarray:
        return (self.load() <= 1 + LIMIT_TOL) & upper_mask(self.L)[None]

    # -- throughput ------------------------------------------------------------------------

    def demand(self) -> float:
        """Decode tokens/s of the classes' mix per unit of throughput scale."""
        return float(sum(self.table.decode_demand(r) for r in self.requests))

    def token_loads(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode-token loads ``(stage [n, L+1, L+1], hop [n, n], end [n, n])`` per unit of throughput scale.

        Each entry is the largest load its transfers put on one resource (a stage's
        device; a hop's path; the closing loop and returns, summed where they share a
        resource). A pipeline's true busiest resource is at least the largest entry
        along it, so the min-max over these entries bounds throughput from above, and
        equals it whenever the pipeline's transfers use disjoint resources.
        """
        n, L = self.n, self.L
        stage = np.zeros((n, L + 1, L + 1))
        hop = np.zeros((n, n))
        d = self.idx[:, None, None]
        upper = upper_mask(L)[None]
        for req in self.requests:
            q = self.table.decode_demand(req)
            bc = self.table.blocks(req, weight_format=self.weight_format)
            stage += q * np.where(upper, bc.stage_token_s(d, self._a, self._b), 0.0)
            hop += q * self._pair(self.table.transfers(req).hop_token_s)
        return np.where(upper, stage, np.inf), hop, self._end_loads()

    def _end_loads(self) -> np.ndarray:
        """``[n(last), n(first)]``: the busiest resource of the sampled token's loop and returns."""
        n = self.n
        end = np.zeros((n, n))
        exact = n <= 64  # resource by resource; beyond, each transfer's own bottleneck (a lower bound)
        demand = {r.id: self.table.decode_demand(r) for r in self.requests}
        for i, l in enumerate(self.idx):
            returns = _weighted([(demand[r.id], self.table.return_usage(r, int(l))) for r in self.requests])
            for j, f in enumerate(self.idx):
                if i == j:
                    end[i, j] = max(returns.values(), default=0.0)
                elif exact:
                    loops = _weighted([(demand[r.id], self.table.loop_usage(r, int(l), int(f))) for r in self.requests])
                    end[i, j] = max(_merged(returns, loops).values(), default=0.0)
                else:
                    loops = [demand[r.id] * float(self.table.transfers(r).loop_token_s[l, f]) for r in self.requests]
                    end[i, j] = max([*loops, *returns.values()], default=0.0)
        return end


def _weighted(parts) -> dict[int, float]:
    """``sum_k w_k usage_k`` over resources; a missing path (``None``) makes the load infinite."""
    out: dict[int, float] = {}
    for weight, usage in parts:
        if usage is None:
            return {-1: np.inf}
        for k, seconds in usage.items():
            out[k] = out.get(k, 0.0) + weight * seconds
    return out


def _merged(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out
