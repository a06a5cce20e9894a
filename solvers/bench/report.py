"""``llmplace report``: a markdown report with tables and figures from benchmark rows.

:func:`write_report` reads one or more results files and writes ``report.md``
and its PNG figures into a folder:

- where it ran: the machines, package versions, load averages, executors and dates;
- each solver's rows by status, median and largest solve time and peak memory;
- solve time against instance size per solver (log axes);
- the gap to the best known bound per solver;
- heuristics against the exact optimum (the matching benchmark's figure among them),
  overall and per family;
- dp against ilp (the solver-speed benchmark's figure) on the instances both solved;
- a latency-energy Pareto front for one instance of the ``pareto`` family;
- the errors, and one line per instance.

Every number is computed from the rows; nothing is typed in.

Examples
--------
>>> import tempfile, pathlib
>>> from solvers.bench import Part, Suite, run_bench
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> demo = Suite("demo", "", (Part("architectures", names=("device-edge-cloud",)),))
>>> _ = run_bench(demo, folder / "rows.jsonl", solvers=[("dp", None), ("greedy", None)], executor="inline",
...               progress=False)
>>> written = write_report([folder / "rows.jsonl"], folder / "report", plots=False)
>>> [p.name for p in written]
['report.md']
>>> "| dp |" in (folder / "report" / "report.md").read_text()
True
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from placement import write_atomic
from solvers.bench.analysis import (
    by_instance, heuristic_ratios, latest, optima, pareto_front, percentile, ran, ratio_summary,
)
from solvers.bench.rows import WITH_PLAN
from solvers.bench.store import read_rows

__all__ = ["write_report", "ReportInputError"]

_STATUSES = ("optimal", "feasible", "infeasible", "no_solution", "error", "unsupported", "unavailable")


class ReportInputError(ValueError):
    """A results file that is missing or holds no rows."""


def _num(value: Any, digits: int = 4) -> str:
    """A number for a table: thousands separated above 1,000, ``digits`` significant below, ``-`` for none.

    Examples
    --------
    >>> [_num(v) for v in (21920.4, 12.3456, 0.0067791, 0.00001234, None, float("inf"))]
    ['21,920', '12.35', '0.006779', '1.23e-05', '-', 'no plan']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "no plan"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-4:
            return f"{value:.2e}"
        return f"{value:.{digits}g}"
    return str(value)


def _name(row: dict[str, Any]) -> str:
    """An instance as a table shows it: its name, and its family seed when not 0."""
    seed = row.get("family_seed", 0)
    return row["instance"] + (f" (seed {seed})" if seed else "")


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_num(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return out


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    """Solver labels in the order they first appear (the registry's order in a run)."""
    return list(dict.fromkeys(r["label"] for r in rows))


def _where(rows: list[dict[str, Any]], sources: list[Path]) -> list[str]:
    machines = Counter()
    for r in rows:
        m = r.get("machine") or {}
        if m:
            machines[(m.get("host"), m.get("cpu"), m.get("cpus"), m.get("cpus_allowed"), m.get("memory_gib"),
                      f"{m.get('system')} {m.get('release')}", m.get("python"))] += 1
    packages = Counter(tuple(sorted((r.get("packages") or {}).items())) for r in rows if r.get("packages"))
    loads = [r["load_1m"] for r in rows if r.get("load_1m") is not None]
    times = sorted(r["finished_at"] for r in rows if r.get("finished_at"))
    suites = sorted({r.get("suite", "?") for r in rows})
    executors = sorted({str(r.get("executor")) for r in rows if r.get("executor")})
    lines = ["## Where it ran", "",
             f"{len(rows)} rows from {', '.join(f'`{s}`' for s in sources)}; suite(s) {', '.join(suites)}; "
             f"executor(s): {', '.join(executors) or '-'}; finished between {times[0] if times else '-'} and "
             f"{times[-1] if times else '-'}. Every task ran one solver thread.", ""]
    lines += _table(["host", "CPU", "CPUs", "CPUs allowed", "memory GiB", "OS", "Python", "rows"],
                    [[str(h), str(c), n, a, mem, os_, py, k] for (h, c, n, a, mem, os_, py), k in machines.items()])
    if loads:
        lines += ["", f"Load average (1 min) at the start of each task: min {min(loads):.2f}, median "
                      f"{statistics.median(loads):.2f}, max {max(loads):.2f}. A load above the number of CPUs means "
                      "the runs shared the machine: absolute times are context, ratios within one run the measurement."]
    for versions, k in packages.items():
        lines += ["", f"Packages ({k} rows): " + ", ".join(f"{name} {v}" for name, v in versions)]
    return lines + [""]


def _overview(rows: list[dict[str, Any]], labels: list[str]) -> list[str]:
    body = []
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        counts = Counter(r["status"] for r in mine)
        solved = [r for r in mine if ran(r) and r["status"] != "error"]
        times = [r["solve_time_s"] or 0.0 for r in solved]
        memory = [r["peak_rss_mib"] for r in solved if r.get("peak_rss_mib") is not None]
        body.append([label, len(mine), *(counts.get(s, 0) for s in _STATUSES),
                     statistics.median(times) if times else None, max(times) if times else None,
                     statistics.median(memory) if memory else None])
    return ["## Solvers at a glance", "",
            "Rows by status (`unsupported`: the solver does not take the instance; `error`: it raised, or an exact "
            "solver's plan broke a limit), solve time of the runs, and the peak resident memory of the process "
            "during a run (interpreter and libraries included), over the runs that did not raise.", "",
            *_table(["solver", "rows", *_STATUSES, "median s", "max s", "median peak MiB"], body), ""]


def _scaling(rows: list[dict[str, Any]], labels: list[str], figure: str | None) -> list[str]:
    lines = ["## Solve time against instance size", ""]
    if figure:
        lines += [f"![solve time against instance size]({figure})", ""]
    chain_rows = [r for r in rows if r.get("family") == "chains" and ran(r)]
    if chain_rows:
        sizes = sorted({(r["size_blocks"], r["size_devices"]) for r in chain_rows}, key=lambda s: s[0] * s[1])
        body = []
        for label in labels:
            cells = []
            for blocks, devices in sizes:
                got = [r for r in chain_rows if r["label"] == label and (r["size_blocks"], r["size_devices"]) ==
                       (blocks, devices)]
                if not got:
                    cells.append("-")
                    continue
                if all(r["status"] == "error" for r in got):
                    cells.append("error")
                    continue
                got = [r for r in got if r["status"] != "error"]
                t = statistics.median(r["solve_time_s"] or 0.0 for r in got)
                solved = sum(r["status"] in WITH_PLAN for r in got)
                cells.append(f"{_num(t, 3)} ({solved}/{len(got)})")
            if any(c != "-" for c in cells):
                body.append([label, *cells])
        lines += ["Chains (one model over a mixed network; blocks x devices): median solve time in seconds, and in "
                  "brackets the runs that found a plan keeping every limit (`error`: every run raised or was stopped).",
                  "",
                  *_table(["solver", *(f"{b} x {d}" for b, d in sizes)], body), ""]
    return lines


def _gaps(rows: list[dict[str, Any]], labels: list[str], figure: str | None) -> list[str]:
    body = []
    for label in labels:
        gaps = [r["gap_to_best_bound"] for r in rows if r["label"] == label and r.get("gap_to_best_bound") is not None]
        if gaps:
            body.append([label, len(gaps), _pct(statistics.median(gaps)), _pct(percentile(gaps, 90)), _pct(max(gaps)),
                         sum(g <= 1e-6 for g in gaps), sum(g <= 0.01 for g in gaps)])
    lines = ["## Gap to the best known bound", "",
             "Over the instances where some exact solver proved a bound and the solver found a plan keeping every "
             "limit: |objective - best bound| / |objective|. A bound is a claim about the plan space its solver searched "
             "(one pipeline per model for most; `auto` counts in the space of the solver it picked); the best bound "
             "is the loosest of each space's tightest, so a plan of a larger space (`source`, `maxflow`) can beat a "
             "pipeline bound.", ""]
    if figure:
        lines += [f"![gap to the best bound]({figure})", ""]
    return lines + _table(["solver", "plans", "median", "p90", "max", "at the bound", "within 1%"], body) + [""]


def _quality(rows: list[dict[str, Any]], figure: str | None) -> list[str]:
    ratios = heuristic_ratios(rows)
    lines = ["## Heuristics against the exact optimum", "",
             "On every instance where an exact solver proved an optimum over the heuristic's own plan space "
             "(pipelines for the pipeline heuristics, model caches for `cache-greedy`; a heuristic is never held to "
             "a larger space's optimum): objective / optimum (optimum / objective for throughput), so 1.0 is "
             "optimal and 1.10 is 10 % worse; an instance where the heuristic found no plan keeping the limits while "
             "one exists counts as a miss. The mean is over the instances with a plan.",
             ""]
    if not ratios:
        return lines + ["No instance has both a proven optimum and a heuristic row.", ""]
    if figure:
        lines += [f"![heuristics against the optimum]({figure})", ""]
    body = []
    for label in sorted({r.label for r in ratios}):
        s = ratio_summary([r for r in ratios if r.label == label])
        body.append([label, s["compared"], s["mean"], s["worst"], s["within"], s["optimal"], s["missed"]])
    lines += _table(["heuristic", "compared", "mean ratio", "worst", "within 10%", "optimal", "missed"], body)
    lines += ["", "By family:", ""]
    body = []
    for family in sorted({r.family for r in ratios}):
        for label in sorted({r.label for r in ratios if r.family == family}):
            s = ratio_summary([r for r in ratios if r.family == family and r.label == label])
            body.append([family, label, s["compared"], s["mean"], s["worst"], s["worst_instance"], s["within"],
                         s["optimal"], s["missed"]])
    return lines + _table(["family", "heuristic", "compared", "mean ratio", "worst", "worst on", "within 10%",
                           "optimal", "missed"], body) + [""]


def _speed(rows: list[dict[str, Any]]) -> list[str]:
    groups = by_instance(rows)
    pairs = []
    for iid, group in groups.items():
        dp = next((r for r in group if r["label"] == "dp" and r["status"] in WITH_PLAN), None)
        highs = next((r for r in group if r["label"] == "ilp:highs" and r["status"] in WITH_PLAN), None)
        if dp and highs:
            same = abs(dp["objective"] - highs["objective"]) <= 1e-6 * max(abs(dp["objective"]), 1e-12)
            pairs.append([_name(dp), iid[0], dp["status"], highs["status"], dp["solve_time_s"], highs["solve_time_s"],
                          f"{highs['solve_time_s'] / max(dp['solve_time_s'], 1e-9):.1f}x", "yes" if same else "no"])
    lines = ["## dp against ilp", ""]
    speed = [r for r in rows if r.get("family") == "speed" and ran(r)]
    if speed:
        lines += ["The solver-speed instances (80 blocks over 8 ordered devices; 32 over the same 8 in any order; 32 "
                  "with a choice of formats and a quality floor):", "",
                  *_table(["instance", "solver", "status", "objective", "bound", "gap", "time s"],
                          [[_name(r), r["label"], r["status"], r["objective"], r["bound"], _pct(r["gap"]),
                            r["solve_time_s"]] for r in speed]), ""]
    if pairs:
        ratios = [float(p[6][:-1]) for p in pairs]
        lines += [f"Every instance both solved ({len(pairs)}): ilp/highs took {statistics.median(ratios):.1f}x dp's "
                  f"time at the median; objectives equal on {sum(p[7] == 'yes' for p in pairs)} of {len(pairs)} "
                  "(dp beyond its exact device count is a heuristic, so it can be worse).", ""]
        lines += _table(["instance", "family", "dp", "ilp:highs", "dp s", "ilp:highs s", "ilp / dp", "same objective"],
                        sorted(pairs, key=lambda p: -p[5])[:25])
        if len(pairs) > 25:
            lines += ["", f"(the 25 with the longest ilp time of {len(pairs)})"]
    return lines + [""]


def _pareto_rows(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]] | None:
    sweep = [r for r in rows if r.get("family") == "pareto" and r["status"] in WITH_PLAN
             and r.get("e2e_ms") is not None and r.get("energy_j") is not None]
    if not sweep:
        return None
    base = sorted({r["instance"].split("@")[0] for r in sweep})[0]
    return base, [r for r in sweep if r["instance"].split("@")[0] == base]


def _pareto(chosen: tuple[str, list[dict[str, Any]]] | None, figure: str | None) -> list[str]:
    lines = ["## Latency against energy", ""]
    if chosen is None:
        return lines + ["No rows of the `pareto` family.", ""]
    base, sweep = chosen
    lines += [f"`{base}` under its sweep of objectives (latency; energy; energy under end-to-end latency limits): "
              f"every plan keeping the limits that any solver found ({len(sweep)}), and the front no plan beats in "
              "both.", ""]
    if figure:
        lines += [f"![latency against energy]({figure})", ""]
    front = pareto_front((r["e2e_ms"], r["energy_j"]) for r in sweep)
    body = []
    for e2e, energy in front:
        hits = [r for r in sweep if (r["e2e_ms"], r["energy_j"]) == (e2e, energy)]
        shards = ", ".join(f"{d} [{a}, {b})" for _, d, a, b, _ in hits[0]["shards"])
        body.append([e2e, energy, hits[0]["ttft_ms"], hits[0]["tpot_ms"], shards,
                     ", ".join(sorted({r["instance"].split("@")[1] for r in hits})),
                     ", ".join(sorted({r["label"] for r in hits}))])
    return lines + _table(["E2E ms", "energy J", "TTFT ms", "TPOT ms", "shards", "found under", "solvers"],
                          body) + [""]


def _errors(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[tuple[str, str], int] = Counter()
    shown: dict[tuple[str, str], str] = {}
    for r in rows:
        if r["status"] == "error":
            message = " ".join(str(r.get("error") or (r.get("reasons") or ["?"])[0]).split())
            # One line per kind of failure: numbers (seconds, variable indices) differ from run to run.
            kind = (r["label"], re.sub(r"\d+", "N", message)[:100])
            seen[kind] += 1
            shown.setdefault(kind, message[:200] + ("..." if len(message) > 200 else ""))
    if not seen:
        return ["## Errors", "", "None.", ""]
    return ["## Errors", "", "An `error` row is a solver that raised, an exact solver whose plan broke a limit, or a run "
                             "stopped for ignoring its time limit; the run went on after each.", "",
            *_table(["solver", "rows", "error"],
                                     [[kind[0], k, shown[kind].replace("|", "/")] for kind, k in seen.items()]), ""]


def _optima_cell(group: list[dict[str, Any]]) -> Any:
    """The proven optimum, or each plan space's when solvers of several proved one (they differ: a larger
    space can do better)."""
    found = optima(group)
    if len(found) <= 1:
        return next(iter(found.values()), None)
    return "; ".join(f"{_num(value)} ({space})" for space, value in sorted(found.items()))


def _instances(rows: list[dict[str, Any]]) -> list[str]:
    body = []
    for iid, group in by_instance(rows).items():
        r0 = group[0]
        maximise = r0.get("objective_sense") == "max"
        plans = [r for r in group if r["status"] in WITH_PLAN and r.get("objective") is not None]
        best = (max if maximise else min)(plans, key=lambda r: r["objective"]) if plans else None
        statuses = Counter(r["status"] for r in group)
        body.append([iid[0], iid[1], iid[2], r0.get("size_devices"), r0.get("size_blocks"), r0.get("objective_name"),
                     best["objective"] if best else None, best["label"] if best else "-", _optima_cell(group),
                     r0.get("best_bound"), f"{len(plans)}/{sum(ran(r) for r in group)}",
                     " ".join(f"{s}:{k}" for s, k in sorted(statuses.items()))])
    return ["## Instances", "",
            "Best objective found (and by whom), the proven optimum (per plan space when several were searched), "
            "the best bound, and how many of the solvers that ran found a plan keeping every limit.", "",
            *_table(["family", "seed", "instance", "devices", "blocks", "objective", "best", "by", "optimum",
                     "best bound", "plans", "statuses"], body), ""]


def write_report(sources: list[Path | str], folder: Path | str, plots: bool = True,
                 title: str = "Benchmark report") -> list[Path]:
    """Write ``report.md`` (and, with ``plots``, its PNG figures) into ``folder``; returns the files written.

    Raises
    ------
    ReportInputError
        When a results file is missing or no file holds a row.
    MissingExtraError
        With ``plots`` and no matplotlib installed (the message says how to install it).
    """
    paths = [Path(s) for s in sources]
    rows: list[dict[str, Any]] = []
    skipped = 0
    for p in paths:
        if not p.is_file():
            raise ReportInputError(f"{p}: no such results file")
        got, bad = read_rows(p)
        rows += got
        skipped += bad
    rows = [r for r in latest(rows) if "label" in r and "status" in r]
    if not rows:
        raise ReportInputError(f"{', '.join(map(str, paths))}: no benchmark rows")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures: dict[str, str | None] = defaultdict(lambda: None)
    labels = _labels(rows)
    chosen = _pareto_rows(rows)
    if plots:
        from solvers.bench import plots as draw
        draw.require_matplotlib()
        written.append(draw.time_against_size(rows, labels, out / "time_vs_size.png"))
        written.append(draw.gap_by_solver(rows, labels, out / "gap_to_best_bound.png"))
        ratios = heuristic_ratios(rows)
        if ratios:
            written.append(draw.heuristic_quality(ratios, out / "heuristic_quality.png"))
        if chosen:
            written.append(draw.pareto_plot(chosen[1], f"Latency against energy: {chosen[0]}", out / "pareto.png"))
        figures.update({p.stem: p.name for p in written})
    lines = [f"# {title}", "",
             "Generated by `llmplace report` from benchmark rows (`llmplace bench`); every number below is computed "
             "from the rows." + (f" {skipped} line(s) of the input were not rows (torn by an interrupted run) and "
                                 "were skipped." if skipped else ""), ""]
    lines += _where(rows, paths)
    lines += _overview(rows, labels)
    lines += _scaling(rows, labels, figures["time_vs_size"])
    lines += _gaps(rows, labels, figures["gap_to_best_bound"])
    lines += _quality(rows, figures["heuristic_quality"])
    lines += _speed(rows)
    lines += _pareto(chosen, figures["pareto"])
    lines += _errors(rows)
    lines += _instances(rows)
    write_atomic(out / "report.md", "\n".join(lines).rstrip() + "\n")
    return [*written, out / "report.md"] if plots else [out / "report.md"]
