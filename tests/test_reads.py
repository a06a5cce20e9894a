"""Reads that cannot hang or blow up: only regular files, at most 16 MiB, plan files as JSON only.

Every reader (instance, ``config_file``, plan) is given a FIFO, ``/dev/zero``,
``/dev/urandom``, a folder and an oversized file. A FIFO that no one writes would
block an ``open`` forever; the slow suite also runs those cases as commands in a
child process with a timeout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli import main
from placement import InvalidInstanceError, InvalidPlanError, load_instance, load_plan
from placement.safefiles import MAX_FILE_BYTES, UnsafeFileError, read_regular_bytes

CONFIG = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
          "vocab_size": 1000, "intermediate_size": 512}
NOT_REGULAR = {"/dev/zero": "is a character device, not a regular file",
               "/dev/urandom": "is a character device, not a regular file",
               "folder": "is a folder, not a regular file",
               "fifo": "is a FIFO (named pipe), not a regular file"}


def _instance(folder: Path, config_file: str) -> Path:
    path = folder / "instance.yaml"
    path.write_text(yaml.safe_dump({
        "models": [{"id": "small", "config_file": config_file, "weight_format": "q4_0"}],
        "devices": [{"id": "d0", "type": "l4"}],
        "workload": [{"id": "chat", "source": "d0", "prompt_tokens": 64, "output_tokens": 16}],
    }))
    return path


def _source(kind: str, tmp_path: Path) -> str:
    if kind == "folder":
        (tmp_path / "folder").mkdir()
        return str(tmp_path / "folder")
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return str(tmp_path / "fifo")
    return kind


def _run(args: list[str]) -> subprocess.CompletedProcess:
    """The command in a child process: a reader that blocked would be killed by the timeout, failing the test."""
    script = Path(sys.executable).with_name("llmplace")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from cli import main; main()"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", sorted(NOT_REGULAR))
def test_read_regular_bytes_refuses_what_is_not_a_regular_file(kind, tmp_path):
    with pytest.raises(UnsafeFileError, match=re.escape(NOT_REGULAR[kind])):
        read_regular_bytes(_source(kind, tmp_path))


@pytest.mark.parametrize("kind", sorted(NOT_REGULAR))
def test_instance_config_file_and_plan_readers_refuse_it(kind, tmp_path):
    source = _source(kind, tmp_path)
    with pytest.raises(InvalidInstanceError, match=re.escape(NOT_REGULAR[kind])):
        load_instance(source)
    with pytest.raises(InvalidInstanceError, match=re.escape(f"models[0].config_file: {source} {NOT_REGULAR[kind]}")):
        load_instance(_instance(tmp_path, source))
    with pytest.raises(InvalidPlanError, match=re.escape(NOT_REGULAR[kind])):
        load_plan(source)


@pytest.mark.slow
def test_a_fifo_as_instance_never_blocks_the_command(tmp_path):
    fifo = _source("fifo", tmp_path)
    direct = _run(["validate", fifo])
    assert direct.returncode == 3 and direct.stderr == f"error: {fifo}: is a FIFO (named pipe), not a regular file\n"


@pytest.mark.slow
def test_a_fifo_as_config_file_or_plan_never_blocks_the_command(tmp_path):
    fifo = _source("fifo", tmp_path)
    config = _run(["validate", str(_instance(tmp_path, fifo))])
    assert config.returncode == 3 and "config_file: " in config.stderr and "FIFO" in config.stderr
    plan = _run(["evaluate", str(Path(__file__).parent / "malformed" / "59-unreachable-spare-device.yaml"), fifo])
    assert plan.returncode == 3 and "FIFO" in plan.stderr


def test_files_over_the_size_cap_are_refused_without_being_read(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:  # sparse: nothing is written, the size says 16 MiB + 1
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(InvalidInstanceError, match="is larger than 16 MiB"):
        load_instance(big)
    with pytest.raises(InvalidPlanError, match="is larger than 16 MiB"):
        load_plan(big)
    big_config = tmp_path / "config.json"
    os.rename(big, big_config)
    with pytest.raises(InvalidInstanceError, match="config_file: .* is larger than 16 MiB"):
        load_instance(_instance(tmp_path, "config.json"))


def test_a_file_that_says_it_is_empty_is_still_read_only_up_to_the_cap():
    # /proc files report size 0; the read itself is bounded.
    assert read_regular_bytes("/proc/self/status", limit_bytes=1 << 20).startswith(b"Name:")
    with pytest.raises(UnsafeFileError, match="larger than"):
        read_regular_bytes("/proc/self/status", limit_bytes=10)


def test_symlinks_are_followed_when_reading(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "link.json").symlink_to("config.json")
    problem = load_instance(_instance(tmp_path, "link.json"))
    assert problem.input_files[1] == str((tmp_path / "config.json").resolve())


def test_a_config_file_with_a_5000_digit_integer_is_refused_by_field(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG).replace('"vocab_size": 1000', '"vocab_size": ' + "9" * 5000))
    with pytest.raises(InvalidInstanceError, match="vocab_size in config.json: must be an integer, got a number of 5,000"):
        load_instance(_instance(tmp_path, "config.json"))


def test_a_plan_named_yaml_is_read_as_json_so_aliases_never_expand(tmp_path):
    bomb = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
    path = tmp_path / "plan.yaml"
    path.write_text("\n".join(bomb) + "\n")
    r = CliRunner().invoke(main, ["evaluate", str(Path(__file__).parent / "malformed" / "59-unreachable-spare-device.yaml"),
                                  str(path)])
    assert r.exit_code == 3
    assert "invalid JSON at line 1, column 1: Expecting value (plan files are JSON, whatever their name)" in r.output


def test_a_nul_byte_in_a_path_is_an_input_error():
    with pytest.raises(InvalidInstanceError, match="contains a NUL byte"):
        load_instance("instance\0.yaml")
    with pytest.raises(InvalidPlanError, match="contains a NUL byte"):
        load_plan("plan\0.json")


def test_a_path_that_is_not_a_path_is_a_type_error():
    with pytest.raises(TypeError, match="a file path must be a str or os.PathLike, got NoneType"):
        load_instance(None)  # type: ignore[arg-type]
