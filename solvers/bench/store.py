"""The results file: JSON lines, appended one row at a time, readable after any interruption.

Each row is written with a single ``write`` of the whole line on a file opened
for appending, then flushed to disk (``fsync``), so a run stopped at any moment
leaves every finished row intact and at most a torn last line. Reading skips
lines that are not a JSON object (and says how many); before appending to a
file whose last line is torn, a newline is written so the torn fragment stays a
line of its own and new rows are whole. Nothing is ever removed from the file.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
>>> with ResultsFile(path) as out:
...     out.append({"instance": "a", "objective": 1.5})
>>> _ = path.open("a").write('{"instance": "b", "obj')   # a run stopped while writing a row
>>> with ResultsFile(path) as out:
...     out.append({"instance": "c", "objective": float("inf")})
>>> rows, skipped = read_rows(path)
>>> [r["instance"] for r in rows], rows[1]["objective"], skipped
(['a', 'c'], None, 1)
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["ResultsFile", "read_rows", "check_output_path", "OutputPathError"]


class OutputPathError(ValueError):
    """A results path that cannot take rows (not a regular file, a missing folder)."""


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: ``null`` instead, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def check_output_path(path: str | Path) -> None:
    """Refuse, before any run, a results path that is not a regular file or whose folder is missing.

    Raises
    ------
    OutputPathError
        Naming the path and what is wrong with it.
    """
    target = Path(path)
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        raise OutputPathError(f"{path} exists and is not a regular file; results are appended to a regular file only")
    if target.is_symlink():
        raise OutputPathError(f"{path} is a symbolic link; give the file it points to")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(f"folder {folder} does not exist")


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a results file (none if it does not exist) and how many lines were skipped."""
    target = Path(path)
    if not target.exists():
        return [], 0
    rows, skipped = [], 0
    with target.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1  # a row torn by an interrupted run
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                skipped += 1
    return rows, skipped


class ResultsFile:
    """A results file opened for appending whole rows (a context manager)."""

    def __init__(self, path: str | Path):
        check_output_path(path)
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> ResultsFile:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        if self._ends_torn():
            self._write(b"\n")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _ends_torn(self) -> bool:
        size = self.path.stat().st_size
        if size == 0:
            return False
        with self.path.open("rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) != b"\n"

    def _write(self, data: bytes) -> None:
        assert self._fd is not None, "ResultsFile is used as a context manager"
        written = os.write(self._fd, data)
        while written < len(data):  # a regular file takes the whole line at once; a short write is finished
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def append(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line (infinities and NaN as ``null``), flushed to disk."""
        line = json.dumps(_finite(row), allow_nan=False, separators=(",", ":"), default=str) + "\n"
        self._write(line.encode("utf-8"))
