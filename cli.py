"""``llmplace``: the command line. Parse, call the API, print.

Exit codes: 0 plan found (or exported; for ``evaluate``, the plan meets every
limit; for ``bench``, the run finished), 1 unexpected error, 2 usage error
(including an engine that cannot run the plan), 3 invalid instance, plan or
results file, 4 proven infeasible, 5 no plan within the limits, 6 solver or
optional dependency unavailable (or no cluster answers at ``bench --address``),
7 the evaluated plan breaks a limit.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

import models
import placement
import solvers
from placement.errors import printable
from placement.export import ExportError, export_plan, exporters
from placement.report import format_evaluation, format_plan, format_prediction, table
from placement.safefiles import UnsafeFileError, check_output_target

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_INFEASIBLE, EXIT_NO_PLAN, EXIT_UNAVAILABLE, EXIT_BREAKS = range(8)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process stopped by a closed pipe
_STATUS_EXIT = {"optimal": EXIT_OK, "feasible": EXIT_OK, "infeasible": EXIT_INFEASIBLE,
                "no_solution": EXIT_NO_PLAN, "error": EXIT_ERROR}


# SolveParams names the field first in its errors; the command line says which option that is.
_PARAM_OPTIONS = {"time_limit_s": "--time-limit", "threads": "--threads", "seed": "--seed", "rel_gap": "--rel-gap",
                  "verbose": "--verbose"}


def _fail(code: int, lines: list[str] | str) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        for part in printable(line).splitlines() or [""]:
            click.echo(f"error: {part}", err=True)
    sys.exit(code)


def _params(**fields: Any) -> solvers.SolveParams:
    """The options as SolveParams, which checks them (one place for the command line and the API)."""
    try:
        return solvers.SolveParams(**fields)
    except ValueError as exc:
        name, _, message = str(exc).partition(": ")
        _fail(EXIT_USAGE, f"{_PARAM_OPTIONS.get(name, name)}: {message}")
        raise  # unreachable: _fail exits


def _print_or_report(text: str, written_to: str | None) -> bool:
    """Print ``text``; if stdout fails (a closed pipe, a full disk), say so on stderr and return False.

    The plan file, when asked for, is written before this, so it is never lost to a failed print.
    """
    try:
        click.echo(text)
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        if written_to is None:
            raise  # the reader went away on purpose (`| head`): end quietly (see _guarded)
        # With -o the plan is safe in its file: say so, as for any other failed print.
        _silence_stdout()
        click.echo(f"error: cannot print the plan: Broken pipe; the plan file {written_to} was written", err=True)
        return False
    except OSError as exc:
        _silence_stdout()
        saved = f"; the plan file {written_to} was written" if written_to else ""
        click.echo(f"error: cannot print the plan: {exc.strerror or exc}{saved}", err=True)
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def _guarded(func: Callable) -> Callable:
    """Turn the API's typed errors into one line each and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (placement.InvalidInstanceError, placement.InvalidPlanError) as exc:
            _fail(EXIT_INVALID, exc.lines())
        except (solvers.UnknownSolverError, solvers.UnsupportedProblemError, solvers.InvalidOptionError,
                models.CatalogError, ExportError, UnsafeFileError) as exc:
            _fail(EXIT_USAGE, str(exc))
        except solvers.SolverUnavailableError as exc:
            _fail(EXIT_UNAVAILABLE, str(exc))
        except BrokenPipeError:
            # The reader went away (`llmplace solve ... | head`): nothing more can reach it, and there is
            # nothing to report. Exit as a process stopped by SIGPIPE does, without Python's complaint at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_BROKEN_PIPE)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # the promise is one line, never a traceback, unless asked
            if os.environ.get("LLMPLACE_DEBUG"):
                traceback.print_exc()
            _fail(EXIT_ERROR, f"unexpected failure: {type(exc).__name__}: {exc} "
                              "(set LLMPLACE_DEBUG=1 to see the traceback)")

    return wrapper


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_REAL = re.compile(r"[+-]?([0-9]{1,18}\.[0-9]*|\.[0-9]+|[0-9]{1,18}(\.[0-9]*)?[eE][+-]?[0-9]{1,3})")


def _option_value(text: str) -> Any:
    """A ``-O`` value as the option types read it: true/false, a whole number, a number, else the text
    (which the solver's option check then refuses with what it expects, if it is not a choice)."""
    word = text.strip()
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    if _INTEGER.fullmatch(word):
        return int(word)
    if _REAL.fullmatch(word):
        return float(word)
    return word


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {printable(pair)}", param_hint="--option")
        options[key.strip()] = _option_value(value)
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmplace")
def main() -> None:
    """Plan where an LLM runs across device, edge and cloud nodes."""


@main.command()
@click.argument("instance", type=str)
@click.option("--solver", "-s", default=solvers.DEFAULT_SOLVER, show_default=True,
              help="A registered solver (see `llmplace solvers`); auto picks the exact solver that handles the instance.")
@click.option("--backend", default=None, help="Backend of solvers that have several (same as --option backend=...).")
@click.option("--time-limit", type=float, default=60.0, show_default=True,
              help="Seconds, in (0, 1e7]; the best plan found by then is returned with its gap.")
@click.option("--threads", type=int, default=1, show_default=True, help="1 to 64.")
@click.option("--seed", type=int, default=0, show_default=True, help="0 to 2**31 - 1.")
@click.option("--rel-gap", type=float, default=1e-6, show_default=True, help="In [0, 1).")
@click.option("--option", "-O", "option_pairs", multiple=True, metavar="KEY=VALUE", help="Solver-specific setting (repeatable).")
@click.option("--verbose", is_flag=True, help="Show the backend's log.")
@click.option("--json", "as_json", is_flag=True, help="Print only the plan JSON on stdout.")
@click.option("--output", "-o", type=str, help="Write the plan JSON to this file.")
@_guarded
def solve(instance: str, solver: str, backend: str | None, time_limit: float, threads: int, seed: int,
          rel_gap: float, option_pairs: tuple[str, ...], verbose: bool, as_json: bool, output: str | None) -> None:
    """Solve INSTANCE and print the plan."""
    options = _parse_options(option_pairs)
    if backend:
        options["backend"] = backend
    params = _params(time_limit_s=time_limit, threads=threads, seed=seed, rel_gap=rel_gap, verbose=verbose)
    if output is not None:
        _check_output(output, [instance])
    problem = placement.load_instance(instance)
    if output is not None:
        _check_output(output, problem.input_files)  # the config files it names are known only now
    plan = solvers.solve(problem, solver=solver, params=params, options=options)
    # The file first, then the print: a plan is lost neither to a failed write nor to a failed stdout.
    write_error = _save(output, plan, problem) if output is not None else None
    text = json.dumps(placement.plan_to_dict(plan, problem), indent=2) if as_json else format_plan(problem, plan)
    if output is not None and write_error is None and not as_json:
        text += f"\n\nplan written to {output}"
    printed = _print_or_report(text, output if output is not None and write_error is None else None)
    if write_error is not None:
        _fail(EXIT_ERROR, f"cannot write the plan file {output}: {write_error}")
    sys.exit(_STATUS_EXIT[plan.status.value] if printed else EXIT_ERROR)


def _check_output(output: str, protected: Any) -> None:
    """Refuse, before solving, a plan file that is not a regular file, is a file the instance reads,
    or cannot be written (see placement.safefiles)."""
    try:
        check_output_target(output, protected)
    except UnsafeFileError as exc:
        _fail(EXIT_USAGE, f"--output: {exc}")


def _save(output: str, plan: placement.Plan, problem: placement.Problem) -> str | None:
    """Write the plan file; the reason it could not be, or None."""
    try:
        placement.save_plan(output, plan, problem)
    except UnsafeFileError as exc:  # the name was changed into something else after the first check
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@main.command()
@click.argument("instance", type=str)
@click.argument("plan_file", metavar="PLAN", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print the recomputed plan JSON.")
@click.option("--ignore-instance-mismatch", is_flag=True,
              help="Evaluate a plan made for another version of the instance (its sha256 differs).")
@_guarded
def evaluate(instance: str, plan_file: str, as_json: bool, ignore_instance_mismatch: bool) -> None:
    """Recompute a plan's metrics with the cost model."""
    problem = placement.load_instance(instance)
    saved = placement.load_plan(plan_file, problem, ignore_instance_mismatch=ignore_instance_mismatch)
    metrics = placement.evaluate(problem, saved)
    if as_json:
        # A plan without routes was routed by evaluate (max-flow): show the routes it priced.
        out = placement.plan_to_dict(saved.with_(predicted=metrics, routes=saved.routes or metrics.routes), problem)
        out["evaluation"] = {"meets_every_limit": metrics.feasible, "objective": metrics.objective,
                             "violations": [v.to_dict() for v in metrics.violations]}
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(format_evaluation(problem, saved, metrics))
    sys.exit(EXIT_OK if metrics.feasible else EXIT_BREAKS)


@main.command()
@click.option("--model", "-m", required=True, help="Catalog model id (see `llmplace catalog models`).")
@click.option("--device", "-d", required=True, help="Catalog device id (see `llmplace catalog devices`).")
@click.option("--weight-format", "-f", default="fp16", show_default=True)
@click.option("--engine", "-e", default=None, help="Default: the device's default engine.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--prompt-tokens", type=click.IntRange(min=0), required=True)
@click.option("--output-tokens", type=click.IntRange(min=0), required=True)
@click.option("--kv-format", default="fp16", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_guarded
def predict(model: str, device: str, weight_format: str, engine: str | None, batch: int, prompt_tokens: int,
            output_tokens: int, kv_format: str, as_json: bool) -> None:
    """Predict one model on one device: TTFT, TPOT, tokens/s, energy, memory."""
    try:
        p = placement.predict(model=model, device=device, weight_format=weight_format, engine=engine, batch=batch,
                              prompt_tokens=prompt_tokens, output_tokens=output_tokens, kv_format=kv_format)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))
    click.echo(json.dumps(p.to_dict(), indent=2) if as_json else format_prediction(p))


@main.command()
@click.argument("instance", type=str)
@_guarded
def validate(instance: str) -> None:
    """Check INSTANCE and report every problem in it."""
    problem = placement.load_instance(instance)
    topo = problem.topology
    click.echo(f"{instance}: valid ({len(problem.models)} model(s), {len(topo.nodes)} device(s), "
               f"{len(topo.links)} link(s), {len(problem.workload)} request class(es), "
               f"objective {problem.objective.name})")
    # Not an error: a device no request can reach is simply not used; say so, since it may be a missing link.
    reached = set().union(*(topo.reachable(source) for source in {r.source for r in problem.workload}))
    unreached = [n.id for n in topo.nodes if n.id not in reached]
    if unreached:
        shown = ", ".join(unreached[:10]) + (f", ... ({len(unreached)} in all)" if len(unreached) > 10 else "")
        click.echo(f"note: no request source has a network path to {shown}; they will not be used")


def _catalog_rows(kind: str) -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
    if kind == "models":
        graphs = [models.load_model(m) for m in models.model_ids()]
        headers = ["id", "params B", "active B", "blocks", "hidden", "heads/kv", "vocab", "name"]
        rows = [[g.id, round(g.params_total / 1e9, 2), round(g.params_active / 1e9, 2), g.num_blocks,
                 g.arch.hidden_size, f"{g.arch.num_attention_heads}/{g.arch.num_kv_heads}", g.arch.vocab_size, g.name]
                for g in graphs]
        dicts = [{"id": g.id, "name": g.name, "params_b": g.params_total / 1e9, "active_params_b": g.params_active / 1e9,
                  "blocks": g.num_blocks, "hidden_size": g.arch.hidden_size, "source": g.source} for g in graphs]
    elif kind == "devices":
        specs = [models.device_spec(d) for d in models.device_ids()]
        headers = ["id", "class", "tier", "memory GB", "usable GB", "BW GB/s", "fp16 TFLOPS", "W idle/active", "engine"]
        rows = [[s.id, s.device_class, s.tier, s.memory_gb, s.usable_memory_gb, s.memory_bandwidth_gbs,
                 s.peak_tflops("fp16"), f"{s.power_idle_w:g}/{s.power_active_w:g}", s.default_engine] for s in specs]
        dicts = [{"id": s.id, "name": s.name, "device_class": s.device_class, "tier": s.tier, "memory_gb": s.memory_gb,
                  "reserved_memory_gb": s.reserved_memory_gb, "memory_bandwidth_gbs": s.memory_bandwidth_gbs,
                  "compute": {u: dict(t) for u, t in s.compute}, "default_unit": s.default_unit,
                  "power_w": {"idle": s.power_idle_w, "active": s.power_active_w},
                  "default_engine": s.default_engine, "sources": dict(s.sources)} for s in specs]
    elif kind == "formats":
        fmts = list(models.WEIGHT_FORMATS.values())
        headers = ["id", "bits/weight", "quality", "compute", "family", "description"]
        rows = [[f.id, f.bits_per_weight, f.quality, f.compute_precision, f.family, f.description] for f in fmts]
        dicts = [{"id": f.id, "bits_per_weight": f.bits_per_weight, "quality": f.quality,
                  "compute_precision": f.compute_precision, "family": f.family, "description": f.description,
                  "source": f.source} for f in fmts]
    elif kind == "engines":
        engs = [models.engine(e) for e in models.engine_ids()]
        headers = ["id", "profiles", "calibrated", "name"]
        rows = [[e.id, len(e.profiles), sum(p.calibrated for _, p in e.profiles), e.name] for e in engs]
        dicts = [{"id": e.id, "name": e.name, "url": e.url,
                  "profiles": [{"match": {k: list(v) for k, v in m.items()}, "eta_mem": p.eta_mem,
                                "eta_compute": p.eta_compute, "calibrated": p.calibrated, "source": p.source}
                               for m, p in e.profiles]} for e in engs]
    else:
        wls = [models.workload_profile(w) for w in models.workload_ids()]
        headers = ["id", "prompt tokens", "output tokens", "task"]
        rows = [[w.id, w.prompt_tokens, w.output_tokens, w.task] for w in wls]
        dicts = [{"id": w.id, "name": w.name, "task": w.task, "prompt_tokens": w.prompt_tokens,
                  "output_tokens": w.output_tokens, "setting": w.setting, "sources": dict(w.sources)} for w in wls]
    return headers, rows, dicts


@main.command()
@click.argument("kind", type=click.Choice(["models", "devices", "formats", "engines", "workloads"]))
@click.option("--json", "as_json", is_flag=True)
@_guarded
def catalog(kind: str, as_json: bool) -> None:
    """List the catalog of models, devices, formats, engines or workloads."""
    headers, rows, dicts = _catalog_rows(kind)
    click.echo(json.dumps(dicts, indent=2) if as_json else table(headers, rows, indent=""))


@main.command()
@click.argument("instance", type=str)
@click.option("--solvers", "solver_list", default=None, metavar="A,B:BACKEND,...",
              help="Solvers to run (default: every applicable one; ilp runs each backend unless one is named).")
@click.option("--time-limit", type=float, default=60.0, show_default=True,
              help="Seconds per solver run, in (0, 1e7] (at most; --budget may give a run less).")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds for the whole comparison, split over the solvers (heuristics first; what a run leaves "
                   "goes to the runs after it).")
@click.option("--threads", type=int, default=1, show_default=True, help="1 to 64.")
@click.option("--seed", type=int, default=0, show_default=True, help="0 to 2**31 - 1.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_guarded
def compare(instance: str, solver_list: str | None, time_limit: float, budget: float | None, threads: int, seed: int,
            progress: bool | None, as_json: bool) -> None:
    """Run several solvers on INSTANCE and compare them side by side."""
    from solvers.compare import compare as run_compare, parse_solver_list

    params = _params(time_limit_s=time_limit, threads=threads, seed=seed)
    problem = placement.load_instance(instance)
    rows = run_compare(problem, parse_solver_list(solver_list) if solver_list else None, params, budget_s=budget,
                       progress=progress)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
    else:
        unit = f" ({problem.objective.unit})" if problem.objective.unit else ""
        click.echo(f"{problem.name}: objective {problem.objective.name}{unit}")
        click.echo(table(
            ["solver", "status", "objective", "bound", "gap", "TTFT ms", "TPOT ms", "energy J", "tok/s", "time s"],
            [[r.solver + (f":{r.backend}" if r.backend else ""), r.status, r.objective, r.bound,
              "-" if r.gap_to_best_bound is None else f"{100 * r.gap_to_best_bound:.2f}%",
              r.ttft_ms, r.tpot_ms, r.energy_j, r.throughput_tok_s, f"{r.solve_time_s:.3f}"] for r in rows],
            indent=""))
        for r in rows:
            if r.status in ("infeasible", "no_solution", "error", "unsupported", "unavailable") and r.reasons:
                click.echo(f"{r.solver}{':' + r.backend if r.backend else ''}: {r.reasons[0]}")
        if budget is not None:
            click.echo(f"budget {budget:g} s: the runs took {sum(r.solve_time_s for r in rows):.1f} s")
    statuses = {r.status for r in rows}
    sys.exit(EXIT_OK if statuses & {"optimal", "feasible"} else EXIT_INFEASIBLE if "infeasible" in statuses else EXIT_NO_PLAN)


def _parse_addresses(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        device, sep, endpoint = pair.partition("=")
        if not sep or not device or not endpoint:
            raise click.BadParameter(f"expected DEVICE=HOST[:PORT], got {pair!r}", param_hint="--address")
        if device in out:
            raise click.BadParameter(f"gives device {device!r} twice", param_hint="--address")
        out[device] = endpoint
    return out


def _check_export_folder(output: str) -> None:
    """Refuse, before any work, an export folder that exists and is not a folder."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise click.BadParameter(f"{output} exists and is not a directory", param_hint="--output")


_ENGINES = ", ".join(e.name for e in exporters())


@main.command(name="export")
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--instance", "-i", "instance", required=True, type=click.Path(dir_okay=False),
              help="The instance the plan was solved for.")
@click.option("--to", "engine", required=True, metavar="ENGINE", help=f"One of: {_ENGINES}.")
@click.option("--output", "-o", type=click.Path(file_okay=True), metavar="DIR",
              help="Write one file per artefact into DIR (created if missing); default: print them.")
@click.option("--address", "address_pairs", multiple=True, metavar="DEVICE=HOST[:PORT]",
              help="Where a device is reached (repeatable); overrides devices[].address and .port.")
@click.option("--gguf", metavar="PATH", help="The model's GGUF file (llama.cpp, prima.cpp); overrides models[].gguf.")
@click.option("--hf-repo", metavar="ID", help="The model's Hugging Face repository; overrides models[].hf_repo.")
@click.option("--model", "-m", "model_id", metavar="MODEL", help="The model to export, when the plan places several.")
@click.option("--pipeline", type=click.IntRange(min=1), metavar="N",
              help="Which of the plan's pipelines to export, when it holds several.")
@_guarded
def export(plan_file: str, instance: str, engine: str, output: str | None, address_pairs: tuple[str, ...],
           gguf: str | None, hf_repo: str | None, model_id: str | None, pipeline: int | None) -> None:
    """Write the scripts that run PLAN on a serving engine (exit 2 when the engine cannot run it)."""
    addresses = _parse_addresses(address_pairs)
    if output:
        _check_export_folder(output)
    problem = placement.load_instance(instance)
    plan = placement.load_plan(plan_file, problem)
    result = export_plan(problem, plan, engine, model=model_id, pipeline=pipeline, addresses=addresses,
                         gguf=gguf, hf_repo=hf_repo)
    if output:
        protected = (*problem.input_files, plan_file)
        os.makedirs(output, exist_ok=True)
        for f in result.files:
            check_output_target(os.path.join(output, f.name), protected)
        try:
            written = result.write(output, protected)
        except OSError as exc:
            _fail(EXIT_ERROR, f"cannot write into {output}: {exc.strerror or exc}")
        click.echo(f"{result.engine}: wrote {len(written)} file(s) to {output}")
        for f in result.files:
            click.echo(f"  {f.name}" + (f"  (run on {f.run_on})" if f.run_on else ""))
    else:
        click.echo(result.text(), nl=False)
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in result.notes:
        click.echo(f"note: {line}", err=True)


@main.command()
@click.option("--suite", default="smoke", show_default=True, metavar="NAME",
              help="smoke | standard | large | speed | matching (see the README's benchmark section).")
@click.option("--solvers", "solver_list", default=None, metavar="A,B:BACKEND,...",
              help="Only these solvers (default: every registered one; ilp runs each backend unless one is named).")
@click.option("--executor", type=click.Choice(["local", "dask", "ray"]), default="local", show_default=True,
              help="local: a process pool here; dask / ray: a cluster (pip install -e '.[dask]' or '.[ray]').")
@click.option("--address", default=None, metavar="ADDR",
              help="A running dask scheduler (tcp://host:8786) or ray cluster (auto, ray://host:10001); "
                   "default: a local cluster started for the run.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local pool or local cluster (default: the CPUs available).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per solver run, replacing the suite's.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on a terminal).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Results file (JSON lines): created, or appended to; rows already in it are not rerun.")
@_guarded
def bench(suite: str, solver_list: str | None, executor: str, address: str | None, jobs: int | None,
          time_limit: float | None, progress: bool | None, output: str) -> None:
    """Run a benchmark suite: every solver on every instance, one JSON row per run."""
    from solvers.bench import SUITES, run_bench
    from solvers.bench.executors import AddressError, ClusterUnreachableError, MissingExtraError, check_address
    from solvers.bench.store import OutputPathError
    from solvers.compare import parse_solver_list

    if suite not in SUITES:
        raise click.BadParameter(f"unknown suite {suite!r} (expected one of {', '.join(SUITES)})",
                                 param_hint="--suite")
    try:
        check_address(executor, address)
    except AddressError as exc:
        _fail(EXIT_USAGE, f"--address: {exc}")
    chosen = parse_solver_list(solver_list) if solver_list else None
    try:
        summary = run_bench(suite, output, chosen, executor, address, jobs, progress, time_limit,
                            on_note=lambda message: click.echo(f"note: {message}", err=True))
    except OutputPathError as exc:
        _fail(EXIT_USAGE, f"--output: {exc}")
    except MissingExtraError as exc:
        _fail(EXIT_UNAVAILABLE, str(exc))
    except ClusterUnreachableError as exc:
        _fail(EXIT_UNAVAILABLE, f"--address: {exc}")
    except KeyboardInterrupt:
        click.echo(f"interrupted: the rows written so far are in {output}; the same command resumes the run",
                   err=True)
        sys.exit(130)
    headers, rows = summary.table()
    if rows:
        click.echo(table(headers, rows, indent=""))
    errors = sum(r["status"] == "error" for r in summary.rows)
    click.echo(f"{len(summary.rows)} row(s) written to {output} ({summary.resumed} already there) in "
               f"{summary.wall_time_s:.1f} s on {summary.executor}"
               + (f"; {errors} error row(s): see their 'error' field" if errors else ""))


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for report.md and its figures (created if missing).")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Draw the figures (needs matplotlib).")
@click.option("--title", default="Benchmark report", show_default=True)
@_guarded
def report(results: tuple[str, ...], output: str, plots: bool, title: str) -> None:
    """Write a markdown report with tables and figures from benchmark RESULTS files."""
    from solvers.bench.executors import MissingExtraError
    from solvers.bench.report import ReportInputError, write_report

    try:
        written = write_report(list(results), output, plots=plots, title=title)
    except ReportInputError as exc:
        _fail(EXIT_INVALID, str(exc))
    except MissingExtraError as exc:
        _fail(EXIT_UNAVAILABLE, str(exc))
    for path in written:
        click.echo(f"wrote {path}")


@main.command()
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--instance", "-i", required=True, type=click.Path(dir_okay=False), help="The plan's instance file.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The picture: .png or .svg (written atomically).")
@_guarded
def draw(plan_file: str, instance: str, output: str) -> None:
    """Draw PLAN: devices with their shards and memory, routes with their shares, the binding resource."""
    from placement.draw import FORMATS, MatplotlibMissingError, draw_plan

    if os.path.splitext(output)[1].lower() not in FORMATS:
        raise click.BadParameter("the picture's format comes from its suffix: .png or .svg", param_hint="--output")
    _check_output(output, [instance, plan_file])
    problem = placement.load_instance(instance)
    _check_output(output, [*problem.input_files, plan_file])
    saved = placement.load_plan(plan_file, problem)
    try:
        drawing = draw_plan(problem, saved, output, protected=(*problem.input_files, plan_file))
    except MatplotlibMissingError as exc:
        _fail(EXIT_UNAVAILABLE, str(exc))
    except OSError as exc:
        _fail(EXIT_ERROR, f"cannot write {output}: {exc.strerror or exc}")
    bound = f"; binding resource {' '.join(drawing.binding)}" if drawing.binding else ""
    click.echo(f"wrote {output}{bound}")


@main.command(name="solvers")
@click.option("--json", "as_json", is_flag=True)
@_guarded
def list_solvers(as_json: bool) -> None:
    """List the registered solvers, their capabilities and availability."""
    infos = solvers.registered()
    if as_json:
        click.echo(json.dumps([{
            "name": s.name, "family": s.family, "exact": s.exact, "plan_space": s.plan_space.name,
            "plan_space_description": s.plan_space.description, "available": s.available(),
            "backends": list(s.backends),
            "options": [{"name": o.name, "type": o.kind.__name__, "default": o.default, "expects": o.expects(),
                         "help": o.help} for o in s.options],
            "summary": s.summary,
            "objectives": sorted(s.capabilities.objectives), "multi_model": s.capabilities.multi_model,
            "multi_request": s.capabilities.multi_request, "format_choice": s.capabilities.format_choice,
        } for s in infos], indent=2))
        return
    click.echo(table(["name", "family", "exact", "searches", "available", "backends", "summary"],
                     [[s.name, s.family, "yes" if s.exact else "no", s.plan_space.name,
                       "yes" if s.available() else "no",
                       ",".join(s.backends) or "-", s.summary] for s in infos], indent=""))


if __name__ == "__main__":  # pragma: no cover
    main()
