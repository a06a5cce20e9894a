"""Plan files are checked when read: made for this instance, schema version 1, finite, well-typed.

Each case edits a real plan file (solved here) the way a hand or a stale file
would, and ``llmplace evaluate`` must refuse it with exit 3 and a line naming the
field; ``--ignore-instance-mismatch`` evaluates a plan made for another version.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from placement import InvalidPlanError, load_instance, load_plan, plan_from_dict, plan_to_dict
from placement.errors import InstanceMismatchError
from solvers import SolveParams, solve

INSTANCE = Path(__file__).parent / "malformed" / "59-unreachable-spare-device.yaml"


@pytest.fixture(scope="module")
def plan_dict() -> dict:
    problem = load_instance(INSTANCE)
    return plan_to_dict(solve(problem, "greedy", SolveParams(time_limit_s=5)), problem)


def _evaluate(tmp_path: Path, data: dict | str, *flags: str, name: str = "plan.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return CliRunner().invoke(main, ["evaluate", str(INSTANCE), str(path), *flags])


def test_a_plan_for_this_instance_is_evaluated(plan_dict, tmp_path):
    assert _evaluate(tmp_path, plan_dict).exit_code == 0


def test_a_plan_made_for_another_instance_is_refused_naming_both_hashes(plan_dict, tmp_path):
    stale = copy.deepcopy(plan_dict)
    stale["instance"]["sha256"] = "0" * 64
    r = _evaluate(tmp_path, stale)
    assert r.exit_code == 3
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "instance.sha256: " in lines[0]
    assert "0" * 64 in lines[0] and plan_dict["instance"]["sha256"] in lines[0]
    assert "--ignore-instance-mismatch" in lines[0]
    forced = _evaluate(tmp_path, stale, "--ignore-instance-mismatch")
    assert forced.exit_code == 0, forced.output


def test_the_api_checks_the_instance_when_given_one(plan_dict, tmp_path):
    problem = load_instance(INSTANCE)
    stale = copy.deepcopy(plan_dict)
    stale["instance"]["sha256"] = "f" * 64
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(stale))
    with pytest.raises(InstanceMismatchError, match="f" * 64):
        load_plan(path, problem)
    assert load_plan(path, problem, ignore_instance_mismatch=True).shards
    assert load_plan(path).shards  # without an instance there is nothing to compare with


def test_a_plan_without_a_recorded_hash_is_not_compared(plan_dict, tmp_path):
    handmade = copy.deepcopy(plan_dict)
    del handmade["instance"]
    assert _evaluate(tmp_path, handmade).exit_code == 0


def _edit(plan: dict, path: str, value) -> dict:
    """``plan`` with the field at ``path`` (``routes.0.fraction``) set to ``value``."""
    out = copy.deepcopy(plan)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


CASES = {
    "schema-99": ("schema_version", 99, "schema_version: must be the integer 1 (the plan-file version this llmplace reads), got the number 99"),
    "schema-true": ("schema_version", True, "schema_version: must be the integer 1"),
    "schema-text": ("schema_version", "1", "schema_version: must be the integer 1"),
    "rate-negative": ("routes.0.rate_tok_s", -1.0, "routes[0].rate_tok_s: must be a number >= 0 or null"),
    "fraction-zero": ("routes.0.fraction", 0, "routes[0].fraction: must be a number in (0, 1]"),
    "fraction-above-one": ("routes.0.fraction", 1.5, "routes[0].fraction: must be a number in (0, 1]"),
    "layers-negative": ("shards.0.layers", [-1, 4], "shards[0].layers: must be [start, end] integers with 0 <= start < end"),
    "layers-reversed": ("shards.0.layers", [4, 2], "shards[0].layers: must be [start, end] integers with 0 <= start < end"),
    "layers-fractional": ("shards.0.layers", [0, 2.5], "shards[0].layers: must be [start, end] integers"),
    "shard-as-text": ("shards.0", "s0", "shards[0]: must be an object with id, model, device and layers, got the string 's0'"),
    "shard-as-list": ("shards.0", ["s0", "m", "d"], "shards[0]: must be an object with id, model, device and layers, got a list"),
    "route-as-number": ("routes.0", 3, "routes[0]: must be an object with request and path, got the number 3"),
    "shard-id-escape": ("shards.0.id", "s0\x1b[2J", "shards[0].id: contains U+001B ESCAPE"),
    "reason-newline": ("reasons", ["fine\nerror: forged"], "reasons[0]: contains U+000A LINE FEED"),
    "solve-time-negative": ("solver.solve_time_s", -3, "solver.solve_time_s: must be >= 0"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_plan_is_refused_by_field(case, plan_dict, tmp_path):
    path, value, want = CASES[case]
    r = _evaluate(tmp_path, _edit(plan_dict, path, value))
    assert r.exit_code == 3, r.output
    lines = r.output.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), r.output
    assert any(want in line for line in lines), r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field", ["rate_tok_s", "fraction"])
def test_nan_and_infinite_numbers_are_refused(literal, field, plan_dict, tmp_path):
    text = json.dumps(_edit(plan_dict, f"routes.0.{field}", "@@"))
    r = _evaluate(tmp_path, text.replace('"@@"', literal))
    assert r.exit_code == 3 and f"routes[0].{field}: must be a finite number" in r.output, r.output


def test_a_plan_file_named_yaml_is_read_as_json(plan_dict, tmp_path):
    assert _evaluate(tmp_path, plan_dict, name="plan.yaml").exit_code == 0
    r = _evaluate(tmp_path, "shards: []\n", name="plan.yaml")
    assert r.exit_code == 3 and "(plan files are JSON, whatever their name)" in r.output


def test_plan_from_dict_names_every_problem_at_once(plan_dict):
    bad = _edit(_edit(plan_dict, "schema_version", 2), "routes.0.fraction", float("nan"))
    with pytest.raises(InvalidPlanError) as err:
        plan_from_dict(bad)
    assert [i.path for i in err.value.issues] == ["schema_version", "routes[0].fraction"]
