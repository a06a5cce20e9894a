"""Workload profiles: typical prompt and output lengths of public benchmark datasets.

Examples
--------
>>> from models import workload_profile
>>> w = workload_profile("gsm8k")
>>> w.prompt_tokens > 0 and w.output_tokens > 0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from models._catalog import read_yaml
from models.errors import CatalogError

__all__ = ["WorkloadProfile", "workload_profile", "workload_ids"]


@dataclass(frozen=True)
class WorkloadProfile:
    id: str
    name: str
    task: str
    prompt_tokens: int
    output_tokens: int
    setting: str
    tokenizer: str
    sources: tuple[tuple[str, str], ...]
    prompt_tokens_p90: int | None = None
    output_tokens_p90: int | None = None


def _load() -> dict[str, WorkloadProfile]:
    out = {}
    for e in read_yaml("workloads.yaml"):
        out[e["id"]] = WorkloadProfile(
            id=e["id"],
            name=e.get("name", e["id"]),
            task=e.get("task", ""),
            prompt_tokens=int(e["prompt_tokens"]),
            output_tokens=int(e["output_tokens"]),
            setting=e.get("setting", ""),
            tokenizer=e.get("tokenizer", ""),
            sources=tuple((str(k), str(v)) for k, v in (e.get("sources") or {}).items()),
            prompt_tokens_p90=e.get("prompt_tokens_p90"),
            output_tokens_p90=e.get("output_tokens_p90"),
        )
    return out


@cache
def _all() -> dict[str, WorkloadProfile]:
    return _load()


def workload_ids() -> list[str]:
    return sorted(_all())


def workload_profile(workload_id: str) -> WorkloadProfile:
    """The profile ``workload_id``.

    Raises
    ------
    CatalogError
        For an unknown id.
    """
    try:
        return _all()[workload_id]
    except KeyError:
        raise CatalogError("workload profile", workload_id, _all()) from None
