"""POSIX shell scripts for exported deployments, quoted so no value is read as code.

A value the plan or instance does not know (a device's address, a model file)
is a :class:`Var`: the script names it ``${NAME}`` and stops at its first line,
saying what to set, until the variable is given (``: "${NAME:?set NAME to ...}"``).
Everything else is a literal, quoted with :func:`shlex.quote`.

Examples
--------
>>> host = Var("EDGE_HOST", "the address of device edge")
>>> s = Script("rpc.sh", run_on="edge", header=["stage 1 of 2"])
>>> s.command(["rpc-server"], ["-H", host], ["-p", "50052"])
>>> print(s.render())
#!/bin/sh
# stage 1 of 2
# run on: edge
set -eu
: "${EDGE_HOST:?set EDGE_HOST to the address of device edge}"
<BLANKLINE>
rpc-server \\
  -H "${EDGE_HOST}" \\
  -p 50052
<BLANKLINE>
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

__all__ = ["Var", "Word", "Script", "render_word", "safe_text", "var_name"]


@dataclass(frozen=True)
class Var:
    """A value to be supplied when the script runs: ``${name}``, explained by ``description``."""

    name: str
    description: str


# A word is a literal, a variable, or a concatenation of both ("${EDGE_HOST}:50052").
Word = Union[str, Var, tuple]

_PRINTABLE = re.compile(r"[^ -~]")  # anything but printable ASCII
_MESSAGE_UNSAFE = re.compile(r"[^A-Za-z0-9 ._,:/()'=+<>@%-]")


def safe_text(text: str) -> str:
    """``text`` with control and non-ASCII characters replaced, safe inside a ``#`` comment line.

    A device id is any text the instance gives; a newline in it must not end the comment.

    >>> safe_text("edge\\nrm -rf ~")
    'edge?rm -rf ~'
    """
    return _PRINTABLE.sub("?", text)


def var_name(*parts: str) -> str:
    """An upper-case variable name from ``parts``, e.g. ``var_name("phone-1", "host") == "PHONE_1_HOST"``."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").upper() or "VALUE"
    return name if not name[0].isdigit() else f"D_{name}"


def _message(text: str) -> str:
    # Inside "${NAME:?message}" the message is expanded by the shell: keep only inert characters.
    return _MESSAGE_UNSAFE.sub("?", text)


def _parts(word: Word) -> tuple:
    return word if isinstance(word, tuple) else (word,)


def render_word(word: Word) -> str:
    """One shell word: a quoted literal, or a double-quoted string with ``${NAME}`` in it.

    >>> render_word("a b"), render_word((Var("H", "h"), ":50052")), render_word("50052")
    ("'a b'", '"${H}:50052"', '50052')
    """
    parts = _parts(word)
    if all(isinstance(p, str) for p in parts):
        return shlex.quote("".join(parts))
    out = []
    for p in parts:
        if isinstance(p, Var):
            out.append("${" + p.name + "}")
        else:
            out.append(re.sub(r'([\\"$`])', r"\\\1", str(p)))
    return '"' + "".join(out) + '"'


def _vars_of(word: Word) -> list[Var]:
    return [p for p in _parts(word) if isinstance(p, Var)]


class Script:
    """A ``#!/bin/sh`` script built line by line; variables it uses are checked at its top."""

    def __init__(self, name: str, run_on: str | None = None, header: Iterable[str] = ()):
        self.name = name
        self.run_on = run_on
        self._header = [safe_text(h) for h in header]
        self._body: list[str] = []
        self._vars: dict[str, Var] = {}

    def _use(self, words: Iterable[Word]) -> None:
        for w in words:
            for v in _vars_of(w):
                self._vars.setdefault(v.name, v)

    def comment(self, text: str) -> None:
        self._body.append(f"# {safe_text(text)}")

    def blank(self) -> None:
        self._body.append("")

    def env(self, name: str, value: Word) -> None:
        """``export NAME=value``."""
        self._use([value])
        self._body.append(f"export {name}={render_word(value)}")

    def command(self, *groups: Sequence[Word]) -> None:
        """One command: each group of words on its own continued line (the program first)."""
        self._use(w for g in groups for w in g)
        lines = [" ".join(render_word(w) for w in g) for g in groups if g]
        self._body.append(" \\\n  ".join(lines))

    @property
    def variables(self) -> tuple[Var, ...]:
        return tuple(self._vars.values())

    def render(self) -> str:
        lines = ["#!/bin/sh", *(f"# {h}" for h in self._header)]
        if self.run_on:
            lines.append(f"# run on: {safe_text(self.run_on)}")
        lines.append("set -eu")
        for v in self._vars.values():
            lines.append(f': "${{{v.name}:?set {v.name} to {_message(v.description)}}}"')
        lines.append("")
        lines.extend(self._body)
        return "\n".join(lines) + "\n"
