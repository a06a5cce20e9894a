"""Throughput of one pipeline on Helix-class clusters: dp (types mode) and ilp on every backend.

Instances (see :mod:`helix_like`): the four published Helix clusters converted node for node
(``helix-single24``, ``helix-geo3region24``, ``helix-hetero42``, ``helix-quality10``, from the
shipped ``instances/helix/helix_clusters.json``) and two generated ones, ``helix-like-24x80`` (24 nodes
of A100-40GB / L4 / T4, Llama-2-70B's 80 blocks) and ``helix-like-32x32`` (32 nodes, 32 blocks).
Every instance asks for the best single pipeline's decode tokens/s.

Each run is a child process (``resource`` reports its peak memory) with the same time limit:
``dp``; ``ilp`` with each backend as it is by default (warm-started from dp); and, with
``--cold``, ``ilp`` with ``-O warm_start=none`` (the program alone, as ilp ran before warm starts).
``--label`` tags the rows (``before`` for a run of the code before these changes, given on
``PYTHONPATH``; such code has no ``warm_start`` option, so ``--cold`` is left off there).

Results: ``benchmarks/results/throughput_pipelines.jsonl`` (a label's rows on the instances run
again replace its old ones) and ``throughput_pipelines.md`` (every label's rows).

Run::

    .venv/bin/python benchmarks/throughput_pipelines.py [--time-limit 60] [--cold] [--label after]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from helix_like import helix_like, reference_cluster  # noqa: E402

RESULTS = HERE / "results"
JSONL = RESULTS / "throughput_pipelines.jsonl"
MD = RESULTS / "throughput_pipelines.md"
BACKENDS = ("highs", "cbc", "cpsat", "scip")

_CHILD = r"""
import json, resource, sys, time
from placement import load_instance, evaluate
from solvers import SolveParams, solve
path, solver, options, limit = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
problem = load_instance(path)
started = time.perf_counter()
out = {}
try:
    plan = solve(problem, solver, SolveParams(time_limit_s=limit, threads=2), options=options)
    out = {"status": plan.status.value, "termination": plan.termination.value, "objective": plan.objective,
           "bound": plan.bound, "gap": plan.gap, "reasons": list(plan.reasons)[:2],
           "stats": {k: v for k, v in plan.stats.items() if isinstance(v, (int, float, str, bool))},
           "confirmed": evaluate(problem, plan).feasible if plan.shards else None}
except Exception as exc:  # a refusal is a result too
    out = {"status": "refused" if type(exc).__name__ == "UnsupportedProblemError" else "raised",
           "reasons": [f"{type(exc).__name__}: {exc}"]}
out["wall_s"] = time.perf_counter() - started
out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def instances() -> list[tuple[str, dict[str, Any]]]:
    out = [(name.replace("_", "-"), reference_cluster(name))
           for name in ("helix_single24", "helix_geo3region24", "helix_hetero42", "helix_quality10")]
    out.append(("helix-like-24x80", helix_like(24, 80)))
    out.append(("helix-like-32x32", helix_like(32, 32)))
    return out


def run_child(path: Path, solver: str, options: dict, limit_s: float) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), solver, json.dumps(options), str(limit_s)],
                              capture_output=True, text=True, timeout=limit_s + 300)
    except subprocess.TimeoutExpired:
        return {"status": "killed", "reasons": [f"still running {limit_s + 300:.0f} s after start"]}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"status": "crashed", "reasons": [proc.stderr[-500:]]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--cold", action="store_true", help="also run ilp without a warm start")
    parser.add_argument("--label", default="after")
    parser.add_argument("--only", default="", help="comma-separated instance names (default: all)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    wanted = {n for n in args.only.split(",") if n}
    runs = [("dp", None, {})] + [("ilp", b, {"backend": b}) for b in args.backends.split(",")]
    if args.cold:
        runs += [("ilp", b, {"backend": b, "warm_start": "none"}) for b in args.backends.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in instances():
            if wanted and name not in wanted:
                continue
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            for solver, backend, options in runs:
                result = run_child(path, solver, options, args.time_limit)
                row = {"label": args.label, "instance": name, "devices": len(data["devices"]) - 1,
                       "solver": solver, "backend": backend, "warm_start": options.get("warm_start", "default"),
                       "time_limit_s": args.time_limit, **result}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "stats"}), flush=True)
    write(rows, args.label)


def write(rows: list[dict[str, Any]], label: str) -> None:
    from placement import write_atomic
    old = [json.loads(line) for line in JSONL.read_text().splitlines()] if JSONL.exists() else []
    rerun = {(r["label"], r["instance"]) for r in rows}  # a label's rows on the instances run again are replaced
    kept = [r for r in old if (r["label"], r["instance"]) not in rerun]
    order = {name: i for i, (name, _) in enumerate(instances())}
    labels = list(dict.fromkeys([r["label"] for r in kept] + [label]))
    kept = sorted(kept + rows, key=lambda r: (labels.index(r["label"]), order.get(r["instance"], 99)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomic(JSONL, "".join(json.dumps(r) + "\n" for r in kept))
    write_atomic(MD, markdown(kept))


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# Throughput of one pipeline on Helix-class clusters", "",
             f"Generated by `benchmarks/throughput_pipelines.py` on {platform.machine()}, Python "
             f"{platform.python_version()}, threads=2, 2 shared cores. `before`: the code before the warm start, "
             "symmetry and types-mode changes; `after`: with them (`ilp` warm-started from dp by default; `cold` = "
             "`-O warm_start=none`). Objective: decode tokens/s (higher is better); bound: proven upper bound.", "",
             "| label | instance | devices | solver | warm start | status | tok/s | bound | gap | time (s) | "
             "peak MB | mode / answer from |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        who = r["solver"] + (f"/{r['backend']}" if r.get("backend") else "")
        stats = r.get("stats") or {}
        how = stats.get("mode") or stats.get("answer_from") or ("program" if r["status"] in ("optimal", "feasible")
                                                               else (r.get("reasons") or [""])[0][:60])
        gap = "-" if r.get("gap") is None else f"{r['gap']:.2%}"
        lines.append(f"| {r['label']} | {r['instance']} | {r['devices']} | {who} | {r['warm_start']} | "
                     f"{r['status']} ({r.get('termination', '-')}) | {_num(r.get('objective'))} | "
                     f"{_num(r.get('bound'))} | {gap} | {_num(r.get('wall_s'), 2)} | {_num(r.get('maxrss_mb'), 0)} | "
                     f"{how} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
