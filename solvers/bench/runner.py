"""The benchmark runner: a suite's tasks on an executor, rows appended as instances finish.

:func:`run_bench` turns a suite into tasks (every instance of every part, every
solver entry, every solver seed), skips those whose row is already in the
results file (a rerun resumes), runs the rest on an executor with at most one
task per worker thread, and appends each instance's rows as soon as its last
task finishes: a row's ``gap_to_best_bound`` needs every bound proven on its
instance (those of earlier runs in the file included). A solver that cannot
take an instance gets its ``unsupported`` row without a worker.

Examples
--------
>>> import tempfile, pathlib
>>> from solvers.bench.suites import Part, Suite
>>> out = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
>>> demo = Suite("demo", "two solvers on the vertical split", (Part("architectures", names=("device-edge-cloud",)),))
>>> summary = run_bench(demo, out, solvers=[("dp", None), ("greedy", None)], executor="inline", progress=False)
>>> [(r["label"], r["status"]) for r in summary.rows]
[('dp', 'optimal'), ('greedy', 'feasible')]
>>> run_bench(demo, out, solvers=[("dp", None), ("greedy", None)], executor="inline", progress=False).resumed
2
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instances.families import family as get_family
from placement import parse_instance
from solvers.bench.executors import Executor, WorkerLost, check_address, open_executor
from solvers.bench.machine import machine, packages
from solvers.bench.progress import Progress
from solvers.bench.rows import error_row, refused_row, solver_entries, with_gaps
from solvers.bench.store import ResultsFile, check_output_path, read_rows
from solvers.bench.suites import Part, Suite, suite as get_suite
from solvers.bench.tasks import Task, instance_sha256, instance_size, row_key, stop_after_s
from solvers.registry import solver_info

__all__ = ["run_bench", "plan_suite", "tasks_for", "BenchSummary"]

Entry = tuple[str, "str | None"]


@dataclass
class BenchSummary:
    """What a run did: the rows it wrote, how many it found already written, and its notes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    resumed: int = 0
    planned: int = 0
    notes: list[str] = field(default_factory=list)
    skipped_lines: int = 0
    wall_time_s: float = 0.0
    executor: str = ""

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Per solver label: rows written by status, and the median and largest solve time of its runs."""
        shown = ("optimal", "feasible", "infeasible", "no_solution", "error", "unsupported", "unavailable")
        times: dict[str, list[float]] = defaultdict(list)
        for r in self.rows:
            if r["status"] not in ("unsupported", "unavailable"):
                times[r["label"]].append(r["solve_time_s"] or 0.0)
        out = []
        for label, counts in self.statuses().items():
            ts = sorted(times.get(label, []))
            out.append([label, sum(counts.values()), *(counts.get(s, 0) for s in shown),
                        f"{ts[len(ts) // 2]:.3f}" if ts else "-", f"{ts[-1]:.3f}" if ts else "-"])
        return ["solver", "rows", *shown, "median s", "max s"], out

    def statuses(self) -> dict[str, Counter]:
        """Per solver label, how many rows of each status this run wrote."""
        out: dict[str, Counter] = defaultdict(Counter)
        for r in self.rows:
            out[r["label"]][r["status"]] += 1
        return dict(out)


def _instance_id(row_or_task: Any) -> tuple:
    get = row_or_task.get if isinstance(row_or_task, dict) else lambda k: getattr(row_or_task, k)
    return tuple(get(k) for k in ("family", "family_seed", "instance", "instance_sha256"))


def tasks_for(suite_name: str, family_name: str, family_seed: int, name: str, data: dict[str, Any],
              entries: list[Entry], solver_seeds: tuple[int, ...], time_limit_s: float) -> list[Any]:
    """The tasks of one instance: each entry under each solver seed. An entry that cannot take the
    instance is marked refused (its row needs no worker)."""
    digest = instance_sha256(data)
    try:
        problem = parse_instance(data, default_name=name)
    except Exception:  # the worker reports why, as an error row of every entry
        problem = None
    size = instance_size(problem) if problem else {}
    objective = (problem.objective.name, problem.objective.sense) if problem else ("-", "min")
    tasks: list[Any] = []
    for solver, backend in entries:
        refused = None
        info = solver_info(solver)
        if problem is not None:
            if not info.available():
                refused = ("unavailable", f"solver {solver!r} needs {', '.join(info.requires)}, which cannot "
                                          "be imported here")
            else:
                why = info.unsupported(problem)
                if why:
                    refused = ("unsupported", f"solver {solver!r} does not handle {', '.join(why)}")
        for seed in solver_seeds:
            task = Task(suite_name, family_name, family_seed, name, digest, solver, backend, seed, time_limit_s,
                        objective[0], objective[1], info.exact, info.plan_space.name, size, data)
            tasks.append(_Refused(task, refused) if refused else task)
    return tasks


@dataclass(frozen=True)
class _Refused:
    """A task whose solver cannot take its instance, and why."""

    task: Task
    why: tuple[str, str]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)


def _entries_for(part: Part, chosen: list[Entry] | None) -> list[Entry]:
    """The part's entries, narrowed to ``chosen`` when the run names solvers."""
    own = solver_entries(list(part.solvers)) if part.solvers else solver_entries(None)
    if chosen is None:
        return own
    wanted = solver_entries(chosen)
    return [e for e in wanted if e in own] if part.solvers else wanted


def plan_suite(suite: Suite, chosen: list[Entry] | None = None, time_limit_s: float | None = None
               ) -> tuple[list[Any], list[str]]:
    """Every task of ``suite`` (each once) and notes on what was left out and why."""
    tasks: list[Any] = []
    seen: set[tuple] = set()
    notes: list[str] = []
    for part in suite.parts:
        entries = _entries_for(part, chosen)
        fam = get_family(part.family)
        if not entries:
            notes.append(f"family {part.family}: none of the chosen solvers runs in this part; left out")
            continue
        for seed in part.seeds:
            try:
                instances = fam.instances(seed)
            except Exception as exc:  # one broken generator leaves the rest of the suite running
                notes.append(f"family {part.family} seed {seed}: the generator failed: {type(exc).__name__}: {exc}")
                continue
            if part.names is not None:
                missing = sorted(set(part.names) - {n for n, _ in instances})
                if missing:
                    notes.append(f"family {part.family} seed {seed}: no instance named {', '.join(missing)}")
                instances = [(n, d) for n, d in instances if n in part.names]
            for name, data in instances:
                for task in tasks_for(suite.name, part.family, seed, name, data, entries, part.solver_seeds,
                                      time_limit_s or part.time_limit_s):
                    if task.key() not in seen:
                        seen.add(task.key())
                        tasks.append(task)
    return tasks, notes


def _local_row(task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """A row made without a worker (a refusal, a task whose worker was lost)."""
    return {**task.header(), **result, "load_1m": None, "peak_rss_mib": None, "start_rss_mib": None,
            "rss_scope": None, "machine": machine(), "packages": packages(), "finished_at": None}


class _Writer:
    """Collects an instance's rows and appends them, with their gaps, when its last task is in."""

    def __init__(self, out: ResultsFile, pending: list[Any], earlier: list[dict[str, Any]], progress: Progress,
                 summary: BenchSummary, on_row: Callable[[dict[str, Any]], None] | None, executor: str):
        self._out, self._progress, self._summary, self._on_row = out, progress, summary, on_row
        self._executor = executor
        self._order: dict[tuple, list[tuple]] = defaultdict(list)
        for t in pending:
            self._order[_instance_id(t)].append(t.key())
        self._earlier: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in earlier:
            self._earlier[_instance_id(r)].append(r)
        self._rows: dict[tuple, dict[tuple, dict[str, Any]]] = defaultdict(dict)

    def finish(self, task: Any, row: dict[str, Any]) -> None:
        iid = _instance_id(task)
        self._rows[iid][task.key()] = {**row, "executor": self._executor}
        self._progress.advance()
        if len(self._rows[iid]) < len(self._order[iid]):
            return
        rows = [self._rows[iid][k] for k in self._order[iid]]
        for r in with_gaps(rows, task.objective_sense, self._earlier[iid]):
            self._out.append(r)
            self._summary.rows.append(r)
            if self._on_row:
                self._on_row(r)
        del self._rows[iid]


def _drain(executor: Executor, queue: deque, writer: _Writer, progress: Progress) -> None:
    """Run the queued tasks, at most ``executor.slots`` at a time. A task whose worker died is re-run alone;
    if it dies again it is an ``error`` row (a neighbour's crash cannot be blamed on it twice)."""
    inflight: dict[Any, tuple[Any, float]] = {}
    solo: deque = deque()
    suspects: set[tuple] = set()
    lost_since_restart = False

    def submit(task: Any) -> None:
        inflight[executor.submit(task)] = (task, time.perf_counter())

    while queue or solo or inflight:
        if lost_since_restart and not inflight:
            executor.restart()
            lost_since_restart = False
        if solo:
            if not inflight:
                submit(solo.popleft())
        else:
            while queue and len(inflight) < executor.slots:
                submit(queue.popleft())
        progress.running([f"{t.instance} {t.label}" for t, _ in inflight.values()])
        for handle in executor.wait(list(inflight)):
            task, started = inflight.pop(handle)
            try:
                row = executor.result(handle)
            except WorkerLost as exc:
                lost_since_restart = True
                ran_s = time.perf_counter() - started
                if ran_s >= stop_after_s(task.time_limit_s):  # the worker's watchdog ended it: no second try
                    writer.finish(task, _local_row(task, _overrun_row(task, ran_s)))
                elif task.key() in suspects:
                    writer.finish(task, _local_row(task, error_row(exc, ran_s)))
                else:
                    suspects.add(task.key())
                    solo.append(task)
                continue
            writer.finish(task, row)


def _overrun_row(task: Any, ran_s: float) -> dict[str, Any]:
    message = (f"stopped after {ran_s:.0f} s: the run ignored its time limit of {task.time_limit_s:g} s and its "
               f"worker was ended (runs are stopped after {stop_after_s(task.time_limit_s):g} s)")
    return {**error_row(WorkerLost(message), ran_s), "termination": "time_limit", "error": message,
            "reasons": [message]}


def run_bench(suite: Suite | str, output: str | Path, solvers: list[Entry] | None = None, executor: str = "local",
              address: str | None = None, jobs: int | None = None, progress: bool | None = None,
              time_limit_s: float | None = None, on_note: Callable[[str], None] | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> BenchSummary:
    """Run ``suite`` and append its rows to ``output`` (JSON lines); rows already there are not rerun.

    Parameters
    ----------
    suite : Suite or str
        A suite or the name of one in :data:`solvers.bench.suites.SUITES`.
    output : path
        The results file; created if missing, appended to otherwise.
    solvers : list of (name, backend or None), optional
        Only these (every backend of a multi-backend solver named without one).
    executor : {"local", "dask", "ray", "inline"}
    address : str, optional
        A running dask scheduler or ray cluster.
    jobs : int, optional
        Worker processes of a local pool or a local dask / ray cluster (default: the CPUs available).
    progress : bool, optional
        Draw the progress bar (default: when stderr is a terminal).
    time_limit_s : float, optional
        Replaces every part's time limit per solve.

    Raises
    ------
    OutputPathError
        For an output path that cannot take rows.
    AddressError
        For an address that cannot be read, or one given to an executor that takes none (before any
        row is written).
    MissingExtraError
        When the executor's optional dependency is not installed.
    ClusterUnreachableError
        When no dask scheduler or ray cluster answers at ``address``.
    """
    started = time.perf_counter()
    chosen = get_suite(suite) if isinstance(suite, str) else suite
    check_address(executor, address)
    check_output_path(output)
    tasks, notes = plan_suite(chosen, solvers, time_limit_s)
    earlier, skipped_lines = read_rows(output)
    done = {row_key(r) for r in earlier}
    pending = [t for t in tasks if t.key() not in done]
    summary = BenchSummary(resumed=len(tasks) - len(pending), planned=len(tasks), notes=notes,
                           skipped_lines=skipped_lines, executor=executor)
    say = on_note or (lambda message: None)
    for note in notes:
        say(note)
    if skipped_lines:
        say(f"{output}: {skipped_lines} line(s) are not rows (a run stopped while writing one?); they are skipped")
    if summary.resumed:
        say(f"{output}: {summary.resumed} of {len(tasks)} rows are already there; running the other {len(pending)}")
    if not pending:
        summary.wall_time_s = time.perf_counter() - started
        return summary
    with ResultsFile(output) as out, Progress(len(pending), chosen.name, enabled=progress) as bar:
        writer = _Writer(out, pending, earlier, bar, summary, on_row, executor)
        for t in pending:  # refusals first: they need no worker
            if isinstance(t, _Refused):
                writer.finish(t, _local_row(t.task, refused_row(*t.why)))
        runnable = deque(t for t in pending if not isinstance(t, _Refused))
        if runnable:
            with open_executor(executor, address, jobs) as pool:
                summary.executor = pool.describe()
                _drain(pool, runnable, writer, bar)
    summary.wall_time_s = time.perf_counter() - started
    return summary
