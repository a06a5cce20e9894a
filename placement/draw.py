"""A picture of a plan: the topology, each device's shards and memory, the routes, the binding resource.

:func:`draw_plan` lays devices out in columns by tier (device, edge, cloud),
writes on each its shards (model, blocks ``[start, end)``, weight format) and
its memory use against what it may use, draws the links (rate and latency),
each route as a coloured path from its source through its shards and back
with its share (fraction or rate), and marks in red the resource the plan's
throughput is bound by: the device, link direction or NIC with the most busy
seconds per decode token (:func:`placement.evaluate.route_resource_seconds`,
weighted by the routes' shares). Everything drawn is what ``evaluate()``
reports.

matplotlib is an optional dependency (``pip install -e '.[plot]'``); the
picture is written atomically as PNG or SVG, chosen by the file's suffix.

Examples
--------
>>> import tempfile, pathlib
>>> from placement import load_instance
>>> from solvers import solve
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "plan.svg"
>>> drawing = draw_plan(problem, solve(problem, "dp"), out)
>>> drawing.binding, out.read_text().count("<svg") == 1
(('device', 'edge'), True)
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from placement.evaluate import evaluate, route_resource_seconds
from placement.metrics import Metrics
from placement.plan import Plan, Route
from placement.safefiles import write_atomic
from placement.problem import Problem

__all__ = ["draw_plan", "Drawing", "FORMATS", "MatplotlibMissingError"]

FORMATS = {".png": "png", ".svg": "svg"}
_TIERS = ("device", "edge", "cloud")
_PER_COLUMN = 8  # devices stacked in one column before a tier takes another
_SHOWN_ROUTES = 12
_LINK_LABELS_UP_TO = 40  # more links than this are drawn without labels


class MatplotlibMissingError(RuntimeError):
    """Drawing needs matplotlib; the message says how to install it."""


@dataclass(frozen=True)
class Drawing:
    """What was drawn: the file, and the binding resource's label and seconds per decode token."""

    path: Path
    binding: tuple[str, ...] | None
    binding_s_per_token: float | None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MatplotlibMissingError("drawing a plan needs matplotlib: pip install -e '.[plot]' "
                                     "(or pip install 'llmplace[plot]')") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _positions(problem: Problem) -> dict[str, tuple[float, float]]:
    """Devices in columns by tier, left to right; a crowded tier wraps into several columns."""
    by_tier: dict[str, list[str]] = defaultdict(list)
    for n in problem.topology.nodes:
        by_tier[n.tier if n.tier in _TIERS else "edge"].append(n.id)
    pos, column = {}, 0.0
    for tier in _TIERS:
        ids = by_tier.get(tier, [])
        for start in range(0, len(ids), _PER_COLUMN):
            chunk = ids[start:start + _PER_COLUMN]
            for k, node_id in enumerate(chunk):
                pos[node_id] = (column, -(k - (len(chunk) - 1) / 2.0))
            column += 1.0
        if ids:
            column += 0.35  # a gap between tiers
    return pos


def _shares(routes: list[Route]) -> list[float]:
    """Each route's share of its class: by rate when routes carry rates, else by fraction (a lone
    route without one takes all), as ``evaluate()`` counts them."""
    if routes and all(r.rate_tok_s is not None for r in routes):
        total = sum(r.rate_tok_s or 0.0 for r in routes)
        return [(r.rate_tok_s or 0.0) / total if total > 0 else 1.0 / len(routes) for r in routes]
    if len(routes) == 1 and routes[0].fraction is None:
        return [1.0]
    return [r.fraction or 0.0 for r in routes]


def _binding(problem: Problem, plan: Plan) -> tuple[tuple[str, ...] | None, float | None]:
    """The resource with the most busy seconds per decode token over the plan's routes."""
    if not plan.routes:
        return None, None
    usage = route_resource_seconds(problem, plan)
    weights = problem.request_weights()
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(plan.routes):
        by_class[r.request].append(i)
    load: dict[tuple[str, ...], float] = defaultdict(float)
    rated = all(r.rate_tok_s is not None for r in plan.routes)
    for request, indices in by_class.items():
        shares = _shares([plan.routes[i] for i in indices])
        for i, share in zip(indices, shares):
            # Routes with rates load a resource by rate x seconds per token; otherwise by the class mix.
            scale = (plan.routes[i].rate_tok_s or 0.0) if rated else share * weights.get(request, 0.0)
            for label, seconds in (usage[i] or {}).items():
                load[label] += scale * seconds
    if not load:
        return None, None
    label = max(load, key=load.get)  # type: ignore[arg-type]
    return label, load[label]


def _device_text(problem: Problem, plan: Plan, metrics: Metrics | None, device: str) -> tuple[str, bool]:
    node = problem.topology.node(device)
    kind = node.spec.id + (f" x{node.count}" if node.count > 1 else "")
    lines = [f"{device}", f"{kind}"]
    shards = [s for s in plan.shards if s.device == device]
    for s in shards:
        fmt = s.weight_format or problem.model(s.model).weight_format
        lines.append(f"{s.model} [{s.layers[0]}, {s.layers[1]}) {fmt}")
    if metrics is not None and shards and device in metrics.devices:
        m = metrics.devices[device]
        lines.append(f"mem {m.memory_gb:.1f} / {m.memory_capacity_gb:.1f} GB ({m.memory_utilization:.0%})")
    return "\n".join(lines), bool(shards)


def _share_text(route: Route, share: float) -> str:
    if route.rate_tok_s is not None:
        return f"{route.rate_tok_s:,.1f} tok/s ({share:.0%})"
    return "all" if route.fraction is None else f"{route.fraction:.0%}"


def draw_plan(problem: Problem, plan: Plan, path: str | Path, title: str | None = None,
              protected: tuple[str, ...] = ()) -> Drawing:
    """Draw ``plan`` on ``problem`` into ``path`` (``.png`` or ``.svg``), written as plan files are
    (a regular file, atomically, never over the instance's files or ``protected``).

    Raises
    ------
    ValueError
        For a suffix other than ``.png`` or ``.svg``.
    InvalidPlanError
        If the plan names devices, shards or requests the instance does not have.
    MatplotlibMissingError
        When matplotlib is not installed (the message says how to install it).
    """
    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the picture's format comes from its suffix: .png or .svg")
    plt = _pyplot()
    metrics = evaluate(problem, plan) if plan.shards else None
    binding, binding_s = _binding(problem, plan) if plan.shards else (None, None)
    pos = _positions(problem)
    columns = max(x for x, _ in pos.values()) + 1
    rows = max(max(-y for _, y in pos.values()) * 2 + 1, 2)
    fig, ax = plt.subplots(figsize=(max(7.0, 3.4 * columns), max(4.5, 1.25 * rows + 1.5)))
    _draw_links(ax, problem, pos, binding)
    _draw_routes(ax, problem, plan, pos)
    _draw_devices(ax, problem, plan, metrics, pos, binding)
    head = title or (f"{problem.name}: {plan.solver or 'plan'} -> {plan.status.value}"
                     + (f", {problem.objective.name} {_number(plan.objective)} {problem.objective.unit}"
                        if plan.objective is not None else ""))
    if binding is not None:
        head += f"\nbinding resource (red): {' '.join(binding)}, {_number(binding_s * 1e3)} ms busy per decode token"
    if metrics is not None and problem.objective.name != "throughput":
        head += f"; throughput {_number(metrics.throughput_tok_s)} tok/s"
    ax.set_title(head, fontsize=10)
    ax.set_xlim(-0.8, columns - 0.2)
    top = max(y for _, y in pos.values())
    ax.set_ylim(min(y for _, y in pos.values()) - 0.7, top + 1.0)
    ax.text(0.0, 0.0, "A hop between shards on devices that share no link takes the best network path; "
                      "it is drawn as one hop.", transform=ax.transAxes, fontsize=6.5, color="0.45")
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(target, buffer.getvalue(), protected=(*problem.input_files, *protected))
    return Drawing(target, binding, binding_s)


def _draw_links(ax: Any, problem: Problem, pos: dict[str, tuple[float, float]],
                binding: tuple[str, ...] | None) -> None:
    links = problem.topology.links
    for link in links:
        (xa, ya), (xb, yb) = pos[link.a], pos[link.b]
        hot = binding is not None and binding[0] == "link" and set(binding[1:]) <= {link.a, link.b}
        ax.plot([xa, xb], [ya, yb], color="red" if hot else "0.75", linewidth=3 if hot else 1, zorder=1)
        if len(links) <= _LINK_LABELS_UP_TO:
            rate = link.rate_mbps
            text = (f"{rate / 1000:.3g} Gb/s" if rate >= 1000 else f"{rate:.3g} Mb/s") + f", {link.latency_ms:g} ms"
            ax.text((xa + xb) / 2, (ya + yb) / 2, text, fontsize=6.5, color="red" if hot else "0.35",
                    ha="center", va="center", zorder=2, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})


def _hop(ax: Any, start: tuple[float, float], end: tuple[float, float], bend: float, colour: str) -> None:
    """A curved hop from ``start`` to ``end`` (a quadratic Bezier bowing by ``bend`` of its length to the
    right of its direction), its arrowhead half-way, where no device box hides it."""
    (x0, y0), (x2, y2) = start, end
    cx, cy = (x0 + x2) / 2 + bend * (y2 - y0), (y0 + y2) / 2 - bend * (x2 - x0)
    ts = [k / 24 for k in range(25)]
    xs = [(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t * t * x2 for t in ts]
    ys = [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t * t * y2 for t in ts]
    ax.plot(xs, ys, color=colour, linewidth=1.6, alpha=0.85, zorder=3)
    ax.annotate("", xy=(xs[13], ys[13]), xytext=(xs[11], ys[11]), zorder=3,
                arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.6, "mutation_scale": 14,
                            "shrinkA": 0, "shrinkB": 0})


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _draw_routes(ax: Any, problem: Problem, plan: Plan, pos: dict[str, tuple[float, float]]) -> None:
    shards = {s.id: s for s in plan.shards}
    by_class: dict[str, list[Route]] = defaultdict(list)
    for r in plan.routes:
        by_class[r.request].append(r)
    colours = [f"C{k}" for k in range(10)]
    drawn = 0
    for request, routes in by_class.items():
        source = problem.request(request).source
        for route, share in zip(routes, _shares(routes)):
            if drawn >= _SHOWN_ROUTES:
                drawn += 1
                continue
            stops = [source, *(shards[s].device for s in route.path if s in shards), source]
            colour = colours[drawn % len(colours)]
            bend = 0.12 + 0.07 * drawn
            for a, b in zip(stops, stops[1:]):
                if a != b:
                    _hop(ax, pos[a], pos[b], bend, colour)
            path = " -> ".join([source, *(f"{s}@{shards[s].device}" for s in route.path if s in shards), source])
            ax.plot([], [], color=colour, linewidth=2, label=f"{request}: {path} ({_share_text(route, share)})")
            drawn += 1
    if drawn > _SHOWN_ROUTES:
        ax.plot([], [], color="none", label=f"... and {drawn - _SHOWN_ROUTES} more route(s)")
    if drawn:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=7.5, frameon=False,
                  ncol=1 if drawn <= 6 else 2)


def _draw_devices(ax: Any, problem: Problem, plan: Plan, metrics: Metrics | None,
                  pos: dict[str, tuple[float, float]], binding: tuple[str, ...] | None) -> None:
    sources = {r.source for r in problem.workload}
    for node in problem.topology.nodes:
        x, y = pos[node.id]
        text, holds = _device_text(problem, plan, metrics, node.id)
        hot_device = binding == ("device", node.id)
        hot_nic = binding is not None and binding[0] in ("nic_out", "nic_in") and binding[1] == node.id
        edge = "red" if hot_device or hot_nic else ("0.2" if holds else "0.6")
        face = "#fde0dd" if hot_device else ("#e8f1fb" if holds else "#f4f4f4")
        if hot_nic:
            text += f"\n{binding[0].replace('_', ' ')} binds"  # type: ignore[index]
        if node.id in sources:
            text += "\n(request source)"
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5 if holds else 7, zorder=4,
                color="0.1" if holds else "0.4",
                bbox={"boxstyle": "round,pad=0.4", "facecolor": face, "edgecolor": edge,
                      "linewidth": 2.2 if (hot_device or hot_nic) else 1.0})
    top = max(y for _, y in pos.values()) + 0.7
    for tier in _TIERS:
        xs = [pos[n.id][0] for n in problem.topology.nodes if (n.tier if n.tier in _TIERS else "edge") == tier]
        if xs:
            ax.text(sum(xs) / len(xs), top, tier, ha="center", fontsize=9, color="0.45", style="italic")
