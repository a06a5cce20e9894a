"""Dynamic programming: the best contiguous partition of one model over a chain of devices.

The PipeEdge / EdgeShard / SplitLLM family. A plan is a pipeline: distinct
devices ``d1 .. dk``, each holding one contiguous range of blocks, covering
blocks ``0 .. L-1`` in order; every request class of the model routes through it.

**What is optimised.** With ``f`` the first and ``l`` the last device, every
additive objective (``latency``, ``ttft``, ``tpot``, ``energy`` and their weighted
mix, averaged over the request classes with the workload's weights) is

    first[f] + sum_i stage[d_i, a_i, b_i] + sum_i hop[d_i, d_i+1] + end[l, f],

where ``stage`` sums per-block costs (prefix sums make it O(1)), ``hop`` holds
the activation transfers, ``first`` the prompt's upload and ``end`` the token's
loop back to the first stage and return to the source (see
:func:`placement.costs.route_times`). ``throughput`` (maximised) is the
workload's decode tokens over its busiest resource, so the DP minimises the
largest of the stage devices' loads, the hop channels' loads and ``end``, the
channel the token takes back (see :func:`placement.costs.throughput.plan_throughput`).

**Limits.** Memory (weights, KV cache of every class, workspace, runtime), load
at the classes' ``rate_rps`` and a profile's ``max_layers`` are per stage: a stage
breaking one is never used. TTFT / TPOT / E2E SLOs add up along the chain: the
DP first solves without them; if that optimum meets them it is optimal, else a
branch-and-bound over partial chains (Pareto dominance on the objective and each
SLO quantity, lower bounds on what the remaining blocks cost) finds the best
chain that meets them. That search is exact but exponential in the worst case;
when the time limit stops it, the best chain found is returned (``feasible``)
with the DP's optimum as a proven bound.

**Devices.** Only devices every request source reaches can serve. With
``constraints.device_order``, the pipeline visits a subsequence of that order
(a device may hold nothing): O(n^2 L^2) numpy work. Otherwise every subset and order is searched exactly by a DP over (used
set, last device, first device, blocks placed) for up to ``max_exact_devices``
devices (default 10; O(2^n n^2 L^2) time); beyond that, the ordered DP runs on a
few orders (largest memory first, fastest first, nearest to the source first)
and the answer is a heuristic one (``feasible``, no bound).

**Not handled** (``solve`` or this function refuses): several models, a choice
of weight formats, and ``throughput`` over several request classes unless every
class gives ``rate_rps`` (without rates, throughput is a linear programme over
the classes' shares, not a min-max).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import weight_format
from placement import Plan, Problem, Status, Termination
from placement.costs import GIB, BlockCosts, TransferCosts, block_costs, transfer_costs
from placement.problem import RequestClass
from solvers.api import PROVEN_FOR_ANY_PLAN, UnsupportedProblemError
from solvers.chain import Pipeline, StageSpec, additive_terms, assemble, memory_order, objective_coefficients
from solvers.dp_search import Found, best_chain, best_chain_within, restrict

__all__ = ["solve_dp", "price_chain", "DEFAULT_MAX_EXACT_DEVICES"]

DEFAULT_MAX_EXACT_DEVICES = 10
_TOL = 1e-9  # evaluate()'s tolerance on memory and load
_LB_SLACK = 1.0 - 1e-9  # lower bounds are shrunk a hair so rounding never prunes a feasible chain


# -- problem -> arrays ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Terms:
    """A quantity that adds up along a chain, over candidate devices ``0 .. n-1``.

    ``stage[d, a, b]`` = ``per_block[d, a:b].sum() + per_stage[d]``; ``end[l, f]``
    is what the last stage ``l`` pays to close the chain started at ``f``.
    """

    per_block: np.ndarray  # [n, L]
    per_stage: np.ndarray  # [n]
    hop: np.ndarray  # [n, n]
    first: np.ndarray  # [n]
    end: np.ndarray  # [n(last), n(first)]

    def stage_table(self) -> np.ndarray:
        n, L = self.per_block.shape
        cum = np.concatenate([np.zeros((n, 1)), np.cumsum(self.per_block, axis=1)], axis=1)
        table = cum[:, None, :] - cum[:, :, None] + self.per_stage[:, None, None]
        return np.where(_upper(L)[None], table, np.inf)

    def chain_value(self, chain: list[tuple[int, int, int]]) -> float:
        f, l = chain[0][0], chain[-1][0]
        total = float(self.first[f]) + float(self.end[l, f])
        total += sum(float(self.per_block[d, a:b].sum() + self.per_stage[d]) for d, a, b in chain)
        total += sum(float(self.hop[u, v]) for (u, _, _), (v, _, _) in zip(chain, chain[1:]))
        return total

    def lower_bounds(self) -> np.ndarray:
        """``[L+1]``: at least what any completion costs once blocks ``[0, b)`` are placed."""
        n, L = self.per_block.shape
        suffix = np.concatenate([np.cumsum(self.per_block.min(axis=0)[::-1])[::-1], [0.0]])
        more = np.zeros(L + 1)
        hops = self.hop[~np.eye(n, dtype=bool)]
        more[:L] = self.per_stage.min() + (hops.min() if hops.size else 0.0)
        return (suffix + more + self.end.min()) * _LB_SLACK


def _upper(L: int) -> np.ndarray:
    """``[L+1, L+1]`` mask of stages ``[a, b)`` with ``a < b``."""
    return np.triu(np.ones((L + 1, L + 1), dtype=bool), k=1)


@dataclass(frozen=True)
class _Class:
    req: RequestClass
    bc: BlockCosts
    tc: TransferCosts
    weight: float


class _Chain:
    """The arrays of one model's chain problem over candidate devices ``idx`` (topology indices)."""

    def __init__(self, problem: Problem, idx: list[int]):
        model = problem.models[0]
        self.problem, self.model, self.idx = problem, model, np.array(idx, dtype=int)
        weights = problem.request_weights()
        self.classes = [_Class(r, block_costs(problem, r), transfer_costs(problem, r), weights[r.id])
                        for r in problem.requests_for(model.id)]
        self.n, self.L = len(idx), model.num_blocks
        self._bottleneck: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _sub(self, arr: np.ndarray) -> np.ndarray:
        """Rows of the candidate devices."""
        return arr[self.idx]

    def _pair(self, arr: np.ndarray) -> np.ndarray:
        """``[u, v]`` entries between candidate devices."""
        return arr[np.ix_(self.idx, self.idx)]

    def additive(self, coefs: list[tuple[float, float, float]]) -> _Terms:
        """Terms of ``sum_c a_c TTFT_c + b_c TPOT_c + e_c energy_c`` (seconds and joules)."""
        t = additive_terms(self.problem, [c.req for c in self.classes], coefs)
        # end[l, f]: the token's loop from l back to f, and its return from l to the source.
        end = self._pair(t.loop) + self._sub(t.last)[:, None]
        return _Terms(self._sub(t.per_block), self._sub(t.per_stage), self._pair(t.hop), self._sub(t.first), end)

    def objective_terms(self) -> _Terms:
        return self.additive(objective_coefficients(self.problem, [c.req for c in self.classes]))

    def slo_terms(self) -> list[tuple[str, _Terms, float]]:
        """One (label, terms in ms, limit) per SLO of every class."""
        out = []
        for i, c in enumerate(self.classes):
            steps = max(c.req.output_tokens - 1, 0)
            for name, limit in c.req.slo.items():
                a, b = {"ttft_ms": (1e3, 0.0), "tpot_ms": (0.0, 1e3), "e2e_ms": (1e3, 1e3 * steps)}[name]
                coefs = [(0.0, 0.0, 0.0)] * len(self.classes)
                coefs[i] = (a, b, 0.0)
                out.append((f"request {c.req.id}: {name.replace('_ms', '').upper()}", self.additive(coefs), limit))
        return out

    # Throughput: the load each resource carries per unit of the workload's decode tokens.

    def demands(self) -> np.ndarray:
        return np.array([(c.req.rate_rps or 1.0) * max(c.req.output_tokens, 1) for c in self.classes])

    def bottleneck(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage device loads ``[n, L+1, L+1]``, hop channel loads ``[n, n]`` and ``end[l, f]``."""
        if self._bottleneck is None:
            self._bottleneck = self._bottleneck_tables()
        return self._bottleneck

    def _bottleneck_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, L = self.n, self.L
        topo = self.problem.topology
        demand = self.demands()
        upper = _upper(L)
        stage = np.zeros((n, L + 1, L + 1))
        hop, loop = np.zeros((n, n)), np.zeros((n, n))
        returns: dict[int, np.ndarray] = {}  # source -> load of the return channel from each last device
        for q, c in zip(demand, self.classes):
            cum = np.concatenate([np.zeros((n, 1)), np.cumsum(self._sub(c.bc.decode_s), axis=1)], axis=1)
            stage += q * (cum[:, None, :] - cum[:, :, None] + self._sub(c.bc.decode_overhead_s)[:, None, None]) \
                / c.req.batch
            hop += q * self._pair(c.tc.hop_token_s)
            loop += q * self._pair(c.tc.loop_token_s)
            src = topo.index[c.req.source]
            returns[src] = returns.get(src, 0.0) + q * self._sub(c.tc.return_token_s)
        blocks = np.arange(L + 1)[None, :] - np.arange(L + 1)[:, None]
        for pos, d in enumerate(self.idx):
            measured = topo.nodes[d].profile_for(self.model.id)
            if measured is not None and measured.throughput_tokens_per_s:
                per_token = np.array([1.0 / measured.throughput_at(k) if k > 0 else 0.0
                                      for k in range(L + 1)])
                stage[pos] = demand.sum() * per_token[np.clip(blocks, 0, L)]
        stage = np.where(upper[None], stage, np.inf)
        end = np.zeros((n, n))
        for l, dl in enumerate(self.idx):
            for f, df in enumerate(self.idx):
                loads = [load[l] for s, load in returns.items() if s != dl and (s != df or l == f)]
                if l != f:
                    loads.append(loop[l, f] + (returns[df][l] if df in returns else 0.0))
                end[l, f] = max(loads, default=0.0)
        return stage, hop, end

    # Per-stage limits.

    def stage_limits(self) -> dict[str, np.ndarray]:
        """``[n, L+1, L+1]`` masks of the stages each limit allows (memory, load, max_layers)."""
        n, L = self.n, self.L
        bc0 = self.classes[0].bc
        a_idx, b_idx = np.arange(L + 1)[:, None], np.arange(L + 1)[None, :]
        cw = np.concatenate([[0.0], np.cumsum(bc0.weight_bytes)])
        ckv = sum(np.concatenate([[0.0], np.cumsum(c.bc.kv_bytes)]) for c in self.classes)
        ws = max(c.bc.workspace_bytes for c in self.classes)
        ws_head = max(c.bc.workspace_bytes + c.bc.head_workspace_bytes for c in self.classes)
        used = (cw[b_idx] - cw[a_idx]) + (ckv[b_idx] - ckv[a_idx]) + np.where(b_idx == L, ws_head, ws) \
            - np.where((a_idx == 0) & (b_idx == L), bc0.tied_head_bytes, 0.0)
        used = used[None] + self._sub(bc0.runtime_bytes)[:, None, None]
        capacity = self._sub(bc0.capacity_bytes)
        memory = used <= capacity[:, None, None] * (1 + _TOL)
        layers = (b_idx - a_idx)[None] <= self._sub(bc0.max_blocks)[:, None, None]
        load = np.zeros((n, L + 1, L + 1))
        for c in self.classes:
            if c.req.rate_rps:
                busy = self.additive([(1.0, float(max(c.req.output_tokens - 1, 0)), 0.0) if o is c else (0.0, 0.0, 0.0)
                                      for o in self.classes]).stage_table()
                load += c.req.rate_rps * np.where(np.isfinite(busy), busy, 0.0) / c.req.batch
        upper = _upper(L)[None]
        return {"memory": memory & upper, "load": (load <= 1 + _TOL) & upper, "max_layers": layers & upper,
                "_load": load}


# -- the solver -----------------------------------------------------------------------------


def _candidates(problem: Problem) -> tuple[list[int], bool]:
    """Topology indices of the devices every request source reaches, and whether their order is fixed."""
    topo = problem.topology
    reach = set(topo.ids)
    for r in problem.workload:
        reach &= topo.reachable(r.source)
    order = problem.constraints.device_order
    if order:
        return [topo.index[d] for d in order if d in reach], True
    return [i for i, node in enumerate(topo.nodes) if node.id in reach], False


def _heuristic_orders(problem: Problem, chain: _Chain) -> list[list[int]]:
    """Candidate positions in a few pipeline orders: largest memory, fastest decode, nearest source first."""
    ids = [problem.topology.nodes[d].id for d in chain.idx]
    pos = {d: i for i, d in enumerate(ids)}
    by_memory = [pos[d] for d in memory_order(problem, ids)]
    decode = chain.additive([(0.0, 1.0, 0.0)] * len(chain.classes))
    speed = decode.per_block.sum(axis=1) + decode.per_stage
    upload = chain.additive([(1.0, 0.0, 0.0)] * len(chain.classes)).first
    by_speed = sorted(range(chain.n), key=lambda i: (speed[i], ids[i]))
    by_distance = sorted(range(chain.n), key=lambda i: (upload[i], ids[i]))
    orders: list[list[int]] = []
    for o in (by_memory, by_speed, by_distance):
        if o not in orders:
            orders.append(o)
    return orders


def _gb(x: float) -> str:
    return f"{x / GIB:.2f} GB"


def dp_unsupported(problem: Problem) -> list[str]:
    """What dp cannot take beyond its capability flags (the registry's precondition)."""
    why = []
    if len(problem.models) != 1:
        why.append("more than one model (use ilp or bruteforce)")
    if problem.objective.name == "throughput" and len(problem.workload) > 1 \
            and not all(r.rate_rps for r in problem.workload):
        why.append("throughput over several request classes without rate_rps (a linear programme over the "
                   "classes' shares; use bruteforce or ilp)")
    return why


def solve_dp(problem: Problem, params: Any, options: dict[str, Any]) -> Plan:
    """The best contiguous partition of the instance's model over its devices.

    Parameters
    ----------
    problem : Problem
        One model; any number of its request classes (they share the pipeline).
    params : SolveParams
        ``time_limit_s`` is honoured (wall clock, table building included); the
        DP is deterministic and exact, so ``seed``, ``threads`` and ``rel_gap``
        change nothing.
    options : dict
        ``max_exact_devices`` (int, default 10): above this many candidate
        devices without a ``device_order``, search a few orders only.

    Returns
    -------
    Plan
        ``optimal`` (bound = objective) when proven, ``infeasible`` with the
        binding limits when no chain meets them, ``feasible`` when stopped by the
        time limit or in heuristic mode, ``no_solution`` when nothing was found.

    Examples
    --------
    >>> from placement import parse_instance, evaluate
    >>> from solvers import solve
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import tiny_instance
    >>> problem = parse_instance(tiny_instance())
    >>> plan = solve(problem, "dp")
    >>> plan.status.value, bool(abs(plan.objective - evaluate(problem, plan).objective) < 1e-9 * plan.objective)
    ('optimal', True)
    """
    started = time.perf_counter()
    deadline = started + params.time_limit_s
    max_exact = int(options.get("max_exact_devices", DEFAULT_MAX_EXACT_DEVICES))
    why = dp_unsupported(problem)
    if why:
        raise UnsupportedProblemError(f"solver 'dp' does not handle {'; '.join(why)}")
    throughput = problem.objective.name == "throughput"
    idx, ordered = _candidates(problem)
    model = problem.models[0]
    floor = problem.constraints.quality_floor
    if floor is not None and weight_format(model.weight_format).quality < floor:
        # dp keeps the model's one format, so every route has that format's quality.
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED,
                    stats={"mode": "none", "proven_by": PROVEN_FOR_ANY_PLAN},
                    reasons=(f"quality: {model.weight_format} has quality {weight_format(model.weight_format).quality:.4f} "
                             f"< constraints.quality_floor {floor:g}",))
    sources = ", ".join(sorted({r.source for r in problem.workload}))
    if not idx:
        what = "constraints.device_order lists no device" if ordered else "no device is"
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, stats={"mode": "none"},
                    reasons=(f"network: {what} reachable from every request source ({sources})",))
    chain = _Chain(problem, idx)
    obj = chain.objective_terms()
    limits = chain.stage_limits()
    allowed = limits["memory"] & limits["load"] & limits["max_layers"]
    if throughput:
        s_tab, hop, end = chain.bottleneck()
        first, op = np.zeros(chain.n), np.maximum
    else:
        s_tab, hop, first, end, op = obj.stage_table(), obj.hop, obj.first, obj.end, np.add
    stage = np.where(allowed, s_tab, np.inf)
    slos = chain.slo_terms()

    exact = ordered or chain.n <= max_exact
    orders = [list(range(chain.n))] if exact else _heuristic_orders(problem, chain)
    mode = ("ordered" if ordered else "subsets") if exact else "orders"

    def run(tables: tuple, slo_search: bool) -> tuple[Found, list[int] | None]:
        """Best over ``orders``; chain positions mapped back to candidate positions."""
        best: tuple[Found, list[int] | None] = (Found(math.inf, [], True, 0), None)
        complete, states = True, 0
        for order in orders:
            sub = restrict(tables, order) if mode == "orders" else tables
            on_order = ordered or mode == "orders"
            if slo_search:
                st, hp, fs, en = sub
                cons = [(*restrict((t.stage_table(), t.hop, t.first, t.end), order),
                         t.lower_bounds(), lim) if mode == "orders" else
                        (t.stage_table(), t.hop, t.first, t.end, t.lower_bounds(), lim) for _, t, lim in slos]
                lb = obj.lower_bounds() if op is np.add else np.zeros(chain.L + 1)
                found = best_chain_within(st, hp, fs, en, op, lb, cons, on_order, deadline)
            else:
                found = best_chain(*sub, op=op, ordered=on_order, deadline=deadline)
            complete &= found.complete
            states += found.states
            if found.value < best[0].value:
                best = (found, order)
        f, order = best
        mapped = [(order[d] if mode == "orders" else d, a, b) for d, a, b in f.chain] if order else []
        return Found(f.value, mapped, complete, states), order

    def slo_ok(c: list[tuple[int, int, int]]) -> bool:
        return all(t.chain_value(c) <= lim for _, t, lim in slos)

    relaxed, _ = run((stage, hop, first, end), slo_search=False)
    stats: dict[str, Any] = {"mode": mode, "devices": chain.n, "states": relaxed.states,
                             "orders": len(orders)}
    found, bound_value = relaxed, None
    if relaxed.chain and slos and not slo_ok(relaxed.chain):
        if relaxed.complete and exact:
            bound_value = relaxed.value  # the optimum without SLOs bounds the optimum with them
        stats["unconstrained_optimum"] = _report(chain, obj, relaxed.chain, throughput)
        found, _ = run((stage, hop, first, end), slo_search=True)
        stats["search_nodes"] = found.states
    elif relaxed.complete and exact:
        bound_value = relaxed.value

    if not found.chain:
        if found.complete and exact:
            reasons = _infeasibility(problem, chain, limits, obj, slos, ordered)
            return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, reasons=tuple(reasons),
                        stats=stats)
        why = "time limit" if not found.complete else "heuristic device orders"
        return Plan(status=Status.NO_SOLUTION,
                    termination=Termination.TIME_LIMIT if not found.complete else Termination.HEURISTIC,
                    reasons=(f"no chain meets every limit within the {why} searched",), stats=stats)

    value = _report(chain, obj, found.chain, throughput)
    topo = problem.topology
    stages = tuple(StageSpec(topo.nodes[chain.idx[d]].id, a, b) for d, a, b in found.chain)
    shards, routes = assemble([Pipeline(model.id, tuple(r.id for r in problem.workload), stages)])
    proven = found.complete and exact
    if proven:
        return Plan(shards=shards, routes=routes, status=Status.OPTIMAL, termination=Termination.CONVERGED,
                    objective=value, bound=value, gap=0.0, stats=stats)
    bound = None
    if bound_value is not None:
        bound = float(chain.demands().sum() / bound_value) if throughput else float(bound_value)
    gap = abs(value - bound) / max(abs(value), 1e-12) if bound is not None else None
    return Plan(shards=shards, routes=routes, status=Status.FEASIBLE,
                termination=Termination.TIME_LIMIT if not found.complete else Termination.HEURISTIC,
                objective=value, bound=bound, gap=gap, stats=stats)


def price_chain(problem: Problem, stages: list[tuple[str, int, int]]) -> tuple[float, bool]:
    """The DP's own account of the pipeline ``stages`` (``(device id, start, end)`` triples).

    Returns its objective value and whether it keeps every limit the DP checks
    (memory, load, ``max_layers``, SLOs). Both agree with ``evaluate`` on the
    plan of that pipeline; a device cut off from a source gives ``(inf, False)``
    (``0`` for throughput).

    Examples
    --------
    >>> from placement import parse_instance
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import tiny_instance
    >>> value, feasible = price_chain(parse_instance(tiny_instance()), [("phone", 0, 10), ("edge", 10, 22)])
    >>> value > 0, feasible
    (True, True)
    """
    idx, _ = _candidates(problem)
    throughput = problem.objective.name == "throughput"
    pos = {d: i for i, d in enumerate(idx)}
    try:
        c = [(pos[problem.topology.index[d]], a, b) for d, a, b in stages]
    except KeyError:
        return (0.0 if throughput else math.inf), False
    chain = _Chain(problem, idx)
    limits = chain.stage_limits()
    allowed = limits["memory"] & limits["load"] & limits["max_layers"]
    feasible = all(allowed[d, a, b] for d, a, b in c) and all(t.chain_value(c) <= lim for _, t, lim in chain.slo_terms())
    return _report(chain, chain.objective_terms(), c, throughput), bool(feasible)


def _report(chain: _Chain, obj: _Terms, c: list[tuple[int, int, int]], throughput: bool) -> float:
    """The objective of chain ``c``, summed afresh from the cost arrays."""
    if not throughput:
        return obj.chain_value(c)
    stage, hop, end = chain.bottleneck()
    loads = [stage[d, a, b] for d, a, b in c]
    loads += [hop[u, v] for (u, _, _), (v, _, _) in zip(c, c[1:])]
    loads.append(end[c[-1][0], c[0][0]])
    return float(chain.demands().sum() / max(loads))


def _infeasibility(problem: Problem, chain: _Chain, limits: dict[str, np.ndarray], obj: _Terms,
                   slos: list, ordered: bool) -> list[str]:
    """Why no chain exists: each limit that alone leaves none, with its numbers."""
    n, L = chain.n, chain.L
    zero_hop, zero_first, zero_end = np.zeros((n, n)), np.zeros(n), np.zeros((n, n))

    def possible(mask: np.ndarray) -> bool:
        found = best_chain(np.where(mask, 0.0, np.inf), zero_hop, zero_first, zero_end, ordered=ordered)
        return bool(found.chain)

    model = chain.model
    topo = problem.topology
    names = [topo.nodes[d].id for d in chain.idx]
    reasons = []
    if not possible(limits["memory"]):
        bc0 = chain.classes[0].bc
        need = float(bc0.weight_bytes.sum() - bc0.tied_head_bytes + sum(c.bc.kv_bytes.sum() for c in chain.classes)
                     + max(c.bc.workspace_bytes + c.bc.head_workspace_bytes for c in chain.classes))
        capacity = chain._sub(bc0.capacity_bytes)
        runtime = chain._sub(bc0.runtime_bytes)
        spans = [b - a for d in range(n) for a in range(L) for b in range(a + 1, L + 1) if limits["memory"][d, a, b]]
        cut_off = [node.id for node in topo.nodes if node.id not in names]
        where = f"the {n} device(s) reachable from every source ({', '.join(names)})" + (
            f"; not reachable: {', '.join(cut_off)}" if cut_off else "")
        if float((capacity - runtime).sum()) < need:
            reasons.append(
                f"memory: model {model.id} needs at least {_gb(need)} (weights + KV cache of its request classes + "
                f"a prefill workspace) but {where} have {_gb(float(capacity.sum()))} usable, "
                f"{_gb(float(runtime.sum()))} of it taken by engine runtimes")
        else:
            reasons.append(
                f"memory: {where} have {_gb(float((capacity - runtime).sum()))} usable beyond their engine "
                f"runtimes, enough for model {model.id}'s {_gb(need)} in total, but no split of its {L} blocks "
                f"into contiguous ranges on distinct devices fits every device (each stage needs its own "
                f"workspace; the most any device holds is {max(spans, default=0)} block(s))")
    if not possible(limits["load"]):
        load = np.where(_upper(L)[None], limits["_load"], np.inf)
        least = best_chain(load, zero_hop, zero_first, zero_end, op=np.maximum, ordered=ordered)
        reasons.append(f"load: at the workload's request rates every split keeps some device busy at least "
                       f"{least.value:.0%} of the time (more than it can serve)")
    if not possible(limits["max_layers"]):
        most = sum(int(min(m, L)) for m in chain._sub(chain.classes[0].bc.max_blocks))
        reasons.append(f"memory: the reachable devices' profiles allow at most {most} of model {model.id}'s "
                       f"{L} blocks in all (max_layers)")
    allowed = limits["memory"] & limits["load"] & limits["max_layers"]
    if reasons:
        return reasons
    if not possible(allowed):
        return [f"memory and load: each of the memory, load and max_layers limits alone leaves a split of model "
                f"{model.id}, but no split meets them all at once"]
    best = []
    for label, terms, limit in slos:
        st = np.where(allowed, terms.stage_table(), np.inf)
        f = best_chain(st, terms.hop, terms.first, terms.end, ordered=ordered)
        best.append(f"{label} {f.value:.1f} ms")
        if f.value > limit:
            reasons.append(f"SLO: {label} is at least {f.value:.1f} ms on every split that fits the devices' "
                           f"limits > SLO {limit:g} ms")
    if not reasons:
        reasons.append(f"SLO: no split meets the SLOs all at once; each alone can be met (best {', '.join(best)})")
    return reasons
