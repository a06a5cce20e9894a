"""Which weight formats an engine loads, in its own words, and the one format a single model file holds.

Each engine module lists the plan formats it takes (:class:`EngineFormat`): the
same format under the engine's name, or a stand-in that stores the weights in
no more bits than the plan's format, so every device stays within the memory
the plan gave it (a warning then says so). A format not in the list is refused,
naming those that are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models import weight_format
from placement.export.base import ExportRefused
from placement.export.stages import Stage

__all__ = ["EngineFormat", "engine_format", "one_format", "kv_flags"]


@dataclass(frozen=True)
class EngineFormat:
    """How an engine takes one plan format: ``name`` in the engine's terms, exact or a stand-in."""

    plan_format: str
    name: str
    exact: bool = True
    bits_per_weight: float | None = None  # the stand-in's storage, when not exact
    note: str = ""  # where the engine's bit count comes from


def engine_format(engine: str, table: Mapping[str, EngineFormat], fmt: str) -> tuple[EngineFormat, list[str]]:
    """The engine's format for plan format ``fmt``, with a warning when it is a stand-in.

    Raises
    ------
    ExportRefused
        If the engine loads nothing that stands for ``fmt``.
    """
    if fmt not in table:
        raise ExportRefused(engine, f"it loads no weights in format {fmt}; formats it takes: {', '.join(table)}")
    ef = table[fmt]
    if ef.exact:
        return ef, []
    plan_bits = weight_format(fmt).bits_per_weight
    return ef, [f"{engine} has no {fmt}: it runs {ef.name} instead ({ef.bits_per_weight:g} bits/weight against "
                f"{fmt}'s {plan_bits:g}, so no device needs more memory than planned; quality and speed differ"
                + (f"; {ef.note}" if ef.note else "") + ")"]


def one_format(engine: str, table: Mapping[str, EngineFormat], stages: Sequence[Stage]) -> tuple[EngineFormat, list[str]]:
    """The one format a single model file (GGUF, checkpoint) holds for every stage.

    When the plan gives stages different formats, the one with the fewest bits per
    weight is taken, so that no device holds more than the plan gave it; the
    warning names the devices that then run at a lower precision than planned.
    """
    formats = list(dict.fromkeys(f for st in stages for f in st.formats))
    for f in formats:
        engine_format(engine, table, f)  # refuse any format the engine cannot take
    chosen = min(formats, key=lambda f: weight_format(f).bits_per_weight)
    ef, warnings = engine_format(engine, table, chosen)
    if len(formats) > 1:
        lowered = [f"{st.device} ({'/'.join(sorted(set(st.formats)))})" for st in stages
                   if set(st.formats) != {chosen}]
        warnings.insert(0, f"{engine} loads one model file, so every device holds one format: {chosen}, the "
                           f"smallest of the plan's {', '.join(formats)} (no device needs more memory than "
                           f"planned); {', '.join(lowered)} run at a lower precision than planned")
    return ef, warnings


def kv_flags(engine: str, table: Mapping[str, tuple[str, ...]], kv_format: str) -> tuple[str, ...]:
    """The flags that give the engine's KV cache the plan's format (``()``: the engine's default).

    Raises
    ------
    ExportRefused
        If the engine's KV cache has no such format (another would change the memory the plan checked).
    """
    if kv_format not in table:
        raise ExportRefused(engine, f"its KV cache holds no {kv_format} (the model's kv_format); KV formats it "
                                    f"takes: {', '.join(table)}")
    return table[kv_format]
