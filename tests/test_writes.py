"""The writes corpus: ``-o`` and ``save_plan`` replace only regular files, never one the instance reads.

Each target below is something a plan file must not replace (a device, a FIFO, a
folder, a socket, a link to one of those or to nothing, the instance, its
``config_file``, a hard link or a symbolic link to either), or something it must
handle as documented (a symbolic link to a regular file is written through).
``/dev/null`` itself is only ever given to the check, with the write path rigged
to fail the test if it were reached. Signals during a write and a failing stdout
run in child processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import placement.safefiles as safefiles
from cli import main
from placement import load_instance, save_plan
from placement.safefiles import UnsafeFileError, check_output_target, write_atomic
from solvers import SolveParams, solve

CONFIG = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
          "vocab_size": 1000, "intermediate_size": 512}


@pytest.fixture()
def instance(tmp_path: Path) -> Path:
    """An instance whose model comes from a config_file beside it."""
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    path = tmp_path / "instance.yaml"
    path.write_text(yaml.safe_dump({
        "models": [{"id": "small", "config_file": "config.json", "weight_format": "q4_0"}],
        "devices": [{"id": "d0", "type": "l4"}],
        "workload": [{"id": "chat", "source": "d0", "prompt_tokens": 64, "output_tokens": 16}],
    }))
    return path


def _solve_to(instance: Path, output: str) -> CliRunner:
    return CliRunner().invoke(main, ["solve", str(instance), "--time-limit", "5", "-o", output])


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry of ``folder``: its type and its content (or link target)."""
    out = {}
    for p in folder.iterdir():
        st = os.lstat(p)
        content = os.readlink(p) if stat.S_ISLNK(st.st_mode) else p.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[p.name] = (stat.S_IFMT(st.st_mode), content)
    return out


def _make_target(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"target-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "link-to-fifo":
        os.mkfifo(tmp_path / "fifo")
        path.symlink_to(tmp_path / "fifo")
    elif kind == "link-to-dev-null":
        path.symlink_to("/dev/null")
    elif kind == "link-to-folder":
        (tmp_path / "sub").mkdir()
        path.symlink_to(tmp_path / "sub")
    elif kind == "dangling-link":
        path.symlink_to(tmp_path / "nothing-here")
    elif kind == "link-to-instance":
        path.symlink_to(tmp_path / "instance.yaml")
    elif kind == "link-to-config":
        path.symlink_to("config.json")
    elif kind == "hard-link-to-config":
        os.link(tmp_path / "config.json", path)
    else:
        raise AssertionError(kind)
    return path


REFUSED = {
    "fifo": "is a FIFO (named pipe); only a regular file is replaced",
    "folder": "is a folder; only a regular file is replaced",
    "socket": "is a socket; only a regular file is replaced",
    "link-to-fifo": "is a FIFO (named pipe) (the symbolic link",
    "link-to-dev-null": "/dev/null is a character device (the symbolic link",
    "link-to-folder": "is a folder (the symbolic link",
    "dangling-link": "which does not exist; give the file itself",
    "link-to-instance": "is a file the instance is read from",
    "link-to-config": "is a file the instance is read from",
    "hard-link-to-config": "is a file the instance is read from",
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_cli_refuses_the_target_before_solving_and_touches_nothing(kind, instance, tmp_path, monkeypatch):
    target = _make_target(kind, tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.setattr(safefiles.tempfile, "mkstemp", _never)
    r = _solve_to(instance, str(target))
    assert r.exit_code == 2, r.output
    assert r.output.splitlines() == [line for line in r.output.splitlines() if line.startswith("error: --output: ")]
    assert len(r.output.splitlines()) == 1 and REFUSED[kind] in r.output
    assert _snapshot(tmp_path) == before


def _never(*args, **kwargs):
    raise AssertionError("the write path must not be reached for a refused target")


@pytest.mark.parametrize("name", ["instance.yaml", "config.json", "./config.json", "sub/../config.json"])
def test_cli_never_writes_a_file_the_instance_reads(name, instance, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    r = _solve_to(instance, name)
    assert r.exit_code == 2 and "the instance is never overwritten, nor any file it reads" in r.output, r.output
    assert _snapshot(tmp_path) == before


def test_save_plan_protects_the_instance_files_in_the_api_too(instance, tmp_path):
    problem = load_instance(instance)
    assert problem.input_files == (str(instance.resolve()), str((tmp_path / "config.json").resolve()))
    plan = solve(problem, "greedy", SolveParams(time_limit_s=5))
    for target in (instance, tmp_path / "config.json"):
        with pytest.raises(UnsafeFileError, match="the instance is never overwritten"):
            save_plan(target, plan, problem)
    assert json.loads((tmp_path / "config.json").read_text()) == CONFIG


@pytest.mark.parametrize("name, message", [("", "the file name is empty"),
                                           ("plan\0.json", "contains a NUL byte"),
                                           ("new-folder/", "names a folder (it ends with /); give a file name"),
                                           (".", ". is a folder"),
                                           ("no/such/folder/plan.json", "does not exist")])
def test_bad_names_are_usage_errors(name, message, instance, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    r = _solve_to(instance, name)
    assert _snapshot(tmp_path) == before
    assert r.exit_code == 2 and "error: --output: " in r.output and message in r.output, r.output


def test_dev_null_is_refused_by_the_check_without_being_touched(monkeypatch):
    before = os.stat("/dev/null")
    with pytest.raises(UnsafeFileError, match="/dev/null is a character device; only a regular file is replaced"):
        check_output_target("/dev/null")
    monkeypatch.setattr(safefiles.tempfile, "mkstemp", _never)
    monkeypatch.setattr(safefiles.os, "replace", _never)
    with pytest.raises(UnsafeFileError):
        write_atomic("/dev/null", "plan")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_cli_refuses_dev_null_without_reaching_the_write(instance, monkeypatch):
    monkeypatch.setattr(safefiles.tempfile, "mkstemp", _never)
    monkeypatch.setattr(safefiles.os, "replace", _never)
    r = _solve_to(instance, "/dev/null")
    assert r.exit_code == 2 and "error: --output: /dev/null is a character device" in r.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_symlink_to_a_regular_file_is_written_through(instance, tmp_path):
    real = tmp_path / "plans" / "v3.json"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "plan.json"
    link.symlink_to(Path("plans") / "v3.json")
    r = _solve_to(instance, str(link))
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and os.readlink(link) == str(Path("plans") / "v3.json"), "the link is kept"
    assert json.loads(real.read_text())["schema_version"] == 1, "the file it points to is replaced"
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["v3.json"], "no temporary file is left"


def test_a_target_swapped_after_the_check_is_not_replaced(tmp_path, monkeypatch):
    target = tmp_path / "plan.json"
    target.write_text("old\n")
    real_fdopen = os.fdopen

    def swap_then_open(*args, **kwargs):  # while the text is written, the name becomes a FIFO
        target.unlink()
        os.mkfifo(target)
        return real_fdopen(*args, **kwargs)

    monkeypatch.setattr(safefiles.os, "fdopen", swap_then_open)
    with pytest.raises(UnsafeFileError, match="FIFO"):
        write_atomic(target, "new\n")
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_the_signal_handlers_are_restored(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    write_atomic(tmp_path / "plan.json", "{}\n")
    assert {s: signal.getsignal(s) for s in before} == before


# -- signals during a write, in a child process ------------------------------------------------------

_CHILD = textwrap.dedent("""
    import importlib.util, os, signal, sys, time

    # safefiles alone (it imports nothing of the project): the child starts in a blink.
    spec = importlib.util.spec_from_file_location("safefiles", sys.argv[3])
    safefiles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(safefiles)
    target, mode = sys.argv[1], sys.argv[2]
    real_fsync, calls = os.fsync, []

    def slow_fsync(fd):  # the first fsync (of the temporary file) waits for the signal
        calls.append(fd)
        if len(calls) == 1:
            print("writing", flush=True)
            time.sleep(0.5)
            if mode == "fail":
                raise OSError(28, "No space left on device")
        real_fsync(fd)

    if mode == "handler":
        signal.signal(signal.SIGTERM, lambda *a: (print("handled", flush=True), sys.exit(0)))
    safefiles.os.fsync = slow_fsync
    try:
        safefiles.write_atomic(target, "new\\n")
    except OSError as exc:
        print(f"failed: {exc.strerror}", flush=True)
    print("carried on", flush=True)
""")


def _child_write(tmp_path: Path, mode: str) -> subprocess.CompletedProcess:
    target = tmp_path / "plan.json"
    target.write_text("old\n")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(target), mode, safefiles.__file__],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_sigterm_during_a_write_is_held_until_the_file_is_complete(tmp_path):
    done = _child_write(tmp_path, "ok")
    assert done.returncode == -signal.SIGTERM, "the signal is delivered once the write is over"
    assert "carried on" not in done.stdout
    assert (tmp_path / "plan.json").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"], "no temporary file is left"


def test_sigterm_during_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    done = _child_write(tmp_path, "fail")
    assert done.returncode == -signal.SIGTERM
    assert (tmp_path / "plan.json").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_a_held_sigterm_reaches_the_programs_own_handler(tmp_path):
    done = _child_write(tmp_path, "handler")
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "handled"
    assert (tmp_path / "plan.json").read_text() == "new\n"


# -- a plan is not lost when stdout fails ------------------------------------------------------------

def _llmplace() -> list[str]:
    script = Path(sys.executable).with_name("llmplace")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from cli import main; main()"]


def _assert_plan_file(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["shards"]


def test_a_failed_print_keeps_the_plan_file(instance, tmp_path, monkeypatch):
    import cli

    real_echo = cli.click.echo

    def echo(message=None, *args, err=False, **kwargs):
        if not err:
            raise OSError(28, "No space left on device")
        real_echo(message, *args, err=err, **kwargs)

    monkeypatch.setattr(cli.click, "echo", echo)
    plan = tmp_path / "plan.json"
    r = _solve_to(instance, str(plan))
    assert r.exit_code == 1
    assert r.output.splitlines() == [f"error: cannot print the plan: No space left on device; "
                                     f"the plan file {plan} was written"]
    _assert_plan_file(plan)


@pytest.mark.slow
def test_stdout_on_a_full_disk_keeps_the_plan_file(instance, tmp_path):
    plan = tmp_path / "plan.json"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*_llmplace(), "solve", str(instance), "-o", str(plan)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: cannot print the plan: No space left on device; "
                                        f"the plan file {plan} was written"]
    _assert_plan_file(plan)


@pytest.mark.slow
def test_a_closed_stdout_pipe_keeps_the_plan_file(instance, tmp_path):
    plan = tmp_path / "plan.json"
    proc = subprocess.Popen([*_llmplace(), "solve", str(instance), "-o", str(plan)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `llmplace solve ... | head -0`
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert stderr.splitlines() == [f"error: cannot print the plan: Broken pipe; the plan file {plan} was written"]
    _assert_plan_file(plan)
