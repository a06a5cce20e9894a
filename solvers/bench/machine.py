"""What a benchmark row says about where it ran: the machine, the package versions, the load,
and the peak resident memory of the run.

Measured in the process that solves, so a distributed run's rows name the
worker that produced them.

Examples
--------
>>> info = machine()
>>> info["cpus"] >= 1 and info["python"].count(".") == 2
True
>>> "numpy" in packages()
True
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["machine", "packages", "PeakMemory", "load_1m"]

_PACKAGES = ("llmplace", "numpy", "scipy", "networkx", "ortools", "pulp", "pyyaml", "click")
_KIB = 1024.0
_MIB = 1024.0 * 1024.0


def _proc_field(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
    except OSError:
        return None
    return match.group(1).strip() if match else None


@lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """The machine: host name, OS, CPU model, CPUs (and those this process may use), memory, Python."""
    memory_kib = _proc_field("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform says which CPUs a process may use
        allowed = os.cpu_count() or 1
    return {
        "host": socket.gethostname(), "system": platform.system(), "release": platform.release(),
        "arch": platform.machine(), "cpu": _proc_field("/proc/cpuinfo", r"^model name\s*:\s*(.+)$")
        or platform.processor() or "unknown", "cpus": os.cpu_count() or 1, "cpus_allowed": allowed,
        "memory_gib": round(int(memory_kib) / _MIB, 1) if memory_kib else None,
        "python": platform.python_version(),
    }


@lru_cache(maxsize=1)
def packages() -> dict[str, str]:
    """Versions of llmplace and the libraries its solvers run on (and the checkout's commit, if any)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = _checkout_commit()
    if commit:
        out["llmplace_commit"] = commit
    return out


def _checkout_commit() -> str | None:
    """The commit of a source checkout llmplace runs from (``+dirty`` with uncommitted changes)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def load_1m() -> float | None:
    """The one-minute load average (runnable processes), where the platform has one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


class PeakMemory:
    """The peak resident memory of this process during a block of code, in MiB.

    On Linux the kernel's high-water mark is reset at the start (``/proc/self/clear_refs``)
    and read at the end, so the figure belongs to the block even in a worker process
    that ran other tasks before. Where it cannot be reset, the figure is the process's
    peak since it started (``scope`` says ``"process"``).

    Examples
    --------
    >>> with PeakMemory() as peak:
    ...     block = bytearray(64 * 1024 * 1024)
    >>> peak.peak_mib >= peak.start_mib
    True
    """

    def __init__(self) -> None:
        self.start_mib: float | None = None
        self.peak_mib: float | None = None
        self.scope = "task"

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
        except OSError:
            self.scope = "process"
        self.start_mib = self._status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mib = self._status("VmHWM")
        if self.peak_mib is None:
            self.scope = "process"
            self.peak_mib = self._max_rss_mib()

    @staticmethod
    def _status(field: str) -> float | None:
        kib = _proc_field("/proc/self/status", rf"^{field}:\s+(\d+)")
        return round(int(kib) / _KIB, 1) if kib else None

    @staticmethod
    def _max_rss_mib() -> float | None:
        try:
            import resource
        except ImportError:
            return None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return round(peak / (_MIB if platform.system() == "Darwin" else _KIB), 1)
