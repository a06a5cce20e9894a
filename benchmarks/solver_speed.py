"""Solver speed: dp against ilp on an ordered chain, and the ilp backends on a free placement.

Two generated instances (mixed device types, a full mesh of links with seeded
bandwidths and latencies, one chat class entering at the first device):

- ``chain-80x8``: an 80-block model over 8 devices with ``constraints.device_order``
  (the pipeline visits a subsequence of that order). dp (when registered) and
  ilp/highs solve it; the table reports the time ratio and whether the
  objectives agree.
- ``free-32x8``: a 32-block model over the same 8 devices, any subset and order.
  dp (when registered) and ilp with every backend solve it.
- ``formats-32x8``: the same, with a weight format to choose per shard (q8_0,
  q4_0, fp16) and a quality floor of 0.96: the LP relaxation is fractional, so
  this row measures branch and bound. ilp with every backend (dp takes no
  format choice).

ilp runs twice on each: as it is by default (warm-started from dp where dp takes the
instance, so it may return dp's proven plan without solving its program) and with
``-O warm_start=none`` (``cold``: the program alone, as every earlier run of this
benchmark measured it).

Every solver gets ``SolveParams(threads=2, time_limit_s=...)``. Results go to
``benchmarks/results/solver_speed.jsonl`` (one row per run) and
``benchmarks/results/solver_speed.md``; only measured numbers are written.

Run::

    .venv/bin/python benchmarks/solver_speed.py [--time-limit 120] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path
from typing import Any

from placement import evaluate, parse_instance, write_atomic
from solvers import SolveParams, registered, solve
from solvers.registry import solver_info

RESULTS = Path(__file__).resolve().parent / "results"
DEVICES = ["rtx-4090", "rtx-3090", "jetson-agx-orin-64gb", "apple-m1-max", "l4", "rtx-4080",
           "jetson-agx-orin-32gb", "rtx-3060"]


def make_instance(num_blocks: int, ordered: bool, seed: int = 7, formats: bool = False) -> dict[str, Any]:
    """A 70B-class block shape (hidden 8192, GQA 8 KV heads) with ``num_blocks`` blocks in q8_0,
    over :data:`DEVICES`; links seeded by ``seed``; with ``formats``, a choice of q8_0 / q4_0 /
    fp16 per shard under a quality floor of 0.96.

    Examples
    --------
    >>> make_instance(32, ordered=False)["models"][0]["config"]["num_hidden_layers"]
    32
    """
    rng = random.Random(seed)
    ids = [f"d{i}" for i in range(len(DEVICES))]
    links = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            near = j == i + 1  # neighbours in the list share a faster link
            links.append({"a": ids[i], "b": ids[j],
                          "bandwidth_mbps": rng.choice([2500, 5000, 10000]) if near else rng.choice([300, 500, 1000]),
                          "latency_ms": round(rng.uniform(0.5, 2.0) if near else rng.uniform(2.0, 8.0), 2)})
    kind = "formats" if formats else "chain" if ordered else "free"
    data: dict[str, Any] = {
        "name": f"{kind}-{num_blocks}x{len(ids)}",
        "models": [{"id": "llm", "weight_format": "q8_0", "config": {
            "hidden_size": 8192, "num_hidden_layers": num_blocks, "num_attention_heads": 64,
            "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 128256,
            "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16"}}],
        "devices": [{"id": i, "type": t} for i, t in zip(ids, DEVICES)],
        "links": links,
        "workload": [{"id": "chat", "source": ids[0], "prompt_tokens": 512, "output_tokens": 128}],
        "objective": "latency",
        "constraints": {"memory_headroom": 0.05},
    }
    if ordered:
        data["constraints"]["device_order"] = ids
    if formats:
        data["models"][0]["allowed_formats"] = ["q8_0", "q4_0", "fp16"]
        data["constraints"]["quality_floor"] = 0.96
    return data


def run(problem, solver: str, backend: str | None, time_limit_s: float, cold: bool = False) -> dict[str, Any]:
    options = {"backend": backend} if backend else {}
    if cold:
        options["warm_start"] = "none"
    started = time.perf_counter()
    plan = solve(problem, solver, SolveParams(time_limit_s=time_limit_s, threads=2), options=options)
    wall = time.perf_counter() - started
    row = {"instance": problem.name, "solver": solver, "backend": backend, "warm_start": "none" if cold else "default",
           "status": str(plan.status),
           "termination": str(plan.termination), "objective": plan.objective, "bound": plan.bound, "gap": plan.gap,
           "time_s": round(wall, 4), "stages": [[s.device, *s.layers] for s in plan.shards]}
    if plan.shards:
        row["evaluate_objective"] = evaluate(problem, plan).objective
    return row


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per solver; the fastest is kept")
    args = parser.parse_args()
    have_dp = any(s.name == "dp" for s in registered())
    backends = solver_info("ilp").backends
    ilp = lambda bs: [("ilp", b, False) for b in bs] + [("ilp", b, True) for b in bs]  # noqa: E731
    plan_runs = [(80, True, False, [("dp", None, False)] * have_dp + ilp(["highs"])),
                 (32, False, False, [("dp", None, False)] * have_dp + ilp(backends)),
                 (32, False, True, ilp(backends))]
    rows = []
    for blocks, ordered, formats, runs in plan_runs:
        problem = parse_instance(make_instance(blocks, ordered, formats=formats))
        for solver, backend, cold in runs:
            best = min((run(problem, solver, backend, args.time_limit, cold) for _ in range(args.repeat)),
                       key=lambda r: r["time_s"])
            rows.append(best)
            print(json.dumps({k: v for k, v in best.items() if k != "stages"}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomic(RESULTS / "solver_speed.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    write_atomic(RESULTS / "solver_speed.md", _markdown(rows, args))


def _markdown(rows: list[dict[str, Any]], args) -> str:
    lines = ["# Solver speed", "",
             f"Measured on {platform.machine()} with {platform.python_version()}; threads=2, "
             f"time limit {args.time_limit:g} s, fastest of {args.repeat} run(s). Generated by "
             "`benchmarks/solver_speed.py`.", "",
             "| instance | solver | backend | warm start | status | objective (ms) | bound | gap | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:,.3f}"  # noqa: E731
        gap = "-" if r["gap"] is None else f"{r['gap']:.2e}"
        lines.append(f"| {r['instance']} | {r['solver']} | {r['backend'] or '-'} | "
                     f"{'-' if r['solver'] != 'ilp' else r['warm_start']} | {r['status']} | "
                     f"{fmt(r['objective'])} | {fmt(r['bound'])} | {gap} | {r['time_s']:.3f} |")
    lines += ["", "## dp against ilp (cold: the program alone)", "", "| instance | dp time (s) | ilp/highs time (s) | ilp / dp time | "
              "objectives equal |", "|---|---|---|---|---|"]
    for inst in dict.fromkeys(r["instance"] for r in rows):
        dp = next((r for r in rows if r["instance"] == inst and r["solver"] == "dp"), None)
        ilp = next((r for r in rows if r["instance"] == inst and r["backend"] == "highs"
                    and r["warm_start"] == "none"), None)
        if dp and ilp:
            lines.append(f"| {inst} | {dp['time_s']:.3f} | {ilp['time_s']:.3f} | {ilp['time_s'] / dp['time_s']:.1f}x | "
                         f"{'yes' if _same(dp['objective'], ilp['objective']) else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
