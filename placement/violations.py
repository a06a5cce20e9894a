"""Violations: the limits a plan breaks, typed so that code never sorts them by their words.

Examples
--------
>>> v = Violation(Kind.MEMORY, "edge", 31.2, 28.0, "device edge: needs 31.20 GB > usable 28.00 GB")
>>> v.kind.value, str(v)
('memory', 'device edge: needs 31.20 GB > usable 28.00 GB')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Kind", "Violation"]


class Kind(str, Enum):
    """Which limit is broken. ``subject`` names what breaks it (a device, a request class, a resource)."""

    MEMORY = "memory"            # a device's usable memory (GB)
    MAX_LAYERS = "max_layers"    # a device profile's layer limit (blocks)
    SLO = "slo"                  # a request class's TTFT / TPOT / E2E limit (ms)
    LOAD = "load"                # a device busy more than all of the time at the request rates (share)
    CAPACITY = "capacity"        # a resource carrying more than it can at the routes' rates (share)
    NETWORK = "network"          # no network path between stages or to the source
    QUALITY = "quality"          # a route's weight-format quality below the floor (share of fp16)
    COVERAGE = "coverage"        # a request class not (fully) routed (share served)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Violation:
    """One broken limit: what kind, who breaks it, the value against the limit, and in words.

    ``value`` and ``limit`` are in the kind's unit (see :class:`Kind`); ``metric`` says which
    SLO (``ttft_ms``, ``tpot_ms``, ``e2e_ms``) where it matters.
    """

    kind: Kind
    subject: str
    value: float
    limit: float
    message: str
    metric: str = ""

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "value": self.value, "limit": self.limit,
                "metric": self.metric, "message": self.message}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Violation:
        return Violation(Kind(d["kind"]), str(d["subject"]), float(d["value"]), float(d["limit"]),
                         str(d["message"]), str(d.get("metric", "")))
