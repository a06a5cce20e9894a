"""Plans: shards (which blocks on which device), routes (which shards serve which
requests) and the solver's account of how it got there.

One shape serves a pipeline partition (shards + one route), a model cache
(shards holding whole models) and max-flow routing (many routes with rates).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from placement.metrics import Metrics

__all__ = ["Status", "Termination", "Proof", "Shard", "Route", "Plan", "Reason", "Unserved"]


class Status(str, Enum):
    """What the solver holds."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class Termination(str, Enum):
    """Why the solver stopped."""

    CONVERGED = "converged"  # search finished (proved optimal or infeasible)
    HEURISTIC = "heuristic"  # a constructive heuristic finished; nothing is proven
    TIME_LIMIT = "time_limit"
    GAP_REACHED = "gap_reached"
    ITERATION_LIMIT = "iteration_limit"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class Proof(str, Enum):
    """How far a solver's ``infeasible`` or ``optimal`` claim reaches."""

    NONE = "none"              # nothing is proven (heuristics, or a search stopped early)
    PLAN_SPACE = "plan_space"  # proven over the plans the solver searches (its registered plan space)
    ANY_PLAN = "any_plan"      # proven for every plan of the instance (necessary conditions every plan meets)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Shard:
    """Blocks ``[layers[0], layers[1])`` of ``model`` on ``device``.

    The embedding goes with the shard that holds block 0 and the LM head with the
    one that holds the last block, as serving engines do. ``weight_format``
    ``None`` means the model's own format.
    """

    id: str
    model: str
    device: str
    layers: tuple[int, int]
    weight_format: str | None = None

    @property
    def num_blocks(self) -> int:
        return self.layers[1] - self.layers[0]


@dataclass(frozen=True)
class Route:
    """The shards a request class's tokens pass through, in block order.

    ``fraction`` is the share of the class's requests that take this route
    (``None``: all of them, when it is the class's only route). ``rate_tok_s``
    is the decode tokens/s a flow solver assigns to it: routes of a class that
    carry rates share its requests by their rates, and every resource must
    carry the rates of the routes through it (see :func:`placement.evaluate`).
    ``escalate_to`` makes the route a cascade: the shards of a second model's
    chain, to which the class's declared cascade passes its escalated share.
    """

    request: str
    path: tuple[str, ...]
    rate_tok_s: float | None = None
    fraction: float | None = None
    escalate_to: tuple[str, ...] | None = None


class Reason(str, Enum):
    """Why part of a request class is left unserved."""

    QUALITY = "quality"    # no accepted model meets the class's quality floor within its SLOs
    MEMORY = "memory"      # no node has room for an instance that would serve it
    CAPACITY = "capacity"  # the instances that could serve it are at the utilisation limit
    COST = "cost"          # serving it would cost more than the objective's unserved weight
    CACHE = "cache"        # the plan keeps the current cache, and no instance in it has room and time for it

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Unserved:
    """A share of a request class's requests that the plan leaves unserved, with the reason and
    the numbers behind it (``detail``)."""

    request: str
    share: float
    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """A solver's answer.

    Attributes
    ----------
    status : Status
        What is held: ``optimal``, ``feasible``, ``infeasible``, ``no_solution``, ``error``.
    termination : Termination
        Why the solver stopped.
    objective : float or None
        The objective of the plan; equals ``evaluate(problem, plan).objective``.
    bound : float or None
        A proven bound on the optimum (``None`` for heuristics: never a fake bound).
    gap : float or None
        ``|objective - bound| / max(|objective|, tiny)`` when both are known.
    reasons : tuple of str
        For an infeasible or partly served plan, each binding cause with its numbers.
    unserved : tuple of Unserved
        Shares of request classes the plan declares unserved, each with its reason; the
        objective weighs them (see :func:`placement.objective.objective_value`).
    proof : Proof
        How far the solver's claim (``optimal``, ``infeasible``) reaches.
    stats : dict
        Solver-specific account (nodes explored, swaps, stability, ...).
    """

    shards: tuple[Shard, ...] = ()
    routes: tuple[Route, ...] = ()
    status: Status = Status.FEASIBLE
    termination: Termination = Termination.HEURISTIC
    objective: float | None = None
    objective_name: str = ""
    objective_unit: str = ""
    bound: float | None = None
    gap: float | None = None
    solver: str = ""
    backend: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    solve_time_s: float = 0.0
    predicted: Metrics | None = None
    reasons: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    proof: Proof = Proof.NONE
    unserved: tuple[Unserved, ...] = ()

    @property
    def has_solution(self) -> bool:
        return self.status in (Status.OPTIMAL, Status.FEASIBLE) and bool(self.shards)

    def shard(self, shard_id: str) -> Shard:
        for s in self.shards:
            if s.id == shard_id:
                return s
        raise KeyError(shard_id)

    def with_(self, **changes: Any) -> Plan:
        """A copy with fields changed (plans are immutable)."""
        return replace(self, **changes)


def require_plan(plan: object, name: str = "plan") -> None:
    """Raise a TypeError naming the argument (and the shard or route) unless ``plan`` is a well-typed :class:`Plan`.

    Examples
    --------
    >>> require_plan(Plan(shards=({"id": "s0"},)))
    Traceback (most recent call last):
    ...
    TypeError: plan.shards[0] must be a placement.Shard, got dict (a plan file's dict is read with placement.plan_from_dict)
    """
    if not isinstance(plan, Plan):
        hint = " (a plan file's dict is read with placement.plan_from_dict)" if isinstance(plan, dict) else ""
        raise TypeError(f"{name} must be a placement.Plan, got {type(plan).__name__}{hint}")
    for field_name, kind in (("shards", Shard), ("routes", Route)):
        items = getattr(plan, field_name)
        if not isinstance(items, (tuple, list)):
            raise TypeError(f"{name}.{field_name} must be a tuple of placement.{kind.__name__}, got {type(items).__name__}")
        for i, item in enumerate(items):
            if not isinstance(item, kind):
                hint = " (a plan file's dict is read with placement.plan_from_dict)" if isinstance(item, dict) else ""
                raise TypeError(f"{name}.{field_name}[{i}] must be a placement.{kind.__name__}, "
                                f"got {type(item).__name__}{hint}")
