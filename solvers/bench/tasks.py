"""One benchmark task, (instance, solver, seed), and the function a worker runs for it.

A task carries its instance as the dict a family generated, so any worker (a
local process, a dask or ray worker on another machine with llmplace installed)
can run it; :func:`run_task` parses it, solves with one solver thread, measures
the peak memory and returns the row. It never raises: an instance that does not
parse or a solver that raises gives an ``error`` row.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from placement import Problem, parse_instance
from solvers.api import SolveParams
from solvers.bench.machine import PeakMemory, load_1m, machine, packages
from solvers.bench.rows import error_row, solve_row, solver_label

__all__ = ["Task", "run_task", "stop_after_s", "instance_sha256", "instance_size", "ROW_SCHEMA", "row_key"]

ROW_SCHEMA = 1
# The fields that make a row the same run: a rerun skips tasks whose key a row already has.
KEY_FIELDS = ("family", "family_seed", "instance", "instance_sha256", "solver", "backend", "seed", "time_limit_s")

_active = 0  # tasks running in this process now (a threaded worker runs several)
_active_lock = threading.Lock()
# A run that ignores its time limit is stopped once it has had half as long again and 15 s more (the largest
# overrun measured of a solver that honours its limit is 1.5 s on 10 s): its child processes (a MILP backend's
# solver binary) are killed, and a worker whose own code does not come back within _EXIT_GRACE_S after that
# exits, so the executor reports the task (never a hung run).
_OVERRUN_FACTOR, _OVERRUN_S, _EXIT_GRACE_S = 1.5, 15.0, 10.0


def stop_after_s(time_limit_s: float) -> float:
    """Seconds after which a run is stopped: its limit, half as long again and 15 s.

    Examples
    --------
    >>> stop_after_s(10.0)
    30.0
    """
    return _OVERRUN_FACTOR * time_limit_s + _OVERRUN_S


def _descendants(pid: int) -> list[int]:
    """Processes started by ``pid`` and by those, from /proc (an empty list where there is none)."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class _Watchdog:
    """Stops a run that outlives :func:`stop_after_s`: kills this process's children, then, in a worker
    process (never in the caller's own process), exits if the run still does not return."""

    def __init__(self, limit_s: float, in_worker: bool):
        self.limit_s, self.in_worker, self.fired = limit_s, in_worker, False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="llmplace-bench-watchdog")

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def _watch(self) -> None:
        if self._done.wait(self.limit_s):
            return
        self.fired = True
        for child in _descendants(os.getpid()):
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        if not self._done.wait(_EXIT_GRACE_S) and self.in_worker:
            os._exit(75)  # the solver's own code ignores its deadline: only the process can stop it


def instance_sha256(data: dict[str, Any]) -> str:
    """A digest of an instance dict (keys sorted), so a changed generator is a new instance.

    Examples
    --------
    >>> instance_sha256({"b": 1, "a": [2]}) == instance_sha256({"a": [2], "b": 1})
    True
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def instance_size(problem: Problem) -> dict[str, int]:
    """What the size axes of a report read: models, devices, blocks (over all models), classes, links."""
    return {"models": len(problem.models), "devices": len(problem.topology.nodes),
            "blocks": sum(m.num_blocks for m in problem.models), "request_classes": len(problem.workload),
            "links": len(problem.topology.links)}


def row_key(row: dict[str, Any]) -> tuple:
    """The identity of a row's run (see :data:`KEY_FIELDS`)."""
    return tuple(row.get(k) for k in KEY_FIELDS)


@dataclass(frozen=True)
class Task:
    """Run ``solver`` (with ``backend``) under ``seed`` and ``time_limit_s`` on one generated instance."""

    suite: str
    family: str
    family_seed: int
    instance: str
    instance_sha256: str
    solver: str
    backend: str | None
    seed: int
    time_limit_s: float
    objective_name: str
    objective_sense: str
    exact: bool
    plan_space: str
    size: dict[str, int] = field(compare=False)
    data: dict[str, Any] = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return solver_label(self.solver, self.backend)

    def key(self) -> tuple:
        return tuple(getattr(self, k) for k in KEY_FIELDS)

    def header(self) -> dict[str, Any]:
        """The fields of the row that say what ran."""
        return {"schema": ROW_SCHEMA, "suite": self.suite, "family": self.family, "family_seed": self.family_seed,
                "instance": self.instance, "instance_sha256": self.instance_sha256, "solver": self.solver,
                "backend": self.backend, "label": self.label, "seed": self.seed, "time_limit_s": self.time_limit_s,
                "threads": 1, "exact": self.exact, "plan_space": self.plan_space,
                "objective_name": self.objective_name, "objective_sense": self.objective_sense,
                **{f"size_{k}": v for k, v in self.size.items()}}


def run_task(task: Task, in_worker: bool = True) -> dict[str, Any]:
    """Solve one task with one solver thread and return its row (never raises).

    A run still going after :func:`stop_after_s` is stopped (see :class:`_Watchdog`)
    and its row is an ``error`` that says so; ``in_worker=False`` (running in the
    caller's process) never exits the process.

    Examples
    --------
    >>> from instances.families import family
    >>> from solvers.bench.runner import tasks_for
    >>> name, data = family("architectures").instances(0)[1]
    >>> task = next(t for t in tasks_for("demo", "architectures", 0, name, data, [("dp", None)], (0,), 5.0)
    ...             if t.solver == "dp")
    >>> row = run_task(task)
    >>> row["instance"], row["status"], row["peak_rss_mib"] > 0
    ('device-edge-cloud', 'optimal', True)
    """
    global _active
    with _active_lock:
        _active += 1
        shared = _active > 1
    row = task.header()
    row["load_1m"] = load_1m()
    started = time.perf_counter()
    try:
        with PeakMemory() as peak, _Watchdog(stop_after_s(task.time_limit_s), in_worker) as watchdog:
            try:
                problem = parse_instance(task.data, default_name=task.instance)
            except Exception as exc:  # a generator's bad instance is an error row, not the end of the run
                row.update(error_row(exc, time.perf_counter() - started))
            else:
                params = SolveParams(time_limit_s=task.time_limit_s, threads=1, seed=task.seed)
                row.update(solve_row(problem, task.solver, task.backend, params))
    finally:
        with _active_lock:
            _active -= 1
    if watchdog.fired:
        wall = time.perf_counter() - started
        message = (f"stopped after {wall:.0f} s: the run ignored its time limit of {task.time_limit_s:g} s "
                   f"(runs are stopped after {watchdog.limit_s:g} s)")
        row.update(status="error", termination="time_limit", error=message,
                   reasons=[message, *row.get("reasons", [])][:5], wall_time_s=wall)
    row.update(peak_rss_mib=peak.peak_mib, start_rss_mib=peak.start_mib,
               rss_scope="process" if shared else peak.scope)
    row.update(machine=machine(), packages=packages(),
               finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return row
