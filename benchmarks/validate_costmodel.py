"""Validate the cost model against published measurements and publish the table.

Usage::

    .venv/bin/python benchmarks/validate_costmodel.py         # write the table and the report
    .venv/bin/python benchmarks/validate_costmodel.py --fit   # also refit every profile and print
                                                              # its values next to the catalog's

Writes ``benchmarks/results/costmodel_validation.csv`` (every decode and prefill
row: measured, predicted, relative error, source, exclusion) and
``costmodel_validation.md`` (summary against the accuracy target, errors per
engine and device class, leave-one-device-out errors, TTFT / TPOT rows, the
profiles, the excluded rows and the per-row table). Both are deterministic;
``tests/test_calibration.py`` recomputes the CSV and fails if it went stale.

Leave-one-device-out: for each device, every profile it uses is refitted
without that device's rows (a profile left with no rows falls back to its
engine's defaults), and the device's rows are predicted with the refit.
Leave-one-source-out does the same per publication (``source_key``). Rows of
``HELD_OUT_SOURCES`` are never fitted at all. The accuracy targets (``TARGETS``)
apply to measurements the calibration has not seen: the held-out rows plus
every fitted row's leave-one-source-out error. Every fit starts from the
engine's defaults, so nothing of a left-out row reaches its prediction through
a starting point.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from placement import write_atomic
from placement.calibration import (
    FIT_BOUNDS, HELD_OUT_SOURCES, LATENCY_METRICS, TARGET_METRICS, Summary, ValidationRow, catalog_profiles,
    fit_catalog, held_out, load_measurements, profile_rows, refit_value, rows_to_csv, source_key, summarize,
    validate,
)

RESULTS = Path(__file__).resolve().parent / "results"
CSV_PATH = RESULTS / "costmodel_validation.csv"
MD_PATH = RESULTS / "costmodel_validation.md"
PNG_PATH = RESULTS / "costmodel_validation.png"
# Accuracy targets on measurements the calibration has not seen (held-out split + leave-one-source-out).
TARGETS = {"decode_tok_s": (0.15, 0.40), "prefill_tok_s": (0.20, 0.50), "ttft_ms": (0.20, None)}
PARAMS = ("eta_mem", "eta_compute", "compute_half_tokens", "step_overhead_ms", "layer_overhead_ms")


def _leave_out(rows: Sequence[ValidationRow], key: Callable[[ValidationRow], str], what: str) -> dict[int, float]:
    """Relative error of each fitted row when the rows sharing its ``key`` are left out of the fit."""
    groups = profile_rows()
    measurements = {m.row: m for m in load_measurements()}
    fitted = [r for r in rows if not r.excluded and not held_out(r.source)]
    out: dict[int, float] = {}
    for value in sorted({key(r) for r in fitted}):
        held = [r for r in fitted if key(r) == value]
        names = {r.profile for r in held}
        refit = fit_catalog({n: g for n, g in groups.items() if n in names}, **{what: value})
        for r in held:
            m = measurements[r.row]
            out[r.row] = refit_value(m, refit) / m.value - 1.0
    return out


def leave_one_device_out(rows: Sequence[ValidationRow]) -> dict[int, float]:
    """Relative error of each fitted row when its device's rows are left out of the fit."""
    return _leave_out(rows, lambda r: r.device, "leave_out_device")


def leave_one_source_out(rows: Sequence[ValidationRow]) -> dict[int, float]:
    """Relative error of each fitted row when its source's rows (:func:`source_key`) are left out."""
    return _leave_out(rows, lambda r: source_key(r.source), "leave_out_source")


def unseen_errors(rows: Sequence[ValidationRow], loso: dict[int, float], metric: str) -> list[float]:
    """Errors on measurements the calibration has not seen: the held-out split as predicted, and
    every fitted row as predicted by the fit that left its source out."""
    out = [r.rel_error for r in rows if r.metric == metric and not r.excluded and held_out(r.source)]
    return out + [loso[r.row] for r in rows if r.metric == metric and r.row in loso]


def _pct(x: float) -> str:
    return f"{100 * x:+.0f}%" if x == x else ""


def _abs_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _table(header: Sequence[str], body: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return lines + [""]


def _stats(errors: Sequence[float]) -> tuple[float, float]:
    e = np.abs(np.asarray(errors, dtype=float))
    return float(np.median(e)), float(np.percentile(e, 90))


def _summary_rows(summaries: Sequence[Summary], prefix: str) -> list[list[object]]:
    return [[s.group.split(":", 1)[1], s.metric, s.count, _abs_pct(s.median_abs_error), _abs_pct(s.p90_abs_error),
             _pct(s.median_error)] for s in summaries if s.group.startswith(prefix)]


def _split_stats(errors: Sequence[float]) -> str:
    if not errors:
        return "- / -"
    med, p90 = _stats(errors)
    return f"{_abs_pct(med)} / {_abs_pct(p90)}"


def _target_text(metric: str, errors: Sequence[float]) -> str:
    med_target, p90_target = TARGETS[metric]
    if not errors:
        return "no rows"
    med, p90 = _stats(errors)
    ok = med <= med_target and (p90_target is None or p90 <= p90_target)
    wanted = f"<= {med_target:.0%}" + (f" / {p90_target:.0%}" if p90_target is not None else "")
    return f"{'met' if ok else 'MISSED'} ({wanted})"


def summary_table(rows: Sequence[ValidationRow], latency: Sequence[ValidationRow], lodo: dict[int, float],
                  loso: dict[int, float]) -> list[str]:
    """Median / p90 |error| per metric: in-sample, held-out split, leave-one-device-out,
    leave-one-source-out, and the target on unseen measurements."""
    body = []
    everything = list(rows) + list(latency)
    for metric in (*TARGET_METRICS, "ttft_ms", "tpot_ms"):
        mine = [r for r in everything if r.metric == metric and not r.excluded]
        fitted = [r for r in mine if not held_out(r.source)]
        kept = [r for r in mine if held_out(r.source)]
        unseen = unseen_errors(everything, loso, metric)
        body.append([
            metric, len(fitted), len(kept), sum(1 for r in everything if r.metric == metric and r.excluded),
            _split_stats([r.rel_error for r in fitted]), _split_stats([r.rel_error for r in kept]),
            _split_stats([lodo[r.row] for r in fitted if r.row in lodo]),
            _split_stats([loso[r.row] for r in fitted if r.row in loso]),
            _split_stats(unseen), _target_text(metric, unseen) if metric in TARGETS else "",
        ])
    return _table(["metric", "rows fitted", "rows held out", "rows excluded", "in-sample median / p90",
                   "held-out median / p90", "LODO median / p90", "LOSO median / p90", "unseen median / p90",
                   "target (unseen)"], body)


def report(rows: Sequence[ValidationRow], latency: Sequence[ValidationRow], lodo: dict[int, float],
           loso: dict[int, float]) -> str:
    """The markdown report."""
    included = [r for r in rows if not r.excluded]
    md = [
        "# Cost model validation",
        "",
        "Generated by `benchmarks/validate_costmodel.py` from `models/catalog/measurements.csv` and the "
        "efficiency profiles in `models/catalog/engines.yaml`. `tests/test_calibration.py` recomputes "
        "`costmodel_validation.csv` and fails if it differs from this run.",
        "",
        "## Summary",
        "",
        "Error = predicted / measured - 1; each cell is median / 90th percentile of |error|. *In-sample*: rows "
        "the profiles were fitted to. *Held-out*: rows of sources the fit never sees ("
        + ", ".join(f"`{h}`" for h in HELD_OUT_SOURCES) + "). *LODO*: each device predicted by profiles refitted "
        "without its rows. *LOSO*: each source's rows predicted by profiles refitted without that source (a "
        "profile left with no rows falls back to its engine's defaults). *Unseen* = held-out rows plus every "
        "fitted row's LOSO error: measurements the calibration has not seen; the targets apply to it.",
        "",
    ]
    md += summary_table(rows, latency, lodo, loso)
    md += [
        "## What is compared",
        "",
        "Each row is asked of `placement.predict` with its model, device, weight format, engine, batch, "
        "prompt and generated tokens (`tgN`: prompt 0, `N` generated; `ppN`: prompt `N`, none generated). "
        "The `basis` column says what is compared: `prefill` = batch x prompt / prefill time; `decode` = "
        "batch / TPOT at the mean context of the generation (llama-bench tg, eval rates, token-generator "
        "rates); `whole_run` = batch x generated / end-to-end time, for serving tables whose rate counts "
        "output tokens over the whole run, prefill included. TensorRT-LLM's FP8 rows use an FP8 KV cache, "
        "as the source builds those engines with `--fp8_kv_cache`; every other row an FP16 one.",
        "",
        "## How the parameters were fitted",
        "",
        "Each profile in `engines.yaml` (engine x device classes x compute unit x format family) lists the "
        "parameters it fits under `fitted`; the rest are engine defaults or fixed values with a stated "
        "reason. The fitted ones minimise the soft-L1 loss (scale 0.25) of log(predicted / measured) over "
        "all included rows the profile serves, decode, prefill, TTFT and TPOT alike "
        "(`scipy.optimize.least_squares`, bounds "
        + ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in FIT_BOUNDS.items())
        + "), starting from the engine's defaults. There is no per-device parameter: a device's numbers "
        "come from its catalog spec. `--fit` reruns the fit and prints the values next to the catalog's.",
        "",
        "Parts of the cost model these rows bear on (see `placement/costs/roofline.py`): a step's compute rate "
        "never drops below the unit's vector (fp32) rate times `eta_compute`, as few-token steps run "
        "matrix-vector kernels; llama.cpp's CUDA products accumulate in fp16, which GeForce-class parts "
        "(and GB10) run at twice the FP32-accumulate peak the device catalog lists; its 2023-24 CUDA "
        "prefill of quantised weights either expands them to fp16 first (a read and a write of the weights "
        "per step) or multiplies them directly at the vector rate, whichever is faster; routed experts "
        "multiply only the tokens routed to them, at that size's efficiency.",
        "",
        "## By engine",
        "",
    ]
    md += _table(["engine", "metric", "rows", "median", "p90", "signed median"],
                 _summary_rows(summarize(rows), "engine:"))
    md += ["## By device class", ""]
    md += _table(["device class", "metric", "rows", "median", "p90", "signed median"],
                 _summary_rows(summarize(rows), "class:"))

    md += ["## Leave-one-device-out by device", ""]
    body = []
    for device in sorted({r.device for r in included}):
        for metric in TARGET_METRICS:
            mine = [r for r in included if r.device == device and r.metric == metric and r.row in lodo]
            if mine:
                body.append([device, metric, len(mine), _abs_pct(_stats([r.rel_error for r in mine])[0]),
                             _abs_pct(_stats([lodo[r.row] for r in mine])[0])])
    md += _table(["device", "metric", "rows", "in-sample median", "LODO median"], body)

    md += ["## Leave-one-source-out by source", ""]
    body = []
    for source in sorted({source_key(r.source) for r in included}):
        for metric in TARGET_METRICS:
            mine = [r for r in included if source_key(r.source) == source and r.metric == metric and r.row in loso]
            if mine:
                body.append([source, metric, len(mine), _abs_pct(_stats([r.rel_error for r in mine])[0]),
                             _abs_pct(_stats([loso[r.row] for r in mine])[0])])
    md += _table(["source", "metric", "rows", "in-sample median", "LOSO median"], body)

    md += ["## Latency rows (TTFT, TPOT; reported apart, not part of the target)", ""]
    lat = {s.metric: s for s in summarize(latency, keys=(lambda r: "all",))}
    md += _table(["metric", "rows", "median", "p90"],
                 [[m, lat[m].count, _abs_pct(lat[m].median_abs_error), _abs_pct(lat[m].p90_abs_error)]
                  for m in LATENCY_METRICS if m in lat])
    md += _table(["row", "device", "model", "format", "engine", "B", "prompt", "gen", "metric", "measured", "predicted",
                  "error", "excluded", "source"],
                 [[r.row, r.device, r.model, r.weight_format, r.engine, r.batch, r.prompt_tokens, r.gen_tokens,
                   r.metric, f"{r.measured:g}", f"{r.predicted:.3g}", _pct(r.rel_error), r.excluded, r.source]
                  for r in latency])

    md += ["## Profiles", ""]
    counts = {r.profile: 0 for r in rows}
    for r in included:
        counts[r.profile] += 1
    body = []
    for name, (prof, fitted, _) in catalog_profiles().items():
        body.append([name] + [f"{getattr(prof, p):g}" + ("*" if p in fitted else "") for p in PARAMS]
                    + [prof.compute_precision or "format", prof.accumulate, "yes" if prof.dequantize_prefill else "",
                       counts.get(name, 0)])
    md += ["Fitted values are starred. `rows` counts the decode and prefill rows each profile predicts.", ""]
    md += _table(["profile", *PARAMS, "precision", "accumulate", "dequantize prefill", "rows"], body)

    md += ["## Excluded rows", ""]
    md += _table(["row", "device", "model", "metric", "measured", "predicted", "reason", "source"],
                 [[r.row, r.device, r.model, r.metric, f"{r.measured:g}", f"{r.predicted:.4g}", r.excluded, r.source]
                  for r in rows if r.excluded])

    md += ["## All rows", "",
           "`row` is the 0-based data row of `measurements.csv`; LODO / LOSO = leave-one-device-out / "
           "leave-one-source-out error (`held out` for rows of the held-out split, which no fit sees).", ""]

    def _out(r: ValidationRow, errors: dict[int, float]) -> str:
        if r.excluded:
            return "excluded"
        return _pct(errors[r.row]) if r.row in errors else "held out"

    md += _table(["row", "device", "model", "format", "engine", "B", "prompt", "gen", "metric", "basis", "measured",
                  "predicted", "error", "LODO", "LOSO", "profile", "source"],
                 [[r.row, r.device, r.model, r.weight_format, r.engine, r.batch, r.prompt_tokens, r.gen_tokens,
                   r.metric, r.basis, f"{r.measured:g}", f"{r.predicted:.4g}", _pct(r.rel_error),
                   _out(r, lodo), _out(r, loso), r.profile, r.source] for r in rows])
    return "\n".join(md).rstrip() + "\n"


def print_fit() -> None:
    """Refit every profile on all included rows and print the result beside the catalog values."""
    current = catalog_profiles()
    for name, (prof, n) in fit_catalog().items():
        cat, fitted, _ = current[name]
        values = ", ".join(f"{p} {getattr(prof, p):.4g} (catalog {getattr(cat, p):.4g})" for p in fitted)
        print(f"{name} [{n} rows]: {values}")


def plot(rows: Sequence, path: Path) -> None:
    """Predicted against measured tokens/s, one panel per metric, log-log, by engine.

    Needs matplotlib (``pip install -e '.[plot]'``); without it the plot is skipped.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot")
        return
    metrics = ("decode_tok_s", "prefill_tok_s")
    fig, axes = plt.subplots(1, len(metrics), figsize=(11, 5))
    for ax, metric in zip(axes, metrics):
        used = [r for r in rows if r.metric == metric and not r.excluded]
        for engine in sorted({r.engine for r in used}):
            pts = [r for r in used if r.engine == engine]
            ax.scatter([r.measured for r in pts], [r.predicted for r in pts], s=14, label=engine, alpha=0.75)
        lo = min(min(r.measured, r.predicted) for r in used) / 1.5
        hi = max(max(r.measured, r.predicted) for r in used) * 1.5
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        for f in (0.75, 1.25):
            ax.plot([lo, hi], [lo * f, hi * f], color="grey", lw=0.6, ls="--")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=f"measured {metric}",
               ylabel=f"predicted {metric}", title=f"{metric}: {len(used)} rows (dashed: +-25%)")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})  # no version stamp: reruns give the same file
    plt.close(fig)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", action="store_true", help="refit the profiles and print their values")
    args = parser.parse_args(argv)
    if args.fit:
        print_fit()
    rows = validate()
    latency = validate(metrics=LATENCY_METRICS)
    lodo = leave_one_device_out(list(rows) + list(latency))
    loso = leave_one_source_out(list(rows) + list(latency))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomic(CSV_PATH, rows_to_csv(rows))
    write_atomic(MD_PATH, report(rows, latency, lodo, loso))
    plot(rows, PNG_PATH)
    print("\n".join(summary_table(rows, latency, lodo, loso)))
    print(f"wrote {CSV_PATH}, {MD_PATH} and {PNG_PATH}")


if __name__ == "__main__":
    main()
