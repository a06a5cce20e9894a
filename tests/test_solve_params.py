"""Crashes turned into usage errors: SolveParams checks every setting, the command line through it.

The same bad value gives the same message from the API (``ValueError`` naming the
field) and from ``llmplace solve`` / ``compare`` (exit 2, one line naming the
option); wrong arguments to ``solve`` and ``evaluate`` are ``TypeError`` naming the
argument; ``compare`` reports a solver that raises as that solver's ``error`` row.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import solvers.registry as registry
from cli import main
from placement import Plan, Route, Shard, evaluate, load_instance
from solvers import SolveParams, solve
from solvers.api import MAX_SEED, MAX_THREADS, MAX_TIME_LIMIT_S
from solvers.compare import compare

INSTANCE = Path(__file__).parent / "malformed" / "59-unreachable-spare-device.yaml"

BAD = [
    ("time_limit_s", "--time-limit", math.nan, "nan", "must be a number of seconds in (0, 1e+07], got nan"),
    ("time_limit_s", "--time-limit", math.inf, "inf", "must be a number of seconds in (0, 1e+07], got inf"),
    ("time_limit_s", "--time-limit", 0.0, "0", "must be a number of seconds in (0, 1e+07], got 0.0"),
    ("time_limit_s", "--time-limit", 1e8, "1e8", "must be a number of seconds in (0, 1e+07], got 100000000.0"),
    ("rel_gap", "--rel-gap", math.nan, "nan", "must be a number in [0, 1), got nan"),
    ("rel_gap", "--rel-gap", 1.0, "1", "must be a number in [0, 1), got 1.0"),
    ("seed", "--seed", 10**29, "1" + "0" * 29, "must be a whole number from 0 to 2147483647 (backends take 32-bit seeds)"),
    ("seed", "--seed", -1, "-1", "must be a whole number from 0 to 2147483647"),
    ("threads", "--threads", 100_000, "100000", "must be a whole number from 1 to 64, got 100000"),
    ("threads", "--threads", 0, "0", "must be a whole number from 1 to 64, got 0"),
]


@pytest.mark.parametrize("field, option, value, text, message", BAD, ids=[f"{b[0]}={b[3]}" for b in BAD])
def test_the_api_and_the_command_line_refuse_alike(field, option, value, text, message):
    with pytest.raises(ValueError) as err:
        SolveParams(**{field: value})
    assert str(err.value).startswith(f"{field}: {message}")
    for command in (["solve", str(INSTANCE)], ["compare", str(INSTANCE), "--solvers", "greedy"]):
        if option == "--rel-gap" and command[0] == "compare":
            continue
        r = CliRunner().invoke(main, [*command, option, text])
        assert r.exit_code == 2, r.output
        lines = r.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {option}: {message}"), r.output


@pytest.mark.parametrize("fields, message", [
    ({"threads": 1.5}, "threads: must be a whole number from 1 to 64, got 1.5"),
    ({"threads": True}, "threads: must be a whole number"),
    ({"seed": 2.0}, "seed: must be a whole number"),
    ({"time_limit_s": "60"}, "time_limit_s: must be a number of seconds"),
    ({"time_limit_s": None}, "time_limit_s: must be a number of seconds"),
    ({"rel_gap": -0.0 - 1e-9}, "rel_gap: must be a number in [0, 1)"),
    ({"verbose": "yes"}, "verbose: must be true or false"),
])
def test_wrong_types_are_refused(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SolveParams(**fields)


def test_the_edges_are_accepted_and_numpy_numbers_become_plain():
    p = SolveParams(time_limit_s=MAX_TIME_LIMIT_S, threads=MAX_THREADS, seed=MAX_SEED, rel_gap=0.0)
    assert (p.time_limit_s, p.threads, p.seed) == (1e7, 64, 2**31 - 1)
    q = SolveParams(time_limit_s=np.float64(2.5), threads=np.int64(2), seed=np.int32(7))
    assert type(q.threads) is int and type(q.seed) is int and type(q.time_limit_s) is float


def test_solve_and_evaluate_name_the_wrong_argument():
    problem = load_instance(INSTANCE)
    with pytest.raises(TypeError, match="problem must be a placement.Problem .*got NoneType"):
        solve(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params must be a solvers.SolveParams, got dict"):
        solve(problem, "greedy", {"threads": 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="plan must be a placement.Plan, got NoneType"):
        evaluate(problem, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="problem must be a placement.Problem"):
        evaluate(None, Plan())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"plan.shards\[0\] must be a placement.Shard, got dict \(a plan file's dict"):
        evaluate(problem, Plan(shards=({"id": "s0", "model": "m", "device": "d", "layers": [0, 1]},)))  # type: ignore
    with pytest.raises(TypeError, match=r"plan.routes\[0\] must be a placement.Route, got tuple"):
        evaluate(problem, Plan(shards=(Shard("s0", "m", "d", (0, 1)),), routes=(("chat", ("s0",)),)))  # type: ignore
    assert isinstance(Route("chat", ("s0",)), Route)


def test_compare_reports_a_raising_solver_as_its_error_row(monkeypatch):
    module, _, function = registry.solver_info("uniform").entry.partition(":")

    def boom(problem, params, options, deadline):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(importlib.import_module(module), function, boom)
    rows = compare(load_instance(INSTANCE), [("greedy", None), ("uniform", None), ("cloud", None)],
                   SolveParams(time_limit_s=5))
    by_name = {r.solver: r for r in rows}
    assert [r.solver for r in rows] == ["greedy", "uniform", "cloud"]
    assert by_name["uniform"].status == "error"
    assert by_name["uniform"].reasons[0].startswith("ZeroDivisionError: float division by zero")
    assert by_name["greedy"].status in ("feasible", "optimal") and by_name["cloud"].status != "error"
    r = CliRunner().invoke(main, ["compare", str(INSTANCE), "--solvers", "greedy,uniform", "--time-limit", "5"])
    assert r.exit_code == 0, r.output
    assert "uniform: ZeroDivisionError: float division by zero" in r.output
