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

**Warm starts** (option ``warm_start``, :mod:`solvers.ilp.warm`): the solve starts
from the best pipeline plan its providers find (``dp`` where dp takes the
instance, within 30% of the time left; any plan a registered provider returns,
e.g. a max-flow placement, is reduced to the pipelines it holds). The program
then asks only for better plans: a cutoff row, and for throughput a bound on the
bottleneck under which every shard and transfer whose own load reaches it is
dropped. The backend gets the plan as a start (CBC, SCIP and CP-SAT take one),
and ilp answers at least that plan, with the best bound known: the backend's,
the program's proof that nothing is better (an infeasible improvement program),
or the provider's own proof when it searched the same plans (then the program is
not solved at all; ``stats`` says where the answer and the bound come from).

**Symmetry**: interchangeable devices (:mod:`placement.costs.symmetry`) are used
in index order (:func:`~solvers.ilp.formulation.symmetry_rows`), so branch and
bound does not search copies of one plan.

Backends (option ``backend``): ``cpsat`` takes integers only, so it refuses the
free-rate throughput program (several classes without ``rate_rps``); HiGHS runs
on one thread. A backend whose Python adapter would need more than ten times the
time limit to build the program refuses the instance up front; one that could not
build it in the time left stops before building (see ``README``: Limits).

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

import math
import time
from typing import Any

import numpy as np

from placement import Plan, Problem, Proof, Status, Termination, evaluate
from solvers.api import InvalidOptionError, UnsupportedProblemError
from solvers.chain import Pipeline, StageSpec, assemble
from solvers.deadline import Deadline
from solvers.ilp.backends import MILP, MILPResult, handover_seconds, solve_milp
from solvers.ilp.diagnose import LIMIT_TOL, diagnose
from solvers.ilp.formulation import Formulation, build_formulation
from solvers.ilp.programs import bound_in_units, expand, program, with_start
from solvers.ilp.warm import PROVIDERS, WarmStart, canonical, start_vector, warm_starts
from solvers.status import relative_gap

__all__ = ["solve_ilp", "estimated_variables", "ilp_unsupported", "MAX_VARIABLES"]

# About a kilobyte of memory per variable while building and solving (measured: 1.03 M
# variables, 1.2 GB); above this the program would not fit a workstation's memory.
MAX_VARIABLES = 2_000_000
NONZEROS_PER_VARIABLE = 4  # a shard sits in about 4 rows (flow in, flow out, memory, its device)
HANDOVER_REFUSAL_FACTOR = 10.0


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


def _solve_tightened(problem: Problem, form: Formulation, run, better_than: float | None = None,
                     start: np.ndarray | None = None, eps: float = 1e-9
                     ) -> tuple[MILPResult, MILPResult, dict, int]:
    """Solve; while the plan breaks a limit by a float hair, tighten that limit and re-solve (3 rounds).
    Returns the final result, the first (its bound is the proof), how to read them, and the rounds.
    ``better_than`` leaves only plans better than it (see :func:`program`); ``start`` is handed to
    the backend as a start."""
    milp, info = program(form, better_than=better_than, eps=eps)
    result = first = run(with_start(milp, info, start), info)
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
        milp, info = program(form, {k: v * (2 ** rounds) for k, v in shift.items()}, better_than, eps)
        result = run(milp, info)
    return result, first, info, rounds


class _Runner:
    """Hands programs to the backend with what is left of the deadline."""

    def __init__(self, backend: str, params: Any, deadline: Deadline):
        self.backend, self.params, self.deadline = backend, params, deadline

    def __call__(self, milp: MILP, info: dict | None = None) -> MILPResult:
        p = self.params
        result = solve_milp(milp, self.backend, time_limit_s=self.deadline.left(), threads=p.threads, seed=p.seed,
                            rel_gap=p.rel_gap, verbose=p.verbose)
        result.x = expand(info or {}, result.x)
        return result


def _warm_names(option: str) -> list[str]:
    """The providers option ``warm_start`` names (``auto``: every registered one; ``none``: none)."""
    if option == "none":
        return []
    if option == "auto":
        return list(PROVIDERS)
    names = [n.strip() for n in option.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown or not names:
        raise InvalidOptionError(f"option warm_start: must be auto, none or names of warm-start providers "
                                 f"({', '.join(PROVIDERS)}), got {option!r}")
    return names


def solve_ilp(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Solve ``problem`` as one mixed-integer program (see the module docstring).

    Parameters
    ----------
    problem : Problem
    params : SolveParams
        ``threads``, ``seed`` and ``rel_gap`` go to the backend.
    options : dict
        ``backend``: ``highs``, ``cbc``, ``cpsat`` or ``scip``; ``warm_start``: ``auto``
        (every provider of :mod:`solvers.ilp.warm` that takes the instance), ``none`` or names.
    deadline : Deadline
        Covers the warm start and building the program too.

    Returns
    -------
    Plan
        ``optimal`` with its proven bound when the backend proves it (within
        ``rel_gap``), ``feasible`` with bound and gap when stopped by the time
        limit (at least as good as the warm start), ``infeasible`` with reasons
        when proven, ``no_solution`` otherwise.
    """
    backend = options["backend"]
    if problem.portfolio_features():  # model caching is its own program, kept in solvers.caching
        from solvers.caching.ilp import solve_cache_ilp
        from solvers.registry import CACHE
        plan = solve_cache_ilp(problem, params, options, deadline)
        return plan.with_(stats={**plan.stats, "plan_space": CACHE.name})
    names = _warm_names(options.get("warm_start", "auto"))
    refusal = backend_refusal(problem, backend, params.time_limit_s)
    if refusal:
        raise UnsupportedProblemError(refusal)
    started = time.perf_counter()
    warm = _best_warm(problem, warm_starts(problem, names, params, deadline))
    warm_s = time.perf_counter() - started
    form = build_formulation(problem)
    build_s = time.perf_counter() - started - warm_s
    stats0 = {"warm_start": warm.source if warm else None, "warm_start_objective": warm.objective if warm else None,
              "warm_start_time_s": round(warm_s, 4)}
    if deadline.expired():
        return _out_of_time(problem, warm, backend, {**form.stats, **stats0, "build_time_s": round(build_s, 4)})
    if warm is not None and warm.proven:
        # The provider proved its plan optimal over the plans this program searches: nothing to improve.
        common = dict(backend=backend, stats={**form.stats, **stats0, "build_time_s": round(build_s, 4),
                                              "program_solved": False})
        return _warm_answer(problem, warm, {"mode": "none"}, common)
    run = _Runner(backend, params, deadline)
    eps = max(params.rel_gap, 1e-9)
    start = start_vector(form, canonical(problem, warm.pipelines)) if warm else None
    result, first, info, rounds = _solve_tightened(problem, form, run, warm.objective if warm else None, start, eps)
    stats = {**form.stats, **result.stats, **stats0, "build_time_s": round(build_s, 4), "tighten_rounds": rounds,
             "throughput_model": info["mode"] if info["mode"] != "min" else None, "pruned": info.get("pruned"),
             "start_given": start is not None or None}
    common = dict(backend=backend, stats={k: v for k, v in stats.items() if v is not None})
    if result.status == "infeasible" and warm is not None:
        # Nothing beats the warm start by more than eps: it is optimal within that share.
        return _warm_answer(problem, warm, info, common, proven_within=eps)
    if result.status == "infeasible":
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, proof=Proof.PLAN_SPACE,
                    reasons=tuple(diagnose(form, run, deadline, backend)), **common)
    if result.x is None:
        if warm is not None:
            return _warm_answer(problem, warm, info, common, bound_result=first)
        status = Status.NO_SOLUTION if result.status != "error" else Status.ERROR
        term = Termination.TIME_LIMIT if result.time_limited else Termination.ERROR
        reasons = (result.message,) if result.message and status == Status.ERROR else \
            (f"no plan found within {params.time_limit_s:g} s",)
        return Plan(status=status, termination=term, reasons=reasons, **common)
    return _answer(problem, form, result, first, info, backend, common, warm)


def backend_refusal(problem: Problem, backend: str, time_limit_s: float = float("inf")) -> str | None:
    """Why ``backend`` cannot take ``problem`` within ``time_limit_s`` (checked before any work), or ``None``."""
    nonzeros = NONZEROS_PER_VARIABLE * estimated_variables(problem)
    handover_s = handover_seconds(backend, nonzeros)
    # The estimate counts every shard before memory rules most out: refuse only when it is far off (a
    # program that turns out too large to build in the time left stops before building, honestly).
    if handover_s > HANDOVER_REFUSAL_FACTOR * time_limit_s:
        return (f"ilp's {backend} backend: a program of up to {nonzeros:,} nonzeros takes about {handover_s:.0f} s "
                f"to build and hand to the backend, far more than the {time_limit_s:g} s time limit; use backend "
                f"highs, or a longer --time-limit")
    if backend == "cpsat" and problem.objective.name == "throughput":
        requests = list(problem.workload)
        from placement import cost_table
        if len(requests) > 1 and not cost_table(problem).rates_given(requests):
            return ("ilp's cpsat backend does not take throughput over several request classes without rate_rps "
                    "(that program multiplies continuous rates by binaries, which CP-SAT's integers cannot hold "
                    "exactly); use backend highs, scip or cbc, or give every class a rate_rps")
    return None


def _best_warm(problem: Problem, found: list[WarmStart]) -> WarmStart | None:
    if not found:
        return None
    sense = 1.0 if problem.objective.sense == "min" else -1.0
    return min(found, key=lambda w: sense * w.objective)


_RELAXATION_MAX_DEVICES = 64  # dp's relaxation costs O(n^3 L + n^2 L^2): beyond, only when nothing else bounds


def _relaxed_bound(problem: Problem, objective: float, bound: float | None) -> float | None:
    """The tighter of ``bound`` and dp's relaxation bound (it bounds the same plans, where dp takes the
    instance), never on the wrong side of a plan found."""
    from solvers.dp import relaxed_pipeline_bound
    if bound is not None and len(problem.topology.nodes) > _RELAXATION_MAX_DEVICES:
        return bound
    relaxed = relaxed_pipeline_bound(problem)
    if relaxed is None or not math.isfinite(relaxed):
        return bound
    maximise = problem.objective.sense == "max"
    relaxed = max(relaxed, objective) if maximise else min(relaxed, objective)
    if bound is None:
        return relaxed
    return min(bound, relaxed) if maximise else max(bound, relaxed)


def _out_of_time(problem: Problem, warm: WarmStart | None, backend: str, stats: dict) -> Plan:
    common = dict(backend=backend, stats={k: v for k, v in stats.items() if v is not None})
    if warm is None:
        return Plan(status=Status.NO_SOLUTION, termination=Termination.TIME_LIMIT,
                    reasons=("the time limit ran out while building the program",), **common)
    return _warm_answer(problem, warm, {"mode": "none"}, common)


def _warm_answer(problem: Problem, warm: WarmStart, info: dict, common: dict, proven_within: float | None = None,
                 bound_result: MILPResult | None = None) -> Plan:
    """The warm start as the answer, with the best bound known: the program's proof that nothing is
    better by more than ``proven_within``, the backend's bound, or the warm start's own proof."""
    value = warm.objective
    bound, source = None, None
    if proven_within is not None:
        bound = value / (1 - proven_within) if problem.objective.sense == "max" else value * (1 - proven_within)
        source = "program"
    elif bound_result is not None:
        bound = bound_in_units(info, bound_result, value)
        source = "backend" if bound is not None else None
    if warm.proven and (bound is None or abs(bound - value) > 0):
        bound, source = value, f"warm start ({warm.source})"
    tighter = _relaxed_bound(problem, value, bound)
    if tighter is not None and tighter != bound:
        bound, source = tighter, "dp relaxation"
    gap = relative_gap(value, bound)
    stats = {**common["stats"], "answer_from": f"warm start ({warm.source})", "bound_from": source}
    if gap is not None and gap <= max(proven_within or 0.0, 1e-9):
        status, term = Status.OPTIMAL, (Termination.CONVERGED if gap <= 1e-9 else Termination.GAP_REACHED)
    else:
        status, term = Status.FEASIBLE, Termination.TIME_LIMIT
    return warm.plan.with_(status=status, termination=term, objective=value, bound=bound, gap=gap,
                           proof=Proof.PLAN_SPACE if status is Status.OPTIMAL else Proof.NONE,
                           backend=common["backend"], stats={k: v for k, v in stats.items() if v is not None})


def _answer(problem: Problem, form: Formulation, result: MILPResult, first: MILPResult, info: dict, backend: str,
            common: dict, warm: WarmStart | None = None) -> Plan:
    pipelines = _pipelines(form, result.x)
    if any(not pipe.stages for pipe in pipelines):  # a backend answer that is not a set of pipelines
        return Plan(status=Status.ERROR, termination=Termination.ERROR,
                    reasons=(f"backend {backend} returned a solution without a pipeline",), **common)
    shards, routes = assemble(pipelines)
    plan = Plan(shards=shards, routes=routes)
    metrics = evaluate(problem, plan)
    objective = float(metrics.objective)
    sense = 1.0 if problem.objective.sense == "min" else -1.0
    if warm is not None and (not metrics.feasible or sense * warm.objective <= sense * objective):
        # The backend's plan is no better than the warm start (a time-limited run, or a float hair).
        return _warm_answer(problem, warm, info, common, bound_result=first)
    bound = bound_in_units(info, first, objective)  # tightened re-solves prove less: keep the first bound
    if warm is not None and warm.proven and bound is None:
        bound = warm.objective
    bound = _relaxed_bound(problem, objective, bound)
    gap = relative_gap(objective, bound)
    if result.status == "optimal" and gap is not None and gap <= 1e-9:
        status, term, bound, gap = Status.OPTIMAL, Termination.CONVERGED, objective, 0.0
    elif result.status == "optimal":
        status, term = Status.OPTIMAL, Termination.GAP_REACHED
    else:
        status, term = Status.FEASIBLE, Termination.TIME_LIMIT
    return plan.with_(status=status, termination=term, objective=objective, bound=bound, gap=gap,
                      proof=Proof.PLAN_SPACE if status is Status.OPTIMAL else Proof.NONE, **common)
