"""The numbers and names an input file may hold.

Numbers: every field has an accepted range, wide enough for any real system and
narrow enough that the cost model's sums and quotients stay finite and exact
(a rate of 1e-320 Mbit/s would divide by zero; a weight of 1e306 would overflow
a sum of latencies). Nonzero values smaller than :data:`MIN_MAGNITUDE` are refused
everywhere, fields that are divided by have a larger floor (:data:`FLOORS`).

Ids (of models, devices, request classes, shards): ASCII letters, digits and
``. _ - : / +``, starting with a letter, digit or ``_``, at most :data:`MAX_ID_LENGTH`
characters. Two ids that are different strings therefore always print differently:
no Unicode normalisation forms, zero-width or invisible characters, look-alike
letters from other scripts, surrounding spaces, line breaks or terminal escapes.
Free text (``name``, ``notes``) may be any Unicode but no control, format or
line-separator characters, so it cannot forge an output line or reach the terminal.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from placement.textfiles import OversizedNumber, kind_of, number_text

__all__ = ["MIN_MAGNITUDE", "CEILINGS", "FLOORS", "MAX_ID_LENGTH", "check_number", "id_problem", "text_problem"]

MIN_MAGNITUDE = 1e-9

# Beyond these, a number is a mistake (or would overflow the arithmetic), not a bigger system.
CEILINGS: dict[str, float] = {
    "memory_gb": 1e6, "reserved_memory_gb": 1e6, "memory_bandwidth_gbs": 1e7, "bandwidth_mbps": 1e9,
    "latency_ms": 1e7, "energy_nj_per_bit": 1e6, "channel_mhz": 1e6, "snr_db": 200, "prompt_tokens": 10_000_000,
    "output_tokens": 10_000_000, "batch": 100_000, "rate_rps": 1e9, "count": 1024, "max_context_tokens": 10_000_000,
    "ttft_ms": 1e12, "tpot_ms": 1e12, "e2e_ms": 1e12, "max_layers": 100_000, "tflops": 1e7, "power_w": 1e6,
    "prefill_ms_per_layer": 1e9, "decode_ms_per_layer": 1e9, "tokens_per_s": 1e12, "objective_weight": 1e6,
    "threads": 4096, "cpu_cores": 4096, "port": 65535, "load_gbs": 1e4,
}
# The smallest positive value of fields the cost model divides by (or that weight a sum).
FLOORS: dict[str, float] = {
    "memory_gb": 1e-3, "memory_bandwidth_gbs": 1e-3, "bandwidth_mbps": 1e-3, "channel_mhz": 1e-3,
    "tflops": 1e-6, "tokens_per_s": 1e-6, "rate_rps": 1e-6, "objective_weight": 1e-6, "load_gbs": 1e-3,
}
UNITS_OF = {"bandwidth_mbps": "Mbit/s", "channel_mhz": "MHz", "memory_gb": "GB", "memory_bandwidth_gbs": "GB/s",
            "tflops": "TFLOPS", "tokens_per_s": "tokens/s", "rate_rps": "requests/s"}

MAX_ID_LENGTH = 128
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+-]*")
_ID_CHARS = "ASCII letters, digits and . _ - : / +"
# Characters free text may not hold: control, format (zero-width, bidi overrides), line and
# paragraph separators, surrogates, private-use and unassigned code points.
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def check_number(value: Any, field: str, *, low: float = 0.0, low_open: bool = True,
                 integer: bool = False) -> tuple[float | int | None, str | None]:
    """``(number, None)`` for a value in the accepted range of ``field``, else ``(None, message)``.

    ``field`` names the range (a key of :data:`CEILINGS` / :data:`FLOORS`, e.g.
    ``bandwidth_mbps``); ``low`` / ``low_open`` give the bound below.

    Examples
    --------
    >>> check_number(100, "bandwidth_mbps")
    (100.0, None)
    >>> check_number(1e-320, "bandwidth_mbps")[1]
    'must be >= 0.001 Mbit/s (a smaller value is a typo and would overflow the arithmetic), got 1e-320'
    >>> check_number(1.0e+306, "objective_weight")[1]
    'must be in [1e-06, 1e+06], got 1e+306'
    >>> check_number(True, "count", integer=True)[1]
    'must be an integer, got true'
    """
    what = "an integer" if integer else "a number"
    if isinstance(value, OversizedNumber):
        return None, f"must be {what} of sensible size (at most {CEILINGS.get(field, 1e300):g}), got {value.describe()}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"must be {what}, got {kind_of(value)}{numeric_hint(value)}"
    if isinstance(value, int) and abs(value) > 1e300:
        # Python ints have no ceiling; float() of one this large would overflow.
        return None, f"must be a finite number of sensible size, got {number_text(value)}"
    if math.isnan(value) or math.isinf(value):
        return None, f"must be a finite number, got {value}"
    if integer and value != int(value):
        return None, f"must be an integer, got {value}"
    floor, top = FLOORS.get(field), CEILINGS.get(field)
    if field == "objective_weight" and not (floor <= value <= top):  # type: ignore[operator]
        return None, f"must be in [{floor:g}, {top:g}], got {number_text(value)}"
    if low_open and value <= low:
        return None, f"must be > {low:g}, got {number_text(value)}"
    if not low_open and value < low:
        return None, f"must be >= {low:g}, got {number_text(value)}"
    if floor is not None and 0 < value < floor:
        unit = f" {UNITS_OF[field]}" if field in UNITS_OF else ""
        return None, (f"must be >= {floor:g}{unit} (a smaller value is a typo and would overflow the arithmetic), "
                      f"got {number_text(value)}")
    if value != 0 and abs(value) < MIN_MAGNITUDE:
        return None, f"must be 0 or at least {MIN_MAGNITUDE:g} in size, got {number_text(value)}"
    if top is not None and value > top:
        return None, f"must be <= {top:g}, got {number_text(value)}"
    return (int(value) if integer else float(value)), None


def numeric_hint(value: Any) -> str:
    """Why text that looks like a number is not read as one, and how to write it.

    Examples
    --------
    >>> numeric_hint("1e3")
    ' (YAML reads 1e3 as text: write the exponent with a dot and a sign, e.g. 1.0e+3)'
    >>> numeric_hint("6:40")
    ' (YAML 1.1 reads 6:40 as 400 in base 60, YAML 1.2 as text: write the number in decimal)'
    """
    if not isinstance(value, str):
        return ""
    text = value.strip()
    low = text.lower().lstrip("+-")
    if re.fullmatch(r"[0-9_]+(:[0-5]?[0-9])+(\.[0-9_]*)?", low):
        return f" (YAML 1.1 reads {text} as {_sexagesimal(text)} in base 60, YAML 1.2 as text: write the number in decimal)"
    if re.fullmatch(r"0x[0-9a-f_]+|0o[0-7_]+|0b[01_]+|0[0-9_]+", low):
        return f" (YAML readers disagree on {text}: write numbers in decimal, without leading zeros)"
    if re.fullmatch(r"[-+]\.[0-9]+(e[-+]?[0-9]+)?", text.lower()):
        return f" (YAML readers disagree on {text}: write a digit before the point, e.g. {text[0]}0{text[1:]})"
    if "_" in low and re.fullmatch(r"[0-9_.]+(e[-+]?[0-9]+)?", low):
        return f" (YAML readers disagree on {text}: write it without underscores)"
    try:
        float(text)
    except ValueError:
        return ""
    if "e" in low and not low.startswith(("nan", "inf")):
        return f" (YAML reads {text} as text: write the exponent with a dot and a sign, e.g. 1.0e+3)"
    return f" (a number in quotes is text: write {text} without quotes)"


def _sexagesimal(text: str) -> str:
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        total = total * 60 + float(part)
    return f"{sign * total:g}"


_CONTROL_NAMES = {"\0": "NUL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\x1b": "ESCAPE",
                  "\x7f": "DELETE"}


def _describe_char(ch: str) -> str:
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id, or ``None`` when it can (see the module's rules).

    Examples
    --------
    >>> id_problem("edge-1") is None
    True
    >>> print(id_problem("phone\\u200b"))
    contains U+200B ZERO WIDTH SPACE, an invisible character; ids are ASCII letters, digits and . _ - : / +
    >>> id_problem(" phone")
    'has a space at its start or end; ids are written without them'
    """
    if text != text.strip():
        return "has a space at its start or end; ids are written without them"
    if len(text) > MAX_ID_LENGTH:
        return f"is {len(text)} characters long; ids are at most {MAX_ID_LENGTH}"
    if _ID.fullmatch(text):
        return None
    bad = next((ch for ch in text if not (ch.isascii() and (ch.isalnum() or ch in "_.:/+-"))), None)
    if bad is None:
        return f"must start with a letter, a digit or _; ids are {_ID_CHARS}"
    category = unicodedata.category(bad)
    if category == "Cc":
        what = "a line break" if bad in "\n\r\v\f\x85" else "a control character"
        return f"contains {_describe_char(bad)} ({what}); ids are {_ID_CHARS}"
    if category in ("Cf", "Zl", "Zp", "Mn", "Me") or bad.isspace() or unicodedata.name(bad, "").endswith("FILLER"):
        kind = "a space" if bad == " " else "an invisible character" if category != "Mn" else "a combining mark"
        return f"contains {_describe_char(bad)}, {kind}; ids are {_ID_CHARS}"
    return f"contains {bad!r} ({_describe_char(bad)}); ids are {_ID_CHARS} (put other text in name:)"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be free text printed on one line, or ``None`` when it can.

    Examples
    --------
    >>> text_problem("Jetson AGX Orin, 32 GB") is None
    True
    >>> text_problem("edge\\nerror: forged")
    'contains U+000A LINE FEED (a control or invisible character); text fields must print as one plain line'
    """
    bad = next((ch for ch in text if unicodedata.category(ch) in _UNPRINTABLE), None)
    if bad is None:
        return None
    return f"contains {_describe_char(bad)} (a control or invisible character); text fields must print as one plain line"
