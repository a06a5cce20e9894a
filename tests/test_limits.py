"""Limits: large inputs, time limits, atomic plan files and determinism.

Large inputs and time limits run in a child process with an address-space cap
and a wall-clock timeout, so a solver that overruns fails its test instead of
taking the machine with it.
"""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import placement.safefiles as safefiles
from cli import main
from conftest import INSTANCES, tiny_instance
from placement import InvalidInstanceError, parse_instance, plan_to_dict, save_plan
from placement.instance import MAX_DEVICES
from solvers import SolveParams, UnsupportedProblemError, registered, solve

MEMORY_CAP_BYTES = 4 * 2**30  # address space of a child run; real peaks are far below
LARGE_RSS_LIMIT_MB = 1024  # what validating and solving 1,000 devices may use
MEMORY_BUDGET_MB = 2048 + 512  # the README's budget for dp's and ilp's own memory, plus the instance and table
TIME_LIMIT_S = 1.0
SLACK_S = 1.5  # time a solver may take past its limit to stop, build the plan and evaluate it (README: Limits)
ILP_BACKENDS = ("highs", "cbc", "cpsat", "scip")

# Runs solvers on an instance file, one JSON line per event, in a child process.
_WORKER = r"""
import json, resource, sys, time
from placement import load_instance, evaluate
from solvers import SolveParams, UnsupportedProblemError, solve
path, limit, names = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
problem = load_instance(path)
for name in names:
    print(json.dumps({"solver": name, "event": "start"}), flush=True)
    started = time.perf_counter()
    out = {"solver": name, "event": "done"}
    solver, *variant = name.split(":")  # "ilp:cbc" runs a backend; "ilp:cbc:cold" without a warm start
    options = {"backend": variant[0]} if variant else {}
    if variant[1:] == ["cold"]:
        options["warm_start"] = "none"
    try:
        plan = solve(problem, solver, SolveParams(time_limit_s=limit, seed=0), options=options)
        out.update(status=plan.status.value, termination=plan.termination.value, objective=plan.objective,
                   bound=plan.bound, gap=plan.gap, reasons=list(plan.reasons), stats=plan.stats,
                   confirmed=evaluate(problem, plan).feasible if plan.shards else None)
    except UnsupportedProblemError as exc:
        out.update(status="refused", reasons=[str(exc)])
    except MemoryError:
        out.update(status="out_of_memory")
    out["wall_s"] = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["maxrss_mb"] = rss / (2**20 if sys.platform == "darwin" else 2**10)
    print(json.dumps(out), flush=True)
"""

# Runs the command line and reports the child's peak memory.
_CLI = r"""
import resource, sys
from cli import main
try:
    main(sys.argv[1:], prog_name="llmplace")
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    sys.stderr.write(f"\nmaxrss_mb={peak:.0f}\n")
"""


def _cap_memory() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def _child(code: str, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    try:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                              timeout=timeout_s, preexec_fn=_cap_memory if os.name == "posix" else None)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after {timeout_s:.0f} s: {' '.join(args)}\n{exc.stdout or ''}")


def _run_solvers(path: Path, names: list[str], limit_s: float) -> list[dict]:
    """Each solver's report; fails naming the solver that overran the whole run's time."""
    budget = len(names) * (limit_s + SLACK_S) + 30.0  # + start-up and reading the instance
    proc = _child(_WORKER, [str(path), str(limit_s), ",".join(names)], budget)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = [e for e in events if e["event"] == "done"]
    if len(done) < len(names):
        running = [e["solver"] for e in events if e["event"] == "start"][-1:] or ["(loading)"]
        pytest.fail(f"child died while running {running[0]} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return done


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _available() -> list[str]:
    return [s.name for s in registered() if s.available()]


# -- time limits --------------------------------------------------------------------------------------

def _mesh(n_devices: int, seed: int = 1) -> dict:
    """A sparse mesh of mixed devices (a chain plus random links) with three request classes."""
    rng = random.Random(seed)
    types = ["rtx-3060", "jetson-orin-nano-8gb", "apple-m1", "snapdragon-8-gen3", "rtx-4090", "l4",
             "raspberry-pi-5-8gb", "t4"]
    devices = [{"id": f"d{i}", "type": types[i % len(types)]} for i in range(n_devices)]
    links = [{"a": f"d{i}", "b": f"d{j}", "bandwidth_mbps": rng.choice([100, 300, 1000]),
              "latency_ms": rng.choice([1, 3, 7])}
             for i in range(n_devices) for j in range(i + 1, n_devices) if j == i + 1 or rng.random() < 0.5]
    workload = [{"id": f"r{k}", "source": f"d{k}", "prompt_tokens": 512 * (k + 1), "output_tokens": 128,
                 "rate_rps": 0.02} for k in range(3)]
    return {"name": f"mesh-{n_devices}", "models": [{"id": "phi-3-mini", "weight_format": "q8_0"}],
            "devices": devices, "links": links, "workload": workload}


def _check_report(report: dict, limit_s: float) -> None:
    name, status = report["solver"], report["status"]
    if status == "refused":
        assert report["wall_s"] < SLACK_S, f"{name} took {report['wall_s']:.1f} s to refuse"
        return
    assert status != "out_of_memory", f"{name} ran out of memory"
    assert report["wall_s"] <= limit_s + SLACK_S, \
        f"{name}: {report['wall_s']:.2f} s with a {limit_s:g} s limit ({status}, {report['termination']})"
    if status in ("optimal", "feasible"):
        assert report["confirmed"] is True, f"{name}'s plan breaks a limit: {report['reasons']}"
        if report["bound"] is not None:
            assert report["gap"] is not None, f"{name} reports a bound without its gap"
    else:
        assert status in ("infeasible", "no_solution"), (name, status, report["reasons"])
        assert report["reasons"], f"{name}: {status} without a reason"
    if report["termination"] == "time_limit":
        assert status in ("feasible", "no_solution"), (name, status)


def test_every_solver_respects_the_time_limit(tmp_path):
    path = _write(tmp_path / "mesh.yaml", _mesh(20))
    for report in _run_solvers(path, _available(), TIME_LIMIT_S):
        _check_report(report, TIME_LIMIT_S)


@pytest.mark.slow
@pytest.mark.parametrize("n_devices", [8, 24, 60])
def test_every_solver_respects_the_time_limit_at_several_sizes(tmp_path, n_devices):
    path = _write(tmp_path / "mesh.yaml", _mesh(n_devices, seed=n_devices))
    for limit in (0.5, 3.0):
        for report in _run_solvers(path, _available(), limit):
            _check_report(report, limit)


# -- large inputs -------------------------------------------------------------------------------------

def _star(n_devices: int) -> dict:
    """A cloud hub linked to ``n_devices - 1`` edge GPUs, with link energy (per-pair paths matter)."""
    rng = random.Random(0)
    devices = [{"id": "hub", "type": "a100-sxm-80gb", "tier": "cloud"}]
    devices += [{"id": f"d{i}", "type": rng.choice(["rtx-3060", "jetson-orin-nano-8gb", "apple-m1"])}
                for i in range(n_devices - 1)]
    links = [{"a": "hub", "b": f"d{i}", "bandwidth_mbps": rng.choice([100, 200, 500, 1000]),
              "latency_ms": round(rng.uniform(1, 20), 2), "energy_nj_per_bit": 10} for i in range(n_devices - 1)]
    return {"name": f"star-{n_devices}", "models": [{"id": "llama-3-8b", "weight_format": "q4_k_m"}],
            "devices": devices, "links": links,
            "workload": [{"id": "chat", "source": "d0", "prompt_tokens": 256, "output_tokens": 64},
                         {"id": "bulk", "source": "d500", "prompt_tokens": 1024, "output_tokens": 128}]}


def _peak_mb(stderr: str) -> float:
    return float(stderr.rsplit("maxrss_mb=", 1)[1].split()[0])


@pytest.mark.parametrize("command", [["validate"], ["solve", "--solver", "greedy", "--time-limit", "10"]])
def test_thousand_devices_within_time_and_memory(tmp_path, command):
    path = _write(tmp_path / "star.yaml", _star(1000))
    started = time.perf_counter()
    proc = _child(_CLI, [command[0], str(path), *command[1:]], timeout_s=60)
    wall = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert wall < 30, f"{command[0]} took {wall:.1f} s"
    assert _peak_mb(proc.stderr) < LARGE_RSS_LIMIT_MB


@pytest.mark.slow
def test_thousand_devices_every_solver(tmp_path):
    path = _write(tmp_path / "star.yaml", _star(1000))
    for report in _run_solvers(path, _available(), 10.0):
        _check_report(report, 10.0)
        assert report["maxrss_mb"] < 2 * LARGE_RSS_LIMIT_MB, report


def _deep_model(num_blocks: int) -> dict:
    config = {"hidden_size": 512, "num_hidden_layers": num_blocks, "num_attention_heads": 8,
              "intermediate_size": 1408, "vocab_size": 32000}
    return tiny_instance(
        models=[{"id": "deep", "config": config, "weight_format": "fp16"}],
        devices=[{"id": "phone", "type": "snapdragon-8-gen3"}, {"id": "edge", "type": "rtx-3060"},
                 {"id": "laptop", "type": "apple-m1"}, {"id": "cloud", "type": "l4"}],
        links=[{"a": "phone", "b": "edge", "bandwidth_mbps": 200, "latency_ms": 5},
               {"a": "edge", "b": "cloud", "bandwidth_mbps": 1000, "latency_ms": 20},
               {"a": "phone", "b": "laptop", "bandwidth_mbps": 100, "latency_ms": 3}],
    )


def test_five_hundred_blocks_with_the_baselines(tmp_path):
    path = _write(tmp_path / "deep.yaml", _deep_model(500))
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0
    names = [n for n in ("greedy", "uniform", "source", "cloud", "random", "dp") if n in _available()]
    for report in _run_solvers(path, names, 10.0):
        _check_report(report, 10.0)


@pytest.mark.slow
def test_five_hundred_blocks_every_solver(tmp_path):
    path = _write(tmp_path / "deep.yaml", _deep_model(500))
    for report in _run_solvers(path, _available(), 10.0):
        _check_report(report, 10.0)


def _largest(num_blocks: int = 4096, devices: int = MAX_DEVICES) -> dict:
    """The reader's largest instance: 2,000 devices and a model of 4,096 blocks."""
    data = _star(devices)
    data["models"] = _deep_model(num_blocks)["models"]
    return data


@pytest.mark.slow
def test_dp_and_ilp_refuse_the_largest_instance_up_front(tmp_path):
    # 2,000 devices x 4,096 blocks: dp's tables alone would be 2 TB, ilp's program 33 billion variables.
    path = _write(tmp_path / "largest.yaml", _largest())
    for report in _run_solvers(path, ["dp", "ilp", "ilp:cbc", "ilp:scip"], 5.0):
        assert report["status"] == "refused", report
        assert "budget" in report["reasons"][0] or "too large for memory" in report["reasons"][0]
        _check_report(report, 5.0)
        assert report["maxrss_mb"] < LARGE_RSS_LIMIT_MB, report


@pytest.mark.slow
def test_dp_at_the_edge_of_its_memory_budget(tmp_path):
    # 1,000 devices x 100 blocks: 1.4 GB of tables and states, accepted; it must keep time and memory.
    path = _write(tmp_path / "wide.yaml", _largest(num_blocks=100, devices=1000))
    for report in _run_solvers(path, ["dp"], 10.0):
        _check_report(report, 10.0)
        assert report["maxrss_mb"] < MEMORY_BUDGET_MB, report


@pytest.mark.slow
@pytest.mark.parametrize("limit_s", [2.0, 5.0])
def test_every_ilp_backend_keeps_the_limit_on_five_hundred_blocks(tmp_path, limit_s):
    # 500 blocks x 4 devices: a million variables; cbc used to take 36 s on a 2 s limit building its model.
    path = _write(tmp_path / "deep.yaml", _deep_model(500))
    names = [f"ilp:{b}{suffix}" for b in ILP_BACKENDS for suffix in ("", ":cold")]
    for report in _run_solvers(path, names, limit_s):
        _check_report(report, limit_s)
        assert report["maxrss_mb"] < MEMORY_BUDGET_MB, report
        if report["status"] != "refused" and not report["solver"].endswith(":cold"):
            assert report["status"] in ("optimal", "feasible"), report  # at least dp's warm start


def _helix24() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from helix_like import helix_like
    return helix_like(24, 80)


@pytest.mark.slow
def test_ilp_on_a_helix_cluster_returns_its_warm_start_with_a_bound(tmp_path):
    # 24 nodes x 80 blocks, throughput: ilp/highs found no plan in 300 s; cpsat returned errors.
    path = _write(tmp_path / "helix24.yaml", _helix24())
    limit = 10.0
    reports = _run_solvers(path, ["dp", *(f"ilp:{b}" for b in ILP_BACKENDS), *(f"ilp:{b}:cold" for b in ILP_BACKENDS)],
                           limit)
    dp = reports[0]
    assert dp["status"] == "optimal" and dp["stats"]["mode"] == "types"
    for report in reports:
        _check_report(report, limit)
        assert report["maxrss_mb"] < MEMORY_BUDGET_MB, report
        if report["status"] == "refused" or report["solver"].endswith(":cold"):
            continue
        assert report["status"] in ("optimal", "feasible"), report
        assert report["objective"] >= dp["objective"] * (1 - 1e-9) and report["bound"] is not None, report


def test_too_many_devices_is_refused_with_the_limit(tmp_path):
    data = _star(MAX_DEVICES + 1)
    with pytest.raises(InvalidInstanceError) as err:
        parse_instance(data)
    assert [str(i) for i in err.value.issues][0].startswith(
        f"devices: has {MAX_DEVICES + 1:,} entries; at most {MAX_DEVICES:,} are supported")
    r = CliRunner().invoke(main, ["validate", str(_write(tmp_path / "huge.yaml", data))])
    assert r.exit_code == 3 and "at most" in r.output


def test_too_many_blocks_is_refused(tmp_path):
    r = CliRunner().invoke(main, ["validate", str(_write(tmp_path / "deep.yaml", _deep_model(5000)))])
    assert r.exit_code == 3 and "models[0].config.num_hidden_layers: must be <= 4,096, got 5000" in r.output


# -- atomic plan files --------------------------------------------------------------------------------

def _plan_and_problem():
    problem = parse_instance(tiny_instance())
    return solve(problem, "greedy", SolveParams(time_limit_s=5)), problem


def _old_file(folder: Path) -> tuple[Path, bytes]:
    path = folder / "plan.json"
    path.write_text('{"old": "plan"}\n')
    return path, path.read_bytes()


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")])
def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch, where, error):
    plan, problem = _plan_and_problem()
    path, before = _old_file(tmp_path)

    def interrupt(*args, **kwargs):
        raise error

    if where == "write":  # the text is half written when the run stops
        real_fdopen = os.fdopen

        class Half:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, text):
                self.fh.write(text[: len(text) // 2])
                self.fh.flush()
                interrupt()

        monkeypatch.setattr(safefiles.os, "fdopen", lambda *a, **k: Half(real_fdopen(*a, **k)))
    else:
        monkeypatch.setattr(safefiles.os, where, interrupt)
    with pytest.raises(type(error)):
        save_plan(path, plan, problem)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"], "a temporary file was left behind"


def test_write_replaces_and_keeps_permissions(tmp_path):
    plan, problem = _plan_and_problem()
    path, _ = _old_file(tmp_path)
    path.chmod(0o640)
    save_plan(path, plan, problem)
    assert json.loads(path.read_text())["status"] == plan.status.value
    assert path.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "new.json"
    save_plan(fresh, plan, problem)
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "plan.json"]


def test_cli_write_failure_keeps_old_plan_and_prints_the_new_one(tmp_path, monkeypatch):
    path, before = _old_file(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safefiles.os, "replace", full)
    r = CliRunner().invoke(main, ["solve", str(INSTANCES / "device-edge-cloud.yaml"), "--solver", "cloud",
                                  "-o", str(path)])
    assert r.exit_code == 1
    assert "shards:" in r.output, "the plan must still be shown"
    assert f"error: cannot write the plan file {path}: No space left on device" in r.output
    assert "Traceback" not in r.output
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_cli_refuses_to_write_over_the_instance(tmp_path):
    instance = tmp_path / "i.yaml"
    instance.write_text(yaml.safe_dump(tiny_instance()))
    before = instance.read_bytes()
    r = CliRunner().invoke(main, ["solve", str(instance), "-o", str(instance)])
    assert r.exit_code == 2 and "the instance is never overwritten" in r.output
    assert instance.read_bytes() == before


def test_cli_refuses_a_missing_output_folder_before_solving(tmp_path):
    instance = _write(tmp_path / "i.yaml", tiny_instance())
    r = CliRunner().invoke(main, ["solve", str(instance), "-o", str(tmp_path / "no" / "such" / "plan.json")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_solving_never_touches_the_instance_file(tmp_path):
    instance = _write(tmp_path / "i.yaml", tiny_instance())
    before, mtime = instance.read_bytes(), instance.stat().st_mtime_ns
    r = CliRunner().invoke(main, ["solve", str(instance), "-o", str(tmp_path / "plan.json")])
    assert r.exit_code == 0, r.output
    assert instance.read_bytes() == before and instance.stat().st_mtime_ns == mtime


# -- determinism --------------------------------------------------------------------------------------

def _comparable(plan_dict: dict) -> dict:
    """The plan file without what measures the run rather than the answer (wall-clock times)."""
    out = json.loads(json.dumps(plan_dict))
    out["solver"].pop("solve_time_s", None)
    stats = out["solver"].get("stats") or {}
    for key in [k for k in stats if k.endswith("_time_s")]:
        stats.pop(key)
    return out


def _solve_all(problem, seed: int) -> dict[str, dict]:
    out = {}
    for name in _available():
        try:
            plan = solve(problem, name, SolveParams(time_limit_s=20, seed=seed))
        except UnsupportedProblemError:
            continue
        out[name] = _comparable(plan_to_dict(plan, problem))
    return out


def test_same_seed_gives_the_same_plan():
    problem = parse_instance(_mesh(5))
    first, second = _solve_all(problem, seed=7), _solve_all(parse_instance(_mesh(5)), seed=7)
    assert first and first == second


_DETERMINISM = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from test_limits import _mesh, _solve_all
from placement import parse_instance
print(json.dumps(_solve_all(parse_instance(_mesh(5)), seed=int(sys.argv[1])), sort_keys=True))
"""


def test_same_seed_same_plan_across_processes():
    # Set and dict orders differ between processes with different hash seeds.
    here = str(Path(__file__).resolve().parent)
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, "-c", _DETERMINISM, "11", here], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stdout)
    assert runs[0] == runs[1] and json.loads(runs[0])
