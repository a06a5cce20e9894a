"""Plain-text reports of plans and predictions, for terminals and logs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from placement.evaluate import route_shares
from placement.metrics import Metrics
from placement.objective import unserved_weight
from placement.plan import Plan, Status
from placement.predict import Prediction
from placement.problem import METRICS, Problem, aggregate_key

__all__ = ["table", "format_plan", "format_evaluation", "format_prediction", "fmt_num"]


def fmt_num(value: Any, digits: int = 3) -> str:
    """A compact human number: ``1,834``, ``12.5``, ``0.0421``, ``-`` for missing, ``inf``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """Left-aligned text columns (numbers right-aligned)."""
    cells = [[fmt_num(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(not isinstance(r[i], str) or r[i] == "-" for r in rows) if rows else False
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def _solver_name(plan: Plan) -> str:
    picked = plan.stats.get("picked") if isinstance(plan.stats, dict) else None
    name = f"{plan.solver} (picked {picked})" if picked else plan.solver
    return name + (f", backend {plan.backend}" if plan.backend else "")


def _status_line(problem: Problem, plan: Plan) -> str:
    how = f"{plan.status.value} ({plan.termination.value})"
    space = plan.stats.get("plan_space") if isinstance(plan.stats, dict) else None
    if plan.status is Status.INFEASIBLE and plan.proof.value == "any_plan":
        how = f"{plan.status.value} ({plan.termination.value}, proven for every plan)"
    elif plan.status is Status.OPTIMAL and space:
        how = f"{plan.status.value} ({plan.termination.value}, over the {space} plan space)"
    return f"{problem.name}: solver {_solver_name(plan)} -> {how} in {plan.solve_time_s:.3g} s"


def _objective_line(plan: Plan) -> str:
    if plan.objective is None:
        return "objective: -"
    unit = f" {plan.objective_unit}" if plan.objective_unit else ""
    text = f"objective: {plan.objective_name} = {fmt_num(plan.objective)}{unit}"
    if plan.bound is None:
        text += " (no bound: heuristic)" if plan.termination.value == "heuristic" else " (no bound)"
    else:
        text += f", bound {fmt_num(plan.bound)}{unit}, gap {fmt_num(100 * (plan.gap or 0.0))}%"
    return text


def format_plan(problem: Problem, plan: Plan) -> str:
    """A readable account of ``plan``: shards, routes, per-request and per-device predictions."""
    out = [_status_line(problem, plan), _objective_line(plan)]
    if plan.reasons:
        title = "why" if plan.status in (Status.INFEASIBLE, Status.NO_SOLUTION, Status.ERROR) else "notes"
        out.append(f"\n{title}:")
        out.extend(f"  - {r}" for r in plan.reasons)
    out += _body(problem, plan)
    if plan.predicted is not None and plan.predicted.violations and plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        out.append("violations:")
        out.extend(f"  - {v}" for v in plan.predicted.violations)
    return "\n".join(out)


def format_evaluation(problem: Problem, saved: Plan, metrics: Metrics) -> str:
    """What ``evaluate`` computed for a plan file: its verdict first, then what the file claims.

    The file's status and gap are the solver's account when it wrote the file; the verdict
    is this cost model's, on this instance, now.
    """
    unit = f" {problem.objective.unit}" if problem.objective.unit else ""
    verdict = "meets every limit" if metrics.feasible else \
        f"breaks {len(metrics.violations)} limit{'s' if len(metrics.violations) != 1 else ''}"
    out = [f"{problem.name}: evaluated plan -> {verdict}",
           f"objective: {problem.objective.name} = {fmt_num(metrics.objective)}{unit}"]
    claim = f"{saved.status.value} ({saved.termination.value})"
    if saved.solver:
        claim = f"solver {_solver_name(saved)}: {claim}"
    if saved.objective is not None:
        claim += f", objective {fmt_num(saved.objective)}"
    if saved.gap is not None:
        claim += f", gap {fmt_num(100 * saved.gap)}%"
    out.append(f"the plan file says: {claim}")
    if saved.objective is not None and abs(saved.objective - metrics.objective) > 1e-9 * max(1.0, abs(saved.objective)):
        out.append(f"note: the plan file's objective {fmt_num(saved.objective)} differs from what the cost model "
                   f"gives now ({fmt_num(metrics.objective)})")
    if metrics.violations:
        out.append("\nbroken limits:")
        out.extend(f"  - {v}" for v in metrics.violations)
    out += _body(problem, saved.with_(predicted=metrics))
    return "\n".join(out)


def _body(problem: Problem, plan: Plan) -> list[str]:
    """Shards, routes, requests and devices of ``plan`` (empty without shards)."""
    out: list[str] = []
    if not plan.shards and not plan.unserved:
        return out
    topo = problem.topology
    out.append("\nshards:")
    out.append(table(
        ["shard", "model", "device", "tier", "layers", "blocks", "format"],
        [[s.id, s.model, s.device, topo.node(s.device).tier, f"[{s.layers[0]}, {s.layers[1]})", s.num_blocks,
          s.weight_format or problem.model(s.model).weight_format] for s in plan.shards],
    ))
    shards = {s.id: s for s in plan.shards}
    m = plan.predicted
    caching = _is_caching(problem, plan)
    if caching:
        out += _cache_section(problem, plan)
        out += _routing_section(problem, plan)
    else:
        routes = plan.routes
        if m is not None and m.routing == "max-flow" and not routes:
            routes = m.routes
            out.append(f"\nroutes (routing: max-flow; the plan gives none, so evaluate routed its shards: "
                       f"{len(routes)} route(s)):")
        else:
            out.append("\nroutes:")
        for r in routes:
            req = problem.request(r.request)
            hops = " -> ".join(f"{sid}@{shards[sid].device}" for sid in r.path)
            share = f" ({r.fraction:.0%})" if r.fraction is not None and r.fraction < 1 else ""
            share += f" at {fmt_num(r.rate_tok_s)} tok/s" if r.rate_tok_s is not None else ""
            out.append(f"  {r.request}{share}: {req.source} -> {hops} -> {req.source}")
    if m is None:
        return out
    out.append("\nrequests:")
    if caching:
        out += _quality_table(problem, m)
    elif problem.constraints.queueing:
        out.append(table(
            ["request", "TTFT ms", "queue ms", "TPOT ms", "E2E ms", "energy J", "J/token", "SLO", "meet SLOs"],
            [[rid, rm.ttft_ms, rm.queue_ms, rm.tpot_ms, rm.e2e_ms, rm.energy_j, rm.energy_j_per_token,
              "met" if rm.slo_met else "missed",
              "-" if rm.slo_attainment is None else f"{rm.slo_attainment:.1%}"] for rid, rm in m.requests.items()],
        ))
    else:
        out.append(table(
            ["request", "TTFT ms", "TPOT ms", "E2E ms", "energy J", "J/token", "idle J", "SLO"],
            [[rid, rm.ttft_ms, rm.tpot_ms, rm.e2e_ms, rm.energy_j, rm.energy_j_per_token, rm.idle_energy_j,
              "met" if rm.slo_met else "missed"] for rid, rm in m.requests.items()],
        ))
    if caching and plan.unserved:
        out.append("\nunserved:")
        out.append(table(["request", "share", "reason", "why"],
                         [[u.request, f"{u.share:.1%}", u.reason.value, u.detail] for u in plan.unserved]))
    if caching:
        out.append(_objective_terms(problem, m))
    out.append("\ndevices (memory in GB):")
    rows = []
    for did, dm in m.devices.items():
        if not dm.shards:
            continue
        rows.append([did, f"{dm.memory_gb:.2f} / {dm.memory_capacity_gb:.2f}", f"{dm.memory_utilization:.0%}",
                     dm.weights_gb, dm.kv_cache_gb, dm.workspace_gb, dm.runtime_gb,
                     "-" if dm.utilization is None else f"{dm.utilization:.0%}"])
    out.append(table(["device", "used / usable", "mem", "weights", "KV", "workspace", "runtime", "busy"], rows))
    if m.changes is not None:
        out += _changes_section(m.changes)
    calib = "calibrated efficiencies" if m.calibrated else "some default (uncalibrated) efficiencies"
    routing = " (routing: max-flow)" if m.routing == "max-flow" else ""
    # Two decimals: throughputs are compared with published max-flow figures to 0.01 tok/s.
    tput = m.throughput_tok_s
    shown = f"{tput:,.2f}" if isinstance(tput, float) and math.isfinite(tput) else fmt_num(tput)
    out.append(f"\nthroughput: {shown} tok/s{routing}; predictions use {calib}")
    if m.goodput_rps is not None:
        share = problem.constraints.goodput_share
        out.append(f"goodput: {fmt_num(m.goodput_rps)} requests/s with {share:.0%} of requests meeting their SLOs "
                   f"(M/G/1 queues; the workload asks for {fmt_num(sum(r.rate_rps or 0 for r in problem.workload))})")
    return out


# -- model caching ------------------------------------------------------------------------------


def _is_caching(problem: Problem, plan: Plan) -> bool:
    """Whether to show the plan as a model cache: a caching instance, or a plan that declares unserved
    demand or routes cascades."""
    return bool(problem.portfolio_features() or plan.unserved or any(r.escalate_to for r in plan.routes))


def _instance_name(problem: Problem, shard) -> str:
    fmt = shard.weight_format or problem.model(shard.model).weight_format
    whole = shard.layers == (0, problem.model(shard.model).num_blocks)
    return f"{shard.model} {fmt}" + ("" if whole else f" [{shard.layers[0]}, {shard.layers[1]})")


def _cache_section(problem: Problem, plan: Plan) -> list[str]:
    """Per device, what the plan keeps resident."""
    rows = []
    devices = plan.predicted.devices if plan.predicted is not None else {}
    for node in problem.topology.nodes:
        held = [s for s in plan.shards if s.device == node.id]
        if not held:
            continue
        dm = devices.get(node.id)
        rows.append([node.id, node.tier, ", ".join(_instance_name(problem, s) for s in held),
                     f"{dm.memory_gb:.2f} / {dm.memory_capacity_gb:.2f}" if dm else "-",
                     "-" if dm is None or dm.utilization is None else f"{dm.utilization:.0%}"])
    limit = problem.constraints.max_utilization
    title = "\ncache (resident per device)" + (f", busy limit {limit:.0%}:" if limit < 1 else ":")
    return [title, table(["device", "tier", "resident", "memory GB used / usable", "busy"], rows)]


def _chain_text(problem: Problem, plan: Plan, path) -> str:
    shards = [plan.shard(sid) for sid in path]
    return f"{shards[0].model}@" + "+".join(s.device for s in shards)


def _routing_section(problem: Problem, plan: Plan) -> list[str]:
    """Per class: the share each route takes (cascades with their escalation) and what is unserved."""
    rows = []
    unserved = {u.request: u for u in plan.unserved}
    for req in problem.workload:
        routes = [r for r in plan.routes if r.request == req.id]
        for r, share in zip(routes, route_shares(routes) if routes else []):
            text = _chain_text(problem, plan, r.path)
            if r.escalate_to:
                first, then = plan.shard(r.path[0]).model, plan.shard(r.escalate_to[0]).model
                cascade = req.cascade(first, then)
                e = f"{cascade.escalate_share:.0%}" if cascade else "?"
                text += f", escalates {e} to {_chain_text(problem, plan, r.escalate_to)}"
            rows.append([req.id, f"{share:.1%}", text])
        if req.id in unserved:
            rows.append([req.id, f"{unserved[req.id].share:.1%}", f"unserved ({unserved[req.id].reason.value})"])
        elif not routes:
            rows.append([req.id, "-", "no route"])
    return ["\nrouting (share of each class's requests):", table(["request", "share", "to"], rows)]


def _quality_table(problem: Problem, m: Metrics) -> list[str]:
    rows = []
    for req in problem.workload:
        rm = m.requests[req.id]
        served = rm.served_share > 0
        quality = "-" if rm.quality is None else f"{rm.quality:.1f}"
        floor = "" if req.min_quality is None else f" (min {req.min_quality:g})"
        bench = f"{req.benchmark} {quality}{floor}" if req.benchmark else "-"
        rows.append([req.id, f"{rm.served_share:.1%}", bench,
                     *(([rm.ttft_ms, rm.tpot_ms, rm.e2e_ms, rm.energy_j] if served else ["-"] * 4)),
                     ("met" if rm.slo_met else "missed") if served else "-"])
    return [table(["request", "served", "quality", "TTFT ms", "TPOT ms", "E2E ms", "energy J", "SLO"], rows)]


def _objective_terms(problem: Problem, m: Metrics) -> str:
    """The objective's parts (per-request metrics are weighted by the classes' weights and served shares)."""
    values = {name: m.aggregates.get(aggregate_key(name)) for name in METRICS}
    parts = []
    for name, weight in problem.objective.terms:
        value = values.get(name)
        unit = METRICS[name][1]
        shown = f"{value:.1%}" if name == "unserved" and value is not None else f"{fmt_num(value)} {unit}"
        parts.append(f"{fmt_num(weight) + ' x ' if len(problem.objective.terms) > 1 else ''}{name} {shown}")
    names = {name for name, _ in problem.objective.terms}
    if "unserved" not in names and (values.get("unserved") or 0) > 0:
        parts.append(f"{fmt_num(unserved_weight(problem))} x unserved {values['unserved']:.1%} (the default weight)")
    return "\nobjective terms: " + " + ".join(parts)


def _changes_section(changes) -> list[str]:
    """Loads, evictions and kept shards against the current cache."""
    rows = [["load", c.device, f"{c.model} {c.weight_format}", c.weights_gb,
             "-" if c.load_s is None else f"{c.load_s:.1f}", "-" if c.load_j is None else fmt_num(c.load_j)]
            for c in changes.loads]
    rows += [["evict", c.device, f"{c.model} {c.weight_format}", c.weights_gb, "", ""] for c in changes.evicted]
    rows += [["keep", c.device, f"{c.model} {c.weight_format}", c.weights_gb, "", ""] for c in changes.kept]
    out = ["\nchanges against the current cache:"]
    if rows:
        out.append(table(["change", "device", "instance", "GB", "load s", "load J"], rows))
    ready = "-" if changes.ready_s is None else f"{changes.ready_s:.1f} s"
    total = "-" if changes.load_s is None else f"{changes.load_s:.1f} s"
    energy = "-" if changes.load_j is None else f"{fmt_num(changes.load_j)} J"
    out.append(f"  {len(changes.loads)} load(s), {len(changes.evicted)} eviction(s), {len(changes.kept)} kept; "
               f"loading takes {total} in all, the new cache is ready in {ready}; {energy}")
    return out


def format_prediction(p: Prediction) -> str:
    """A readable account of one prediction."""
    fit = "fits" if p.fits else "does NOT fit"
    rows = [
        ["TTFT", f"{fmt_num(p.ttft_ms)} ms"],
        ["TPOT", f"{fmt_num(p.tpot_ms)} ms"],
        ["end-to-end", f"{fmt_num(p.e2e_ms)} ms"],
        ["prefill", f"{fmt_num(p.prefill_tok_s)} tok/s"],
        ["decode", f"{fmt_num(p.decode_tok_s)} tok/s"],
        ["energy", f"{fmt_num(p.energy_j_per_token)} J/token at {fmt_num(p.power_w)} W"],
        ["memory", f"{p.peak_memory_gb:.2f} GB of {p.memory_capacity_gb:.2f} usable ({fit}): weights "
                   f"{p.weights_gb:.2f}, KV cache {p.kv_cache_gb:.2f}"],
        ["efficiencies", "calibrated" if p.calibrated else "default (uncalibrated)"],
    ]
    head = (f"{p.model} on {p.device} ({p.engine}, {p.weight_format}), batch {p.batch}, "
            f"prompt {p.prompt_tokens}, output {p.output_tokens}")
    return head + "\n" + table(["", ""], rows).split("\n", 1)[1]
