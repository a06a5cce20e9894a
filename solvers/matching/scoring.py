"""Scoring a matching: how far it breaks the limits, and its objective, on the cost table.

A *state* holds one pipeline per placed model, each a tuple of stages
``(device, start block, end block)`` in pipeline order. Its :class:`Score` is
lexicographic: first the total relative violation of the limits (0 when every
limit holds), then the minimised objective, then a tie-break for min-max
plateaus. Every number comes from the table's functions, the very ones
:func:`placement.evaluate` reduces a plan with, so the scores rank states as
``evaluate()`` would:

- memory: :meth:`~placement.costs.CostTable.shard_memory_bytes` of each stage
  plus the device's largest engine runtime, against ``capacity_bytes``; the
  profile's ``max_blocks``;
- SLOs and the additive objective: the table's additive terms added along the
  pipeline (:class:`~solvers.matching.tables.Chain`);
- device load: :meth:`~placement.costs.CostTable.stage_load`;
- throughput: :func:`~placement.costs.route_usage` per class, then
  :func:`~placement.costs.throughput.mixed_throughput` or
  :func:`~placement.costs.throughput.free_throughput` as ``evaluate()`` picks;
  the plateau tie-break is the sum of squared resource loads
  (:func:`~placement.costs.throughput.combine_usage`). A candidate whose LP
  bound (:func:`~placement.costs.throughput.free_throughput_bound`) cannot beat
  the current state is not solved.

Own limit checks are a hair stricter than ``evaluate()``'s, so a state scored
feasible is feasible there too. Scores are memoised (in bounded memos).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from placement import Problem
from placement.costs import CostTable, Stage, route_usage
from placement.costs.throughput import combine_usage, free_throughput, free_throughput_bound, mixed_throughput
from placement.evaluate import objective_value
from solvers.matching.tables import ModelTables

__all__ = ["Stages", "State", "Score", "Scorer", "improves", "gain", "REL_TOL"]

REL_TOL = 1e-9          # an objective change smaller than this (relative) is no improvement
_LIMIT_MARGIN = 1e-12   # own limit checks are this much stricter than evaluate()'s
_NO_PATH = 1e6          # the violation of a transfer without a network path (an unbounded SLO value)
_MEMO_CAP = 200_000     # entries a memo keeps before it starts afresh (bounds memory on huge neighbourhoods)

Stages = tuple[tuple[int, int, int], ...]  # (device index, start block, end block) in pipeline order
State = tuple[Stages, ...]                 # one pipeline per placed model


@dataclass(frozen=True)
class Score:
    violation: float   # 0 when every limit holds
    value: float       # minimised: the objective, or minus a throughput objective
    secondary: float   # breaks min-max plateaus (sum of squared resource loads)

    @property
    def key(self) -> tuple[float, float, float]:
        return self.violation, self.value, self.secondary


def improves(new: Score, cur: Score, tie_break: bool = True) -> bool:
    """Lexicographic (violation, objective, plateau tie-break) improvement; strict, so swaps never
    cycle. Without ``tie_break``: whether the swap lowers the violation or the objective itself."""
    if new.violation != cur.violation:
        return new.violation < cur.violation * (1 - _LIMIT_MARGIN)
    if new.value < cur.value - REL_TOL * max(abs(cur.value), 1e-12):
        return True
    return tie_break and new.value == cur.value and new.secondary < cur.secondary * (1 - _LIMIT_MARGIN)


def gain(cur: Score, new: Score) -> float:
    """How much a swap lowers the violation (when it changes) or the minimised objective."""
    return (cur.violation - new.violation) if cur.violation != new.violation else cur.value - new.value


class _Memo(dict):
    """A dict that starts afresh once it holds :data:`_MEMO_CAP` entries."""

    def put(self, key, value):
        if len(self) >= _MEMO_CAP:
            self.clear()
        self[key] = value
        return value


class Scorer:
    """Scores states of ``models`` on ``table`` (see the module docstring)."""

    def __init__(self, problem: Problem, table: CostTable, models: list[ModelTables]):
        self.problem, self.table, self.models = problem, table, models
        self.ids = problem.topology.ids
        self.capacity = table.capacity_bytes.tolist()
        self.throughput = problem.objective.name == "throughput"
        classes = [r for mt in models for r in mt.requests]
        self.demand = {r.id: table.decode_demand(r) for r in classes}
        self.mixed = len(classes) == 1 or table.rates_given(classes)  # as evaluate() picks its throughput
        self.evaluations = 0
        self._scores, self._shard_bytes, self._loads, self._usage = _Memo(), _Memo(), _Memo(), _Memo()

    def score(self, state: State, beat: Score | None = None) -> Score:
        """The state's score. With ``beat``, a state that cannot improve on it may be returned early
        with an inexact score (not memoised) that still does not improve on ``beat``."""
        hit = self._scores.get(state)
        if hit is None:
            hit, exact = self._score(state, beat)
            if exact:
                self._scores.put(state, hit)
        return hit

    def _score(self, state: State, beat: Score | None) -> tuple[Score, bool]:
        self.evaluations += 1
        additive = 0.0 if self.throughput else sum(mt.objective.value(st) for mt, st in zip(self.models, state))
        if beat is not None and beat.violation == 0 and not self.throughput \
                and not additive < beat.value - REL_TOL * max(abs(beat.value), 1e-12):
            return Score(math.inf, additive, 0.0), False  # the cheapest check settles it
        violation = self._memory_violation(state)
        if beat is not None and violation > beat.violation:
            return Score(violation, math.inf, 0.0), False  # the other limits only add to it
        violation += self._slo_violation(state) + self._load_violation(state)
        if not self.throughput:
            if not math.isfinite(additive):
                violation += _NO_PATH
            return Score(violation, additive, 0.0), True
        if beat is not None and violation != beat.violation and not violation < beat.violation * (1 - _LIMIT_MARGIN):
            return Score(violation, math.inf, 0.0), False  # its throughput cannot make up for it
        usage = self._route_usage(state)
        if usage is None:
            return Score(violation + _NO_PATH, math.inf, 0.0), True
        if beat is not None and violation == beat.violation and not self.mixed \
                and not self._value(free_throughput_bound(usage)) < beat.value - REL_TOL * max(abs(beat.value), 1e-12):
            return Score(violation, math.inf, 0.0), False  # the LP's bound settles it
        tokens_s, secondary = self._throughput(usage)
        return Score(violation, self._value(tokens_s), secondary), True

    def _value(self, tokens_s: float) -> float:
        """The minimised value of a throughput objective (minus the objective)."""
        return -objective_value(self.problem, {"throughput": tokens_s})

    # -- limits ---------------------------------------------------------------------------------

    def shard_bytes(self, m: int, a: int, b: int) -> float:
        """Bytes a stage ``[a, b)`` of model ``m`` needs before its device's runtime."""
        key = (m, a, b)
        hit = self._shard_bytes.get(key)
        if hit is None:
            mt = self.models[m]
            hit = self._shard_bytes.put(key, float(self.table.shard_memory_bytes(
                mt.id, mt.weight_format, a, b, mt.requests)))
        return hit

    def _memory_violation(self, state: State) -> float:
        """Relative excess over every device's usable memory, and blocks beyond a profile's max_layers."""
        if len(state) == 1:
            return self._pipeline_memory_violation(state[0])
        used: dict[int, float] = {}
        runtime: dict[int, float] = {}
        violation = 0.0
        memo, capacity = self._shard_bytes, self.capacity
        for m, stages in enumerate(state):
            mt = self.models[m]
            runtimes, most = mt.runtime, mt.max_blocks
            for d, a, b in stages:
                nbytes = memo.get((m, a, b))
                if nbytes is None:
                    nbytes = self.shard_bytes(m, a, b)
                used[d] = used.get(d, 0.0) + nbytes
                if runtimes[d] > runtime.get(d, 0.0):
                    runtime[d] = runtimes[d]
                if b - a > most[d]:
                    violation += (b - a - most[d]) / mt.num_blocks
        for d, nbytes in used.items():
            total = nbytes + runtime.get(d, 0.0)
            if total > capacity[d]:
                violation += (total - capacity[d]) / max(capacity[d], 1.0)
        return violation

    def _pipeline_memory_violation(self, stages: Stages) -> float:
        """:meth:`_memory_violation` of one model's pipeline (its devices are distinct)."""
        mt, memo, capacity = self.models[0], self._shard_bytes, self.capacity
        runtimes, most = mt.runtime, mt.max_blocks
        violation = 0.0
        for d, a, b in stages:
            nbytes = memo.get((0, a, b))
            if nbytes is None:
                nbytes = self.shard_bytes(0, a, b)
            total = nbytes + runtimes[d]
            if total > capacity[d]:
                violation += (total - capacity[d]) / max(capacity[d], 1.0)
            if b - a > most[d]:
                violation += (b - a - most[d]) / mt.num_blocks
        return violation

    def _slo_violation(self, state: State) -> float:
        violation = 0.0
        for mt, stages in zip(self.models, state):
            for slo in mt.slos:
                value = slo.chain.value(stages)
                excess = value - slo.limit_ms * (1 - _LIMIT_MARGIN)
                if not math.isfinite(value):
                    violation += _NO_PATH
                elif excess > 0:
                    violation += excess / max(slo.limit_ms, 1e-9)
        return violation

    def stage_load(self, m: int, d: int, a: int, b: int) -> float:
        """Share of time device ``d`` is busy with stage ``[a, b)`` of model ``m`` at the request rates."""
        key = (m, d, a, b)
        hit = self._loads.get(key)
        if hit is None:
            mt = self.models[m]
            hit = self._loads.put(key, sum(float(self.table.stage_load(r, bc, d, a, b))
                                           for r, bc in zip(mt.requests, mt.blocks)))
        return hit

    def _load_violation(self, state: State) -> float:
        load: dict[int, float] = {}
        for m, (mt, stages) in enumerate(zip(self.models, state)):
            if mt.rated:
                for d, a, b in stages:
                    load[d] = load.get(d, 0.0) + self.stage_load(m, d, a, b)
        return sum(busy - 1.0 for busy in load.values() if busy > 1.0)

    # -- throughput -----------------------------------------------------------------------------

    def _route_usage(self, state: State) -> dict[str, dict[int, float]] | None:
        """Every class's resource seconds per decode token (``None``: a transfer has no path)."""
        usage: dict[str, dict[int, float]] = {}
        for m, (mt, stages) in enumerate(zip(self.models, state)):
            key = (m, stages)
            part = self._usage.get(key)
            if part is None:
                part = self._usage.put(key, {
                    req.id: route_usage(self.table, req, [Stage(d, a, b, bc) for d, a, b in stages])
                    for req, bc in zip(mt.requests, mt.blocks)})
            for c, use in part.items():
                if use is None:
                    return None
                usage[c] = use
        return usage

    def _throughput(self, usage: dict[str, dict[int, float]]) -> tuple[float, float]:
        """Tokens/s as ``evaluate()`` computes them, and the sum of squared resource loads of the mix."""
        if not self.mixed:
            return free_throughput(usage), 0.0
        loads = combine_usage([(self.demand[c], use) for c, use in usage.items()])
        return mixed_throughput(usage, self.demand), sum(v * v for v in loads.values())
