"""Model caching and request routing over a portfolio of models.

Which whole-model instances stay resident on which devices, and which share of each request
class goes to which instance (or cascade), read from :func:`placement.costs.caching.caching_view`:

- :mod:`solvers.caching.ilp`: the joint program, solved exactly on an open backend (``cache-ilp``;
  ``ilp`` runs it on model-caching instances);
- :mod:`solvers.caching.greedy`: greedy additions on marginal gain, priced by the routing program, and
  local moves (``cache-greedy``);
- :mod:`solvers.caching.route`: routing for the instance's current cache (``route``);
- :mod:`solvers.caching.bruteforce`: every cache and every set of reservations, each routed by an
  LP (``cache-bruteforce``, the oracle of the conformance battery).
"""

from __future__ import annotations

from placement import Problem

__all__ = ["caching_unsupported", "route_unsupported", "auto_unsupported", "bruteforce_unsupported",
           "MAX_ENUMERATED_CACHES"]

MAX_ENUMERATED_CACHES = 10_000_000  # beyond this, enumerating caches would run for hours


def caching_unsupported(problem: Problem) -> list[str]:
    """What the caching solvers refuse beyond their capability flags."""
    if problem.objective.name == "throughput":
        return ["objective 'throughput' over a model cache (weigh latency, energy, quality, churn or unserved "
                "demand)"]
    return []


def route_unsupported(problem: Problem) -> list[str]:
    """The routing-only solver needs a current cache to route over."""
    why = caching_unsupported(problem)
    if problem.cache is None:
        why.append("an instance without a cache: section (the routing solver routes over the current cache)")
    return why


def auto_unsupported(problem: Problem) -> list[str]:
    """``auto`` runs ilp's caching program on a model-caching instance: what that refuses."""
    return caching_unsupported(problem) if problem.portfolio_features() else []


def bruteforce_unsupported(problem: Problem) -> list[str]:
    """The caching oracle enumerates caches: it refuses instances with too many."""
    why = caching_unsupported(problem)
    if not why:
        from solvers.caching.bruteforce import count_caches
        n = count_caches(problem)
        if n > MAX_ENUMERATED_CACHES:
            why.append(f"more than {MAX_ENUMERATED_CACHES:,} caches to enumerate ({n:.3g}); cache-ilp solves it exactly")
    return why
