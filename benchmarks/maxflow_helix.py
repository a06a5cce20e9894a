"""Throughput serving on the published Helix clusters and a consumer-GPU swarm: maxflow against the
pipeline solvers (dp, ilp, matching) and the published placements.

Instances: ``instances/helix/{single24, geo3region24, hetero42, quality10}.yaml`` (with each published
placement evaluated as it is, routed by max-flow) and ``instances/swarm-consumer-gpus.yaml`` (a TPOT SLO
that long pipelines miss). Every solver gets ``SolveParams(threads=2, time_limit_s=...)`` (default 60 s);
a solver that fails (an import error, a refusal) is recorded with its error, not skipped. Results go to
``benchmarks/results/maxflow_helix.jsonl`` (one row per run) and ``benchmarks/results/maxflow_helix.md``;
only measured numbers are written.

Run::

    .venv/bin/python benchmarks/maxflow_helix.py [--time-limit 60] [--solvers maxflow,dp,ilp,matching]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from placement import evaluate, load_instance, load_plan, write_atomic
from solvers import SolveParams, solve

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
INSTANCES = [("helix/single24", True), ("helix/geo3region24", True), ("helix/hetero42", True),
             ("helix/quality10", True), ("swarm-consumer-gpus", False)]
SOLVERS = {"maxflow": {}, "dp": {}, "ilp": {"backend": "highs"}, "matching": {}}
# The best single pipeline under the swarm's SLO takes dp's branch and bound longer than a minute.
EXTRA = [("swarm-consumer-gpus", "dp", {}, 300.0)]


def _published(name: str) -> dict[str, Any]:
    problem = load_instance(ROOT / "instances" / f"{name}.yaml")
    plan = load_plan(ROOT / "instances" / f"{name}.published.json")
    started = time.perf_counter()
    m = evaluate(problem, plan)
    return {"instance": problem.name, "solver": "published (Helix MILP)", "status": "given",
            "objective_tok_s": m.throughput_tok_s, "bound_tok_s": None, "gap": None,
            "time_s": time.perf_counter() - started, "feasible": m.feasible,
            "published_tok_s": plan.stats.get("published_max_flow_tok_s"), "note": f"routing: {m.routing}"}


def _run(name: str, solver: str, options: dict[str, Any], limit: float) -> dict[str, Any]:
    problem = load_instance(ROOT / "instances" / f"{name}.yaml")
    started = time.perf_counter()
    row: dict[str, Any] = {"instance": problem.name, "solver": solver + (f":{options['backend']}"
                                                                         if "backend" in options else ""),
                           "time_limit_s": limit}
    try:
        plan = solve(problem, solver, SolveParams(time_limit_s=limit, threads=2), options=dict(options))
    except Exception as exc:  # noqa: BLE001 (a failing solver is a result, recorded as such)
        row.update(status="error", objective_tok_s=None, bound_tok_s=None, gap=None,
                   time_s=time.perf_counter() - started, note=f"{type(exc).__name__}: {exc}"[:200])
        return row
    elapsed = time.perf_counter() - started
    m = evaluate(problem, plan) if plan.shards else None
    every_route_meets_slo = bool(m and all(r.slo_met for r in m.requests.values()))
    note = plan.stats.get("found_by") or plan.stats.get("mode") or ""
    if plan.status.value in ("no_solution", "error", "infeasible") and plan.reasons:
        note = plan.reasons[0][:160]
    row.update(status=plan.status.value, termination=plan.termination.value,
               objective_tok_s=plan.objective if plan.has_solution else None, bound_tok_s=plan.bound,
               gap=plan.gap, time_s=elapsed, feasible=bool(m and m.feasible), slo_met=every_route_meets_slo,
               routes=len(plan.routes), shards=len(plan.shards), note=note,
               bounds=plan.stats.get("bounds"))
    return row


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _markdown(rows: list[dict[str, Any]], limit: float) -> str:
    lines = [
        "# Throughput serving: maxflow against pipeline solvers on the Helix clusters and a swarm",
        "",
        f"Each solver ran once with `SolveParams(threads=2, time_limit_s={limit:g})` on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, shared with other work); "
        "tok/s is what `evaluate()` gives the plan (decode tokens/s over every route), the bound is the "
        "solver's proven upper bound over its plan space (maxflow: replicated ranges; dp, ilp: one pipeline). "
        "`published` is Helix's MILP placement (Gurobi, 10-50 minutes on 20 threads), evaluated here with no "
        "routes given (routed by max-flow).",
        "",
        "| instance | solver | status | tok/s | bound | gap | time s | note |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        gap = "-" if r.get("gap") is None else f"{100 * r['gap']:.3g}%"
        solver = r["solver"] + (f" ({r['time_limit_s']:g} s)" if r.get("time_limit_s", limit) != limit else "")
        lines.append(f"| {r['instance']} | {solver} | {r['status']} | {_fmt(r.get('objective_tok_s'))} | "
                     f"{_fmt(r.get('bound_tok_s'))} | {gap} | {_fmt(r.get('time_s'), 1)} | "
                     f"{str(r.get('note', '')).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    args = parser.parse_args()
    chosen = [s for s in args.solvers.split(",") if s]
    rows: list[dict[str, Any]] = []
    for name, published in INSTANCES:
        if published:
            rows.append(_published(name))
            print(json.dumps(rows[-1], default=str), flush=True)
        for solver in chosen:
            rows.append(_run(name, solver, SOLVERS.get(solver, {}), args.time_limit))
            print(json.dumps(rows[-1], default=str), flush=True)
        for extra_name, solver, options, limit in EXTRA:
            if extra_name == name and solver in chosen:
                rows.append(_run(name, solver, options, limit))
                print(json.dumps(rows[-1], default=str), flush=True)
    RESULTS.mkdir(exist_ok=True)
    write_atomic(RESULTS / "maxflow_helix.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    write_atomic(RESULTS / "maxflow_helix.md", _markdown(rows, args.time_limit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
