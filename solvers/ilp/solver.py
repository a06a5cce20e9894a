"""ILP: general placement as one mixed-integer program, solved by HiGHS, CBC, CP-SAT or SCIP.

Each model gets one pipeline: an ordered sequence of distinct devices, each
holding one contiguous range of blocks (in one weight format), serving all of
the model's request classes. :mod:`solvers.ilp.formulation` builds the segment
formulation from the cost table; :mod:`solvers.ilp.programs` turns it into a
program for the instance's objective (linear for latency, TTFT, TPOT, energy
and weighted sums; a bottleneck variable for throughput); a backend of
:mod:`solvers.ilp.backends` solves it.

A plan that a backend's float tolerance leaves a hair over a limit is caught by
:func:`~placement.evaluate`, that limit is tightened by the excess and the
program re-solved; the bound of the first solve is kept (it is the proof). A
proven-infeasible program is explained by :mod:`solvers.ilp.diagnose`.

Backends (option ``backend``): ``cpsat`` takes integers only, so it refuses the
free-rate throughput program (several classes without ``rate_rps``); HiGHS runs
on one thread.

Examples
--------
>>> from placement import load_instance
>>> from solvers import solve, SolveParams
>>> plan = solve(load_instance("instances/device-edge-cloud.yaml"), "ilp", SolveParams(time_limit_s=30),
...              options={"backend": "highs"})
>>> plan.status.value, plan.gap
('optimal', 0.0)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from solvers.api import UnsupportedProblemError
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.deadline import Deadline
from solvers.ilp.backends import MILP, MILPResult, solve_milp
from solvers.ilp.diagnose import LIMIT_TOL, diagnose
from solvers.ilp.formulation import Formulation, build_formulation
from solvers.ilp.programs import bound_in_units, program, throughput_mode

__all__ = ["solve_ilp", "estimated_variables", "ilp_unsupported", "MAX_VARIABLES"]

# About a kilobyte of memory per variable while building and solving (measured: 1.03 M
# variables, 1.2 GB); above this the program would not fit a workstation's memory.
MAX_VARIABLES = 2_000_000


def estimated_variables(problem: Problem) -> int:
    """An upper bound on the program's variables: shards, hops and loops of every model."""
    D = len(problem.constraints.device_order or problem.topology.nodes)
    total = 0
    for model in problem.models:
        if problem.requests_for(model.id):
            L, F = model.num_blocks, len(model.formats)
            total += D * L * (L + 1) // 2 * F + D * D * max(L - 1, 0) + D * D
    return total


def ilp_unsupported(problem: Problem) -> list[str]:
    """What ilp refuses beyond its capability flags (the registry's precondition)."""
    if problem.portfolio_features():  # a model-caching instance: the caching program (solvers.caching)
        from solvers.caching import caching_unsupported
        return caching_unsupported(problem)
    n = estimated_variables(problem)
    if n > MAX_VARIABLES:
        return [f"a program of up to {n:,} variables (more than {MAX_VARIABLES:,}: too large for memory); "
                "dp and matching scale to it"]
    return []


def _pipelines(form: Formulation, x: np.ndarray) -> list[Pipeline]:
    chosen = np.flatnonzero(x[: len(form.seg["m"])] > 0.5)
    topo = form.problem.topology
    out = []
    for mi, (model, requests, fmts) in enumerate(form.models):
        mine = sorted((int(form.seg["a"][s]), s) for s in chosen if form.seg["m"][s] == mi)
        stages = []
        for a, s in mine:
            fmt = fmts[form.seg["f"][s]]
            stages.append(StageSpec(topo.nodes[form.seg["d"][s]].id, a, int(form.seg["b"][s]),
                                    None if fmt == model.weight_format else fmt))
        out.append(Pipeline(model.id, tuple(r.id for r in requests), tuple(stages)))
    return out


def _violated_families(form: Formulation, x: np.ndarray) -> dict[tuple, float]:
    """Each family row the plan ``x`` breaks (in the program's own arithmetic), by how much."""
    out = {}
    for fam, (A, hi) in form.families.items():
        excess = float(np.max(A @ x[: form.num_vars] - hi)) if A.shape[0] else -1.0
        if excess > -LIMIT_TOL * 1e-3:
            out[fam] = max(excess, 0.0) + 1e-12
    return out


def _solve_tightened(problem: Problem, form: Formulation, run) -> tuple[MILPResult, MILPResult, dict, int]:
    """Solve; while the plan breaks a limit by a float hair, tighten that limit and re-solve (3 rounds).
    Returns the final result, the first (its bound is the proof), how to read them, and the rounds."""
    milp, info = program(form)
    result = first = run(milp)
    rounds = 0
    while result.x is not None and rounds < 3 and not run.deadline.expired():
        pipelines = _pipelines(form, result.x)
        if any(not pipe.stages for pipe in pipelines):
            break
        shards, routes = assemble(pipelines)
        if evaluate(problem, Plan(shards=shards, routes=routes)).feasible:
            break
        shift = _violated_families(form, result.x)
        if not shift:
            break
        rounds += 1
        milp, info = program(form, {k: v * (2 ** rounds) for k, v in shift.items()})
        result = run(milp)
    return result, first, info, rounds


class _Runner:
    """Hands programs to the backend with what is left of the deadline."""

    def __init__(self, backend: str, params: Any, deadline: Deadline):
        self.backend, self.params, self.deadline = backend, params, deadline

    def __call__(self, milp: MILP) -> MILPResult:
        p = self.params
        return solve_milp(milp, self.backend, time_limit_s=self.deadline.left(), threads=p.threads, seed=p.seed,
                          rel_gap=p.rel_gap, verbose=p.verbose)


def solve_ilp(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Solve ``problem`` as one mixed-integer program (see the module docstring).

    Parameters
    ----------
    problem : Problem
    params : SolveParams
        ``threads``, ``seed`` and ``rel_gap`` go to the backend.
    options : dict
        ``backend``: ``highs``, ``cbc``, ``cpsat`` or ``scip``.
    deadline : Deadline
        Covers building the program too.

    Returns
    -------
    Plan
        ``optimal`` with its proven bound when the backend proves it (within
        ``rel_gap``), ``feasible`` with bound and gap when stopped by the time
        limit, ``infeasible`` with reasons when proven, ``no_solution`` otherwise.
    """
    backend = options["backend"]
    if problem.portfolio_features():  # model caching is its own program, kept in solvers.caching
        from solvers.caching.ilp import solve_cache_ilp
        return solve_cache_ilp(problem, params, options, deadline)
    started = time.perf_counter()
    form = build_formulation(problem)
    if backend == "cpsat" and problem.objective.name == "throughput" and throughput_mode(form) == "free":
        raise UnsupportedProblemError(
            "ilp's cpsat backend does not take throughput over several request classes without rate_rps (that "
            "program multiplies continuous rates by binaries, which CP-SAT's integers cannot hold exactly); "
            "use backend highs, scip or cbc, or give every class a rate_rps")
    build_s = time.perf_counter() - started
    run = _Runner(backend, params, deadline)
    result, first, info, rounds = _solve_tightened(problem, form, run)
    stats = {**form.stats, **result.stats, "build_time_s": round(build_s, 4), "tighten_rounds": rounds,
             "throughput_model": info["mode"] if info["mode"] != "min" else None}
    common = dict(backend=backend, stats={k: v for k, v in stats.items() if v is not None})
    if result.status == "infeasible":
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, proof=Proof.PLAN_SPACE,
                    reasons=tuple(diagnose(form, run, deadline, backend)), **common)
    if result.x is None:
        status = Status.NO_SOLUTION if result.status != "error" else Status.ERROR
        term = Termination.TIME_LIMIT if result.time_limited else Termination.ERROR
        reasons = (result.message,) if result.message and status == Status.ERROR else \
            (f"no plan found within {params.time_limit_s:g} s",)
        return Plan(status=status, termination=term, reasons=reasons, **common)
    return _answer(problem, form, result, first, info, backend, common)


def _answer(problem: Problem, form: Formulation, result: MILPResult, first: MILPResult, info: dict, backend: str,
            common: dict) -> Plan:
    pipelines = _pipelines(form, result.x)
    if any(not pipe.stages for pipe in pipelines):  # a backend answer that is not a set of pipelines
        return Plan(status=Status.ERROR, termination=Termination.ERROR,
                    reasons=(f"backend {backend} returned a solution without a pipeline",), **common)
    shards, routes = assemble(pipelines)
    plan = Plan(shards=shards, routes=routes)
    objective = float(evaluate(problem, plan).objective)
    bound = bound_in_units(info, first, objective)  # tightened re-solves prove less: keep the first bound
    gap = abs(objective - bound) / max(abs(objective), 1e-12) if bound is not None else None
    if result.status == "optimal" and gap is not None and gap <= 1e-9:
        status, term, bound, gap = Status.OPTIMAL, Termination.CONVERGED, objective, 0.0
    elif result.status == "optimal":
        status, term = Status.OPTIMAL, Termination.GAP_REACHED
    else:
        status, term = Status.FEASIBLE, Termination.TIME_LIMIT
    return plan.with_(status=status, termination=term, objective=objective, bound=bound, gap=gap,
                      proof=Proof.PLAN_SPACE if status is Status.OPTIMAL else Proof.NONE, **common)
