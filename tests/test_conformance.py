"""Conformance: every registered solver (each backend of ilp) passes the public battery of solvers.checks.

The battery is the one an outside solver is checked with (see ``solvers/checks.py``); here it runs
check by check, so a failure names the solver and the check. Registering a solver without adding
it to ``CONFORMANCE`` fails ``test_every_registered_solver_is_covered``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from placement import Status
from solvers import registered, solver_info
from solvers.checks import CHECKS, check_oracle, check_solver, no_pipeline, oracle, solver_checks, zoo_problems


@dataclass(frozen=True)
class Entry:
    """One way to run a solver: its registered name and the options that select a variant."""

    name: str
    solver: str
    options: dict[str, Any] = field(default_factory=dict)


CONFORMANCE: tuple[Entry, ...] = (
    Entry("auto", "auto"),
    Entry("bruteforce", "bruteforce"),
    Entry("dp", "dp"),
    Entry("ilp-highs", "ilp", {"backend": "highs"}),
    Entry("ilp-cbc", "ilp", {"backend": "cbc"}),
    Entry("ilp-cpsat", "ilp", {"backend": "cpsat"}),
    Entry("ilp-scip", "ilp", {"backend": "scip"}),
    # Without a warm start: the program alone (with a warm start ilp often returns dp's proven plan).
    Entry("ilp-highs-cold", "ilp", {"backend": "highs", "warm_start": "none"}),
    Entry("ilp-cbc-cold", "ilp", {"backend": "cbc", "warm_start": "none"}),
    Entry("matching", "matching"),
    Entry("maxflow", "maxflow"),
    Entry("greedy", "greedy"),
    Entry("uniform", "uniform"),
    Entry("source", "source"),
    Entry("cloud", "cloud"),
    Entry("random", "random"),
    Entry("cache-ilp-highs", "cache-ilp", {"backend": "highs"}),
    Entry("cache-ilp-cbc", "cache-ilp", {"backend": "cbc"}),
    Entry("cache-ilp-scip", "cache-ilp", {"backend": "scip"}),
    Entry("cache-greedy", "cache-greedy"),
    Entry("route", "route"),
    Entry("cache-bruteforce", "cache-bruteforce"),
)
_IDS = [e.name for e in CONFORMANCE]


def _skip_unavailable(entry: Entry) -> None:
    info = solver_info(entry.solver)
    if not info.available():
        pytest.skip(f"{entry.solver} needs {', '.join(info.requires)}, which cannot be imported here")


def test_every_registered_solver_is_covered():
    covered = {e.solver for e in CONFORMANCE}
    assert {s.name for s in registered()} == covered
    for info in registered():
        if info.backends:
            got = {e.options.get("backend") for e in CONFORMANCE if e.solver == info.name}
            assert got == set(info.backends), f"{info.name}: backends covered {got}, registered {info.backends}"


def test_zoo_is_what_it_claims():
    instances = zoo_problems(0)
    names = [n for n, _ in instances]
    assert len(instances) >= 30 and len(set(names)) == len(names)
    objectives, multi_stage, feasible = set(), 0, 0
    for name, problem in instances:
        assert len(problem.topology.nodes) <= 4 and all(m.num_blocks <= 8 for m in problem.models), name
        ref = oracle(0, name)
        assert no_pipeline(ref) == name.startswith("infeasible-"), (name, ref.status)
        objectives.add(problem.objective.name)
        if ref.status == Status.OPTIMAL:
            feasible += 1
            multi_stage += len({s.device for s in ref.shards}) > 1
    assert objectives == {"latency", "ttft", "tpot", "energy", "throughput", "weighted"}
    assert len(instances) - feasible >= 6
    assert multi_stage >= feasible / 3, "most optima on one device: the zoo hardly tests partitioning"


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("entry", CONFORMANCE, ids=_IDS)
def test_battery(entry, check):
    _skip_unavailable(entry)
    run = dict(solver_checks(entry.solver, entry.options))[check]
    failures = run()
    assert not failures, f"{entry.name}, check {check}:\n" + "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("entry", CONFORMANCE, ids=_IDS)
def test_oracle_on_more_zoos(entry, seed):
    _skip_unavailable(entry)
    subject = next(iter(solver_checks(entry.solver, entry.options)))[1].args[0]
    failures = check_oracle(subject, seed)
    assert not failures, f"{entry.name} on zoo(seed={seed}):\n" + "\n".join(failures)


def test_the_battery_catches_a_solver_that_lies():
    # A solver that reports half its plan's objective, registered for this test only.
    from solvers.registry import _REGISTRY, SolverInfo
    import solvers.baselines as baselines

    def lying(problem, params, options, deadline):
        plan = baselines.solve_greedy(problem, params, options, deadline)
        from placement import evaluate
        return plan.with_(objective=0.5 * evaluate(problem, plan).objective) if plan.shards else plan
    baselines._lying = lying
    _REGISTRY["lying"] = SolverInfo(name="lying", family="test", summary="", exact=False,
                                    entry="solvers.baselines:_lying")
    try:
        report = check_solver("lying", checks=("keeps_limits",))
    finally:
        del _REGISTRY["lying"], baselines._lying
    assert not report.passed and any("!= evaluate()" in f for f in report.failures["keeps_limits"])
