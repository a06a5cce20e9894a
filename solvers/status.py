"""What a plan's status means, decided in one place.

A solver reports what it found in its own terms: a status, and with an
``infeasible`` or ``optimal`` claim how far its proof reaches
(:class:`~placement.Proof`). :func:`settle` turns that into the status the user
sees, by these rules and no others:

- ``optimal``: an exact solver proved no plan of its plan space is better. Its
  ``bound`` and ``gap`` are claims about that space (the plan space is printed
  with the plan).
- ``feasible``: a plan that keeps every limit, nothing more proven (a heuristic's
  plan, or an exact search stopped by the time limit, then with its bound).
- ``infeasible``: no plan of the instance keeps every limit. Held only with a
  proof for every plan (:attr:`Proof.ANY_PLAN`: the face-value checks of
  :mod:`placement.feasibility`), or a proof over a plan space that is complete for
  the instance (:attr:`PlanSpace.complete`). A proof over an incomplete space
  becomes ``no_solution``: plans outside it were not searched.
- ``no_solution``: no plan that keeps every limit was found. A heuristic whose
  plan breaks a limit gets it, with the limits broken.
- ``error``: a solver failed, or an exact solver returned a plan that breaks a
  limit (a bug, reported rather than hidden).

Examples
--------
>>> from placement import Plan, Proof, Status, Termination
>>> from solvers.registry import PIPELINE
>>> claim = Plan(status=Status.INFEASIBLE, termination=Termination.CONVERGED, proof=Proof.PLAN_SPACE,
...              reasons=("memory: ...",))
>>> decided = decide_infeasible(claim, PIPELINE, complete=False)
>>> decided["status"].value, decided["reasons"][0][:40]
('no_solution', 'no plan in the plan space searched (one ')
"""

from __future__ import annotations

from typing import Any

from placement import Metrics, Plan, Problem, Proof, Status, evaluate
from solvers.registry import PlanSpace, SolverInfo

__all__ = ["settle", "decide_infeasible", "predicted_metrics", "relative_gap"]


def decide_infeasible(plan: Plan, space: PlanSpace, complete: bool) -> dict[str, Any]:
    """The changes an ``infeasible`` claim gets (empty when it holds as it is)."""
    if plan.proof is Proof.ANY_PLAN:
        return {}
    if plan.proof is Proof.PLAN_SPACE and complete:
        return {"proof": Proof.ANY_PLAN}
    if plan.proof is Proof.PLAN_SPACE:
        outside = f" ({space.outside})" if space.outside else ""
        why = (f"no plan in the plan space searched ({space.description}) meets the limits; "
               f"plans outside it{outside} were not searched")
    else:
        why = "no plan that keeps every limit was found (the search proves nothing)"
    return {"status": Status.NO_SOLUTION, "reasons": (why, *plan.reasons)}


def relative_gap(objective: float, bound: float | None) -> float | None:
    """How far ``bound`` is from ``objective``, relative to it (``None`` without a bound).

    >>> relative_gap(10.0, 8.0), relative_gap(10.0, None)
    (0.2, None)
    """
    return abs(objective - bound) / max(abs(objective), 1e-12) if bound is not None else None


def predicted_metrics(problem: Problem, plan: Plan) -> Metrics | None:
    """What ``evaluate()`` predicts for ``plan``, or ``None`` when it places and declares nothing.

    A plan that declares its demand unserved is a plan too, shards or not (model caching).
    """
    return evaluate(problem, plan) if plan.shards or plan.unserved else None


def settle(info: SolverInfo, problem: Problem, plan: Plan, predicted: Metrics | None) -> dict[str, Any]:
    """The changes that give ``plan`` (from solver ``info``) the status its evidence supports."""
    changes: dict[str, Any] = {}
    if plan.status is Status.INFEASIBLE:
        changes.update(decide_infeasible(plan, info.plan_space, info.plan_space.complete(problem)))
    if predicted is not None and plan.status in (Status.OPTIMAL, Status.FEASIBLE) and not predicted.feasible:
        broken = tuple(str(v) for v in predicted.violations)
        if info.exact:
            changes.update(status=Status.ERROR,
                           reasons=(f"exact solver {info.name} returned a plan that breaks limits", *broken))
        else:
            # A heuristic's plan that breaks a limit is not a solution; keep it for inspection.
            changes.update(status=Status.NO_SOLUTION, reasons=(*plan.reasons, *broken))
    return changes
