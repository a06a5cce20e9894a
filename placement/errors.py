"""Errors for bad instance and plan files.

Every problem carries the path of the field it concerns (``devices[3].memory_gb``)
and what was expected, so the command line can print one line per problem.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["Issue", "InputError", "InvalidInstanceError", "InvalidPlanError", "InstanceMismatchError", "printable"]

# Characters that would act on the terminal or split a line rather than print.
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: str) -> str:
    r"""``text`` with every control, format or line-separator character written as an escape.

    Error messages quote what the user wrote; a key holding a line break or a
    terminal escape must not forge an output line or reach the terminal.

    Examples
    --------
    >>> printable("devices[0].ph\none")
    'devices[0].ph\\none'
    """
    if all(unicodedata.category(ch) not in _UNPRINTABLE for ch in text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _UNPRINTABLE else ch
                   for ch in text)


@dataclass(frozen=True)
class Issue:
    """One problem in an input file: the field's path and what was wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(ValueError):
    """Every problem found in one input (not only the first), each with its field path."""

    def __init__(self, issues: list[Issue] | Issue, source: str = ""):
        self.issues = [issues] if isinstance(issues, Issue) else list(issues)
        self.source = source
        super().__init__("; ".join(str(i) for i in self.issues))

    def lines(self) -> list[str]:
        """One line per problem, prefixed with the file name when known."""
        prefix = f"{self.source}: " if self.source else ""
        return [printable(f"{prefix}{issue}") for issue in self.issues]


class InvalidInstanceError(InputError):
    """An instance that cannot be read."""


class InvalidPlanError(InputError):
    """A plan that does not fit its instance (unknown device, layers out of range, ...)."""


class InstanceMismatchError(InvalidPlanError):
    """A plan file made for another instance than the one it is evaluated with (its sha256 differs)."""
