"""The report's figures, drawn with matplotlib (Agg: no display needed) and written as PNG.

matplotlib is an optional dependency: ``pip install -e '.[plot]'``.
:func:`require_matplotlib` says so when it is missing.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from placement import write_atomic
from solvers.bench.analysis import Ratio, pareto_front, ran
from solvers.bench.executors import MissingExtraError

__all__ = ["require_matplotlib", "time_against_size", "gap_by_solver", "heuristic_quality", "pareto_plot"]

_DPI = 110
_LEAST_S = 1e-4  # solve times are drawn no lower than this on the log axis


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or :class:`MissingExtraError` saying how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("the report's figures need matplotlib: pip install -e '.[plot]' (or pip install "
                                "'llmplace[plot]'); --no-plots writes the tables alone") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    require_matplotlib().close(fig)
    write_atomic(path, buffer.getvalue())
    return path


def _styles(labels: list[str]) -> dict[str, dict[str, Any]]:
    """A colour and marker per solver label, stable across figures."""
    import matplotlib
    colours = matplotlib.colormaps["tab20"].colors
    markers = "os^Dv<>pPX*h"
    return {label: {"color": colours[i % len(colours)], "marker": markers[i % len(markers)]}
            for i, label in enumerate(labels)}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def time_against_size(rows: list[dict[str, Any]], labels: list[str], path: Path) -> Path:
    """Solve time against instance size (devices x blocks), per solver, both axes logarithmic; each
    solver's median per size joined by a line."""
    plt = require_matplotlib()
    styles = _styles(labels)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label in labels:
        points = [(r["size_devices"] * r["size_blocks"], max(r["solve_time_s"] or 0.0, _LEAST_S))
                  for r in rows if r["label"] == label and ran(r) and r["status"] != "error" and r.get("size_devices")]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.scatter(xs, ys, s=10, alpha=0.3, color=styles[label]["color"], marker=styles[label]["marker"])
        # Medians over bins of a factor of two in size: one line per solver that reads as a trend.
        bins: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for x, y in points:
            bins[int(math.floor(math.log2(x)))].append((x, y))
        trend = [(_median([x for x, _ in bins[b]]), _median([y for _, y in bins[b]])) for b in sorted(bins)]
        ax.plot(*zip(*trend), label=label, linewidth=1.5, markersize=4, **styles[label])
    ax.set(xscale="log", yscale="log", xlabel="instance size: devices x blocks", ylabel="solve time (s)",
           title="Solve time against instance size (points: runs; lines: medians per factor of 2 in size)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper left", frameon=False)
    return _save(fig, path)


def gap_by_solver(rows: list[dict[str, Any]], labels: list[str], path: Path) -> Path:
    """Each solver's gap to the best known bound (percent, symmetric-log axis), over the instances
    with a proven bound where it found a plan."""
    plt = require_matplotlib()
    data, shown = [], []
    for label in labels:
        gaps = [100.0 * r["gap_to_best_bound"] for r in rows
                if r["label"] == label and r.get("gap_to_best_bound") is not None]
        if gaps:
            data.append(gaps)
            shown.append(f"{label}\n(n={len(gaps)})")
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(shown) + 2), 5))
    if data:
        ax.boxplot(data, whis=(0, 100), widths=0.6)
        for i, gaps in enumerate(data, start=1):
            jitter = [i + 0.18 * ((k * 0.618) % 1 - 0.5) for k in range(len(gaps))]
            ax.scatter(jitter, gaps, s=8, alpha=0.4, color="tab:blue")
        ax.set_xticks(range(1, len(shown) + 1), shown, fontsize=8, rotation=30, ha="right")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(bottom=0)
    ax.set(ylabel="gap to the best known bound (%)", title="Gap to the best bound per solver "
                                                          "(box: quartiles, whiskers: min-max)")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def heuristic_quality(ratios: list[Ratio], path: Path) -> Path:
    """Per heuristic, the share of instances (with a proven optimum) whose plan is within each ratio of it."""
    plt = require_matplotlib()
    labels = sorted({r.label for r in ratios})
    styles = _styles(labels)
    finite = [r.ratio for r in ratios if math.isfinite(r.ratio)]
    right = max(2.0, min(100.0, max(finite, default=2.0) * 1.1))
    fig, ax = plt.subplots(figsize=(8, 5))
    for label in labels:
        values = sorted(r.ratio for r in ratios if r.label == label)
        xs, ys = [1.0], [0.0]
        for k, v in enumerate(values, start=1):
            if math.isinf(v):
                break
            xs += [max(v, 1.0), max(v, 1.0)]
            ys += [ys[-1], k / len(values)]
        xs.append(right)
        ys.append(ys[-1])
        missed = sum(math.isinf(v) for v in values)
        note = f", {missed} without a plan" if missed else ""
        ax.step(xs, ys, where="post", label=f"{label} (n={len(values)}{note})", color=styles[label]["color"])
    ax.axvline(1.10, color="grey", linestyle=":", linewidth=1)
    ax.set(xscale="log", xlim=(1.0, right), ylim=(0, 1.02), xlabel="objective / proven optimum (times worse)",
           ylabel="share of instances within that ratio",
           title="Heuristics against the exact optimum (dotted: within 10 %)")
    ax.text(1.10, 1.0, " 1.1", fontsize=7, color="grey", va="bottom")
    ticks = [t for t in (1, 1.5, 2, 3, 5, 10, 20, 50, 100) if t <= right]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)


def pareto_plot(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Every plan found on one instance's sweep, end-to-end latency against energy, with the front."""
    plt = require_matplotlib()
    labels = sorted({r["label"] for r in rows})
    styles = _styles(labels)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label in labels:
        pts = [(r["e2e_ms"] / 1e3, r["energy_j"]) for r in rows if r["label"] == label]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=22, alpha=0.6, label=label, **styles[label])
    front = pareto_front((r["e2e_ms"] / 1e3, r["energy_j"]) for r in rows)
    if front:
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color="black", linewidth=1.2, zorder=1)
        ax.scatter(fx, fy, s=70, facecolors="none", edgecolors="black", linewidths=1.4, zorder=3,
                   label="Pareto front")
    ax.set(xlabel="end-to-end latency per request (s)", ylabel="energy per request (J)", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2, frameon=False)
    return _save(fig, path)
