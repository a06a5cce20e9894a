"""The command line: output, JSON, exit codes, and one-line errors."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from cli import main
from conftest import INSTANCES, tiny_instance

DEMO = str(INSTANCES / "device-edge-cloud.yaml")


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_solve_prints_the_plan_table():
    r = run("solve", DEMO, "--solver", "dp")
    assert r.exit_code == 0, r.output
    for needle in ("shards:", "TTFT ms", "TPOT ms", "E2E ms", "J/token", "used / usable", "objective: latency"):
        assert needle in r.output


def test_solve_json_is_only_json(tmp_path):
    out = tmp_path / "plan.json"
    r = run("solve", DEMO, "--solver", "dp", "--json", "-o", str(out))
    plan = json.loads(r.output)
    assert plan["status"] == "optimal" and plan["objective"]["name"] == "latency"
    assert json.loads(out.read_text()) == plan
    ev = run("evaluate", DEMO, str(out), "--json")
    assert ev.exit_code == 0
    assert json.loads(ev.output)["objective"]["value"] == pytest.approx(plan["objective"]["value"], rel=1e-12)


def test_predict_json_fields():
    r = run("predict", "--model", "llama-3-8b", "--device", "rtx-4090", "--weight-format", "q4_k_m",
            "--prompt-tokens", "512", "--output-tokens", "128", "--json")
    assert r.exit_code == 0
    fields = json.loads(r.output)
    for key in ("ttft_ms", "tpot_ms", "prefill_tok_s", "decode_tok_s", "e2e_ms", "energy_j_per_token", "power_w",
                "weights_gb", "kv_cache_gb", "peak_memory_gb", "fits", "calibrated"):
        assert key in fields
    assert fields["fits"] is True and fields["decode_tok_s"] > 0


@pytest.mark.parametrize("kind", ["models", "devices", "formats", "engines", "workloads"])
def test_catalog_lists(kind):
    r = run("catalog", kind, "--json")
    assert r.exit_code == 0 and len(json.loads(r.output)) >= 5


def test_solvers_lists_baselines():
    r = run("solvers")
    for name in ("greedy", "uniform", "source", "cloud"):
        assert name in r.output


def _write(tmp_path, data, name="i.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_bad_instance_is_one_line_per_problem_exit_3(tmp_path):
    data = tiny_instance()
    data["devices"][0]["type"] = "iphone-99"
    data["links"][0]["b"] = "cloud"
    r = CliRunner().invoke(main, ["solve", _write(tmp_path, data)])
    assert r.exit_code == 3
    lines = r.output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert "devices[0].type" in lines[0] and "links[0].b" in lines[1]
    assert "Traceback" not in r.output


def test_model_that_fits_nowhere_is_infeasible_exit_4(tmp_path):
    data = tiny_instance(models=[{"id": "llama-3-70b", "weight_format": "fp16"}])
    r = CliRunner().invoke(main, ["solve", _write(tmp_path, data)])
    assert r.exit_code == 4
    assert "infeasible" in r.output and "memory: model llama-3-70b needs at least" in r.output


def test_unknown_solver_is_a_usage_error():
    r = CliRunner().invoke(main, ["solve", DEMO, "--solver", "magic"])
    assert r.exit_code == 2 and "unknown solver 'magic'" in r.output


def test_predict_unknown_device_is_a_usage_error():
    r = CliRunner().invoke(main, ["predict", "-m", "llama-3-8b", "-d", "rtx-9090", "--prompt-tokens", "1",
                                  "--output-tokens", "1"])
    assert r.exit_code == 2 and "unknown device type 'rtx-9090'" in r.output


def test_missing_file_exit_3():
    r = CliRunner().invoke(main, ["validate", "no/such/file.yaml"])
    assert r.exit_code == 3 and "no such file" in r.output


def test_compare_lines_up_solvers():
    r = run("compare", DEMO, "--solvers", "greedy,cloud", "--json")
    rows = json.loads(r.output)
    assert [row["solver"] for row in rows] == ["greedy", "cloud"]
    assert all(row["objective"] > 0 for row in rows)
    text = run("compare", DEMO, "--solvers", "greedy,cloud").output
    assert "objective latency (ms)" in text and "TTFT ms" in text


def test_compare_gaps_hold_within_each_plan_space():
    """A caching solver's bound (serving nothing) is no bound on pipelines: dp's proven optimum has gap 0."""
    rows = json.loads(run("compare", DEMO, "--solvers", "dp,cache-ilp:highs", "--json").output)
    gaps = {row["solver"]: row["gap_to_best_bound"] for row in rows}
    assert gaps["dp"] == 0.0 and gaps["cache-ilp"] > 0.5


def test_plan_file_with_a_key_given_twice_is_refused(tmp_path):
    out = tmp_path / "plan.json"
    run("solve", DEMO, "--solver", "dp", "-o", str(out))
    text = out.read_text().replace('"status": "optimal"', '"status": "optimal", "status": "feasible"', 1)
    out.write_text(text)
    r = CliRunner().invoke(main, ["evaluate", DEMO, str(out)])
    assert r.exit_code == 3 and "'status' is given twice" in r.output


def test_evaluate_says_its_own_verdict_not_the_files(tmp_path):
    out = tmp_path / "plan.json"
    run("solve", DEMO, "--solver", "dp", "-o", str(out))
    r = CliRunner().invoke(main, ["evaluate", DEMO, str(out)])
    assert r.exit_code == 0 and r.output.startswith("device-edge-cloud: evaluated plan -> meets every limit")
    assert "the plan file says: solver dp: optimal (converged)" in r.output
    data = json.loads(out.read_text())
    data["shards"][0]["layers"], data["shards"][1]["layers"] = [0, 60], [60, 80]  # the edge box cannot hold 60
    out.write_text(json.dumps(data))
    r = CliRunner().invoke(main, ["evaluate", DEMO, str(out)])
    assert r.exit_code == 7, r.output
    first, *_ = r.output.splitlines()
    assert first == "device-edge-cloud: evaluated plan -> breaks 1 limit"
    assert "broken limits:\n  - device edge: needs" in r.output
    verdict = json.loads(CliRunner().invoke(main, ["evaluate", DEMO, str(out), "--json"]).output)["evaluation"]
    assert verdict["meets_every_limit"] is False and verdict["violations"][0]["kind"] == "memory"


def test_auto_is_the_default_and_says_what_it_picked():
    r = run("solve", DEMO)
    assert r.output.startswith("device-edge-cloud: solver auto (picked dp) -> optimal")
    hybrid = run("solve", str(INSTANCES / "hybrid.yaml"))
    assert "solver auto (picked ilp), backend highs -> optimal" in hybrid.output


@pytest.mark.parametrize("option, expected", [
    ("restarts=0", "option restarts: must be an integer in [1, 10000], got 0"),
    ("restarts=many", "option restarts: must be an integer in [1, 10000], got 'many'"),
    ("restarts=2.5", "option restarts: must be an integer in [1, 10000], got 2.5"),
    ("speed=fast", "solver 'matching' has no option speed"),
    ("restarts=" + "9" * 5000, "option restarts: must be an integer in [1, 10000], got '99999"),
    ("restarts=[1", "option restarts: must be an integer in [1, 10000], got '[1'"),
])
def test_bad_solver_options_are_usage_errors(option, expected):
    r = CliRunner().invoke(main, ["solve", DEMO, "--solver", "matching", "-O", option])
    assert r.exit_code == 2 and expected in r.output, r.output


def test_a_closed_pipe_ends_quietly():
    import os
    import subprocess
    import sys
    read, write = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", "catalog", "devices", "--json"],
                             stdout=write, stderr=subprocess.PIPE, cwd=str(INSTANCES.parent))
    os.close(write)
    os.close(read)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 141 and err == b""


def test_native_solver_output_stays_off_stdout(capfd):
    """What a backend's C code prints never lands among the plan or JSON on stdout."""
    import os

    from solvers.ilp.backends import _native_stdout

    with _native_stdout(verbose=False):
        os.write(1, b"native debug line\n")
    with _native_stdout(verbose=True):
        os.write(1, b"native log line\n")
    out, err = capfd.readouterr()
    assert "native" not in out
    assert "native log line" in err and "native debug line" not in err


def test_maxflow_json_parses_from_a_real_process(tmp_path):
    """HiGHS prints a debug line from its MIP on this instance; stdout must still be one JSON document."""
    import subprocess
    import sys

    from instances.zoo import zoo

    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump(dict(zoo())["throughput-3dev-6blk-star-mixed-2cls-rates"]))
    done = subprocess.run([sys.executable, "-m", "cli", "solve", str(path), "--solver", "maxflow", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=INSTANCES.parent)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["solver"]["name"] == "maxflow"
