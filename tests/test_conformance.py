"""Conformance: every registered solver over a zoo of small instances with known optima.

The optimum of each zoo instance is found by the brute-force oracle (every contiguous pipeline,
judged by evaluate) and cached for the session. Every solver in ``CONFORMANCE`` is checked on every
zoo instance its capabilities accept:

- a plan reported ``optimal`` or ``feasible`` keeps every limit, and its objective equals
  ``evaluate()`` on it (relative 1e-9);
- an exact solver finds the oracle's optimum (relative 1e-6) and its verdict: on an instance with no
  feasible pipeline, solved without the face-value precheck, it answers as the oracle does, with
  reasons: ``infeasible`` when one pipeline per model is as good as any plan (one request class per
  model, no rates), else ``no_solution`` (replicated plans were not searched, so nothing is proven);
- a heuristic never beats the oracle (on plans inside the oracle's search space: one pipeline per
  model), never claims ``optimal`` and never reports a bound; an exact solver's bound is on the
  right side of its objective and equals it when optimal;
- the same seed twice gives the same shards and routes;
- a run with a tight time limit returns within it (plus a small slack).

Registering a solver without adding it to ``CONFORMANCE`` fails ``test_every_registered_solver_is_covered``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from instances.zoo import stress, zoo
from placement import Plan, Problem, Status, evaluate, parse_instance
from solvers import SolveParams, UnknownSolverError, registered, solve, solver_info
from placement import Proof
from solvers.bruteforce import count_plans


@dataclass(frozen=True)
class Entry:
    """One way to run a solver: its registered name and the options that select a variant."""

    name: str
    solver: str
    options: dict[str, Any] = field(default_factory=dict)


CONFORMANCE: tuple[Entry, ...] = (
    Entry("bruteforce", "bruteforce"),
    Entry("dp", "dp"),
    Entry("ilp-highs", "ilp", {"backend": "highs"}),
    Entry("ilp-cbc", "ilp", {"backend": "cbc"}),
    Entry("ilp-cpsat", "ilp", {"backend": "cpsat"}),
    Entry("ilp-scip", "ilp", {"backend": "scip"}),
    Entry("matching", "matching"),
    Entry("greedy", "greedy"),
    Entry("uniform", "uniform"),
    Entry("source", "source"),
    Entry("cloud", "cloud"),
    Entry("random", "random"),
)
_IDS = [e.name for e in CONFORMANCE]

_REL_EVALUATE = 1e-9  # a plan's objective against evaluate() on it
_REL_OPTIMUM = 1e-6  # an exact solver's optimum against the oracle's
_MIN_INSTANCES = 10  # a covered solver must accept at least this many zoo instances
_TIME_LIMIT_S, _SLACK_S = 0.5, 1.0
_PARAMS = SolveParams(time_limit_s=60, seed=0)
_OPTIONS = {"precheck": False}  # solvers must find infeasibility themselves
_DETERMINISM = ("tpot-4dev-6blk-mesh-mixed-slo-ttft+tpot", "throughput-3dev-6blk-star-mixed-2cls-rates",
                "ttft-3dev-4blk-mesh-tight-2cls-slo-tpot", "two-models-latency-3dev-4blk", "infeasible-load")


# -- the zoo and its oracle, built once per session ------------------------------------------

_ZOOS: dict[int, list[tuple[str, Problem]]] = {}
_ORACLE: dict[tuple[int, str], Plan] = {}


def _zoo(seed: int) -> list[tuple[str, Problem]]:
    if seed not in _ZOOS:
        _ZOOS[seed] = [(name, parse_instance(data, default_name=name)) for name, data in zoo(seed)]
    return _ZOOS[seed]


def _oracle(seed: int, name: str, problem: Problem) -> Plan:
    key = (seed, name)
    if key not in _ORACLE:
        ref = solve(problem, "bruteforce", _PARAMS, options=_OPTIONS)
        assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE) or _no_pipeline(ref), (name, ref.status, ref.reasons)
        _ORACLE[key] = ref
    return _ORACLE[key]


def _no_pipeline(plan: Plan) -> bool:
    """The verdict 'no feasible pipeline' (proven for the whole instance or not)."""
    return plan.status == Status.INFEASIBLE or (plan.status == Status.NO_SOLUTION and plan.termination.value == "converged")


def _info(entry: Entry):
    try:
        info = solver_info(entry.solver)
    except UnknownSolverError:
        pytest.skip("not registered yet")
    if not info.available():
        pytest.skip(f"{entry.solver} needs {', '.join(info.requires)}, which cannot be imported here")
    return info


# -- the checks ------------------------------------------------------------------------------


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def _one_pipeline_per_model(problem: Problem, plan: Plan) -> bool:
    """Whether ``plan`` lies in the oracle's search space."""
    shards = {s.id: s for s in plan.shards}
    for model in problem.models:
        classes = {r.id for r in problem.requests_for(model.id)}
        routes = [r for r in plan.routes if r.request in classes]
        paths = {r.path for r in routes}
        if len(routes) != len(classes) or len(paths) != 1 or any(r.fraction != 1.0 for r in routes):
            return False
        path = next(iter(paths))
        devices = [shards[sid].device for sid in path]
        if len(set(devices)) != len(devices) or {s.id for s in plan.shards if s.model == model.id} != set(path):
            return False
    return True


def _better(problem: Problem, value: float, than: float) -> bool:
    if problem.objective.sense == "max":
        return value > than * (1 + _REL_OPTIMUM) + 1e-12
    return value < than * (1 - _REL_OPTIMUM) - 1e-12


def _violations(exact: bool, problem: Problem, plan: Plan, ref: Plan) -> list[str]:
    """Every way ``plan`` breaks the solver contract on ``problem``, given the oracle's ``ref``."""
    out = []
    st = plan.status
    if st == Status.ERROR:
        return [f"status error: {'; '.join(plan.reasons)}"]
    if st in (Status.OPTIMAL, Status.FEASIBLE):
        m = evaluate(problem, plan)
        if not m.feasible:
            out.append(f"{st} plan breaks limits: {'; '.join(map(str, m.violations))}")
        if plan.objective is None or not _close(plan.objective, m.objective, _REL_EVALUATE):
            out.append(f"objective {plan.objective} != evaluate() {m.objective}")
    if st == Status.INFEASIBLE:
        if not plan.reasons:
            out.append("infeasible without reasons")
        # The oracle searches pipelines; a claim resting on a proof for every plan may go further.
        proven = plan.proof is Proof.ANY_PLAN and _no_pipeline(ref)
        if ref.status != Status.INFEASIBLE and not proven:
            out.append(f"claims infeasible, but the oracle says {ref.status} ({ref.objective})")
    if exact:
        if ref.status == Status.OPTIMAL and st != Status.OPTIMAL:
            out.append(f"returned {st} ({plan.termination}) where the optimum is {ref.objective}: "
                       f"{'; '.join(plan.reasons[:2])}")
        elif ref.status == Status.OPTIMAL and not _close(plan.objective, ref.objective, _REL_OPTIMUM):
            out.append(f"optimum {plan.objective} != oracle's {ref.objective}")
        if _no_pipeline(ref) and (st != ref.status or not plan.reasons):
            out.append(f"returned {st} (reasons: {len(plan.reasons)}) where the oracle found no feasible pipeline "
                       f"and says {ref.status} ({ref.reasons[0]})")
        if st == Status.OPTIMAL and (plan.bound is None or not _close(plan.bound, plan.objective, _REL_OPTIMUM)):
            out.append(f"optimal with bound {plan.bound} != objective {plan.objective}")
        if plan.bound is not None and plan.objective is not None and _better(problem, plan.objective, plan.bound):
            out.append(f"objective {plan.objective} beats its own bound {plan.bound}")
    else:
        if plan.bound is not None:
            out.append(f"heuristic reports a bound ({plan.bound})")
        if st == Status.OPTIMAL:
            out.append("heuristic claims optimal")
        if st == Status.FEASIBLE and _one_pipeline_per_model(problem, plan):
            if _no_pipeline(ref):
                out.append("feasible pipeline where the oracle found none")
            elif _better(problem, plan.objective, ref.objective):
                out.append(f"objective {plan.objective} beats the oracle's optimum {ref.objective}")
    return out


def _run(entry: Entry, seed: int) -> None:
    info = _info(entry)
    failures, ran = [], 0
    for name, problem in _zoo(seed):
        if info.unsupported(problem):
            continue
        ref = _oracle(seed, name, problem)
        try:
            if entry.solver == "bruteforce" and not entry.options:
                plan = ref  # the oracle's own run, made with the same parameters
            else:
                plan = solve(problem, entry.solver, _PARAMS, options={**entry.options, **_OPTIONS})
        except Exception as exc:  # noqa: BLE001 (any exception is a failure, reported with the instance)
            failures.append(f"{name}: raised {type(exc).__name__}: {exc}")
            continue
        ran += 1
        failures += [f"{name}: {v}" for v in _violations(info.exact, problem, plan, ref)]
    assert ran >= _MIN_INSTANCES, f"{entry.name} accepted only {ran} zoo instances"
    assert not failures, f"{entry.name} on zoo(seed={seed}):\n" + "\n".join(failures)


# -- the tests -------------------------------------------------------------------------------


def test_every_registered_solver_is_covered():
    covered = {e.solver for e in CONFORMANCE}
    assert {s.name for s in registered()} == covered
    for info in registered():
        if info.backends:
            got = {e.options.get("backend") for e in CONFORMANCE if e.solver == info.name}
            assert got == set(info.backends), f"{info.name}: backends covered {got}, registered {info.backends}"


def test_zoo_is_what_it_claims():
    instances = _zoo(0)
    names = [n for n, _ in instances]
    assert len(instances) >= 30 and len(set(names)) == len(names)
    objectives, multi_stage, feasible = set(), 0, 0
    for name, problem in instances:
        assert len(problem.topology.nodes) <= 4 and all(m.num_blocks <= 8 for m in problem.models), name
        ref = _oracle(0, name, problem)
        assert _no_pipeline(ref) == name.startswith("infeasible-"), (name, ref.status)
        objectives.add(problem.objective.name)
        if ref.status == Status.OPTIMAL:
            feasible += 1
            multi_stage += len({s.device for s in ref.shards}) > 1
    assert objectives == {"latency", "ttft", "tpot", "energy", "throughput", "weighted"}
    assert len(instances) - feasible >= 6
    assert multi_stage >= feasible / 3, "most optima on one device: the zoo hardly tests partitioning"


@pytest.mark.parametrize("entry", CONFORMANCE, ids=_IDS)
def test_solver_agrees_with_the_oracle(entry):
    _run(entry, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("entry", CONFORMANCE, ids=_IDS)
def test_solver_agrees_with_the_oracle_on_more_zoos(entry, seed):
    _run(entry, seed)


@pytest.mark.parametrize("entry", CONFORMANCE, ids=_IDS)
def test_same_seed_same_plan(entry):
    info = _info(entry)
    by_name = dict(_zoo(0))
    checked = 0
    for name in _DETERMINISM:
        problem = by_name[name]
        if info.unsupported(problem):
            continue
        params = SolveParams(time_limit_s=60, seed=7)
        options = {**entry.options, **_OPTIONS}
        first, second = (solve(problem, entry.solver, params, options=options) for _ in range(2))
        assert (first.status, first.shards, first.routes) == (second.status, second.shards, second.routes), name
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("entry", CONFORMANCE, ids=_IDS)
def test_tight_time_limit_is_honoured(entry):
    info = _info(entry)
    name, data = stress()
    problem = parse_instance(data)
    limit = _TIME_LIMIT_S
    if info.unsupported(problem):  # the oracle: its biggest zoo instance, a tighter limit
        name, problem = max(((n, p) for n, p in _zoo(0) if not info.unsupported(p)),
                            key=lambda item: count_plans(item[1]))
        limit = 0.05
    started = time.perf_counter()
    plan = solve(problem, entry.solver, SolveParams(time_limit_s=limit), options=dict(entry.options))
    elapsed = time.perf_counter() - started
    assert elapsed <= limit + _SLACK_S, f"{entry.name} on {name}: {elapsed:.2f} s with a {limit} s limit"
    assert plan.status in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION), (plan.status, plan.reasons)
    if plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        m = evaluate(problem, plan)
        assert m.feasible and _close(plan.objective, m.objective, _REL_EVALUATE)
        if plan.bound is not None:
            assert not _better(problem, plan.objective, plan.bound)
    assert plan.bound is None or info.exact
