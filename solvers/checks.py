"""The public conformance battery: every check a solver must pass, runnable on any registered solver.

Like scikit-learn's ``check_estimator``: register a solver (yours or ours), then

    >>> from solvers.checks import check_solver
    >>> report = check_solver("greedy", checks=("options", "round_trip"))
    >>> report.passed, report.failures
    (True, {})

or run one check at a time, as the project's tests do
(:func:`solver_checks` yields ``(name, check)`` pairs). The checks run the solver
over ``instances.zoo`` (small instances whose optima the brute-force oracle finds)
and a larger instance for time limits:

- ``keeps_limits``: a plan reported ``optimal`` or ``feasible`` keeps every limit,
  and its objective equals ``evaluate()`` on it (relative 1e-9);
- ``oracle``: an exact solver finds the oracle's optimum (relative 1e-6) and its
  verdict; a heuristic never beats it inside the oracle's plan space, never claims
  ``optimal`` and never reports a bound; an exact solver's bound is on the right
  side of its objective and equals it when optimal; an ``infeasible`` claim holds;
- ``determinism``: the same seed twice gives the same shards and routes;
- ``deadline``: a tight time limit is honoured (within :data:`DEADLINE_SLACK_S`);
- ``options``: an unknown option, a value of the wrong type and one out of range are
  refused before solving with :class:`~solvers.options.InvalidOptionError`;
- ``round_trip``: a plan written to a plan file and read back evaluates the same;
- ``no_mutation``: solving changes nothing in the problem, its cost table's arrays included;
- ``portfolio``: model caching. A solver that searches caches or routings (plan spaces ``cache``
  and ``routing``) leaves no class both unrouted and undeclared, and gives every unserved share
  its reason with numbers; a solver that takes model-caching instances but searches another
  space (``ilp``, ``auto``) matches the caching oracle on them (or refuses them, every one, as a
  usage error); any other solver refuses them up front.

Solvers of the ``cache`` plan space run every check on ``instances.caching_zoo`` (tiny
portfolios) against the caching oracle (``cache-bruteforce``); the ``route`` solver (plan space
``routing``) on the same portfolios with a current cache, against the best routing of that
cache found by enumeration.

Solvers of the ``ranges`` plan space (:data:`solvers.registry.RANGES`: each device one
range or none, routed by max-flow) are also run over ``instances.zoo.replicated_zoo``,
tiny instances whose optima replicate or overlap shards, against their own oracle
(:func:`range_oracle`: every assignment of a range or nothing to each device, routed by
:func:`placement.costs.flows.route_shards`); on the pipeline zoo, the pipeline optimum is
their floor (their plan space holds every pipeline), and an exact one proves an instance
with no plan at all infeasible.

Each check returns a list of failures (empty when it passes).
"""

from __future__ import annotations

import functools
import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from placement import (
    Plan, Problem, Proof, Shard, Status, Termination, cost_table, evaluate, load_plan, parse_instance, save_plan,
)
from placement.costs.chains import PipelineViews
from placement.costs.flows import route_shards
from solvers.api import SolveParams, UnsupportedProblemError, solve
from solvers.options import InvalidOptionError
from solvers.registry import PIPELINE, RANGES, SolverInfo, registered, solver_info

__all__ = ["check_solver", "solver_checks", "CheckReport", "DEADLINE_SLACK_S", "REL_EVALUATE", "REL_OPTIMUM",
           "range_oracle", "best_ranges", "MAX_ASSIGNMENTS"]

REL_EVALUATE = 1e-9  # a plan's objective against evaluate() on it
REL_OPTIMUM = 1e-6  # an exact solver's optimum against the oracle's
DEADLINE_S, DEADLINE_SLACK_S = 0.5, 1.0  # a tight limit, and what a solver may take past it to stop
MIN_INSTANCES = 10  # a solver must accept at least this many zoo instances
_PARAMS = SolveParams(time_limit_s=60, seed=0)
_NO_PRECHECK = {"precheck": False}  # solvers must find infeasibility themselves
_DETERMINISM = ("tpot-4dev-6blk-mesh-mixed-slo-ttft+tpot", "throughput-3dev-6blk-star-mixed-2cls-rates",
                "ttft-3dev-4blk-mesh-tight-2cls-slo-tpot", "two-models-latency-3dev-4blk", "infeasible-load")
_DETERMINISM_RANGES = ("overlap-3dev-4blk-profiles", "rates-2cls-3dev-4blk", "slow-links-3dev-4blk")
MAX_ASSIGNMENTS = 50_000  # the ranges oracle refuses instances with more assignments than this


# -- the zoo and its oracle, built once per process --------------------------------------------


@functools.lru_cache(maxsize=None)
def zoo_problems(seed: int) -> tuple[tuple[str, Problem], ...]:
    """The zoo of ``instances.zoo`` parsed (instances is a sibling package of generators)."""
    from instances.zoo import zoo
    return tuple((name, parse_instance(data, default_name=name)) for name, data in zoo(seed))


@functools.lru_cache(maxsize=None)
def oracle(seed: int, name: str) -> Plan:
    """The brute-force answer on zoo instance ``name`` (every contiguous pipeline, judged by evaluate)."""
    problem = dict(zoo_problems(seed))[name]
    ref = solve(problem, "bruteforce", _PARAMS, options=_NO_PRECHECK)
    if not (ref.status in (Status.OPTIMAL, Status.INFEASIBLE) or no_pipeline(ref)):
        raise RuntimeError(f"the oracle failed on {name}: {ref.status} {ref.reasons}")
    return ref


@functools.lru_cache(maxsize=None)
def caching_zoo_problems(seed: int, routing: bool = False) -> tuple[tuple[str, Problem], ...]:
    """The tiny portfolios of ``instances.caching_zoo`` (``routing``: each with a current cache)."""
    from instances.caching_zoo import caching_zoo, routing_zoo
    return tuple((name, parse_instance(data, default_name=name)) for name, data in
                 (routing_zoo(seed) if routing else caching_zoo(seed)))


@functools.lru_cache(maxsize=None)
def caching_oracle(seed: int, name: str) -> Plan:
    """The caching oracle's answer: the best cache of whole-model instances, or (``route-`` instances)
    the best routing of the current cache."""
    if name.startswith("route-"):
        from solvers.caching.bruteforce import routing_optimum
        return routing_optimum(_problem(seed, name))
    return solve(_problem(seed, name), "cache-bruteforce", _PARAMS, options=_NO_PRECHECK)


def replicated_problems(seed: int) -> tuple[tuple[str, Problem], ...]:
    """The replicated zoo of ``instances.zoo`` parsed (the ``ranges`` plan space's own instances)."""
    from instances.zoo import replicated_zoo
    return tuple((name, parse_instance(data, default_name=name)) for name, data in replicated_zoo(seed))


def _problem(seed: int, name: str) -> Problem:
    for zoo in (zoo_problems(seed), replicated_problems(seed), caching_zoo_problems(seed),
                caching_zoo_problems(seed, routing=True)):
        found = dict(zoo).get(name)
        if found is not None:
            return found
    raise KeyError(name)


def _spans(ranges: list[tuple[int, int]], L: int) -> bool:
    """Whether some chain of the ranges leads from block 0 to block L."""
    reached, changed = {0}, True
    while changed:
        changed = False
        for a, b in ranges:
            if a in reached and b not in reached:
                reached.add(b)
                changed = True
    return L in reached


def best_ranges(problem: Problem, limit: int = MAX_ASSIGNMENTS) -> Plan:
    """The best plan of the ``ranges`` plan space, by enumeration: every assignment of one range
    (fitting the device's memory with every class's KV cache, and its max_layers) or nothing to
    each device that may hold blocks and reaches every source, routed by max-flow, judged by
    evaluate(). ``optimal`` with the best plan, or ``infeasible`` when no assignment serves every
    class within the limits. Raises ValueError beyond ``limit`` assignments."""
    table = cost_table(problem)
    model = problem.models[0]
    reqs = problem.requests_for(model.id)
    L = model.num_blocks
    cands = [d for d in range(table.num_devices) if table.may_hold[d] and all(
        math.isfinite(float(table.transfers(r).upload_s[d])) and math.isfinite(float(table.transfers(r).return_s[d]))
        for r in reqs)]
    options: list[list] = []
    if cands:
        views = PipelineViews(table, model.id, cands, requests=list(reqs))
        ok = views.memory_ok() & views.layers_ok()
        options = [[None] + [(int(a), int(b)) for a, b in zip(*ok[i].nonzero())] for i in range(len(cands))]
    if math.prod(len(o) for o in options) > limit:
        raise ValueError(f"{problem.name}: more than {limit} assignments to enumerate")
    best_value, best_plan = 0.0, None
    names = [problem.topology.nodes[d].id for d in cands]
    # A shard carries at most its best class's tokens/s: the least over blocks of what covers them bounds
    # an assignment's flow, and skips the routing of assignments that cannot beat the best so far.
    alone = {(i, r): max(1.0 / float(table.blocks(q).stage_token_s(cands[i], *r)) for q in reqs)
             for i, opts in enumerate(options) for r in opts if r is not None}
    for combo in itertools.product(*options):
        if not _spans([r for r in combo if r is not None], L):
            continue
        cover = [0.0] * L
        for i, r in enumerate(combo):
            if r is not None:
                for block in range(*r):
                    cover[block] += alone[(i, r)]
        if min(cover) <= best_value * (1 + 1e-12):
            continue
        shards = tuple(Shard(f"{names[i]}:{r[0]}-{r[1]}", model.id, names[i], r) for i, r in enumerate(combo) if r)
        routing = route_shards(problem, shards)
        if routing.unserved or routing.throughput_tok_s <= best_value * (1 + 1e-12):
            continue
        used = {sid for r in routing.routes for sid in r.path}
        plan = Plan(shards=tuple(s for s in shards if s.id in used), routes=routing.routes)
        metrics = evaluate(problem, plan)
        if metrics.feasible and metrics.objective > best_value:
            best_value, best_plan = metrics.objective, plan
    if best_plan is None:
        return Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, proof=Proof.PLAN_SPACE,
                    reasons=("no assignment of one range or nothing to each device serves every class",))
    return best_plan.with_(status=Status.OPTIMAL, termination=Termination.CONVERGED, objective=best_value,
                           bound=best_value, gap=0.0, proof=Proof.PLAN_SPACE)


@functools.lru_cache(maxsize=None)
def range_oracle(seed: int, name: str) -> Plan:
    """:func:`best_ranges` on replicated-zoo instance ``name``, computed once per process."""
    return best_ranges(dict(replicated_problems(seed))[name])


@functools.lru_cache(maxsize=None)
def _zoo_plan(solver: str, options: tuple, seed: int, name: str) -> Plan:
    if solver == "bruteforce" and not options:
        return oracle(seed, name)  # the oracle's own run, made with the same parameters
    if solver == "cache-bruteforce" and not options and not name.startswith("route-"):
        return caching_oracle(seed, name)
    return solve(_problem(seed, name), solver, _PARAMS, options={**dict(options), **_NO_PRECHECK})


def no_pipeline(plan: Plan) -> bool:
    """The verdict 'no feasible pipeline' (proven for the whole instance or not)."""
    return plan.status == Status.INFEASIBLE or (plan.status == Status.NO_SOLUTION
                                                and plan.termination.value == "converged")


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def _better(problem: Problem, value: float, than: float) -> bool:
    # Relative to |than|: objectives may be negative (a weighted mix with quality, maximised).
    if problem.objective.sense == "max":
        return value > than + REL_OPTIMUM * abs(than) + 1e-12
    return value < than - REL_OPTIMUM * abs(than) - 1e-12


def one_pipeline_per_model(problem: Problem, plan: Plan) -> bool:
    """Whether ``plan`` lies in the oracle's search space."""
    shards = {s.id: s for s in plan.shards}
    for model in problem.models:
        classes = {r.id for r in problem.requests_for(model.id)}
        routes = [r for r in plan.routes if r.request in classes]
        paths = {r.path for r in routes}
        if len(routes) != len(classes) or len(paths) != 1 or any(r.fraction not in (None, 1.0) for r in routes):
            return False
        path = next(iter(paths))
        devices = [shards[sid].device for sid in path]
        if len(set(devices)) != len(devices) or {s.id for s in plan.shards if s.model == model.id} != set(path):
            return False
    return True


# -- the checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """A solver under test: its registration and the options that select a variant."""

    info: SolverInfo
    options: dict[str, Any] = field(default_factory=dict)

    def run(self, problem: Problem, params: SolveParams = _PARAMS, precheck: bool = False) -> Plan:
        return solve(problem, self.info.name, params, options={**self.options, "precheck": precheck})

    def zoo_plan(self, seed: int, name: str) -> Plan:
        """Its plan on zoo instance ``name``, solved once per process (the checks share it)."""
        return _zoo_plan(self.info.name, tuple(sorted(self.options.items())), seed, name)

    def accepts(self, problem: Problem) -> bool:
        return not self.info.unsupported(problem)

    @property
    def caching(self) -> bool:
        """Whether it searches caches or routings (and is checked on the caching zoo)."""
        return self.info.plan_space.name in ("cache", "routing")

    @property
    def ranges(self) -> bool:
        """Whether it searches the ``ranges`` plan space (then the replicated zoo and its oracle apply)."""
        return self.info.plan_space is RANGES

    def zoo(self, seed: int) -> tuple[tuple[str, Problem], ...]:
        """The instances it is checked on: the pipeline zoo (and the replicated zoo for ``ranges``
        solvers), or the caching zoo for caching solvers."""
        if not self.caching:
            return zoo_problems(seed) + (replicated_problems(seed) if self.ranges else ())
        return caching_zoo_problems(seed, routing=self.info.plan_space.name == "routing")


def _limits_and_agreement(problem: Problem, plan: Plan) -> list[str]:
    out = []
    if plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        m = evaluate(problem, plan)
        if not m.feasible:
            out.append(f"{plan.status} plan breaks limits: {'; '.join(map(str, m.violations))}")
        if plan.objective is None or not _close(plan.objective, m.objective, REL_EVALUATE):
            out.append(f"objective {plan.objective} != evaluate() {m.objective}")
    if plan.status == Status.ERROR:
        out.append(f"status error: {'; '.join(plan.reasons)}")
    return out


def _against_oracle(exact: bool, problem: Problem, plan: Plan, ref: Plan) -> list[str]:
    out, st = [], plan.status
    if st == Status.INFEASIBLE:
        if not plan.reasons:
            out.append("infeasible without reasons")
        # The oracle searches pipelines; a claim resting on a proof for every plan may go further.
        if ref.status != Status.INFEASIBLE and not (plan.proof is Proof.ANY_PLAN and no_pipeline(ref)):
            out.append(f"claims infeasible, but the oracle says {ref.status} ({ref.objective})")
    if exact:
        if ref.status == Status.OPTIMAL and st != Status.OPTIMAL:
            out.append(f"returned {st} ({plan.termination}) where the optimum is {ref.objective}: "
                       f"{'; '.join(plan.reasons[:2])}")
        elif ref.status == Status.OPTIMAL and not _close(plan.objective, ref.objective, REL_OPTIMUM):
            out.append(f"optimum {plan.objective} != oracle's {ref.objective}")
        if no_pipeline(ref) and (st != ref.status or not plan.reasons):
            out.append(f"returned {st} (reasons: {len(plan.reasons)}) where the oracle found no feasible pipeline "
                       f"and says {ref.status} ({ref.reasons[0]})")
        return out + _bound_claims(exact, problem, plan)
    out += _bound_claims(exact, problem, plan)
    if st == Status.FEASIBLE and one_pipeline_per_model(problem, plan):
        if no_pipeline(ref):
            out.append("feasible pipeline where the oracle found none")
        elif _better(problem, plan.objective, ref.objective):
            out.append(f"objective {plan.objective} beats the oracle's optimum {ref.objective}")
    return out


def _against_caching_oracle(exact: bool, problem: Problem, plan: Plan, ref: Plan) -> list[str]:
    """A caching solver against the caching oracle: every plan of theirs lies in its space."""
    out, st = [], plan.status
    if st == Status.INFEASIBLE:
        out.append("claims infeasible, but unserved demand is declared, never infeasible")
    if exact:
        if st != Status.OPTIMAL:
            out.append(f"returned {st} ({plan.termination}) where the optimum is {ref.objective}: "
                       f"{'; '.join(plan.reasons[:2])}")
        elif not _close(plan.objective, ref.objective, REL_OPTIMUM):
            out.append(f"optimum {plan.objective} != oracle's {ref.objective}")
        return out + _bound_claims(exact, problem, plan)
    out += _bound_claims(exact, problem, plan)
    if st == Status.FEASIBLE and _better(problem, plan.objective, ref.objective):
        out.append(f"objective {plan.objective} beats the oracle's optimum {ref.objective}")
    return out


def _against_ranges(exact: bool, problem: Problem, plan: Plan, ref: Plan) -> list[str]:
    """A ``ranges`` solver against the enumeration of its plan space."""
    out, st = [], plan.status
    if ref.status == Status.OPTIMAL:
        if st == Status.INFEASIBLE or (exact and st != Status.OPTIMAL):
            out.append(f"returned {st} ({plan.termination}) where the optimum is {ref.objective}")
        elif st in (Status.OPTIMAL, Status.FEASIBLE):
            if exact and not _close(plan.objective, ref.objective, REL_OPTIMUM):
                out.append(f"optimum {plan.objective} != the ranges oracle's {ref.objective}")
            if _better(problem, plan.objective, ref.objective):
                out.append(f"objective {plan.objective} beats the ranges oracle's optimum {ref.objective}")
    elif st in (Status.OPTIMAL, Status.FEASIBLE):
        out.append(f"{st} plan where the ranges oracle found none")
    elif exact and plan.termination != Termination.CONVERGED:
        out.append(f"no plan exists, but it stopped with {plan.termination} instead of proving it")
    return out


def _against_pipelines(exact: bool, problem: Problem, plan: Plan, ref: Plan) -> list[str]:
    """A ``ranges`` solver on the pipeline zoo: its plan space holds every pipeline, so the pipeline
    optimum is a floor for an exact one, and a feasible pipeline rules out an infeasible verdict. Where
    no pipeline keeps the limits and the pipeline space is complete (the instance has no plan at all),
    an exact one proves it: ``infeasible``, with reasons."""
    out, st = [], plan.status
    if ref.status == Status.OPTIMAL:
        if st not in (Status.OPTIMAL, Status.FEASIBLE):
            out.append(f"returned {st} where a feasible pipeline serves {ref.objective}")
        elif exact and _better(problem, ref.objective, plan.objective):
            out.append(f"objective {plan.objective} below the pipeline optimum {ref.objective}")
    elif exact and no_pipeline(ref) and PIPELINE.complete(problem) and \
            (st != Status.INFEASIBLE or not plan.reasons):
        out.append(f"returned {st} (reasons: {len(plan.reasons)}) on an instance with no plan at all "
                   f"(no feasible pipeline, and the pipeline space is complete here: {ref.reasons[:1]})")
    return out


def _over_zoo(subject: _Subject, seed: int, judge: Callable[[str, Problem, Plan], list[str]]) -> list[str]:
    failures, ran = [], 0
    for name, problem in subject.zoo(seed):
        if not subject.accepts(problem):
            continue
        try:
            plan = subject.zoo_plan(seed, name)
        except Exception as exc:  # noqa: BLE001 (any exception is a failure, reported with the instance)
            failures.append(f"{name}: raised {type(exc).__name__}: {exc}")
            continue
        ran += 1
        failures += [f"{name}: {v}" for v in judge(name, problem, plan)]
    if ran < MIN_INSTANCES:
        failures.append(f"accepted only {ran} zoo instances (at least {MIN_INSTANCES} expected)")
    return failures


def check_keeps_limits(subject: _Subject, seed: int = 0) -> list[str]:
    """Plans that claim a solution keep every limit and report evaluate()'s objective."""
    return _over_zoo(subject, seed, lambda name, problem, plan: _limits_and_agreement(problem, plan))


def check_oracle(subject: _Subject, seed: int = 0) -> list[str]:
    """Exact solvers match the brute-force oracle; heuristics never beat it nor claim proofs.
    ``ranges`` solvers: the ranges oracle on the replicated zoo, the pipeline optimum as a floor on the
    pipeline zoo; an exact one's bound is on the right side of its objective and meets it when optimal.
    Caching solvers: the caching oracle on the caching zoo."""
    exact = subject.info.exact
    replicated = {name for name, _ in replicated_problems(seed)} if subject.ranges else set()

    def judge(name: str, problem: Problem, plan: Plan) -> list[str]:
        if subject.caching:
            return _against_caching_oracle(exact, problem, plan, caching_oracle(seed, name))
        if not subject.ranges and not _searched_ranges(plan):
            return _against_oracle(exact, problem, plan, oracle(seed, name))
        found = (_against_ranges(exact, problem, plan, range_oracle(seed, name)) if name in replicated
                 else _against_pipelines(exact, problem, plan, oracle(seed, name)))
        return found + _bound_claims(exact, problem, plan)
    return _over_zoo(subject, seed, judge)


def _searched_ranges(plan: Plan) -> bool:
    """Whether a solver that picks another (``auto``) ran one of the ``ranges`` plan space: its plan is
    then judged in that space (the pipeline optimum a floor), not against the pipeline oracle."""
    picked = plan.stats.get("picked")
    return isinstance(picked, str) and any(info.name == picked and info.plan_space is RANGES for info in registered())


def _bound_claims(exact: bool, problem: Problem, plan: Plan) -> list[str]:
    """A heuristic claims no bound and no proof; an exact solver's bound meets its objective when
    optimal and never lies on the wrong side of it (the same in every plan space)."""
    out = []
    if not exact:
        if plan.bound is not None:
            out.append(f"heuristic reports a bound ({plan.bound})")
        if plan.status == Status.OPTIMAL:
            out.append("heuristic claims optimal")
        return out
    if plan.status == Status.OPTIMAL and (plan.bound is None or not _close(plan.bound, plan.objective, REL_OPTIMUM)):
        out.append(f"optimal with bound {plan.bound} != objective {plan.objective}")
    if plan.bound is not None and plan.objective is not None and _better(problem, plan.objective, plan.bound):
        out.append(f"objective {plan.objective} beats its own bound {plan.bound}")
    return out


def check_determinism(subject: _Subject, seed: int = 0) -> list[str]:
    """The same seed twice gives the same plan."""
    by_name = dict(subject.zoo(0))
    failures, checked = [], 0
    names = [n for n in by_name if "rates" in n][:4] if subject.caching else \
        _DETERMINISM + (_DETERMINISM_RANGES if subject.ranges else ())
    for name in names:
        problem = by_name[name]
        if not subject.accepts(problem):
            continue
        params = SolveParams(time_limit_s=60, seed=7)
        first, second = (subject.run(problem, params) for _ in range(2))
        if (first.status, first.shards, first.routes) != (second.status, second.shards, second.routes):
            failures.append(f"{name}: two runs with seed 7 differ")
        checked += 1
    if checked < 2:
        failures.append(f"accepted only {checked} of the determinism instances")
    return failures


def check_deadline(subject: _Subject, seed: int = 0) -> list[str]:
    """A tight time limit is honoured, and what comes back under it is sound."""
    from instances.caching_zoo import caching_stress
    from instances.zoo import stress
    name, data = caching_stress(cache=subject.info.plan_space.name == "routing") if subject.caching else stress()
    problem, limit = parse_instance(data), DEADLINE_S
    if not subject.accepts(problem) and not subject.caching:  # the same instance for throughput solvers
        name, data = stress(objective="throughput")
        problem = parse_instance(data)
    if not subject.accepts(problem):  # its biggest zoo instance, a tighter limit
        from solvers.bruteforce import count_plans
        name, problem = max(((n, p) for n, p in subject.zoo(0) if subject.accepts(p)),
                            key=lambda item: count_plans(item[1]))
        limit = 0.05
    started = time.perf_counter()
    plan = subject.run(problem, SolveParams(time_limit_s=limit), precheck=True)
    elapsed = time.perf_counter() - started
    failures = []
    if elapsed > limit + DEADLINE_SLACK_S:
        failures.append(f"{name}: {elapsed:.2f} s with a {limit} s limit")
    if plan.status not in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION):
        failures.append(f"{name}: {plan.status} under a time limit ({'; '.join(plan.reasons)})")
    failures += [f"{name}: {v}" for v in _limits_and_agreement(problem, plan)]
    if plan.bound is not None and not subject.info.exact:
        failures.append(f"{name}: heuristic reports a bound")
    return failures


def _wrong_values(option) -> list[Any]:
    wrong: list[Any] = ["many"] if option.kind is not str else [3]
    if option.minimum is not None:
        wrong.append(option.minimum - 1)
    if option.maximum is not None:
        wrong.append(option.maximum + 1)
    if option.choices:
        wrong.append("no-such-choice")
    return wrong


def check_options(subject: _Subject, seed: int = 0) -> list[str]:
    """Bad options are refused before solving, naming the option."""
    problem = next(p for _, p in subject.zoo(0) if subject.accepts(p))
    failures = []
    trials = [("an unknown option", {"no_such_option": 1})]
    trials += [(f"{o.name}={v!r}", {o.name: v}) for o in subject.info.options for v in _wrong_values(o)]
    for what, options in trials:
        try:
            solve(problem, subject.info.name, _PARAMS, options={**subject.options, **options})
        except InvalidOptionError as exc:
            if not any(name in str(exc) for name in options):
                failures.append(f"{what}: the error does not name the option ({exc})")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{what}: raised {type(exc).__name__} instead of InvalidOptionError: {exc}")
        else:
            failures.append(f"{what}: accepted")
    return failures


def check_round_trip(subject: _Subject, seed: int = 0) -> list[str]:
    """A plan written to a plan file reads back to the same plan, evaluated the same."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, problem in subject.zoo(0)[:12] + (replicated_problems(0)[:4] if subject.ranges else ()):
            if not subject.accepts(problem):
                continue
            plan = subject.zoo_plan(0, name)
            if not plan.shards:
                continue
            path = Path(tmp) / f"{name}.json"
            save_plan(path, plan, problem)
            again = load_plan(path)
            if (again.shards, again.routes, again.status, again.proof, again.unserved) != \
                    (plan.shards, plan.routes, plan.status, plan.proof, plan.unserved):
                failures.append(f"{name}: the plan file does not read back to the same plan")
            elif evaluate(problem, again).objective != evaluate(problem, plan).objective:
                failures.append(f"{name}: the plan read back evaluates differently")
    return failures


def _snapshot(problem: Problem) -> tuple:
    """Everything a solver could change: the problem's fields and every compiled table array."""
    table = cost_table(problem)
    arrays = {key: _arrays(part) for key, part in table._parts.items()}
    return (problem.models, problem.topology.nodes, problem.topology.links, problem.workload, problem.objective,
            problem.constraints), arrays


def _arrays(part: Any) -> list:
    if isinstance(part, np.ndarray):
        return [part.copy()]
    if hasattr(part, "__dataclass_fields__"):
        return [getattr(part, f).copy() for f in part.__dataclass_fields__ if isinstance(getattr(part, f), np.ndarray)]
    if isinstance(part, dict):
        return [dict(part)]
    return [part]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return a == b


def check_no_mutation(subject: _Subject, seed: int = 0) -> list[str]:
    """Solving changes nothing in the problem: fields and the contents of every cost-table array."""
    failures = []
    for name, problem in subject.zoo(0)[:8] + (replicated_problems(0)[:3] if subject.ranges else ()):
        if not subject.accepts(problem):
            continue
        subject.zoo_plan(0, name)  # compiles the table parts it reads
        fields, arrays = _snapshot(problem)
        subject.run(problem)
        fields2, arrays2 = _snapshot(problem)
        if fields != fields2:
            failures.append(f"{name}: the problem changed")
        for key, values in arrays.items():
            if not all(_same(x, y) for x, y in zip(values, arrays2.get(key, []))):
                failures.append(f"{name}: cost table part {key} changed")
    return failures


def _coverage(problem: Problem, plan: Plan) -> list[str]:
    """Every class served or declared unserved, every unserved share with its reason and numbers."""
    if plan.status not in (Status.OPTIMAL, Status.FEASIBLE):
        return []
    out = []
    routed = {r.request for r in plan.routes}
    declared = {u.request: u for u in plan.unserved}
    for req in problem.workload:
        if req.id not in routed and req.id not in declared:
            out.append(f"class {req.id} has no route and is not declared unserved")
    for u in plan.unserved:
        if not u.detail:
            out.append(f"class {u.request}: unserved for {u.reason.value} without the numbers behind it")
    return out


def check_portfolio(subject: _Subject, seed: int = 0) -> list[str]:
    """Model caching: coverage for caching solvers, the caching oracle for other solvers that take
    caching instances, an up-front refusal for the rest (see the module docstring)."""
    if subject.caching:
        return _over_zoo(subject, seed, lambda name, problem, plan: _coverage(problem, plan))
    failures, ran, refused = [], 0, 0
    for name, problem in caching_zoo_problems(seed):
        if not subject.info.capabilities.portfolio:
            if subject.accepts(problem):
                failures.append(f"{name}: accepts a model-caching instance it cannot solve")
            try:
                subject.run(problem)
                failures.append(f"{name}: solve() did not refuse it")
            except UnsupportedProblemError:
                pass
            continue
        if not subject.accepts(problem):
            continue
        try:
            plan = subject.zoo_plan(seed, name)
        except UnsupportedProblemError:
            refused += 1
            continue
        ran += 1
        failures += [f"{name}: {v}" for v in _limits_and_agreement(problem, plan) + _coverage(problem, plan)]
        failures += [f"{name}: {v}" for v in
                     _against_caching_oracle(subject.info.exact, problem, plan, caching_oracle(seed, name))]
    if ran and refused:
        failures.append(f"refused {refused} model-caching instances as unsupported but solved {ran}")
    if subject.info.capabilities.portfolio and not ran and not refused:
        failures.append("accepted no model-caching instance")
    return failures


CHECKS: dict[str, Callable[..., list[str]]] = {
    "keeps_limits": check_keeps_limits, "oracle": check_oracle, "determinism": check_determinism,
    "deadline": check_deadline, "options": check_options, "round_trip": check_round_trip,
    "no_mutation": check_no_mutation, "portfolio": check_portfolio,
}


def solver_checks(name: str, options: dict[str, Any] | None = None) -> Iterator[tuple[str, Callable[[], list[str]]]]:
    """``(check name, check)`` pairs for the registered solver ``name`` with ``options`` (e.g. a backend)."""
    subject = _Subject(solver_info(name), dict(options or {}))
    for check, run in CHECKS.items():
        yield check, functools.partial(run, subject)


@dataclass(frozen=True)
class CheckReport:
    """Failures of each check (a check that passed has none)."""

    solver: str
    failures: dict[str, list[str]]
    seconds: float

    @property
    def passed(self) -> bool:
        return not any(self.failures.values())

    def __str__(self) -> str:
        if self.passed:
            return f"{self.solver}: every check passed ({self.seconds:.1f} s)"
        lines = [f"{self.solver}: {sum(map(bool, self.failures.values()))} check(s) failed"]
        for check, found in self.failures.items():
            lines += [f"  {check}: {f}" for f in found]
        return "\n".join(lines)


def check_solver(name: str, options: dict[str, Any] | None = None, checks: tuple[str, ...] | None = None) -> CheckReport:
    """Run the battery (or the named ``checks``) on registered solver ``name``; see the module docstring."""
    started = time.perf_counter()
    failures = {}
    for check, run in solver_checks(name, options):
        if checks is None or check in checks:
            failures[check] = [f for f in run() if f]
    return CheckReport(name + (f" {options}" if options else ""), {k: v for k, v in failures.items() if v},
                       time.perf_counter() - started)

