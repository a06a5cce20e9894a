"""One deadline per solve, passed into every solver's inner loops.

``solve()`` starts the clock before its own checks, so the time limit covers
everything a call does; a solver asks :meth:`Deadline.expired` (cheap) inside its
loops and hands :meth:`Deadline.left` to backends that take a limit of their own.

Examples
--------
>>> d = Deadline(60.0)
>>> d.expired(), 59.0 < d.left() <= 60.0
(False, True)
"""

from __future__ import annotations

import math
import time

__all__ = ["Deadline", "DeadlineReached"]


class DeadlineReached(Exception):
    """Raised by :meth:`Deadline.check` inside a search that unwinds to its caller when time is up."""


class Deadline:
    """A wall-clock limit: ``seconds`` from ``started`` (``time.perf_counter()``, default now)."""

    def __init__(self, seconds: float, started: float | None = None):
        self.started = time.perf_counter() if started is None else started
        self.seconds = float(seconds)
        self.at = self.started + self.seconds if math.isfinite(self.seconds) else math.inf

    def left(self) -> float:
        """Seconds left (0 when past)."""
        return max(0.0, self.at - time.perf_counter())

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def expired(self) -> bool:
        return time.perf_counter() >= self.at

    def check(self) -> None:
        """Raise :class:`DeadlineReached` when time is up."""
        if time.perf_counter() >= self.at:
            raise DeadlineReached

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g} s, {self.left():.3g} s left)"
