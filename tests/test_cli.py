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


def test_plan_file_with_a_key_given_twice_is_refused(tmp_path):
    out = tmp_path / "plan.json"
    run("solve", DEMO, "--solver", "dp", "-o", str(out))
    text = out.read_text().replace('"status": "optimal"', '"status": "optimal", "status": "feasible"', 1)
    out.write_text(text)
    r = CliRunner().invoke(main, ["evaluate", DEMO, str(out)])
    assert r.exit_code == 3 and "'status' is given twice" in r.output
