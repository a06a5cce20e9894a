"""Brute force: every contiguous pipeline partition, each judged by ``evaluate``.

The oracle the exact solvers are tested against. For each model with requests it
enumerates every ordered sequence of distinct devices (a subsequence of
``constraints.device_order`` when the instance gives one), every way to cut the
model's ``L`` blocks into that many non-empty contiguous ranges, and, when the
model lists ``allowed_formats``, every weight format per stage; all of the
model's request classes route through that one pipeline. With several models it
tries every combination of their pipelines. Each candidate plan is judged by
:func:`placement.evaluate` (the independent check), the best feasible one wins
(first found on ties, so the answer is deterministic).

One model on ``n`` devices has ``sum_k n!/(n-k)! * C(L-1, k-1) * F^k`` candidates;
the solver refuses instances above ``max_plans`` (default 200,000) rather than
run for hours.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from placement import Plan, Problem, Proof, Status, Termination, cost_table, evaluate
from placement.problem import ModelSpec
from solvers.api import UnsupportedProblemError
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.deadline import Deadline

__all__ = ["solve_bruteforce", "count_plans", "candidate_pipelines"]

_CHECK_EVERY = 32  # candidates between two looks at the clock


def _devices_for(problem: Problem) -> tuple[list[str], bool]:
    """Devices to enumerate, and whether their order is fixed."""
    order = problem.constraints.device_order
    may_hold = cost_table(problem).may_hold  # gateways and coordinators hold no blocks
    if order:
        return [d for d in order if may_hold[problem.topology.index[d]]], True
    return [n.id for d, n in enumerate(problem.topology.nodes) if may_hold[d]], False


def _stage_formats(model: ModelSpec) -> tuple[str | None, ...]:
    # None stands for the model's own format, so plans without a choice stay canonical.
    if len(model.formats) == 1:
        return (None,)
    return tuple(None if f == model.weight_format else f for f in model.formats)


def _count_model(n_devices: int, num_blocks: int, n_formats: int, ordered: bool) -> int:
    total = 0
    for k in range(1, min(n_devices, num_blocks) + 1):
        sequences = math.comb(n_devices, k) if ordered else math.perm(n_devices, k)
        total += sequences * math.comb(num_blocks - 1, k - 1) * n_formats**k
    return total


def count_plans(problem: Problem) -> int:
    """How many candidate plans :func:`solve_bruteforce` would evaluate.

    Examples
    --------
    >>> from placement import parse_instance
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import tiny_instance
    >>> count_plans(parse_instance(tiny_instance()))   # 2 devices, 22 blocks: 2 + 2 * 21
    44
    """
    devices, ordered = _devices_for(problem)
    total = 1
    for model in problem.models:
        if problem.requests_for(model.id):
            total *= _count_model(len(devices), model.num_blocks, len(_stage_formats(model)), ordered)
    return total


def candidate_pipelines(problem: Problem, model: ModelSpec) -> Iterator[tuple[StageSpec, ...]]:
    """Every contiguous pipeline of ``model``: fewer stages first, then device sequences, cuts, formats."""
    devices, ordered = _devices_for(problem)
    L = model.num_blocks
    fmts = _stage_formats(model)
    for k in range(1, min(len(devices), L) + 1):
        sequences = itertools.combinations(devices, k) if ordered else itertools.permutations(devices, k)
        for seq in sequences:
            for cuts in itertools.combinations(range(1, L), k - 1):
                bounds = (0, *cuts, L)
                for chosen in itertools.product(fmts, repeat=k):
                    yield tuple(StageSpec(d, a, b, f) for d, a, b, f in zip(seq, bounds, bounds[1:], chosen))


def _candidates(problem: Problem) -> Iterator[tuple[Pipeline, ...]]:
    per_model: list[list[Pipeline]] = []
    for model in problem.models:
        requests = tuple(r.id for r in problem.requests_for(model.id))
        if requests:
            per_model.append([Pipeline(model.id, requests, st) for st in candidate_pipelines(problem, model)])
    return itertools.product(*per_model)


def _infeasible_reasons(checked: int, kinds: Counter, closest: Sequence[str]) -> tuple[str, ...]:
    counts = ", ".join(f"{kind} in {n:,}" for kind, n in kinds.most_common())
    head = f"none of the {checked:,} contiguous pipeline plans meets every limit (limits broken: {counts})"
    return (head, *(f"closest plan: {v}" for v in closest))


def solve_bruteforce(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Evaluate every contiguous pipeline plan and return the best feasible one.

    Parameters
    ----------
    problem : Problem
    params : SolveParams
        ``time_limit_s`` is honoured (the best plan so far is returned, status
        ``feasible``, no bound); the enumeration order is fixed, so ``seed`` and
        ``threads`` change nothing.
    options : dict
        ``max_plans`` (int): refuse instances with more candidates than this.

    Returns
    -------
    Plan
        ``optimal`` with ``bound == objective`` when a feasible plan exists,
        ``infeasible`` with the limits every candidate breaks when none does.

    Raises
    ------
    UnsupportedProblemError
        When the instance has more than ``max_plans`` candidates.

    Examples
    --------
    >>> from placement import parse_instance
    >>> from solvers import solve
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import tiny_instance
    >>> plan = solve(parse_instance(tiny_instance()), "bruteforce")
    >>> plan.status.value, plan.bound == plan.objective, plan.stats["plans_checked"]
    ('optimal', True, 44)
    """
    max_plans = options["max_plans"]
    total = count_plans(problem)
    if total > max_plans:
        raise UnsupportedProblemError(
            f"solver 'bruteforce' would evaluate {total:,} plans, more than max_plans={max_plans:,}; "
            "use an exact solver (dp, ilp) or raise max_plans")
    maximise = problem.objective.sense == "max"
    best = None  # (objective, shards, routes)
    checked = feasible = 0
    kinds: Counter = Counter()
    closest: tuple[str, ...] = ()
    timed_out = False
    for pipelines in _candidates(problem):
        if checked % _CHECK_EVERY == 0 and checked and deadline.expired():
            timed_out = True
            break
        checked += 1
        shards, routes = assemble(pipelines)
        metrics = evaluate(problem, Plan(shards=shards, routes=routes))
        if not metrics.feasible:
            kinds.update({v.kind.value for v in metrics.violations})
            if not closest or len(metrics.violations) < len(closest):
                closest = tuple(str(v) for v in metrics.violations)
            continue
        feasible += 1
        value = float(metrics.objective)
        if best is None or (value > best[0] if maximise else value < best[0]):
            best = (value, shards, routes)
    stats = {"plans_checked": checked, "plans_total": total, "feasible_plans": feasible}
    if best is None:
        if timed_out:
            return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT, stats=stats,
                        reasons=(f"no feasible plan among the first {checked:,} of {total:,} candidates "
                                 f"within {params.time_limit_s:g} s",))
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, stats=stats,
                    reasons=_infeasible_reasons(checked, kinds, closest), proof=Proof.PLAN_SPACE)
    value, shards, routes = best
    if timed_out:
        return Plan(shards=shards, routes=routes, status=Status.FEASIBLE, termination=Termination.TIME_LIMIT,
                    objective=value, stats=stats)
    return Plan(shards=shards, routes=routes, status=Status.OPTIMAL, termination=Termination.CONVERGED,
                objective=value, bound=value, gap=0.0, stats=stats, proof=Proof.PLAN_SPACE)
