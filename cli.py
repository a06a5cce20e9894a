"""``llmplace``: the command line. Parse, call the API, print.

Exit codes: 0 plan found (or, for ``evaluate``, the plan meets every limit), 1
unexpected error, 2 usage error, 3 invalid instance or plan file, 4 proven
infeasible, 5 no plan within the limits, 6 solver unavailable, 7 the evaluated
plan breaks a limit.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

import models
import placement
import solvers
from placement.report import format_evaluation, format_plan, format_prediction, table

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_INFEASIBLE, EXIT_NO_PLAN, EXIT_UNAVAILABLE, EXIT_BREAKS = range(8)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process stopped by a closed pipe
_STATUS_EXIT = {"optimal": EXIT_OK, "feasible": EXIT_OK, "infeasible": EXIT_INFEASIBLE,
                "no_solution": EXIT_NO_PLAN, "error": EXIT_ERROR}


def _fail(code: int, lines: list[str] | str) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _guarded(func: Callable) -> Callable:
    """Turn the API's typed errors into one line each and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (placement.InvalidInstanceError, placement.InvalidPlanError) as exc:
            _fail(EXIT_INVALID, exc.lines())
        except (solvers.UnknownSolverError, solvers.UnsupportedProblemError, solvers.InvalidOptionError,
                models.CatalogError) as exc:
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


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmplace")
def main() -> None:
    """Plan where an LLM runs across device, edge and cloud nodes."""


@main.command()
@click.argument("instance", type=click.Path(dir_okay=False))
@click.option("--solver", "-s", default=solvers.DEFAULT_SOLVER, show_default=True,
              help="A registered solver (see `llmplace solvers`); auto picks the exact solver that handles the instance.")
@click.option("--backend", default=None, help="Backend of solvers that have several (same as --option backend=...).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds; the best plan found by then is returned with its gap.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rel-gap", type=click.FloatRange(min=0, max=1, max_open=True), default=1e-6, show_default=True)
@click.option("--option", "-O", "option_pairs", multiple=True, metavar="KEY=VALUE", help="Solver-specific setting (repeatable).")
@click.option("--verbose", is_flag=True, help="Show the backend's log.")
@click.option("--json", "as_json", is_flag=True, help="Print only the plan JSON on stdout.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the plan JSON to this file.")
@_guarded
def solve(instance: str, solver: str, backend: str | None, time_limit: float, threads: int, seed: int,
          rel_gap: float, option_pairs: tuple[str, ...], verbose: bool, as_json: bool, output: str | None) -> None:
    """Solve INSTANCE and print the plan."""
    options = _parse_options(option_pairs)
    if backend:
        options["backend"] = backend
    if output:
        _check_output(output, instance)
    problem = placement.load_instance(instance)
    params = solvers.SolveParams(time_limit_s=time_limit, threads=threads, seed=seed, rel_gap=rel_gap, verbose=verbose)
    plan = solvers.solve(problem, solver=solver, params=params, options=options)
    # Print before writing, so a plan file that cannot be written does not lose the plan.
    if as_json:
        click.echo(json.dumps(placement.plan_to_dict(plan, problem), indent=2))
    else:
        click.echo(format_plan(problem, plan))
    if output:
        try:
            placement.save_plan(output, plan, problem)
        except OSError as exc:
            _fail(EXIT_ERROR, f"cannot write the plan file {output}: {exc.strerror or exc}")
        if not as_json:
            click.echo(f"\nplan written to {output}")
    sys.exit(_STATUS_EXIT[plan.status.value])


def _check_output(output: str, instance: str) -> None:
    """Refuse, before solving, a plan file that would overwrite the instance or cannot be written."""
    target, source = Path(output).resolve(), Path(instance).resolve()
    if target == source:
        raise click.BadParameter("is the instance file; the instance is never overwritten", param_hint="--output")
    if not target.parent.is_dir():
        raise click.BadParameter(f"folder {target.parent} does not exist", param_hint="--output")


@main.command()
@click.argument("instance", type=click.Path(dir_okay=False))
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the recomputed plan JSON.")
@_guarded
def evaluate(instance: str, plan_file: str, as_json: bool) -> None:
    """Recompute a plan's metrics with the cost model."""
    problem = placement.load_instance(instance)
    saved = placement.load_plan(plan_file)
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
@click.argument("instance", type=click.Path(dir_okay=False))
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
@click.argument("instance", type=click.Path(dir_okay=False))
@click.option("--solvers", "solver_list", default=None, metavar="A,B:BACKEND,...",
              help="Solvers to run (default: every applicable one; ilp runs each backend unless one is named).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds per solver run.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_guarded
def compare(instance: str, solver_list: str | None, time_limit: float, threads: int, seed: int, as_json: bool) -> None:
    """Run several solvers on INSTANCE and compare them side by side."""
    from solvers.compare import compare as run_compare, parse_solver_list

    problem = placement.load_instance(instance)
    params = solvers.SolveParams(time_limit_s=time_limit, threads=threads, seed=seed)
    rows = run_compare(problem, parse_solver_list(solver_list) if solver_list else None, params)
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
    statuses = {r.status for r in rows}
    sys.exit(EXIT_OK if statuses & {"optimal", "feasible"} else EXIT_INFEASIBLE if "infeasible" in statuses else EXIT_NO_PLAN)


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
