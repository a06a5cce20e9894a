"""The malformed-file corpus: every file in tests/malformed/ is reported as expected.yaml says.

Each file is run through ``llmplace validate`` and ``llmplace solve`` in-process;
two are run as real subprocesses to prove that nothing but the one-line
errors reaches the terminal. Malformed plan files given to ``llmplace evaluate``
are invalid input too (exit 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli import main

CORPUS = Path(__file__).resolve().parent / "malformed"
EXPECTED: dict = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
FILES = sorted(p.name for p in CORPUS.iterdir() if p.name != "expected.yaml")


def _exit_code(entry: dict, command: str) -> int:
    code = entry["exit"]
    return code[command] if isinstance(code, dict) else code


def _expected_lines(entry: dict, command: str, code: int) -> list[str]:
    lines = entry.get("lines", [])
    if isinstance(lines, dict):
        return lines.get(command, [])
    return lines if code != 0 else []


def _check_output(output: str, entry: dict, command: str, code: int) -> None:
    assert "Traceback" not in output
    lines = output.splitlines()
    for want in _expected_lines(entry, command, code):
        assert any(want in line for line in lines), f"missing {want!r} in:\n{output}"
    if code == 0:
        return
    if code == 3:
        errors = [line for line in lines if line.startswith("error: ")]
        assert errors and len(errors) == len(lines), f"every line must be one error:\n{output}"
        if "count" in entry:
            assert len(errors) == entry["count"], output


def test_corpus_is_complete():
    assert len(FILES) >= 40
    assert set(FILES) == set(EXPECTED), "every file needs an entry in expected.yaml, and every entry a file"
    invalid = [f for f in FILES if _exit_code(EXPECTED[f], "validate") == 3]
    assert len(invalid) >= 40


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("command", ["validate", "solve"])
def test_malformed_file(name, command, tmp_path):
    entry = EXPECTED[name]
    args = [command, str(CORPUS / name)]
    if command == "solve":
        args += ["--time-limit", "5", "-o", str(tmp_path / "plan.json")]
    before = (CORPUS / name).read_bytes()
    result = CliRunner().invoke(main, args)
    want = _exit_code(entry, command)
    assert result.exit_code == want, f"{command} {name}: exit {result.exit_code}, expected {want}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    _check_output(result.output, entry, command, want)
    assert (CORPUS / name).read_bytes() == before, "the instance file must never be modified"
    if command == "solve" and want == 3:
        assert not (tmp_path / "plan.json").exists(), "no plan file for an invalid instance"


def _llmplace() -> list[str]:
    script = Path(sys.executable).with_name("llmplace")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from cli import main; main()"]


@pytest.mark.parametrize("name", ["52-wrong-types-everywhere.yaml", "01-yaml-unclosed-bracket.yaml"])
def test_no_traceback_reaches_the_terminal(name):
    env = {k: v for k, v in os.environ.items() if k != "LLMPLACE_DEBUG"}
    proc = subprocess.run([*_llmplace(), "solve", str(CORPUS / name)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines)
    for want in EXPECTED[name]["lines"]:
        assert any(want in line for line in lines), proc.stderr


PLAN_CASES = {
    "not-json": ("{\"status\": ", "invalid JSON at line 1"),
    "objective-not-object": ({"shards": [], "routes": [], "objective": 5}, "objective: must be an object"),
    "layers-not-a-pair": ({"shards": [{"id": "s0", "model": "m", "device": "d", "layers": [0]}], "routes": []},
                          "shards[0].layers: must be [start, end] integers"),
    "unknown-status": ({"shards": [], "routes": [], "status": "great"}, "status: must be one of"),
    "reasons-not-text": ({"shards": [], "routes": [], "reasons": [1]}, "reasons: must list strings"),
    "predicted-garbled": ({"shards": [], "routes": [], "predicted": {"requests": {"chat": {"bogus": 1}}}},
                          "predicted: cannot be read"),
}


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
def test_malformed_plan_file_is_exit_3(case, tmp_path):
    content, want = PLAN_CASES[case]
    plan = tmp_path / "plan.json"
    plan.write_text(content if isinstance(content, str) else json.dumps({"schema_version": 1, **content}))
    result = CliRunner().invoke(main, ["evaluate", str(CORPUS / "59-unreachable-spare-device.yaml"), str(plan)])
    assert result.exit_code == 3, result.output
    assert any(line.startswith("error: ") and want in line for line in result.output.splitlines()), result.output
    assert "Traceback" not in result.output
