"""Typed solver options, validated before solving.

Each solver declares its options (name, type, default, range or choices, what it
does). ``solve()`` checks every option it is given against that declaration first:
an unknown option, a wrong type or a value out of range raises
:class:`InvalidOptionError` (a usage error: exit 2 at the command line) naming the
option and what it expects, before any work is done.

Examples
--------
>>> restarts = Option("restarts", int, 8, "deferred-acceptance starts", minimum=1)
>>> restarts.parse(3)
3
>>> restarts.parse(0)
Traceback (most recent call last):
...
solvers.options.InvalidOptionError: option restarts: must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "InvalidOptionError", "validate_options", "PRECHECK"]


class InvalidOptionError(ValueError):
    """A solver option that is unknown, of the wrong type or out of range."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Option:
    """One solver option: its type (``int``, ``float``, ``bool`` or ``str``), default and limits."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def expects(self) -> str:
        """What a valid value is, in words."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        word = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            return f"{word} in [{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return f"{word} >= {self.minimum:g}"
        if self.maximum is not None:
            return f"{word} <= {self.maximum:g}"
        return word

    def parse(self, value: Any) -> Any:
        """``value`` as this option's type, or :class:`InvalidOptionError` saying what is expected."""
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        bad = InvalidOptionError(f"option {self.name}: must be {self.expects()}, got {shown}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if self.kind is int and (isinstance(value, float) and not value.is_integer()):
            raise bad
        number = self.kind(value) if math.isfinite(value) else value
        if not math.isfinite(number) or (self.minimum is not None and number < self.minimum) \
                or (self.maximum is not None and number > self.maximum):
            raise bad
        return number


PRECHECK = Option("precheck", bool, True, "run the face-value infeasibility checks before the solver")


def validate_options(solver: str, declared: Iterable[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option's value (given or default), checked; raises on the first bad one."""
    known = {o.name: o for o in (*declared, PRECHECK)}
    unknown = sorted(set(given) - set(known), key=str)
    if unknown:
        names = ", ".join(repr(u) if not isinstance(u, str) or not u.isidentifier() else u for u in unknown)
        raise InvalidOptionError(f"solver {solver!r} has no option {names} (options: {', '.join(sorted(known))})")
    return {name: (opt.parse(given[name]) if name in given else opt.default) for name, opt in known.items()}
