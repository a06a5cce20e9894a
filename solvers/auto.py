"""``auto``: the exact solver that handles the instance, and a word on which it picked.

In order: ``maxflow`` when the objective is throughput and it takes the
instance (one model: its plan space, replicated and overlapping shards routed by
max-flow, holds every single pipeline); ``dp`` when the instance has one model
and dp searches its devices exactly (a fixed ``constraints.device_order``, or at
most dp's ``max_exact_devices`` candidates); else ``ilp`` (HiGHS) when it takes the
instance; else ``bruteforce`` when the instance is small enough; else ``dp`` in
its heuristic mode; else ``matching``; else the ``greedy`` baseline. The plan says
which solver ran (``stats["picked"]``) and why.

Examples
--------
>>> from placement import load_instance
>>> from solvers import solve
>>> plan = solve(load_instance("instances/hybrid.yaml"))    # two models: dp cannot take it
>>> plan.stats["picked"], plan.status.value
('ilp', 'optimal')
"""

from __future__ import annotations

from typing import Any

from placement import Plan, Problem
from solvers.deadline import Deadline
from solvers.options import validate_options
from solvers.registry import solver_info
from solvers.status import predicted_metrics, settle

__all__ = ["solve_auto", "pick"]


def pick(problem: Problem) -> tuple[str, dict[str, Any], str]:
    """The solver ``auto`` runs on ``problem``, its options, and why."""
    maxflow = solver_info("maxflow")
    if problem.objective.name == "throughput" and maxflow.available() and not maxflow.unsupported(problem):
        return "maxflow", {}, ("throughput of one model: maxflow searches replicated and overlapping shards "
                               "routed by max-flow, which include every single pipeline")
    dp, ilp = solver_info("dp"), solver_info("ilp")
    dp_ok = not dp.unsupported(problem)
    if dp_ok:
        from solvers.dp import candidate_devices
        idx, ordered = candidate_devices(problem)
        most = dp.option("max_exact_devices").default
        if ordered or len(idx) <= most:
            return "dp", {}, f"one model over {len(idx)} candidate device(s): dp searches every pipeline exactly"
    if ilp.available() and not ilp.unsupported(problem):
        return "ilp", {"backend": "highs"}, ("several models or a choice of formats" if not dp_ok else
                                             "too many devices for dp's exact order search") + ": ilp (highs)"
    brute = solver_info("bruteforce")
    if not brute.unsupported(problem):
        return "bruteforce", {}, "dp and ilp do not take the instance; it is small enough to search every pipeline"
    if dp_ok:
        return "dp", {}, "no exact solver takes the instance: dp searches a few device orders (no bound)"
    if not solver_info("matching").unsupported(problem):
        return "matching", {}, "no exact solver takes the instance: the matching heuristic (no bound)"
    return "greedy", {}, "no exact solver and no search heuristic takes the instance: the greedy baseline (no bound)"


def solve_auto(problem: Problem, params: Any, options: dict[str, Any], deadline: Deadline) -> Plan:
    """Run the solver :func:`pick` chooses, under the same deadline."""
    name, chosen, why = pick(problem)
    info = solver_info(name)
    plan = info.load()(problem, params, validate_options(name, info.options, chosen), deadline)
    plan = plan.with_(**settle(info, problem, plan, predicted_metrics(problem, plan)))
    # The proof (and the "over the ... plan space" printed with it) is the picked solver's.
    return plan.with_(stats={"picked": name, "why": why, "plan_space": info.plan_space.name, **plan.stats})
