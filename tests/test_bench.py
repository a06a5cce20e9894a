"""The benchmark harness on a few tiny instances: rows, resuming, errors, executors, the report, drawings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from conftest import INSTANCES
from instances.families import families, family
from placement import load_instance, parse_instance, save_plan
from solvers import SolveParams, solve
from solvers.bench import Part, Suite, run_bench
from solvers.bench.analysis import heuristic_ratios, optima
from solvers.bench.executors import AddressError, ClusterUnreachableError, Executor, WorkerLost, check_address
from solvers.bench.rows import best_bound
from solvers.bench.runner import BenchSummary, _drain, _Writer, plan_suite
from solvers.bench.store import ResultsFile, read_rows
from solvers.bench.tasks import KEY_FIELDS, row_key
from solvers.compare import compare
from solvers.registry import _REGISTRY, SolverInfo

TINY = Suite("test", "three zoo instances", (Part("tiny", (0,), 5.0, names=(
    "latency-2dev-4blk-chain-ample", "throughput-3dev-6blk-mesh-ample", "infeasible-memory-total")),))
SOLVERS = [("dp", None), ("greedy", None), ("ilp", "highs")]
ROW_FIELDS = {"status", "objective", "bound", "gap_to_best_bound", "best_bound", "ttft_ms", "tpot_ms", "energy_j",
              "throughput_tok_s", "solve_time_s", "peak_rss_mib", "machine", "packages", *KEY_FIELDS}


@pytest.fixture(scope="module")
def inline_rows(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("bench") / "rows.jsonl"
    summary = run_bench(TINY, out, SOLVERS, executor="inline", progress=False)
    return out, summary.rows


def _by(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["instance"], r["label"]): r for r in rows}


def test_one_row_per_instance_and_solver_with_every_field(inline_rows):
    out, rows = inline_rows
    assert len(rows) == 9 and len({row_key(r) for r in rows}) == 9
    assert all(ROW_FIELDS <= set(r) for r in rows)
    on_disk, skipped = read_rows(out)
    assert skipped == 0 and [row_key(r) for r in on_disk] == [row_key(r) for r in rows]
    got = _by(rows)
    assert got[("latency-2dev-4blk-chain-ample", "dp")]["status"] == "optimal"
    assert got[("latency-2dev-4blk-chain-ample", "dp")]["gap_to_best_bound"] == 0.0
    assert got[("infeasible-memory-total", "greedy")]["status"] == "infeasible"
    # Every row of an instance shares its best bound: the tightest any solver proved.
    bounds = {r["best_bound"] for r in rows if r["instance"] == "throughput-3dev-6blk-mesh-ample"}
    assert len(bounds) == 1 and None not in bounds


def test_heuristics_are_held_to_the_optimum_of_their_own_plan_space(tmp_path):
    # On a throughput instance maxflow (replicated shards) beats every pipeline; auto picks it. The pipeline
    # heuristics are scored against dp's pipeline optimum, and the pipeline bound is grouped apart from auto's.
    one = Suite("test", "one throughput instance", (Part("tiny", (0,), 5.0,
                                                        names=("throughput-3dev-6blk-mesh-ample",)),))
    rows = run_bench(one, tmp_path / "rows.jsonl", [("auto", None), ("maxflow", None), ("dp", None),
                                                     ("greedy", None)], executor="inline", progress=False).rows
    got = {r["label"]: r for r in rows}
    assert got["auto"]["picked"] == "maxflow" and got["auto"]["plan_space"] == "ranges"
    assert got["dp"]["plan_space"] == "pipeline" and got["dp"]["status"] == "optimal"
    assert got["maxflow"]["objective"] > got["dp"]["objective"] * 1.01  # replicas do better: the mix was real
    found = optima(rows)
    assert found == {"pipeline": got["dp"]["objective"], "ranges": pytest.approx(got["maxflow"]["objective"])}
    (ratio,) = heuristic_ratios(rows)
    assert ratio.label == "greedy" and ratio.ratio == pytest.approx(got["dp"]["objective"] / got["greedy"]["objective"])
    # The best bound over every plan searched is the replicated one (pipelines' is tighter but does not hold).
    assert got["greedy"]["best_bound"] == pytest.approx(got["maxflow"]["bound"])


def test_rows_of_earlier_runs_count_auto_in_the_space_it_picked():
    # Rows written before the runner recorded the searched space say auto's registered one ("pipeline").
    old = {"solver": "auto", "picked": "maxflow", "plan_space": "pipeline", "bound": 30.0, "status": "optimal",
           "objective": 30.0, "objective_sense": "max", "exact": True}
    dp = {"solver": "dp", "plan_space": "pipeline", "bound": 10.0, "status": "optimal", "objective": 10.0,
          "objective_sense": "max", "exact": True}
    greedy = {"solver": "greedy", "label": "greedy", "plan_space": "pipeline", "status": "feasible",
              "objective": 8.0, "objective_sense": "max", "exact": False}
    assert best_bound([old, dp], "max") == 30.0
    assert optima([old, dp, greedy]) == {"ranges": 30.0, "pipeline": 10.0}
    assert [r.ratio for r in heuristic_ratios([old, dp, greedy])] == [1.25]


def test_a_rerun_skips_written_rows_and_survives_a_torn_line(inline_rows, tmp_path):
    out = tmp_path / "rows.jsonl"
    out.write_text(inline_rows[0].read_text().rsplit("\n", 2)[0] + "\n" + '{"instance": "torn', encoding="utf-8")
    summary = run_bench(TINY, out, SOLVERS, executor="inline", progress=False)
    assert (summary.resumed, len(summary.rows), summary.skipped_lines) == (8, 1, 1)
    rows, skipped = read_rows(out)
    assert skipped == 1 and len(rows) == 9  # the torn line stays a line of its own; the new row is whole
    assert run_bench(TINY, out, SOLVERS, executor="inline", progress=False).rows == []


def test_a_solver_that_raises_is_an_error_row_and_the_run_goes_on(monkeypatch, tmp_path):
    broken = SolverInfo(name="broken", family="test", summary="raises", exact=False, entry="math:no_such_solver")
    monkeypatch.setitem(_REGISTRY, "broken", broken)
    summary = run_bench(TINY, tmp_path / "rows.jsonl", [("broken", None), ("greedy", None)], executor="inline",
                        progress=False)
    got = _by(summary.rows)
    error = got[("latency-2dev-4blk-chain-ample", "broken")]
    assert error["status"] == "error" and "AttributeError" in error["error"]
    assert got[("latency-2dev-4blk-chain-ample", "greedy")]["status"] == "feasible"
    rows = compare(parse_instance(family("tiny").instances(0)[0][1]), [("broken", None), ("greedy", None)])
    assert [r.status for r in rows] == ["error", "feasible"]


def test_unsupported_solvers_get_a_row_without_running(tmp_path):
    two_models = Suite("t", "", (Part("tiny", (0,), 5.0, names=("two-models-latency-3dev-4blk",)),))
    row = run_bench(two_models, tmp_path / "r.jsonl", [("dp", None)], executor="inline", progress=False).rows[0]
    assert row["status"] == "unsupported" and "more than one model" in row["reasons"][0]


class _FlakyExecutor(Executor):
    """Loses ``lost[instance]`` runs of an instance's task before it returns a row."""

    slots = 2

    def __init__(self, lost: dict[str, int]):
        super().__init__()
        self.lost, self.alone, self.restarts = dict(lost), [], 0
        self._inflight = 0

    def submit(self, task):
        self._inflight += 1
        self.alone.append(self._inflight == 1)
        return task

    def result(self, task):
        self._inflight -= 1
        if self.lost.get(task.instance, 0) > 0:
            self.lost[task.instance] -= 1
            raise WorkerLost("a worker process died")
        return {**task.header(), "status": "feasible", "objective": 1.0, "bound": None}

    def restart(self):
        self.restarts += 1


def test_a_lost_task_is_rerun_alone_then_reported(tmp_path):
    tasks, _ = plan_suite(TINY, [("greedy", None)])
    flaky = _FlakyExecutor({"latency-2dev-4blk-chain-ample": 2, "throughput-3dev-6blk-mesh-ample": 1})
    summary = BenchSummary()
    with ResultsFile(tmp_path / "r.jsonl") as out:
        from solvers.bench.progress import Progress
        with Progress(len(tasks), "t", enabled=False) as bar:
            from collections import deque
            _drain(flaky, deque(tasks), _Writer(out, tasks, [], bar, summary, None, "test"), bar)
    got = {r["instance"]: r for r in summary.rows}
    assert got["latency-2dev-4blk-chain-ample"]["status"] == "error"  # lost twice, the second time alone
    assert got["throughput-3dev-6blk-mesh-ample"]["status"] == "feasible"  # lost once, then fine alone
    assert flaky.restarts >= 1 and flaky.alone[-1]


def _same_as_inline(rows: list[dict], inline_rows: list[dict]) -> None:
    got, inline = _by(rows), _by(inline_rows)
    assert got.keys() == {k for k in inline if k[1] in {r["label"] for r in rows}}
    for key, row in got.items():
        assert (row["status"], row["objective"]) == (inline[key]["status"], inline[key]["objective"]), key


@pytest.mark.slow  # spawning workers that import the solvers takes seconds; the smoke suite runs this pool too
def test_a_local_process_pool_gives_the_same_rows(inline_rows, tmp_path):
    rows = run_bench(TINY, tmp_path / "rows.jsonl", SOLVERS, executor="local", jobs=1, progress=False).rows
    _same_as_inline(rows, inline_rows[1])
    assert all(r["rss_scope"] == "task" for r in rows)


def test_a_local_dask_cluster_gives_the_same_rows(inline_rows, tmp_path):
    pytest.importorskip("distributed")
    rows = run_bench(TINY, tmp_path / "rows.jsonl", SOLVERS[:2], executor="dask", jobs=1, progress=False).rows
    _same_as_inline(rows, inline_rows[1])
    assert {r["executor"] for r in rows} == {"dask"}


def test_cbc_runs_on_a_local_dask_cluster(tmp_path):
    """cbc runs CBC in a child process: the local cluster's workers are not daemonic, so it can."""
    pytest.importorskip("distributed")
    rows = run_bench(TINY, tmp_path / "rows.jsonl", [("cache-ilp", "cbc")], executor="dask", jobs=1,
                     progress=False).rows
    assert {r["status"] for r in rows} <= {"optimal", "infeasible", "unsupported"}, [r["error"] for r in rows]
    assert any(r["status"] == "optimal" for r in rows)


def test_the_report_has_its_tables(inline_rows, tmp_path):
    r = CliRunner().invoke(main, ["report", str(inline_rows[0]), "-o", str(tmp_path / "report"), "--no-plots"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report" / "report.md").read_text()
    for heading in ("## Where it ran", "## Solvers at a glance", "## Gap to the best known bound",
                    "## Heuristics against the exact optimum", "## Instances"):
        assert heading in text
    assert "| greedy | 2 |" in text  # greedy compared with the optimum on the two feasible instances
    assert "![" not in text


@pytest.mark.slow  # three figures through matplotlib
def test_the_report_draws_its_figures(inline_rows, tmp_path):
    pytest.importorskip("matplotlib")
    r = CliRunner().invoke(main, ["report", str(inline_rows[0]), "-o", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    for png in ("time_vs_size.png", "gap_to_best_bound.png", "heuristic_quality.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in (tmp_path / "report" / "report.md").read_text()


def test_draw_marks_shards_memory_and_the_binding_resource(tmp_path):
    pytest.importorskip("matplotlib")
    plan_file = tmp_path / "plan.json"
    problem = load_instance(INSTANCES / "device-edge-cloud.yaml")
    save_plan(plan_file, solve(problem, "dp", SolveParams()), problem)
    r = CliRunner().invoke(main, ["draw", str(plan_file), "--instance", str(INSTANCES / "device-edge-cloud.yaml"),
                                  "-o", str(tmp_path / "plan.svg")])
    assert r.exit_code == 0 and "binding resource device edge" in r.output, r.output
    svg = (tmp_path / "plan.svg").read_text()
    assert "llama-3.1-70b [0, 41) q4_k_m" in svg and "mem 21.8 / 28.0 GB" in svg
    r = CliRunner().invoke(main, ["draw", str(plan_file), "--instance", str(INSTANCES / "device-edge-cloud.yaml"),
                                  "-o", str(tmp_path / "plan.gif")])
    assert r.exit_code == 2 and ".png or .svg" in r.output


def test_bench_and_report_refuse_bad_paths_before_running(tmp_path):
    r = CliRunner().invoke(main, ["bench", "--suite", "smoke", "-o", str(tmp_path / "no" / "rows.jsonl")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = CliRunner().invoke(main, ["bench", "--suite", "smok", "-o", str(tmp_path / "rows.jsonl")])
    assert r.exit_code == 2 and "unknown suite 'smok'" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "out")])
    assert r.exit_code == 3 and "no such results file" in r.output


@pytest.mark.parametrize("executor, address", [
    ("dask", "foo"), ("dask", "tcp://foo"), ("dask", "tcp://host:99999"), ("dask", "http://host:8786"),
    ("dask", "tcp://host:8786/path"), ("dask", ""), ("ray", "ray://host"), ("ray", "foo"), ("ray", "tcp://host:1"),
    ("local", "tcp://host:8786"),
])
def test_an_address_that_cannot_be_read_is_a_usage_error_before_any_row(executor, address, tmp_path):
    # Checked without dask or ray: the syntax is ours to read, so the test needs neither installed.
    out = tmp_path / "rows.jsonl"
    r = CliRunner().invoke(main, ["bench", "--suite", "smoke", "--executor", executor, "--address", address,
                                  "-o", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --address: "), r.output
    assert ("expected" in lines[0]) if executor != "local" else ("dask and ray" in lines[0])
    assert not out.exists()
    with pytest.raises(AddressError):
        run_bench(TINY, out, SOLVERS, executor=executor, address=address, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("executor, address", [
    ("dask", "tcp://10.0.0.5:8786"), ("dask", "10.0.0.5:8786"), ("dask", "tls://[::1]:8786"), ("dask", "ucx://h:1"),
    ("ray", "auto"), ("ray", "local"), ("ray", "ray://head:10001"), ("ray", "head:6379"), ("dask", None),
])
def test_addresses_a_cluster_reads_are_accepted(executor, address):
    check_address(executor, address)


def test_a_dask_scheduler_that_does_not_answer_is_one_error(tmp_path):
    pytest.importorskip("distributed")
    from solvers.bench.executors import DaskExecutor
    with pytest.raises(ClusterUnreachableError, match="no dask scheduler answered at tcp://127.0.0.1:1"):
        DaskExecutor("tcp://127.0.0.1:1", connect_timeout_s=0.5)


def test_compare_splits_its_budget(tmp_path):
    r = CliRunner().invoke(main, ["compare", str(INSTANCES / "device-edge-cloud.yaml"), "--solvers",
                                  "greedy,dp,ilp:highs", "--budget", "3", "--time-limit", "2", "--json"])
    rows = json.loads(r.output)
    limits = {row["solver"]: row["time_limit_s"] for row in rows}
    assert limits["greedy"] == pytest.approx(1.0, abs=0.05)  # the first of three runs gets a third of the budget
    assert all(limit <= 2.0 for limit in limits.values())
    assert sum(row["solve_time_s"] for row in rows) <= 3.0 + 0.5


def test_the_smoke_suite_runs_every_registered_solver_somewhere():
    # "every solver" means a real row, not only `unsupported` ones: route needs a portfolio with a current cache.
    from solvers.bench.runner import _Refused
    from solvers.bench.suites import suite
    from solvers.registry import registered

    tasks, notes = plan_suite(suite("smoke"))
    assert notes == []  # every instance the suite names exists
    ran = {t.solver for t in tasks if not isinstance(t, _Refused)}
    assert {s.name for s in registered() if s.available()} - ran == set()


def test_families_parse():
    for fam in families():
        if fam.name in ("chains", "tiny", "pareto"):  # covered by their doctests; the slowest to build
            continue
        for name, data in fam.instances(0):
            assert parse_instance(data).name == name


def _solver_waiting_on_a_child(problem, params, options, deadline):
    """A solver whose backend binary ignores the time limit (as cbc can on huge programs)."""
    import subprocess
    subprocess.run(["sleep", "60"], check=False)
    raise RuntimeError("the backend was killed")


def test_a_run_past_its_time_limit_is_stopped(monkeypatch, tmp_path):
    import solvers.bench.tasks as tasks

    monkeypatch.setattr(tasks, "_OVERRUN_FACTOR", 0.0)
    monkeypatch.setattr(tasks, "_OVERRUN_S", 0.5)
    monkeypatch.setitem(_REGISTRY, "stuck", SolverInfo(name="stuck", family="test", summary="ignores its deadline",
                                                       exact=False, entry="test_bench:_solver_waiting_on_a_child"))
    one = Suite("t", "", (Part("tiny", (0,), 0.1, names=("latency-2dev-4blk-chain-ample",)),))
    row = run_bench(one, tmp_path / "r.jsonl", [("stuck", None)], executor="inline", progress=False).rows[0]
    assert row["status"] == "error" and "ignored its time limit" in row["error"]
    assert row["wall_time_s"] < 10
