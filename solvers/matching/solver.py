"""The matching solver's driver: restarts of deferred acceptance and swaps; the plan of the best.

The first start uses the exact preferences, the others seeded perturbations of
them; the best swap-stable matching over the starts is kept. Its plan's
objective is what :func:`placement.evaluate` computes for it, and when no start
keeps every limit, the least-violating matching's broken limits are evaluate's
too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from placement import Plan, Problem, Proof, Status, Termination, cost_table, evaluate
from placement.feasibility import infeasibility_reasons
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.deadline import Deadline
from solvers.matching.acceptance import initial_state
from solvers.matching.scoring import Scorer, State
from solvers.matching.search import Descent, descend
from solvers.matching.swaps import describe
from solvers.matching.tables import ModelTables, build_tables

__all__ = ["solve_matching"]

_NOISE_SIGMA = 0.5  # log-normal spread of the restarts' perturbed preferences
_TERMINATION = {"time_limit": Termination.TIME_LIMIT, "iteration_limit": Termination.ITERATION_LIMIT}


def _noise(models: list[ModelTables], seed: int, restart: int, num_devices: int) -> list[np.ndarray] | None:
    if not restart:
        return None
    rng = np.random.default_rng((seed, restart))
    return [rng.lognormal(0.0, _NOISE_SIGMA, size=(mt.num_blocks, num_devices)) for mt in models]


def _plan(problem: Problem, models: list[ModelTables], state: State) -> Plan:
    ids = problem.topology.ids
    pipelines = [Pipeline(mt.id, tuple(r.id for r in mt.requests), tuple(StageSpec(ids[d], a, b) for d, a, b in st))
                 for mt, st in zip(models, state)]
    shards, routes = assemble(pipelines)
    return Plan(shards=shards, routes=routes)


def _no_solution(problem: Problem, reasons: list[str], termination: Termination, stats: dict) -> Plan:
    """``infeasible`` when the face-value checks prove no plan keeps every limit, else ``no_solution``."""
    proofs = infeasibility_reasons(problem)
    if proofs:
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, reasons=tuple(proofs), stats=stats,
                    proof=Proof.ANY_PLAN)
    return Plan(status=Status.NO_SOLUTION, termination=termination, reasons=tuple(reasons), stats=stats)


def solve_matching(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Matching game: deferred acceptance of blocks by devices, then swaps until swap-stable.

    Parameters
    ----------
    problem : Problem
    params : SolveParams
        ``seed`` perturbs the restarts' preferences (the same seed gives the same
        plan). The search is single-threaded and proves no bound, so ``threads``
        and ``rel_gap`` do not apply.
    options : dict
        ``restarts`` (deferred-acceptance starts, the first with the exact
        preferences) and ``max_swaps`` (swaps per start), validated by ``solve()``.
    deadline : Deadline
        Watched inside deferred acceptance and every few dozen swap candidates.

    Returns
    -------
    Plan
        ``feasible`` with no bound (``proof`` none); ``stats``: ``stable``, ``swaps``,
        ``blocking_pairs`` (improving swaps left when stopped early), ``da_rounds``
        (proposal rounds), ``da_replays``, ``restarts``, ``best_restart``,
        ``evaluations``. ``no_solution`` with the least-violating matching's
        broken limits when no start keeps every limit, ``infeasible`` (proof for
        any plan) when the face-value checks prove that none can.

    Examples
    --------
    >>> from placement import load_instance, evaluate
    >>> from solvers import solve
    >>> problem = load_instance("instances/peer-edge.yaml")
    >>> plan = solve(problem, "matching")
    >>> plan.stats["stable"], plan.objective == evaluate(problem, plan).objective
    (True, True)
    """
    table = cost_table(problem)
    models, missing = build_tables(problem, table)
    if missing:
        return _no_solution(problem, missing, Termination.HEURISTIC, {})
    if not models:
        return Plan(status=Status.NO_SOLUTION, termination=Termination.HEURISTIC,
                    reasons=("no request class needs a model",))
    if deadline.expired():
        return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT,
                    reasons=("the time limit ran out while reading the cost table",))
    scorer = Scorer(problem, table, models)
    best: tuple[Descent, int] | None = None
    rounds = replays = done = 0
    stopped = ""
    for restart in range(options["restarts"]):
        noise = _noise(models, params.seed, restart, table.num_devices)
        start, da_rounds, da_replays = initial_state(models, scorer.capacity, noise, deadline)
        rounds, replays = rounds + da_rounds, replays + da_replays
        found = descend(scorer, start, deadline, options["max_swaps"])
        done += 1
        if best is None or found.score.key < best[0].score.key:
            best = (found, restart)
        if found.why != "stable":
            stopped = found.why
        if deadline.expired():
            stopped = stopped or ("time_limit" if done < options["restarts"] else "")
            break
    assert best is not None  # restarts >= 1
    found, which = best
    stats = {
        "stable": found.stable, "swaps": found.swaps,
        "blocking_pairs": [{"swap": describe(m, models, scorer.ids), "improvement": g} for m, g in found.blocking],
        "da_rounds": rounds, "da_replays": replays, "restarts": done, "best_restart": which,
        "evaluations": scorer.evaluations,
    }
    termination = _TERMINATION.get(stopped, Termination.HEURISTIC)
    plan = _plan(problem, models, found.state)
    metrics = evaluate(problem, plan)
    if not metrics.feasible:
        broken = "; ".join(str(v) for v in metrics.violations)
        return _no_solution(problem, [f"the least-violating matching found breaks: {broken}"], termination, stats)
    return plan.with_(status=Status.FEASIBLE, termination=termination, objective=metrics.objective, bound=None,
                      gap=None, stats=stats, proof=Proof.NONE)
