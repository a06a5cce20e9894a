"""Best-improvement swaps until no single swap improves the matching (swap-stable), within a deadline.

Each scan scores the whole neighbourhood (:func:`~solvers.matching.swaps.neighbourhood`)
and makes the best improving swap. A state breaking a limit is first driven to
feasibility by the same swaps (its total relative violation first); a min-max
plateau is left by lowering the sum of squared resource loads. The clock is read
every few dozen candidates, so a scan of a huge neighbourhood stops on time; the
improving swaps found by then are reported as the swaps that block stability.
"""

from __future__ import annotations

from dataclasses import dataclass

from solvers.deadline import Deadline
from solvers.matching.scoring import Score, Scorer, State, gain, improves
from solvers.matching.swaps import Move, neighbourhood

__all__ = ["Descent", "descend"]

_CHECK_EVERY = 32        # candidates between two looks at the clock
_BLOCKING_KEPT = 1_000   # improving swaps kept per scan to report (the best of them)
_SEEN_KEPT = 100_000     # states a scan remembers to skip repeats (bounds memory on huge neighbourhoods)


@dataclass(frozen=True)
class Descent:
    """Where the swaps stopped: the state and its score, the swaps made, the improving swaps left
    (``(move, gain)``, best first), whether it is swap-stable (a full scan found no swap that lowers
    the violation or the objective) and why it stopped."""

    state: State
    score: Score
    swaps: int
    blocking: tuple[tuple[Move, float], ...]
    stable: bool
    why: str  # stable | time_limit | iteration_limit


@dataclass
class _Scan:
    """One scan of the neighbourhood: the distinct improving states found and the best of them."""

    best: tuple[Score, Move, State] | None = None
    improving: dict | None = None
    complete: bool = True


def _scan(scorer: Scorer, state: State, current: Score, deadline: Deadline) -> _Scan:
    scan = _Scan(improving={})
    seen = {state}
    for count, (move, new) in enumerate(neighbourhood(scorer.models, state)):
        if count % _CHECK_EVERY == 0 and deadline.expired():
            scan.complete = False
            break
        if new in seen:  # different swaps may lead to one state
            continue
        if len(seen) >= _SEEN_KEPT:
            seen.clear()
        seen.add(new)
        score = scorer.score(new, beat=current)
        if not improves(score, current):
            continue
        if new not in scan.improving:
            scan.improving[new] = (score, move)
            if len(scan.improving) > 4 * _BLOCKING_KEPT:
                scan.improving = dict(sorted(scan.improving.items(), key=lambda x: x[1][0].key)[:_BLOCKING_KEPT])
        if scan.best is None or score.key < scan.best[0].key:
            scan.best = (score, move, new)
    return scan


def _blocking(scan: _Scan, current: Score) -> tuple[tuple[Move, float], ...]:
    # Swaps that only break a min-max plateau do not block: they leave the objective as it is.
    found = sorted((x for x in scan.improving.values() if improves(x[0], current, tie_break=False)),
                   key=lambda x: x[0].key)
    return tuple((move, gain(current, score)) for score, move in found[:_BLOCKING_KEPT])


def descend(scorer: Scorer, state: State, deadline: Deadline, max_swaps: int) -> Descent:
    """Best-improvement swaps from ``state`` until swap-stable, ``max_swaps`` swaps, or the deadline."""
    current = scorer.score(state)
    swaps = 0
    while True:
        scan = _scan(scorer, state, current, deadline)
        if scan.complete and scan.best is None:
            return Descent(state, current, swaps, (), True, "stable")
        if not scan.complete or deadline.expired() or swaps >= max_swaps:
            why = "iteration_limit" if scan.complete and swaps >= max_swaps else "time_limit"
            blocking = _blocking(scan, current)
            return Descent(state, current, swaps, blocking, scan.complete and not blocking, why)
        current, _, state = scan.best
        swaps += 1
