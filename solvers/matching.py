"""Matching game: blocks and devices, deferred acceptance, then swaps until swap-stable.

A model's decoder blocks are one side of a many-to-one matching and the devices
the other: a device accepts blocks up to its memory quota (bytes: weights and
KV cache of every request class, plus the prefill workspace and the engine's
runtime once it holds any block) and its profile's ``max_layers``. Preferences
carry externalities: a block's cost on a device includes the transfers to the
devices its neighbouring blocks sit on and the per-stage overhead it adds when
it opens a new stage (the pipeline bubble); under a throughput objective, the
load the device already carries.

1. **Deferred acceptance.** Blocks propose to devices in order of preference;
   each device keeps the proposers for which it is comparatively best (the
   block's cost there minus its best alternative) up to its quota and rejects
   the rest, who propose to their next choice. As preferences depend on where
   the neighbours went, the game is replayed with the externalities of the
   last matching until it repeats. Seeded restarts perturb the preferences.
2. **Contiguity repair.** A device holding several runs of blocks keeps its
   longest; each other run joins the neighbouring run it costs least on. Each
   device then holds one contiguous range and the pipeline order follows the
   blocks (kept within ``constraints.device_order`` when given).
3. **Swaps** (best improvement) until no single swap improves the plan. The
   swaps of one model's pipeline: move the boundary between two consecutive
   stages; hand a stage's range to a neighbouring stage; exchange the ranges of
   two stages; swap two devices' places in the pipeline, or move one device to
   another place, each keeping its number of blocks; move a stage's range to a
   device the model does not use; split a stage's range with an unused device;
   let a device hand its range to a neighbour and split another stage's range;
   and, across models, let two devices trade everything they hold.
   Each candidate is scored on the cost model's numpy tables, the whole plan
   at once (transfers, loop, memory, SLOs, load, min-max throughput), so the
   externalities are exact. A plan breaking a limit is first driven to
   feasibility by the same swaps (its total relative violation first); a
   min-max plateau is left by lowering the sum of squared resource loads.

The result is *swap-stable*: no plan in that neighbourhood is better. Nothing is
proven about the optimum, so the plan has no bound. A run stopped by the time
limit reports the improving swaps that remain as ``blocking_pairs``.

Examples
--------
>>> from placement import load_instance
>>> from solvers import solve
>>> plan = solve(load_instance("instances/device-edge-cloud.yaml"), "matching")  # doctest: +SKIP
>>> plan.stats["stable"], plan.stats["blocking_pairs"]                          # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

from placement import Plan, Problem, Status, Termination, block_costs, transfer_costs
from placement.costs import GIB
from placement.feasibility import infeasibility_reasons
from solvers.api import PROVEN_FOR_ANY_PLAN
from solvers.chain import Pipeline, StageSpec, additive_terms, assemble, objective_coefficients

__all__ = ["solve_matching"]

_REL_TOL = 1e-9        # an objective change smaller than this (relative) is no improvement
_LIMIT_MARGIN = 1e-12  # own limit checks are this much stricter than evaluate()'s
_MAX_DA_REPLAYS = 8

Stages = tuple[tuple[int, int, int], ...]  # (device index, start block, end block) in pipeline order
State = tuple[Stages, ...]                 # one pipeline per placed model


@dataclass(frozen=True)
class _ClassTables:
    """Per request class: prefix sums of stage times and the transfer matrices (lists for speed)."""

    id: str
    batch: int
    steps: int              # decode steps after the first token
    rate_rps: float | None
    slo: tuple[tuple[str, float], ...]
    source: int
    demand: float           # tokens/s weight in the throughput mix
    pre_cum: list
    dec_cum: list
    pre_ovh: list
    dec_ovh: list
    upload_s: list
    return_s: list
    prefill_hop_s: list
    decode_hop_s: list
    loop_s: list
    hop_token_s: list
    loop_token_s: list
    return_token_s: list
    profile_token_s: tuple  # per device: seconds per token holding k blocks (list over k), or None


@dataclass(frozen=True)
class _ModelTables:
    """One model's pipeline tables: the additive objective, memory, and the preference surrogate."""

    id: str
    num_blocks: int
    requests: tuple[str, ...]
    candidates: tuple[int, ...]
    rank: dict | None       # device -> position in constraints.device_order
    block_cum: list         # [D][L+1] additive objective per block, prefix sums
    fixed: list             # [D] per stage
    hop: list               # [D][D] between consecutive stages
    entry: list             # [D] first stage
    exit: list              # [D] last stage
    loop: list              # [last][first]
    mem_cum: list           # [L+1] weights + KV of every class
    block_bytes: np.ndarray
    tied_bytes: float
    workspace: float
    head_workspace: float
    runtime: list
    max_blocks: list
    minmax: bool            # throughput objective: preferences carry the device's load
    pref_block: np.ndarray  # [D, L] surrogate per-block cost for the preferences
    pref_fixed: np.ndarray
    pref_hop: np.ndarray
    pref_entry: np.ndarray
    pref_exit: np.ndarray
    pref_loop: np.ndarray
    classes: tuple[_ClassTables, ...]


@dataclass(frozen=True)
class _Score:
    violation: float   # 0 when every limit holds
    value: float       # minimised: the objective, or minus a throughput objective
    secondary: float   # breaks min-max plateaus (sum of squared resource loads)


def _prefix(a: np.ndarray) -> list:
    return np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1).tolist()


def _build_tables(problem: Problem) -> tuple[list[_ModelTables], np.ndarray, list[str]]:
    """Arrays for every placed model, the devices' usable bytes, and reasons a model has no candidate."""
    topo = problem.topology
    D = len(topo.nodes)
    tables, problems, capacity = [], [], np.zeros(D)
    for model in problem.models:
        reqs = problem.requests_for(model.id)
        if not reqs:
            continue
        L = model.num_blocks
        reach = set(topo.ids)
        for r in reqs:
            reach &= topo.reachable(r.source)
        rank = None
        if problem.constraints.device_order:
            rank = {topo.index[d]: i for i, d in enumerate(problem.constraints.device_order) if d in topo.index}
            reach &= {topo.nodes[d].id for d in rank}
        candidates = tuple(sorted(topo.index[d] for d in reach))
        if not candidates:
            problems.append(f"no device is reachable from every source of {model.id}'s requests")
        # The objective is additive over stages: per-block, per-stage, per-hop and endpoint parts.
        terms = additive_terms(problem, reqs, objective_coefficients(problem, reqs))
        block, fixed, hop = terms.per_block, terms.per_stage, terms.hop
        entry, exit_, loop = terms.first, terms.last, terms.loop
        tp_block, tp_fixed, tp_hop = np.zeros((D, L)), np.zeros(D), np.zeros((D, D))
        classes = []
        mem = None
        for r in reqs:
            bc, tc = block_costs(problem, r), transfer_costs(problem, r)
            capacity = bc.capacity_bytes
            steps, B = max(r.output_tokens - 1, 0), r.batch
            demand = (r.rate_rps or 1.0) * max(r.output_tokens, 1)
            tp_block += demand * bc.decode_s / B
            tp_fixed += demand * bc.decode_overhead_s / B
            tp_hop += demand * np.where(np.isfinite(tc.hop_token_s), tc.hop_token_s, 0.0)
            per_block = bc.weight_bytes + bc.kv_bytes
            mem = per_block if mem is None else mem + bc.kv_bytes
            profile_token_s = []
            for node in topo.nodes:
                measured = node.profile_for(model.id)
                if measured is not None and measured.throughput_tokens_per_s:
                    profile_token_s.append([math.inf] + [1.0 / measured.throughput_at(n) for n in range(1, L + 1)])
                else:
                    profile_token_s.append(None)
            classes.append(_ClassTables(
                id=r.id, batch=B, steps=steps, rate_rps=r.rate_rps, slo=tuple(r.slo.items()),
                source=topo.index[r.source], demand=demand,
                pre_cum=_prefix(bc.prefill_s), dec_cum=_prefix(bc.decode_s),
                pre_ovh=bc.prefill_overhead_s.tolist(), dec_ovh=bc.decode_overhead_s.tolist(),
                upload_s=tc.upload_s.tolist(), return_s=tc.return_s.tolist(),
                prefill_hop_s=tc.prefill_hop_s.tolist(), decode_hop_s=tc.decode_hop_s.tolist(),
                loop_s=tc.loop_s.tolist(), hop_token_s=tc.hop_token_s.tolist(),
                loop_token_s=tc.loop_token_s.tolist(), return_token_s=tc.return_token_s.tolist(),
                profile_token_s=tuple(profile_token_s),
            ))
        first = [block_costs(problem, r) for r in reqs]
        bc0 = first[0]
        throughput = problem.objective.name == "throughput"
        pref = (tp_block, tp_fixed, tp_hop, np.zeros(D), np.zeros(D), np.zeros((D, D))) if throughput \
            else (block, fixed, hop, entry, exit_, loop)
        tables.append(_ModelTables(
            id=model.id, num_blocks=L, requests=tuple(r.id for r in reqs), candidates=candidates, rank=rank,
            block_cum=_prefix(block), fixed=fixed.tolist(), hop=hop.tolist(), entry=entry.tolist(),
            exit=exit_.tolist(), loop=loop.tolist(),
            mem_cum=np.concatenate([[0.0], np.cumsum(mem)]).tolist(), block_bytes=mem,
            tied_bytes=bc0.tied_head_bytes,
            workspace=max(c.workspace_bytes for c in first),
            head_workspace=max(c.workspace_bytes + c.head_workspace_bytes for c in first),
            runtime=bc0.runtime_bytes.tolist(), max_blocks=bc0.max_blocks.tolist(), minmax=throughput,
            pref_block=pref[0], pref_fixed=pref[1], pref_hop=pref[2], pref_entry=pref[3], pref_exit=pref[4],
            pref_loop=pref[5], classes=tuple(classes),
        ))
    return tables, capacity, problems


# -- scoring a state --------------------------------------------------------------------------


class _Scorer:
    """Scores states on the tables (memoised); the single objective computation of this solver."""

    def __init__(self, problem: Problem, tables: list[_ModelTables], capacity: np.ndarray):
        self.tables = tables
        self.capacity = capacity.tolist()
        self.ids = problem.topology.ids
        self.terms = problem.objective.terms
        self.throughput = problem.objective.name == "throughput"
        self.memo: dict[State, _Score] = {}
        self.evaluations = 0
        self.demand = {c.id: c.demand for mt in tables for c in mt.classes}
        self.rate = {c.id: c.rate_rps for mt in tables for c in mt.classes}

    def score(self, state: State, beat: _Score | None = None) -> _Score:
        """The state's score; with ``beat``, a state that cannot improve on it may get value ``inf``
        instead of its exact throughput (which would cost a linear programme)."""
        hit = self.memo.get(state)
        if hit is None:
            hit, _, exact = self._score(state, beat=beat)
            if exact:
                self.memo[state] = hit
        return hit

    def objective(self, state: State) -> float:
        """The objective value as ``evaluate`` reports it (throughput un-negated; a throughput LP is
        solved by HiGHS, as ``plan_throughput`` does, rather than by the search's dual enumeration)."""
        value = self._score(state, final=True)[0].value if self.throughput else self.score(state).value
        return -value if self.throughput else value

    def violations(self, state: State) -> list[str]:
        return self._score(state, explain=True)[1]

    def _score(self, state: State, explain: bool = False, beat: _Score | None = None, final: bool = False
               ) -> tuple[_Score, list[str], bool]:
        """Score ``state``; the flag says whether the score is exact. With a feasible ``beat``, a
        state that cannot improve on it returns early (cheapest checks first)."""
        self.evaluations += 1
        why: list[str] = []
        additive, violation = self._additive(state), 0.0
        screen = beat is not None and beat.violation == 0 and not explain
        if screen and not self.throughput and not additive < beat.value - _REL_TOL * max(abs(beat.value), 1e-12):
            return _Score(math.inf, additive, 0.0), why, False
        # Memory and profile limits.
        used: dict[int, float] = defaultdict(float)
        runtime: dict[int, float] = defaultdict(float)
        for mt, stages in zip(self.tables, state):
            L = mt.num_blocks
            for d, a, b in stages:
                nbytes = mt.mem_cum[b] - mt.mem_cum[a] + (mt.head_workspace if b == L else mt.workspace)
                if a == 0 and b == L:
                    nbytes -= mt.tied_bytes
                used[d] += nbytes
                runtime[d] = max(runtime[d], mt.runtime[d])
                if b - a > mt.max_blocks[d]:
                    violation += (b - a - mt.max_blocks[d]) / L
                    if explain:
                        why.append(f"device {self.ids[d]}: holds {b - a} blocks of {mt.id} > its profile's "
                                   f"max_layers {mt.max_blocks[d]:g}")
        for d, nbytes in used.items():
            total, cap = nbytes + runtime[d], self.capacity[d]
            if total > cap:
                violation += (total - cap) / max(cap, GIB)
                if explain:
                    why.append(f"device {self.ids[d]}: needs {total / GIB:.2f} GB > usable {cap / GIB:.2f} GB")
        if beat is not None and not explain and violation > beat.violation:
            return _Score(violation, math.inf, 0.0), why, False  # the other limits only add to it
        # Per class: SLOs, device load at the request rates, resource use for throughput.
        load: dict[int, float] = defaultdict(float)
        usage: dict[str, dict] = {}
        for mt, stages in zip(self.tables, state):
            first, last = stages[0][0], stages[-1][0]
            for c in mt.classes:
                if not (c.slo or c.rate_rps or self.throughput):
                    continue
                pre = [c.pre_cum[d][b] - c.pre_cum[d][a] + c.pre_ovh[d] for d, a, b in stages]
                dec = [c.dec_cum[d][b] - c.dec_cum[d][a] + c.dec_ovh[d] for d, a, b in stages]
                if c.slo:
                    hops = list(zip(stages, stages[1:]))
                    ttft = (sum(pre) + c.upload_s[first] + sum(c.prefill_hop_s[u[0]][v[0]] for u, v in hops)
                            + c.return_s[last])
                    tpot = sum(dec) + sum(c.decode_hop_s[u[0]][v[0]] for u, v in hops) + c.loop_s[last][first]
                    values = {"ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3, "e2e_ms": (ttft + c.steps * tpot) * 1e3}
                    for name, limit in c.slo:
                        excess = values[name] - limit * (1 - _LIMIT_MARGIN)
                        if excess > 0 or not math.isfinite(values[name]):
                            violation += excess / max(limit, 1e-9) if math.isfinite(excess) else 1e6
                            if explain:
                                why.append(f"request {c.id}: {name[:-3].upper()} {values[name]:,.1f} ms > SLO "
                                           f"{limit:g} ms")
                if c.rate_rps:
                    for (d, _, _), p, q in zip(stages, pre, dec):
                        load[d] += c.rate_rps * (p + c.steps * q) / c.batch
                if self.throughput:
                    usage[c.id] = self._resource_seconds(c, stages, dec)
        for d, busy in load.items():
            if busy > 1.0:
                violation += busy - 1.0
                if explain:
                    why.append(f"device {self.ids[d]}: busy {busy:.0%} of the time at the workload's request rates")
        if not math.isfinite(additive + sum(sum(u.values()) for u in usage.values())):
            violation += 1e6
            if explain:
                why.append("a stage has no network path to the next one or to a request's source")
        secondary, exact = 0.0, True
        if self.throughput:
            tokens_s, secondary = self._throughput(usage, violation, None if final else beat, final)
            exact = tokens_s is not None
            value = -sum(w for _, w in self.terms) * tokens_s if exact else math.inf
        else:
            value = additive
        return _Score(violation, value, secondary), why, exact

    def _additive(self, state: State) -> float:
        """The objective when it is additive (every metric but throughput): blocks, stage overheads,
        hops, the first and last stages' transfers and the autoregressive loop."""
        total = 0.0
        for mt, stages in zip(self.tables, state):
            prev = -1
            for d, a, b in stages:
                row = mt.block_cum[d]
                total += row[b] - row[a] + mt.fixed[d]
                if prev >= 0:
                    total += mt.hop[prev][d]
                prev = d
            first, last = stages[0][0], stages[-1][0]
            total += mt.entry[first] + mt.exit[last] + mt.loop[last][first]
        return total

    def _resource_seconds(self, c: _ClassTables, stages: Stages, dec: list) -> dict:
        """Seconds per decode token on each device and channel (``route_resource_seconds``' keys)."""
        use: dict = defaultdict(float)
        for (d, a, b), q in zip(stages, dec):
            prof = c.profile_token_s[d]
            use[("device", self.ids[d])] += prof[b - a] if prof is not None else q / c.batch
        idx = [d for d, _, _ in stages]
        for u, v in zip(idx, idx[1:]):
            use[("channel", u, v)] += c.hop_token_s[u][v]
        first, last = idx[0], idx[-1]
        if last != first:
            use[("channel", last, first)] += c.loop_token_s[last][first]
        if last != c.source:
            use[("channel", last, c.source)] += c.return_token_s[last]
        return use

    def _throughput(self, usage: dict, violation: float, beat: _Score | None, final: bool = False
                    ) -> tuple[float | None, float]:
        """Tokens/s of the classes' resource use (closed form or LP, as ``plan_throughput``), and the
        sum of squared resource loads; ``None`` when a bound shows the state cannot improve on
        ``beat`` and the LP is skipped. Two classes' LP is solved exactly by its dual's vertices
        (HiGHS only when ``final``)."""
        if not usage:
            return 0.0, 0.0
        classes = list(usage)
        demand = {c: self.demand[c] for c in classes}
        if len(classes) == 1 or all(self.rate[c] for c in classes):
            load: dict = defaultdict(float)
            for c in classes:
                for res, sec in usage[c].items():
                    load[res] += demand[c] * sec
            worst = max(load.values())
            return (sum(demand.values()) / worst if worst > 0 else math.inf), sum(v * v for v in load.values())
        # Rows in plan_throughput's order, so HiGHS sees the very same LP.
        resources = sorted({res for c in classes for res in usage[c]}, key=str) if final else \
            list({res: None for c in classes for res in usage[c]})
        A = np.array([[usage[c].get(res, 0.0) for c in classes] for res in resources])
        if beat is not None and violation == beat.violation:
            # Bounds first: a state whose bound cannot beat ``beat`` needs no exact value.
            weight = -sum(w for _, w in self.terms)
            threshold = beat.value - _REL_TOL * max(abs(beat.value), 1e-12)
            if weight * _lp_upper_bound(A, pairs=False) >= threshold or weight * _lp_upper_bound(A) >= threshold:
                return None, 0.0
        elif beat is not None and not violation < beat.violation * (1 - _LIMIT_MARGIN):
            return None, 0.0
        if A.shape[1] == 2 and not final:
            return _lp_upper_bound(A), 0.0
        result = linprog(-np.ones(len(classes)), A_ub=A, b_ub=np.ones(len(resources)), bounds=(0, None),
                         method="highs")
        return (float(-result.fun) if result.status == 0 else 0.0), 0.0


@functools.lru_cache(maxsize=64)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def _lp_upper_bound(A: np.ndarray, pairs: bool = True) -> float:
    """An upper bound on ``max sum(x) s.t. A x <= 1, x >= 0`` from dual-feasible points: one resource
    ``r`` gives ``1 / min_c A[r, c]``; with two classes every pair of resources is tried too, which
    makes the bound exact (the dual optimum is a basic solution)."""
    positive = np.all(A > 0, axis=1)
    bound = float(np.min(1.0 / A[positive].min(axis=1))) if positive.any() else math.inf
    if pairs and A.shape[1] == 2:
        r, s = _pairs(len(A))
        det = A[r, 0] * A[s, 1] - A[s, 0] * A[r, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            yr, ys = (A[s, 1] - A[s, 0]) / det, (A[r, 0] - A[r, 1]) / det
        ok = (det != 0) & (yr >= 0) & (ys >= 0)
        if ok.any():
            bound = min(bound, float(np.min(yr[ok] + ys[ok])))
    return bound


def _improves(new: _Score, cur: _Score, tie_break: bool = True) -> bool:
    """Lexicographic (violation, objective, plateau tie-break) improvement; strict, so swaps never
    cycle. Without ``tie_break``: whether the swap lowers the violation or the objective itself."""
    if new.violation != cur.violation:
        return new.violation < cur.violation * (1 - _LIMIT_MARGIN)
    if new.value < cur.value - _REL_TOL * max(abs(cur.value), 1e-12):
        return True
    return tie_break and new.value == cur.value and new.secondary < cur.secondary * (1 - _LIMIT_MARGIN)


# -- deferred acceptance ----------------------------------------------------------------------


def _preference_costs(mt: _ModelTables, labels: list[int] | None, D: int) -> np.ndarray:
    """Cost ``[L, D]`` of each block on each device given where the other blocks sit (externalities)."""
    L = mt.num_blocks
    cost = mt.pref_block.T.copy()
    cost[0] += mt.pref_entry
    cost[L - 1] += mt.pref_exit
    if labels is None:
        # Nothing is matched yet: spread the stage overhead over the blocks.
        return cost + mt.pref_fixed / L
    lab = np.asarray(labels)
    for j in range(L):
        left = lab[j - 1] if j > 0 else -1
        right = lab[j + 1] if j < L - 1 else -1
        if left >= 0:
            cost[j] += mt.pref_hop[left, :]
        if right >= 0:
            cost[j] += mt.pref_hop[:, right]
        # Opening a new stage adds its fixed overhead (the pipeline bubble).
        opens = np.ones(D, dtype=bool)
        if left >= 0:
            opens[left] = False
        if right >= 0:
            opens[right] = False
        cost[j] += np.where(opens, mt.pref_fixed, 0.0)
    if lab[L - 1] >= 0:
        cost[0] += mt.pref_loop[lab[L - 1], :]
    if lab[0] >= 0:
        cost[L - 1] += mt.pref_loop[:, lab[0]]
    if mt.minmax:
        # Min-max objective: a block also pays the load its device already carries (congestion).
        carried = np.zeros(D)
        np.add.at(carried, lab, mt.pref_block[lab, np.arange(L)])
        cost += carried[None, :] - np.where(lab[:, None] == np.arange(D)[None, :], mt.pref_block.T, 0.0)
    return cost


def _deferred_acceptance(tables: list[_ModelTables], capacity: np.ndarray, costs: list[np.ndarray]
                         ) -> tuple[list[list[int]], int]:
    """One many-to-one deferred acceptance with fixed preferences; returns labels (-1 unmatched), rounds."""
    D = len(capacity)
    runtime_max = np.zeros(D)
    for mt in tables:
        runtime_max = np.maximum(runtime_max, np.asarray(mt.runtime))
    quota = capacity - runtime_max
    choices, regret = {}, {}
    for m, (mt, cost) in enumerate(zip(tables, costs)):
        cand = list(mt.candidates)
        for j in range(mt.num_blocks):
            row = cost[j, cand]
            order = np.argsort(row, kind="stable")
            choices[(m, j)] = [cand[i] for i in order]
            best = row[order[0]]
            second = row[order[1]] if len(order) > 1 else best
            for i, d in enumerate(cand):
                # A device ranks a block by how much better it is there than at the block's best alternative.
                regret[(m, j, d)] = row[i] - (second if i == order[0] else best)
    held: dict[int, list] = defaultdict(list)
    nxt = dict.fromkeys(choices, 0)
    free = list(choices)
    rounds = 0
    while free:
        rounds += 1
        proposals: dict[int, list] = defaultdict(list)
        for item in free:
            if nxt[item] < len(choices[item]):
                proposals[choices[item][nxt[item]]].append(item)
                nxt[item] += 1
        free = []
        for d in sorted(proposals):
            pool = sorted(held[d] + proposals[d], key=lambda it: (regret[(it[0], it[1], d)], it))
            keep, room, count = [], quota[d], defaultdict(int)
            for m, j in pool:
                mt = tables[m]
                need = float(mt.block_bytes[j]) + (mt.head_workspace if count[m] == 0 else 0.0)
                if need <= room and count[m] < mt.max_blocks[d]:
                    keep.append((m, j))
                    room -= need
                    count[m] += 1
                else:
                    free.append((m, j))
            held[d] = keep
        free = [it for it in free if nxt[it] < len(choices[it])]
    labels = [[-1] * mt.num_blocks for mt in tables]
    for d, items in held.items():
        for m, j in items:
            labels[m][j] = d
    return labels, rounds


def _fill_unmatched(labels: list[int], cost: np.ndarray, candidates: tuple[int, ...]) -> list[int]:
    """Blocks every device rejected join a neighbour's device (or their cheapest one); limits are then
    restored by the swaps."""
    out = list(labels)
    if all(x < 0 for x in out):
        best = min(candidates, key=lambda d: (float(cost[:, d].sum()), d))
        return [best] * len(out)
    for j in range(len(out)):
        if out[j] < 0 and j > 0:
            out[j] = out[j - 1]
    for j in range(len(out) - 1, -1, -1):
        if out[j] < 0:
            out[j] = out[j + 1]
    return out


def _contiguous(labels: list[int], cost: np.ndarray) -> list[list[int]]:
    """Runs ``[device, start, end]`` in which every device holds one range: a device's shorter runs join
    the adjacent run they cost least on."""
    while True:
        runs: list[list[int]] = []
        for j, d in enumerate(labels):
            if runs and runs[-1][0] == d:
                runs[-1][2] = j + 1
            else:
                runs.append([d, j, j + 1])
        by_device: dict[int, list[int]] = defaultdict(list)
        for i, (d, _, _) in enumerate(runs):
            by_device[d].append(i)
        repeated = sorted(d for d, idx in by_device.items() if len(idx) > 1)
        if not repeated:
            return runs
        d = repeated[0]
        keep = max(by_device[d], key=lambda i: (runs[i][2] - runs[i][1], -i))
        for i in by_device[d]:
            if i == keep:
                continue
            _, a, b = runs[i]
            options = [runs[k][0] for k in (i - 1, i + 1) if 0 <= k < len(runs)]
            target = min(options, key=lambda e: (float(cost[a:b, e].sum()), e))
            labels = labels[:a] + [target] * (b - a) + labels[b:]


def _ordered(runs: list[list[int]], rank: dict | None) -> Stages:
    """Stages from runs; with a fixed device order, the devices are re-sorted over the same ranges."""
    if rank is not None:
        devices = sorted((r[0] for r in runs), key=rank.__getitem__)
        runs = [[d, a, b] for d, (_, a, b) in zip(devices, runs)]
    return tuple((d, a, b) for d, a, b in runs)


def _initial_state(tables: list[_ModelTables], capacity: np.ndarray, noise: list[np.ndarray] | None,
                   deadline: float) -> tuple[State, int, int]:
    """Deferred acceptance replayed with the last matching's externalities until it repeats."""
    D = len(capacity)
    labels: list | None = None
    rounds = replays = 0
    for _ in range(_MAX_DA_REPLAYS):
        costs = [_preference_costs(mt, None if labels is None else labels[m], D) for m, mt in enumerate(tables)]
        if noise is not None:
            costs = [c * n for c, n in zip(costs, noise)]
        found, r = _deferred_acceptance(tables, capacity, costs)
        rounds += r
        replays += 1
        found = [_fill_unmatched(lab, cost, mt.candidates) for lab, cost, mt in zip(found, costs, tables)]
        if found == labels or time.perf_counter() > deadline:
            labels = found
            break
        labels = found
    costs = [_preference_costs(mt, labels[m], D) for m, mt in enumerate(tables)]
    state = tuple(_ordered(_contiguous(lab, cost), mt.rank) for lab, cost, mt in zip(labels, costs, tables))
    return state, rounds, replays


# -- swaps --------------------------------------------------------------------------------------


def _swaps(tables: list[_ModelTables], state: State):
    """Every single swap from ``state``: ``(description, new state)`` in a fixed order."""
    for m, (mt, stages) in enumerate(zip(tables, state)):
        S = list(stages)
        k = len(S)
        used = {d for d, _, _ in S}
        unused = [u for u in mt.candidates if u not in used]

        def emit(kind, new, *detail):
            if mt.rank is None or all(mt.rank[x[0]] < mt.rank[y[0]] for x, y in zip(new, new[1:])):
                return (kind, m, *detail), state[:m] + (tuple(new),) + state[m + 1:]
            return None

        out = []
        for i in range(k - 1):  # move a boundary
            (d1, a1, b1), (d2, _, b2) = S[i], S[i + 1]
            for c in range(a1 + 1, b2):
                if c != b1:
                    out.append(emit("boundary", S[:i] + [(d1, a1, c), (d2, c, b2)] + S[i + 2:], d1, d2, b1, c))
        for i in range(k):  # hand a stage's range to a neighbour
            d, a, b = S[i]
            if i > 0:
                e, a0, _ = S[i - 1]
                out.append(emit("merge", S[:i - 1] + [(e, a0, b)] + S[i + 1:], d, e, a, b))
            if i < k - 1:
                e, _, b1 = S[i + 1]
                out.append(emit("merge", S[:i] + [(e, a, b1)] + S[i + 2:], d, e, a, b))
        for i in range(k):  # exchange two stages' ranges
            for j in range(i + 1, k):
                new = list(S)
                new[i], new[j] = (S[j][0], S[i][1], S[i][2]), (S[i][0], S[j][1], S[j][2])
                out.append(emit("exchange", new, S[i][0], S[j][0], S[i][1:], S[j][1:]))
        counts = [(d, b - a) for d, a, b in S]
        for i in range(k):  # change the pipeline order, each device keeping its number of blocks
            for j in range(k):
                if i < j:
                    swapped = list(counts)
                    swapped[i], swapped[j] = counts[j], counts[i]
                    out.append(emit("order-swap", _from_counts(swapped), counts[i][0], counts[j][0]))
                if abs(i - j) > 1:  # next to each other, a move is a swap
                    moved = counts[:i] + counts[i + 1:]
                    moved.insert(j, counts[i])
                    out.append(emit("order-move", _from_counts(moved), counts[i][0], i, j))
        for i in range(k):  # move a range to an unused device
            d, a, b = S[i]
            for u in unused:
                out.append(emit("relocate", S[:i] + [(u, a, b)] + S[i + 1:], d, u, a, b))
        for i in range(k):  # split a range with an unused device
            d, a, b = S[i]
            for c in range(a + 1, b):
                for u in unused:
                    out.append(emit("split", S[:i] + [(u, a, c), (d, c, b)] + S[i + 1:], d, u, a, c))
                    out.append(emit("split", S[:i] + [(d, a, c), (u, c, b)] + S[i + 1:], d, u, c, b))
        for i in range(k if k > 1 else 0):  # a device leaves its place (a neighbour takes its range)
            d, a0, b0 = S[i]                  # and splits another stage's range
            reduced = []
            if i > 0:
                reduced.append(S[:i - 1] + [(S[i - 1][0], S[i - 1][1], b0)] + S[i + 1:])
            if i < k - 1:
                reduced.append(S[:i] + [(S[i + 1][0], a0, S[i + 1][2])] + S[i + 2:])
            for R in reduced:
                for j, (e, a, b) in enumerate(R):
                    for c in range(a + 1, b):
                        out.append(emit("reinsert", R[:j] + [(d, a, c), (e, c, b)] + R[j + 1:], d, (a0, b0), (a, c)))
                        out.append(emit("reinsert", R[:j] + [(e, a, c), (d, c, b)] + R[j + 1:], d, (a0, b0), (c, b)))
        yield from (x for x in out if x is not None)


def _trades(tables: list[_ModelTables], state: State):
    """Two devices trade everything they hold, in every model's pipeline at once (with several models,
    the one swap that moves blocks of two models together)."""
    used = sorted({d for stages in state for d, _, _ in stages})
    devices = sorted(set().union(*(mt.candidates for mt in tables)))
    for i, d in enumerate(devices):
        for e in devices[i + 1:]:
            if d not in used and e not in used:
                continue
            swap = {d: e, e: d}
            new = tuple(tuple((swap.get(x, x), a, b) for x, a, b in stages) for stages in state)
            ok = all(
                all(x in mt.candidates for x, _, _ in stages)
                and (mt.rank is None or all(mt.rank[x[0]] < mt.rank[y[0]] for x, y in zip(stages, stages[1:])))
                for mt, stages in zip(tables, new))
            if ok:
                yield ("trade", -1, d, e), new


def _from_counts(counts: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    out, start = [], 0
    for d, n in counts:
        out.append((d, start, start + n))
        start += n
    return out


def _describe(move: tuple, tables: list[_ModelTables], ids: list[str]) -> str:
    kind, m, *rest = move
    if kind == "trade":
        d, e = rest
        return f"{ids[d]} and {ids[e]} trade all the blocks they hold"
    model = tables[m].id
    if kind == "boundary":
        d1, d2, old, new = rest
        return f"{model}: move the boundary between {ids[d1]} and {ids[d2]} from block {old} to {new}"
    if kind == "merge":
        d, e, a, b = rest
        return f"{model}: hand {ids[d]}'s blocks [{a}, {b}) to {ids[e]}"
    if kind == "exchange":
        d1, d2, r1, r2 = rest
        return f"{model}: exchange {ids[d1]}'s blocks [{r1[0]}, {r1[1]}) and {ids[d2]}'s [{r2[0]}, {r2[1]})"
    if kind == "relocate":
        d, u, a, b = rest
        return f"{model}: move {ids[d]}'s blocks [{a}, {b}) to {ids[u]}"
    if kind == "order-swap":
        d1, d2 = rest
        return f"{model}: {ids[d1]} and {ids[d2]} swap places in the pipeline, each keeping its number of blocks"
    if kind == "order-move":
        d, i, j = rest
        return f"{model}: {ids[d]} moves from stage {i} to stage {j}, keeping its number of blocks"
    if kind == "reinsert":
        d, (a0, b0), (a, b) = rest
        return f"{model}: {ids[d]} hands its blocks [{a0}, {b0}) to a neighbour and takes blocks [{a}, {b})"
    d, u, a, b = rest
    return f"{model}: give blocks [{a}, {b}) of {ids[d]}'s range to {ids[u]}"


def _local_search(scorer: _Scorer, state: State, deadline: float, max_swaps: int
                  ) -> tuple[State, int, list, str]:
    """Best-improvement swaps until swap-stable; returns the state, swaps made, the swaps left that
    would improve it (when stopped early) and why it stopped."""
    current = scorer.score(state)
    swaps = 0
    while True:
        improving, seen = [], {state}
        for move, new in itertools.chain(_swaps(scorer.tables, state), _trades(scorer.tables, state)):
            if new in seen:  # different swaps may lead to one plan
                continue
            seen.add(new)
            s = scorer.score(new, beat=current)
            if _improves(s, current):
                improving.append((s, move, new))
        if not improving:
            return state, swaps, [], "stable"
        if time.perf_counter() > deadline or swaps >= max_swaps:
            # Swaps that only break a min-max plateau do not block: they leave the objective as it is.
            blocking = sorted((x for x in improving if _improves(x[0], current, tie_break=False)),
                              key=lambda x: (x[0].violation, x[0].value, x[0].secondary))
            why = "time_limit" if swaps < max_swaps else "iteration_limit"
            return state, swaps, [(m, _gain(current, s)) for s, m, _ in blocking], why
        best = min(improving, key=lambda x: (x[0].violation, x[0].value, x[0].secondary))
        current, state = best[0], best[2]
        swaps += 1


def _gain(cur: _Score, new: _Score) -> float:
    """How much a swap lowers the violation (when it changes) or the minimised objective."""
    return (cur.violation - new.violation) if cur.violation != new.violation else cur.value - new.value


# -- the solver ----------------------------------------------------------------------------------


def solve_matching(problem: Problem, params: Any, options: dict[str, Any]) -> Plan:
    """Matching game: deferred acceptance of blocks by devices, then swaps until swap-stable.

    Parameters
    ----------
    problem : Problem
    params : SolveParams
        ``time_limit_s`` (wall clock, tables included) and ``seed`` (perturbs the
        restarts' preferences; the same seed gives the same plan). The search is
        single-threaded and proves no bound, so ``threads`` and ``rel_gap`` do
        not apply.
    options : dict
        ``restarts`` (int, default 8): deferred-acceptance starts, the first
        with the exact preferences, the others perturbed; the best swap-stable
        matching is kept. ``max_swaps`` (int, default 10000): swaps per start.

    Returns
    -------
    Plan
        ``feasible`` with no bound; ``stats``: ``stable``, ``swaps``,
        ``blocking_pairs`` (improving swaps left when stopped early),
        ``da_rounds`` (proposal rounds), ``da_replays``, ``restarts``,
        ``evaluations``. ``no_solution`` with the least-violating matching's
        broken limits when no start reaches a feasible matching (``infeasible``
        when the face-value checks prove it).

    Examples
    --------
    >>> from placement import load_instance, evaluate
    >>> from solvers import solve
    >>> problem = load_instance("instances/peer-edge.yaml")          # doctest: +SKIP
    >>> plan = solve(problem, "matching")                             # doctest: +SKIP
    >>> plan.stats["stable"], plan.objective == evaluate(problem, plan).objective  # doctest: +SKIP
    (True, True)
    """
    started = time.perf_counter()
    deadline = started + params.time_limit_s
    restarts = int(options.get("restarts", 8))
    max_swaps = int(options.get("max_swaps", 10_000))
    if restarts < 1 or max_swaps < 0:
        raise ValueError(f"restarts must be >= 1 and max_swaps >= 0, got {restarts} and {max_swaps}")
    tables, capacity, missing = _build_tables(problem)
    if missing:
        return _no_solution(problem, missing, Termination.HEURISTIC, {})
    if not tables:
        return Plan(status=Status.NO_SOLUTION, termination=Termination.HEURISTIC,
                    reasons=("no request class needs a model",))
    scorer = _Scorer(problem, tables, capacity)
    D = len(capacity)
    best = None
    rounds = replays = done = 0
    stopped = ""
    for r in range(restarts):
        noise = None
        if r:
            rng = np.random.default_rng((params.seed, r))
            noise = [rng.lognormal(0.0, 0.5, size=(mt.num_blocks, D)) for mt in tables]
        start, da_rounds, da_replays = _initial_state(tables, capacity, noise, deadline)
        rounds += da_rounds
        replays += da_replays
        state, swaps, left, why = _local_search(scorer, start, deadline, max_swaps)
        done += 1
        score = scorer.score(state)
        if best is None or (score.violation, score.value, score.secondary) < \
                (best[0].violation, best[0].value, best[0].secondary):
            best = (score, state, swaps, left, why, r)
        if why != "stable":
            stopped = why
        if time.perf_counter() > deadline:
            stopped = stopped or ("time_limit" if done < restarts else "")
            break
    score, state, swaps, left, why, which = best
    stats = {
        "stable": why == "stable" or not left, "swaps": swaps,
        "blocking_pairs": [{"swap": _describe(m, tables, scorer.ids), "improvement": gain} for m, gain in left],
        "da_rounds": rounds, "da_replays": replays, "restarts": done, "best_restart": which,
        "evaluations": scorer.evaluations,
    }
    termination = {"time_limit": Termination.TIME_LIMIT, "iteration_limit": Termination.ITERATION_LIMIT}.get(
        stopped, Termination.HEURISTIC)
    if score.violation > 0:
        return _no_solution(problem, ["the least-violating matching found breaks: " + "; ".join(
            scorer.violations(state))], termination, stats)
    pipelines = [Pipeline(mt.id, mt.requests, tuple(StageSpec(scorer.ids[d], a, b) for d, a, b in stages))
                 for mt, stages in zip(tables, state)]
    shards, routes = assemble(pipelines)
    return Plan(shards=shards, routes=routes, status=Status.FEASIBLE, termination=termination,
                objective=scorer.objective(state), bound=None, gap=None, stats=stats)


def _no_solution(problem: Problem, reasons: list[str], termination: Termination, stats: dict) -> Plan:
    proofs = infeasibility_reasons(problem)
    if proofs:
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, reasons=tuple(proofs),
                    stats={**stats, "proven_by": PROVEN_FOR_ANY_PLAN})
    return Plan(status=Status.NO_SOLUTION, termination=termination, reasons=tuple(reasons), stats=stats)
