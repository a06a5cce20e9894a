"""Where benchmark tasks run: a local process pool, a dask cluster, a ray cluster, or in-process.

Every executor runs :func:`solvers.bench.tasks.run_task` on a task and hands
back its row, so the rows are the same whichever runs them. The runner keeps
at most :attr:`slots` tasks in flight (one per worker thread), which makes
"what runs now" exact and lets a crashed worker be told apart from its
neighbours (a task whose worker died is re-run alone before it is called an
error).

- ``local`` (default): a pool of worker processes on this machine (spawned, so
  no thread of the parent is copied), one per CPU this process may use unless
  ``jobs`` says otherwise. Each worker limits its numeric libraries to one thread.
- ``dask``: ``dask.distributed``: a local cluster of ``jobs`` single-threaded
  worker processes started for the run, or the running scheduler at ``address``
  (``[tcp|tls|ws|wss|ucx://]host:port``, e.g. ``tcp://host:8786``); its workers need
  llmplace installed.
- ``ray``: a local ray instance, or the cluster at ``address`` (``auto``, ``local``,
  ``ray://host:port`` for a ray client server, e.g. ``ray://host:10001``, or the
  ``host:port`` of a cluster's head); one CPU per task.
- ``inline``: in this process, one task at a time (tests and debugging).

``dask`` and ``ray`` are optional: ``pip install -e '.[dask]'`` or ``'.[ray]'``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from solvers.bench.tasks import Task, run_task

__all__ = ["Executor", "open_executor", "check_address", "EXECUTORS", "MissingExtraError", "AddressError",
           "ClusterUnreachableError", "WorkerLost"]

EXECUTORS = ("local", "dask", "ray", "inline")
# Numeric libraries read these when they load: a worker's solver gets one thread, as the task says.
_ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


class MissingExtraError(RuntimeError):
    """An executor's optional dependency is not installed; the message says how to install it."""


class AddressError(ValueError):
    """A cluster address that cannot be read; the message says what was expected."""


class ClusterUnreachableError(RuntimeError):
    """The cluster at a well-formed address did not answer; the message names the address."""


class WorkerLost(RuntimeError):
    """The worker running a task died (or the cluster lost it) before the task returned its row."""


@contextmanager
def _one_thread_environment() -> Iterator[None]:
    """The one-thread settings in the environment while worker processes are spawned (they inherit it),
    this process's own settings restored after."""
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(_ONE_THREAD)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Schemes dask.distributed connects a client over (``inproc`` reaches only this process: not a scheduler to name).
_DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_EXPECTED = {
    "dask": "[tcp|tls|ws|wss|ucx://]HOST:PORT of a running dask scheduler, e.g. tcp://10.0.0.5:8786",
    "ray": "auto, local, ray://HOST:PORT of a ray client server (e.g. ray://10.0.0.5:10001), or the HOST:PORT "
           "of a ray cluster's head",
}


def _host_port(location: str) -> tuple[str, int] | None:
    """``host:port`` (``[v6 address]:port`` too) as its parts; ``None`` without a host or a port in 1-65535."""
    try:
        parts = urllib.parse.urlsplit(f"//{location}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not host or port is None or not 0 < port < 65536 or parts.path or parts.query or parts.fragment \
            or parts.username is not None:
        return None
    return host, port


def check_address(executor: str, address: str | None) -> None:
    """Check that ``address`` is one ``executor`` can connect to, before any cluster is reached.

    Raises
    ------
    AddressError
        For an address that cannot be read, or one given to an executor that takes none; the message
        says what was expected.

    Examples
    --------
    >>> check_address("dask", "tcp://10.0.0.5:8786")
    >>> check_address("ray", "auto")
    >>> check_address("dask", "foo")
    Traceback (most recent call last):
    ...
    solvers.bench.executors.AddressError: cannot read 'foo' (expected [tcp|tls|ws|wss|ucx://]HOST:PORT of a running dask scheduler, e.g. tcp://10.0.0.5:8786)
    """
    if address is None:
        return
    if executor not in _EXPECTED:
        raise AddressError(f"applies to the dask and ray executors, not {executor!r}")
    scheme, sep, location = address.partition("://")
    if not sep:
        scheme, location = "", address
    if executor == "ray" and not sep and address in ("auto", "local"):
        return
    schemes = _DASK_SCHEMES if executor == "dask" else ("ray",)
    if (scheme and scheme not in schemes) or _host_port(location) is None:
        raise AddressError(f"cannot read {address!r} (expected {_EXPECTED[executor]})")


def cpus_available() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs tasks; ``submit`` returns a handle, ``wait`` the handles that finished, ``result`` a row."""

    name = "inline"
    slots = 1

    def __init__(self) -> None:
        self._done: dict[int, dict[str, Any]] = {}

    def submit(self, task: Task) -> Any:
        handle = object()
        self._done[id(handle)] = run_task(task, in_worker=False)
        return handle

    def wait(self, handles: list[Any]) -> list[Any]:
        return list(handles)

    def result(self, handle: Any) -> dict[str, Any]:
        return self._done.pop(id(handle))

    def restart(self) -> None:
        """Replace workers after one died (a no-op where the cluster replaces them itself)."""

    def describe(self) -> str:
        return "in this process"

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, jobs: int | None = None):
        super().__init__()
        self.slots = jobs or cpus_available()
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        with _one_thread_environment():
            return cf.ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: Task) -> Any:
        with _one_thread_environment():  # workers are spawned on demand, at a submit
            return self._pool.submit(run_task, task)

    def wait(self, handles: list[Any]) -> list[Any]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as exc:
            raise WorkerLost(f"a worker process died ({exc})") from exc

    def restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def describe(self) -> str:
        return f"a local pool of {self.slots} worker process(es)"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    name = "dask"

    def __init__(self, address: str | None = None, jobs: int | None = None, connect_timeout_s: float = 30.0):
        super().__init__()
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise MissingExtraError("--executor dask needs dask.distributed: pip install -e '.[dask]' "
                                    "(or pip install 'llmplace[dask]')") from exc
        self._cluster = None
        if address is not None:
            try:
                self._client = Client(address, timeout=f"{connect_timeout_s}s")
            except OSError as exc:  # dask's connection timeout and refusals are OSErrors
                raise ClusterUnreachableError(f"no dask scheduler answered at {address} within "
                                              f"{connect_timeout_s:g} s ({exc})") from exc
        else:
            # Worker processes (not threads): one solver per process, and a crash takes one worker down.
            import dask

            # Not daemonic: the cbc backend runs CBC in a child process, which a daemonic worker cannot start.
            with dask.config.set({"distributed.worker.daemon": False}):
                self._cluster = LocalCluster(n_workers=jobs or cpus_available(), threads_per_worker=1,
                                             processes=True, dashboard_address=None, silence_logs=40)
            self._client = Client(self._cluster)
        self.slots = max(1, sum(self._client.nthreads().values()))
        self._address = address

    def submit(self, task: Task) -> Any:
        return self._client.submit(run_task, task, pure=False)

    def wait(self, handles: list[Any]) -> list[Any]:
        from distributed import wait
        done, _ = wait(handles, return_when="FIRST_COMPLETED")
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return handle.result()
        except Exception as exc:  # run_task never raises: anything here is the cluster losing the task
            raise WorkerLost(f"dask lost the task: {type(exc).__name__}: {exc}") from exc

    def describe(self) -> str:
        where = f"the dask scheduler at {self._address}" if self._address else "a local dask cluster"
        return f"{where} ({self.slots} worker thread(s))"

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None):
        super().__init__()
        try:
            import ray
        except ImportError as exc:
            raise MissingExtraError("--executor ray needs ray: pip install -e '.[ray]' "
                                    "(or pip install 'llmplace[ray]')") from exc
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            local = {} if address is not None else {"num_cpus": jobs or cpus_available()}
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                         **local)
            except ConnectionError as exc:  # ray's "could not find / connect to a cluster"
                raise ClusterUnreachableError(f"no ray cluster answered at {address} ({exc})") from exc
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._address = address

    def submit(self, task: Task) -> Any:
        return self._remote.remote(task)

    def wait(self, handles: list[Any]) -> list[Any]:
        done, _ = self._ray.wait(handles, num_returns=1)
        return done

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return self._ray.get(handle)
        except Exception as exc:  # run_task never raises: anything here is the cluster losing the task
            raise WorkerLost(f"ray lost the task: {type(exc).__name__}: {exc}") from exc

    def describe(self) -> str:
        where = f"the ray cluster at {self._address}" if self._address else "a local ray instance"
        return f"{where} ({self.slots} CPU(s))"

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


@contextmanager
def open_executor(name: str, address: str | None = None, jobs: int | None = None) -> Iterator[Executor]:
    """The executor called ``name`` (see :data:`EXECUTORS`), closed when the block ends.

    Raises
    ------
    ValueError
        For an unknown name.
    AddressError
        For an ``address`` that cannot be read, or one given to an executor that takes none.
    MissingExtraError
        When dask or ray is not installed, saying how to install it.
    ClusterUnreachableError
        When no cluster answers at ``address``.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r} (expected one of {', '.join(EXECUTORS)})")
    check_address(name, address)
    executor: Executor
    if name == "local":
        executor = LocalExecutor(jobs)
    elif name == "dask":
        executor = DaskExecutor(address, jobs)
    elif name == "ray":
        executor = RayExecutor(address, jobs)
    else:
        executor = Executor()
    try:
        yield executor
    finally:
        executor.close()
