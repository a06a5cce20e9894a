"""Reading YAML and JSON input files strictly: syntax errors with their line, a key
given twice reported (YAML and JSON readers silently keep the last), and a short
description of any value for error messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from placement.errors import InputError, InvalidInstanceError, Issue

__all__ = ["read_mapping_file", "kind_of", "number_text", "join_path"]


def number_text(value: float) -> str:
    """A number as the user wrote it, short; an integer too long for a float is described."""
    if isinstance(value, int) and abs(value) > 1e15:
        return f"an integer of {len(str(abs(value)))} digits"
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
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def read_mapping_file(path: str | Path, error: type[InputError] = InvalidInstanceError,
                      what: str = "instance") -> tuple[dict[str, Any], bytes, list[Issue]]:
    """Parse a YAML or JSON file that must hold a mapping (JSON by its ``.json`` suffix).

    Returns the mapping, the file's bytes, and the keys it gives twice, so a caller
    can report those with the other problems of the file.

    Raises
    ------
    InputError
        ``error``, when the file cannot be read, is not UTF-8, does not parse (with
        the line and column), or does not hold a mapping.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise error(Issue("", f"no such file: {p}")) from None
    except OSError as exc:
        raise error(Issue("", f"cannot read {p}: {exc.strerror}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(Issue("", f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                                             "save it as UTF-8"), str(p)) from None
    try:
        data, duplicates = _parse_json(text) if p.suffix.lower() == ".json" else _parse_yaml(text)
    except json.JSONDecodeError as exc:
        raise error(Issue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"),
                                   str(p)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(Issue("", f"invalid YAML{where}: {problem}"), str(p)) from None
    except RecursionError:
        raise error(Issue("", "nested too deeply to read"), str(p)) from None
    if not isinstance(data, dict):
        not_mapping = Issue("", f"must hold a mapping of {what} fields, got {kind_of(data)}")
        raise error([*duplicates, not_mapping], str(p))
    return data, raw, duplicates


def _parse_yaml(text: str) -> tuple[Any, list[Issue]]:
    """Parse YAML, reporting keys given twice in one mapping (YAML would silently keep the last)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _yaml_duplicates(node, "", set()) if node is not None else []
        return (loader.construct_document(node) if node is not None else None), duplicates
    finally:
        loader.dispose()


def _yaml_duplicates(node: yaml.Node, path: str, seen: set[int]) -> list[Issue]:
    if id(node) in seen:  # an alias: already checked where it was defined
        return []
    seen.add(id(node))
    out: list[Issue] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            here = join_path(path, str(name))
            if name is not None and name in first:
                out.append(Issue(here, f"is given twice (lines {first[name]} and {key.start_mark.line + 1}); "
                                       "YAML would keep only the last, so remove one"))
            elif name is not None:
                first[name] = key.start_mark.line + 1
            out.extend(_yaml_duplicates(value, here, seen))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.extend(_yaml_duplicates(item, f"{path}[{i}]", seen))
    return out


def _parse_json(text: str) -> tuple[Any, list[Issue]]:
    """Parse JSON, reporting keys given twice in one object (JSON readers keep the last)."""
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

    return json.loads(text, object_pairs_hook=pairs), duplicates


