"""How close the matching game comes to the optimum, on the zoo of small instances.

Usage::

    .venv/bin/python benchmarks/matching_quality.py                 # zoo seeds 0-4
    .venv/bin/python benchmarks/matching_quality.py --seeds 0 --time-limit 30

For every zoo instance the ``matching`` solver's objective is compared with the
brute-force optimum (``bruteforce``, which judges every contiguous pipeline with
``evaluate``). The ratio says how many times worse matching is, whatever the
objective's sense: ``matching / optimum`` for minimised objectives and
``optimum / matching`` for throughput, so 1.0 is optimal and 1.10 is 10 % off.
An instance matching finds no plan for while the optimum exists counts as a
miss (ratio ``inf``). Infeasible instances and instances matching does not
support (a weight-format choice) are listed as skipped.

For a view beyond the zoo, the same ratio is also measured on a few larger
generated instances (``instances.zoo.stress``: 10 devices, 48 blocks, tight
memory) against the ``dp`` solver's proven optimum; they are reported apart
and are not part of the zoo figure.

Writes ``benchmarks/results/matching_quality.jsonl`` (one line per instance)
and ``matching_quality.md`` (summary: mean ratio, worst, count within 10 %;
per-seed means; the per-instance table).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from instances.zoo import stress, zoo
from placement import parse_instance, write_atomic
from solvers import SolveParams, UnsupportedProblemError, solve

RESULTS = Path(__file__).resolve().parent / "results"
JSONL_PATH = RESULTS / "matching_quality.jsonl"
MD_PATH = RESULTS / "matching_quality.md"
TARGET_RATIO = 1.10


def compare(name: str, data: dict, seed: int, params: SolveParams, oracle_name: str = "bruteforce",
            group: str = "zoo") -> dict:
    """One instance: matching's objective, the optimum, their ratio (or why it was skipped)."""
    problem = parse_instance(data)
    row = {"group": group, "seed": seed, "instance": name, "objective": problem.objective.name,
           "sense": problem.objective.sense, "oracle": oracle_name}
    started = time.perf_counter()
    try:
        matching = solve(problem, "matching", params)
    except UnsupportedProblemError as exc:
        return {**row, "skipped": f"unsupported by matching: {exc}"}
    row["matching_time_s"] = time.perf_counter() - started
    started = time.perf_counter()
    oracle = solve(problem, oracle_name, params)
    row["oracle_time_s"] = time.perf_counter() - started
    if oracle.status.value != "optimal":
        why = oracle.reasons[0] if oracle.reasons else oracle.termination.value
        return {**row, "skipped": f"{oracle_name}: {oracle.status.value} ({why})",
                "matching_status": matching.status.value}
    optimum = oracle.objective
    row.update(optimum=optimum, matching=matching.objective, matching_status=matching.status.value,
               stable=matching.stats.get("stable"), swaps=matching.stats.get("swaps"),
               da_rounds=matching.stats.get("da_rounds"))
    if not matching.has_solution:
        return {**row, "ratio": math.inf, "within_target": False}
    worse = matching.objective / optimum if problem.objective.sense == "min" else optimum / matching.objective
    return {**row, "ratio": worse, "within_target": worse <= TARGET_RATIO}


def summarize(rows: list[dict]) -> dict:
    compared = [r for r in rows if "ratio" in r]
    ratios = [r["ratio"] for r in compared]
    worst = max(compared, key=lambda r: r["ratio"]) if compared else None
    return {
        "compared": len(compared), "skipped": len(rows) - len(compared),
        "mean_ratio": statistics.fmean(ratios) if ratios else math.nan,
        "worst_ratio": worst["ratio"] if worst else math.nan,
        "worst_instance": f"{worst['instance']} (seed {worst['seed']})" if worst else "",
        "within_target": sum(r["within_target"] for r in compared),
        "optimal": sum(r["ratio"] <= 1 + 1e-9 for r in compared),
        "missed": sum(math.isinf(r["ratio"]) for r in compared),
    }


def _table(rows: list[dict]) -> list[str]:
    lines = ["| seed | instance | objective | optimum | matching | ratio | stable | swaps | matching s | oracle s |",
             "|---:|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        if "ratio" in r:
            value = f"{r['matching']:.6g}" if r["matching"] is not None else r["matching_status"]
            lines.append(f"| {r['seed']} | {r['instance']} | {r['objective']} | {r['optimum']:.6g} | {value} | "
                         f"{r['ratio']:.4f} | {r['stable']} | {r['swaps']} | {r['matching_time_s']:.3f} | "
                         f"{r['oracle_time_s']:.3f} |")
    return lines


def markdown(rows: list[dict], seeds: list[int], params: SolveParams) -> str:
    zoo_rows = [r for r in rows if r["group"] == "zoo"]
    large = [r for r in rows if r["group"] == "stress"]
    s = summarize(zoo_rows)
    lines = [
        "# Matching game vs the optimum",
        "",
        f"Zoo seeds {', '.join(map(str, seeds))}; `matching` with default options, seed {params.seed}, "
        f"time limit {params.time_limit_s:g} s; optimum from `bruteforce` (every contiguous pipeline judged by "
        "`evaluate`). Ratio = how many times worse than the optimum (matching / optimum when minimising, "
        "optimum / matching for throughput); 1.0000 is optimal.",
        "",
        f"- zoo instances compared: {s['compared']} (skipped: {s['skipped']})",
        f"- mean ratio: **{s['mean_ratio']:.5f}** (target: within {TARGET_RATIO - 1:.0%} of the optimum on average)",
        f"- worst ratio: {s['worst_ratio']:.4f} — {s['worst_instance']}",
        f"- within {TARGET_RATIO - 1:.0%}: {s['within_target']} of {s['compared']}; optimal: {s['optimal']}; "
        f"no plan found though one exists: {s['missed']}",
        "",
        "| zoo seed | compared | mean ratio | worst ratio |",
        "|---:|---:|---:|---:|",
    ]
    for seed in seeds:
        ss = summarize([r for r in zoo_rows if r["seed"] == seed])
        lines.append(f"| {seed} | {ss['compared']} | {ss['mean_ratio']:.4f} | {ss['worst_ratio']:.4f} |")
    if large:
        sl = summarize(large)
        lines += ["", "## Larger instances (not part of the zoo figure)", "",
                  "`instances.zoo.stress(seed)`: 10 devices, 48 blocks, tight memory, latency; optimum from `dp` "
                  "(exact over every device subset and order at this size).", "",
                  f"- compared: {sl['compared']}; mean ratio **{sl['mean_ratio']:.4f}**, worst "
                  f"{sl['worst_ratio']:.4f} ({sl['worst_instance']}); within {TARGET_RATIO - 1:.0%}: "
                  f"{sl['within_target']} of {sl['compared']}; optimal: {sl['optimal']}", ""]
        lines += _table(large)
    lines += ["", "## Zoo instances", ""] + _table(zoo_rows)
    skipped = [r for r in rows if "ratio" not in r]
    if skipped:
        lines += ["", "Skipped:", ""]
        lines += [f"- {r['group']} seed {r['seed']} {r['instance']}: {r['skipped']}" for r in skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated zoo seeds (default 0-4)")
    parser.add_argument("--stress", type=int, default=8, help="larger instances to compare with dp (default 8)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="solver seed (default 0)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    params = SolveParams(time_limit_s=args.time_limit, seed=args.seed)
    rows = [compare(name, data, seed, params) for seed in seeds for name, data in zoo(seed)]
    rows += [compare(*stress(seed), seed, params, oracle_name="dp", group="stress") for seed in range(args.stress)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    # A miss (ratio inf) is written as null: JSON has no infinity.
    write_atomic(JSONL_PATH, "".join(json.dumps({k: None if v == math.inf else v for k, v in r.items()}) + "\n"
                                     for r in rows))
    write_atomic(MD_PATH, markdown(rows, seeds, params))
    for group in ("zoo", "stress"):
        s = summarize([r for r in rows if r["group"] == group])
        print(f"{group}: compared {s['compared']}, mean ratio {s['mean_ratio']:.5f}, worst {s['worst_ratio']:.4f} "
              f"({s['worst_instance']}), within {TARGET_RATIO - 1:.0%}: {s['within_target']}/{s['compared']}")
    print(f"wrote {JSONL_PATH} and {MD_PATH}")


if __name__ == "__main__":
    main()
