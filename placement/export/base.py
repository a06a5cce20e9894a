"""What an export is: the files a deployment needs, what the engine cannot express, and refusals.

Every exporter returns an :class:`Export`; an engine that cannot run a plan makes
its exporter raise :class:`ExportRefused`, naming the reason. Arguments that are
wrong whatever the engine (an unknown engine, device or model) raise
:class:`ExportArgumentError`. Both are :class:`ValueError` subclasses.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from placement.safefiles import write_atomic

if TYPE_CHECKING:  # imported for annotations only
    from placement.export.artefacts import Artefacts
    from placement.export.stages import Pipeline, Stage
    from placement.plan import Plan
    from placement.problem import ModelSpec, Problem

__all__ = ["Export", "ExportFile", "ExportError", "ExportRefused", "ExportArgumentError", "Exporter",
           "ExportInput", "safe_file_name"]


class ExportError(ValueError):
    """A plan that cannot be exported as asked."""


class ExportRefused(ExportError):
    """The engine cannot run the plan; the message says why (and what would work)."""

    def __init__(self, engine: str, reason: str):
        self.engine = engine
        self.reason = reason
        super().__init__(f"{engine} cannot run this plan: {reason}")


class ExportArgumentError(ExportError):
    """An argument that is wrong for any engine: unknown engine, device, model or pipeline."""


@dataclass(frozen=True)
class ExportFile:
    """One artefact: a script to run on ``run_on`` (``None``: anywhere) or a configuration file."""

    name: str
    text: str
    run_on: str | None = None
    executable: bool = False


@dataclass(frozen=True)
class Export:
    """The files that deploy a plan on an engine, and what the engine cannot express.

    ``warnings`` say where the deployment differs from the plan (replicas left
    out, one weight format for every device, routing fractions the engine does
    not take); ``notes`` say what to do by hand (start order, values to fill in).
    """

    engine: str
    files: tuple[ExportFile, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def file(self, name: str) -> ExportFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    def text(self) -> str:
        """Every file, each under a ``==> name <==`` header, as printed without ``-o``."""
        parts = []
        for f in self.files:
            where = f" (run on {f.run_on})" if f.run_on else ""
            parts.append(f"==> {f.name}{where} <==\n{f.text}")
        return "\n".join(parts)

    def write(self, folder: str | Path, protected: tuple[str, ...] = ()) -> list[Path]:
        """Write every file into ``folder`` (created if missing), each atomically; scripts are made executable.

        A file is written only as a regular file, never over one of ``protected``
        (the instance and plan an export was made from; see :func:`placement.safefiles.write_atomic`).

        Raises
        ------
        NotADirectoryError
            If ``folder`` exists and is not a directory.
        OSError
            If a file cannot be written; files already written stay.
        """
        target = Path(folder)
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(f"{target} exists and is not a directory")
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for f in self.files:
            path = target / f.name
            write_atomic(path, f.text, protected=protected)
            if f.executable:
                mode = path.stat().st_mode
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(path, mode | (0o111 & ~umask))
            written.append(path)
        return written


@dataclass(frozen=True)
class ExportInput:
    """What an exporter receives: the plan's model, the pipeline (or every shard) to deploy, the artefacts.

    ``pipeline`` is the one chain of stages single-pipeline engines run; ``shards``
    holds every shard of the model, replicas included, as one-shard stages.
    ``warnings`` are what the shared selection already found.
    """

    problem: Problem
    plan: Plan
    model: ModelSpec
    pipeline: Pipeline | None
    shards: tuple[Stage, ...]
    artefacts: Artefacts
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exporter:
    """A registered engine: its name on the command line, what it runs, where its flags were checked."""

    name: str
    title: str
    summary: str
    sources: tuple[str, ...]
    build: Callable[[ExportInput], Export] = field(repr=False)
    aliases: tuple[str, ...] = ()
    whole_plan: bool = False  # True: every shard (replicas too); False: one pipeline


_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(*parts: str) -> str:
    """A file name from ``parts`` (device ids may hold any text): letters, digits, ``.``, ``_``, ``-``.

    A part that had to be changed gets a short digest of its original text, so two
    ids that differ only in such characters (``a/b``, ``a:b``) never share a file.

    >>> safe_file_name("rpc-server", "edge-1"), safe_file_name("rpc-server", "edge/1")
    ('rpc-server-edge-1', 'rpc-server-edge-1-699803')
    """
    cleaned = []
    for p in parts:
        c = _UNSAFE_FILE_CHARS.sub("-", p).strip("-.") or "_"
        if c != p:
            c = f"{c}-{hashlib.sha256(p.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"
        cleaned.append(c)
    return "-".join(cleaned)
