"""Errors raised while reading model, device and workload descriptions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["CatalogError", "ConfigError"]


class CatalogError(LookupError):
    """An id that is not in a catalog.

    The message names the kind of thing, the id, and the closest known ids, so a
    typo is one glance away from its fix.
    """

    def __init__(self, kind: str, given: object, known: Iterable[str]):
        self.kind = kind
        self.given = given
        self.known = sorted(known)
        close = difflib.get_close_matches(str(given), self.known, n=3, cutoff=0.6)
        if close:
            detail = f"did you mean {', '.join(repr(c) for c in close)}?"
        else:
            detail = "known: " + ", ".join(self.known[:12]) + (f", ... ({len(self.known)} in all)" if len(self.known) > 12 else "")
        super().__init__(f"unknown {kind} {given!r} ({detail})")

    def __str__(self) -> str:  # LookupError would quote the whole message
        return str(self.args[0])


class ConfigError(ValueError):
    """A model or device description whose field has a wrong or missing value.

    ``field`` is the field's name inside the description (``"hidden_size"``) so a
    caller reading a larger file can prefix its own path.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
