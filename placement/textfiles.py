"""Reading YAML and JSON input files strictly.

Files are read by :func:`placement.safefiles.read_regular_bytes` (regular files only,
at most 16 MiB). Syntax errors are reported with their line; so is a key given twice
(YAML and JSON readers silently keep the last), compared by the value YAML reads,
so ``39`` and ``+39`` are the same key.

Plain YAML scalars are read as numbers only where YAML 1.1 and YAML 1.2 agree on
the number: decimal integers without leading zeros (``39``, ``+39``) and decimal
fractions with an optional signed exponent (``0.5``, ``1.0e+3``), ``.inf`` and
``.nan``. Text the two versions read differently, or as different numbers, stays
text, which a number field refuses with a hint: ``6:40`` (400 in base 60 for YAML
1.1), ``0x27``, ``0o47``, ``017``, ``1_000``, ``1e3``. Dates stay text too. Numbers
with more than :data:`MAX_NUMBER_DIGITS` digits, or too large for a float, become
:class:`OversizedNumber` (never converted). Aliases may repeat at most
:data:`MAX_ALIAS_VALUES` values in all, so an alias bomb is refused before it is built.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from placement.errors import InputError, InvalidInstanceError, Issue
from placement.safefiles import UnsafeFileError, read_regular_bytes

__all__ = ["read_mapping_file", "parse_json_text", "parse_yaml_text", "kind_of", "number_text", "join_path",
           "OversizedNumber", "MAX_NUMBER_DIGITS", "MAX_ALIAS_VALUES"]

# No field accepts a number of more digits (the largest ceiling is 1e12); beyond this the
# text is kept, since converting a 5,000-digit integer is refused by Python itself.
MAX_NUMBER_DIGITS = 100
# Values that aliases (``*name``) may repeat in all: far more than any real instance
# repeats, far less than an alias bomb's billions.
MAX_ALIAS_VALUES = 1_000_000


class OversizedNumber:
    """A number written with more digits, or larger, than any field takes; kept as its text.

    Examples
    --------
    >>> OversizedNumber("9" * 5000).describe()
    'a number of 5,000 digits'
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def describe(self) -> str:
        digits = sum(ch.isdigit() for ch in self.text)
        return f"a number of {digits:,} digits" if digits > 30 else f"the number {self.text} (beyond a float)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OversizedNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("OversizedNumber", self.text))

    def __repr__(self) -> str:
        return f"OversizedNumber({self.describe()})"


def number_text(value: float) -> str:
    """A number as the user wrote it, short; an integer too long for a float is described.

    Examples
    --------
    >>> number_text(1e-320), number_text(1e306), number_text(0.5), number_text(10**5000)
    ('1e-320', '1e+306', '0.5', 'an integer of 5,001 digits')
    """
    if isinstance(value, int) and abs(value) > 1e15:
        # Not len(str(value)): Python refuses to convert an integer of more than 4,300 digits.
        return f"an integer of {math.floor(math.log10(abs(value))) + 1:,} digits"
    if isinstance(value, float) and 0 < abs(value) < sys.float_info.min:
        return repr(value)  # a subnormal: %g would print 1e-320 as 9.99989e-321
    return f"{value:g}"


def join_path(path: str, key: str) -> str:
    """``devices[0]`` + ``memory_gb`` -> ``devices[0].memory_gb`` (a key at the top stands alone)."""
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    """What a value is, for messages: ``the string 'x'``, ``the number 3``, ``a list``, ..."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, bool):
        return f"{value}".lower()
    if isinstance(value, (int, float)):
        return f"the number {number_text(value)}"
    if isinstance(value, OversizedNumber):
        return value.describe()
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def read_mapping_file(path: str | Path, error: type[InputError] = InvalidInstanceError,
                      what: str = "instance", json_only: bool = False) -> tuple[dict[str, Any], bytes, list[Issue]]:
    """Parse a YAML or JSON file that must hold a mapping.

    JSON by its ``.json`` suffix, or always with ``json_only`` (plan files are JSON
    whatever their name, so YAML's aliases never reach them).

    Returns the mapping, the file's bytes, and the keys it gives twice, so a caller
    can report those with the other problems of the file.

    Raises
    ------
    InputError
        ``error``, when the file cannot be read (missing, not a regular file, over
        16 MiB), is not UTF-8, does not parse (with the line and column), expands
        aliases beyond :data:`MAX_ALIAS_VALUES`, or does not hold a mapping.
    TypeError
        If ``path`` is not a str or path.
    """
    try:
        raw = read_regular_bytes(path)
    except FileNotFoundError:
        raise error(Issue("", f"no such file: {path}")) from None
    except UnsafeFileError as exc:
        raise error(Issue("", str(exc)), str(path)) from None
    except OSError as exc:
        raise error(Issue("", f"cannot read {path}: {exc.strerror or exc}")) from None
    p = Path(path)
    text = _utf8(raw, error, str(p))
    as_json = json_only or p.suffix.lower() == ".json"
    try:
        data, duplicates = parse_json_text(text) if as_json else parse_yaml_text(text)
    except json.JSONDecodeError as exc:
        hint = f" ({what} files are JSON, whatever their name)" if json_only and p.suffix.lower() != ".json" else ""
        raise error(Issue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"),
                    str(p)) from None
    except yaml.YAMLError as exc:
        raise error(Issue("", _yaml_problem(exc, text)), str(p)) from None
    except _AliasError as exc:
        raise error(Issue(exc.path, exc.message), str(p)) from None
    except RecursionError:
        raise error(Issue("", "nested too deeply to read"), str(p)) from None
    if not isinstance(data, dict):
        not_mapping = Issue("", f"must hold a mapping of {what} fields, got {kind_of(data)}")
        raise error([*duplicates, not_mapping], str(p))
    return data, raw, duplicates


def _utf8(raw: bytes, error: type[InputError], source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(Issue("", f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                              "save it as UTF-8"), source) from None


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        problem += " (a tab: YAML indents with spaces, not tabs)"
    return f"invalid YAML{where}: {problem}"


# -- YAML ------------------------------------------------------------------------------------

_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# What YAML 1.1 and 1.2 both read as these numbers (see the module docstring).
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")
# (PyYAML reads a signed fraction without a leading digit, -.5, as text: so it stays text.)
_FLOAT = re.compile(r"(?:[-+]?[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?\Z|[-+]?\.(?:inf|Inf|INF)\Z|\.(?:nan|NaN|NAN)\Z")
# YAML 1.1 types YAML 1.2 does not have, or reads differently: resolved by the rules above, or text.
_DROPPED_TAGS = {_INT_TAG, _FLOAT_TAG, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed: the same rules, faster


class _StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader with numbers resolved only where YAML 1.1 and 1.2 agree."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | OversizedNumber:
    text = loader.construct_scalar(node)
    if not _INT.match(text):  # only an explicit !!int tag gets here with other text
        raise yaml.constructor.ConstructorError(None, None, f"!!int {text!r}: write integers in decimal",
                                                node.start_mark)
    if len(text.lstrip("+-")) > MAX_NUMBER_DIGITS:
        return OversizedNumber(text)
    return int(text)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float | OversizedNumber:
    text = loader.construct_scalar(node)
    if not _FLOAT.match(text) and not _INT.match(text):
        raise yaml.constructor.ConstructorError(None, None, f"!!float {text!r}: write a decimal number",
                                                node.start_mark)
    low = text.lower()
    if low.endswith(".inf"):
        return -math.inf if low.startswith("-") else math.inf
    if low == ".nan":
        return math.nan
    value = float(text)
    return value if math.isfinite(value) else OversizedNumber(text)


_StrictLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_StrictLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
_StrictLoader.add_constructor(_INT_TAG, _construct_int)
_StrictLoader.add_constructor(_FLOAT_TAG, _construct_float)


class _AliasError(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def parse_yaml_text(text: str) -> tuple[Any, list[Issue]]:
    r"""Parse YAML by the rules above; returns the value and the keys given twice.

    Raises
    ------
    yaml.YAMLError
        On a syntax error.

    Examples
    --------
    >>> parse_yaml_text("a: 6:40\nb: 0x27\nc: +39\nd: 1.0e+3\n")[0]
    {'a': '6:40', 'b': '0x27', 'c': 39, 'd': 1000.0}
    >>> [str(i) for i in parse_yaml_text("39: a\n+39: b\n")[1]]
    ['+39: is given twice (lines 1 and 2, written 39 and +39); YAML would keep only the last, so remove one']
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        checks = _NodeChecks(loader)
        expanded = checks.size(node, "")
        if expanded - len(checks.sizes) > MAX_ALIAS_VALUES:
            raise _AliasError("", f"its aliases (*name) repeat {expanded - len(checks.sizes):,} values; at most "
                                  f"{MAX_ALIAS_VALUES:,} are read (write the repeated parts out, or fewer of them)")
        return loader.construct_document(node), checks.duplicates
    finally:
        loader.dispose()


class _NodeChecks:
    """One walk over the composed nodes: each node's size once aliases are expanded, and duplicate keys."""

    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()
        self.duplicates: list[Issue] = []

    def size(self, node: yaml.Node, path: str) -> int:
        key = id(node)
        if key in self.sizes:  # an alias: its expansion counts again; it was checked where it was defined
            return self.sizes[key]
        if key in self.open:
            raise _AliasError(path, "refers to itself through an alias (a recursive structure cannot be read)")
        self.open.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += self._mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(self.size(item, f"{path}[{i}]") for i, item in enumerate(node.value))
        self.open.discard(key)
        self.sizes[key] = total
        return total

    def _mapping(self, node: yaml.MappingNode, path: str) -> int:
        total = 0
        first: dict[Any, tuple[int, str]] = {}
        for key, value in node.value:
            total += self.size(key, path) + self.size(value, join_path(path, _key_text(key)))
            if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
                continue
            name, written, line = self.loader.construct_object(key), key.value, key.start_mark.line + 1
            try:
                seen = first.get(name)
            except TypeError:  # unhashable: construct_mapping reports it
                continue
            if seen is None:
                first[name] = (line, written)
                continue
            lines = f"lines {seen[0]} and {line}" if seen[0] != line else f"both on line {line}"
            as_written = f", written {seen[1]} and {written}" if seen[1] != written else ""
            self.duplicates.append(Issue(join_path(path, written),
                                         f"is given twice ({lines}{as_written}); "
                                         "YAML would keep only the last, so remove one"))
        return total


def _key_text(key: yaml.Node) -> str:
    return key.value if isinstance(key, yaml.ScalarNode) else "?"


# -- JSON ------------------------------------------------------------------------------------

def _json_int(text: str) -> int | OversizedNumber:
    return OversizedNumber(text) if len(text.lstrip("-")) > MAX_NUMBER_DIGITS else int(text)


def _json_float(text: str) -> float | OversizedNumber:
    value = float(text)
    return value if math.isfinite(value) else OversizedNumber(text)


def parse_json_text(text: str) -> tuple[Any, list[Issue]]:
    """Parse JSON, reporting keys given twice in one object (JSON readers keep the last).

    Integers of more than :data:`MAX_NUMBER_DIGITS` digits and numbers too large for
    a float become :class:`OversizedNumber`.

    Raises
    ------
    json.JSONDecodeError
        On a syntax error.

    Examples
    --------
    >>> parse_json_text('{"a": 1e400, "b": 2}')[0]
    {'a': OversizedNumber(the number 1e400 (beyond a float)), 'b': 2}
    """
    duplicates: list[Issue] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                # The hook sees no path; an object's id, when it has one, says which it is.
                which = f"the object with id {out['id']!r}" if isinstance(out.get("id"), (str, int)) else "one object"
                duplicates.append(Issue("", f"key {key!r} is given twice in {which}; "
                                            "JSON readers keep only the last, so remove one"))
            out[key] = value
        return out

    data = json.loads(text, object_pairs_hook=pairs, parse_int=_json_int, parse_float=_json_float)
    return data, duplicates
