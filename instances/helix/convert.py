"""Convert the four published Helix clusters into llmplace instances and plan files.

Usage::

    python -m instances.helix.convert REFERENCE.json [--out instances/helix]

``REFERENCE.json`` is the neutral extraction of the Helix artifact
(github.com/Thesys-lab/Helix-ASPLOS25 at 148b733, Apache-2.0): machine types, per-node
tokens/s by layers held, links, and the published placements with their max-flow
objectives. For each cluster the script writes ``<name>.yaml`` (the instance) and
``<name>.published.json`` (the published placement as a plan file with shards and no
routes), then evaluates every published placement with llmplace's cost model and
stops with an error unless it reproduces the published max-flow to 0.015 tokens/s (the
extracted capacity tables are rounded to 0.01 tokens/s, and a max-flow may sum two of them).

What is mapped how (Helix's model on the left, llmplace's on the right):

- **Node capacity.** Helix's per-node tokens/s when holding ``k`` layers (its
  ``get_typical_token_throughput``, per machine type and cluster) becomes the device's
  ``profile.throughput_tokens_per_s`` for ``k = 1 .. max_layers``, with Helix's
  ``max_layers`` per machine type. The cost table then charges ``1 / tokens/s`` device
  seconds per decode token, exactly Helix's node capacity.
- **Link units.** Helix's ``.ini`` files write bandwidth in "Mbps", but its code divides
  that figure (times 1e6) by bytes, i.e. reads it as megabytes per second. llmplace's
  ``bandwidth_mbps`` is megabits per second, so every bandwidth is multiplied by 8.
- **Activation bytes.** Helix moves ``hidden x 2`` bytes per token between nodes
  (16,384 for LLaMA-2 70B, 13,312 for LLaMA 30B); llmplace moves ``hidden x
  ACTIVATION_BYTES`` = the same.
- **Token bytes.** Helix's coordinator links carry 2-byte token ids; llmplace's carry
  ``TOKEN_ID_BYTES`` = 4. The coordinator links carry nothing else, so their bandwidth is
  multiplied by a further 4 / 2: one token then occupies a coordinator link exactly as
  long as in Helix (the prompt's upload, which only TTFT sees, gets twice Helix's rate).
- **Direction of the coordinator links.** Helix has two one-way links per node,
  ingress (coordinator to node) and egress (node to coordinator), with their own
  figures in the three-region cluster; llmplace's links are undirected. The converted
  link takes the egress figures, the direction decode throughput uses (the sampled
  token's return to the source).
- **The sampled token's loop.** In Helix the next token goes back through the
  coordinator (egress, then ingress to the first node); in llmplace it goes from the
  last shard to the first directly (over their compute link) and to the source. The
  ingress link is therefore not charged, and the compute link from the last device to
  the first carries 4 bytes per token (and nothing else, when each device holds one
  range: the last device sends no activations). Neither binds: the script checks that
  every ingress link and every compute link could carry these token bytes at more than
  ten times the most any placement of the cluster can serve (every node's best tokens/s
  x layers, over the model's layers), so the max-flow of every such placement is Helix's.
- **Paths.** Helix routes a pair of nodes over their own link only. Every device here
  has ``relays: false`` (it forwards nothing for others), so each transfer takes its
  pair's link, never a relay: the three-region cluster's slow cross-region links
  bind exactly as in Helix.
- **NICs.** Helix's flow model has no NIC constraint (its NIC figure caps node
  capacity, where it never binds), so no ``nic_mbps`` is set.
- **The coordinator** is a device that holds no blocks (``holds_blocks: false``) and is
  every request's source. Its type (a desktop CPU) only matters for what it would
  hold, which is nothing.
- **Devices.** A100 -> ``a100-sxm-40gb``, V100 -> ``v100-16gb``, L4 -> ``l4``, T4 ->
  ``t4``; 2xL4, 2xT4 and 4xT4 machines are one node of ``count`` 2 or 4. Their measured
  per-layer step times (vLLM 0.4.0, fp16) at the workload's sizes become
  ``prefill_ms_per_layer`` and ``decode_ms_per_layer``, for TTFT and TPOT (Helix's
  objective does not use them).
- **Workload.** One request class from the coordinator, ShareGPT-sized (246 prompt and
  235 output tokens, batch 1), throughput objective. The workload sets memory (KV cache)
  and latencies, not the capacities above.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from placement import Plan, Shard, Status, Termination, evaluate, parse_instance, plan_to_dict, write_atomic
from placement.safefiles import UnsafeFileError
from placement.costs import ACTIVATION_BYTES, TOKEN_ID_BYTES

__all__ = ["convert", "HELIX_TOKEN_BYTES", "MBYTE_TO_MBIT", "CLUSTERS"]

HELIX_TOKEN_BYTES = 2
MBYTE_TO_MBIT = 8  # Helix's "Mbps" is read as MB/s by its code
CLUSTERS = {"helix_single24": "single24", "helix_geo3region24": "geo3region24", "helix_hetero42": "hetero42",
            "helix_quality10": "quality10"}
_MODELS = {"llama2_70b": "llama-2-70b", "llama1_30b": "llama-30b"}
_TYPES = {"A100": ("a100-sxm-40gb", 1), "V100": ("v100-16gb", 1), "L4": ("l4", 1), "L4x2": ("l4", 2),
          "T4": ("t4", 1), "T4x2": ("t4", 2), "T4x4": ("t4", 4)}
_PROMPT_TOKENS, _OUTPUT_TOKENS, _BATCH = 246, 235, 1  # the sharegpt workload profile
# The extracted capacity tables are rounded to 0.01 tokens/s; a max-flow that sums two rounded capacities
# (single24: 531.70 + 757.85 = 1289.55 against Gurobi's 1289.56 on the unrounded ones) may differ by 0.01.
_TOLERANCE_TOK_S = 0.015
# Token-carrying links must outrun every placement this many times. The loop's link (last device to
# first) carries nothing else when each device holds one range (the last device sends no activations),
# and Helix's ingress link nothing but tokens, so any headroom above 1 keeps them from binding.
_TOKEN_HEADROOM = 10.0


def _model_key(cluster: dict) -> str:
    return cluster["model"].split()[0]


def _milp(cluster: dict) -> dict:
    return next(v for k, v in cluster["reported"].items() if k.startswith("helix_milp_"))


def _step_ms(table: dict[str, float], tokens: int) -> float:
    """Milliseconds per layer for ``tokens`` tokens, interpolated in a measured table (keys: tokens)."""
    xs = np.array(sorted(int(k) for k in table))
    ys = np.array([table[str(k)] for k in xs])
    positive = xs[ys > 0]
    if tokens <= positive[0]:  # the smallest batch measured costs what it costs
        return float(ys[xs == positive[0]][0])
    return float(np.interp(tokens, xs, ys))


def _device(node: dict, capacities: list[float], most: int, model: str, steps: dict) -> dict:
    kind, count = _TYPES[node["helix_machine_type"]]
    profile = {"model": model, "max_layers": most,
               "throughput_tokens_per_s": {k + 1: float(v) for k, v in enumerate(capacities[:most])},
               "prefill_ms_per_layer": round(_step_ms(steps["prefill_ms_per_layer_by_batch_tokens"],
                                                      _PROMPT_TOKENS * _BATCH), 6),
               "decode_ms_per_layer": round(_step_ms(steps["decode_ms_per_layer_by_batch_tokens"], _BATCH), 6)}
    out = {"id": node["id"], "type": kind}
    if count > 1:
        out["count"] = count
    out.update(relays=False, profile=profile)
    return out


def _links(cluster: dict) -> list[dict]:
    """Compute links (a fully connected group when they are all alike) and the coordinator's egress links."""
    compute = [l for l in cluster["links"] if l["kind"] == "compute"]
    egress = [l for l in cluster["links"] if l["kind"] == "egress"]
    token_scale = TOKEN_ID_BYTES / HELIX_TOKEN_BYTES
    out: list[dict] = []
    figures = {(l["bandwidth_mbps"], l["latency_ms"]) for l in compute}
    nodes = [n["id"] for n in cluster["nodes"]]
    pairs = {frozenset((l["src"], l["dst"])) for l in compute}
    if len(figures) == 1 and len(pairs) == len(nodes) * (len(nodes) - 1) // 2:
        bw, lat = figures.pop()
        out.append({"group": nodes, "bandwidth_mbps": bw * MBYTE_TO_MBIT, "latency_ms": lat})
    else:
        out += [{"a": l["src"], "b": l["dst"], "bandwidth_mbps": round(l["bandwidth_mbps"] * MBYTE_TO_MBIT, 6),
                 "latency_ms": l["latency_ms"]} for l in compute]
    out += [{"a": "coordinator", "b": l["src"],
             "bandwidth_mbps": round(l["bandwidth_mbps"] * MBYTE_TO_MBIT * token_scale, 6),
             "latency_ms": l["latency_ms"]} for l in egress]
    return out


def instance(cluster: dict, reference: dict) -> dict:
    """The llmplace instance of one published cluster (a dict, ready for YAML)."""
    key = _model_key(cluster)
    model = _MODELS[key]
    most = reference["models"][key]["helix_max_layers_per_machine"]
    table = _milp(cluster)["helix_node_capacity_tokens_per_s_by_layers"]["table"]
    steps = reference["layer_profiles"]["data"][key]
    coordinator = {"id": "coordinator", "type": "intel-i9-13900k", "tier": "cloud", "holds_blocks": False,
                   "relays": False}
    devices = [coordinator] + [_device(n, table[n["helix_machine_type"]], most[n["helix_machine_type"]], model,
                                       steps[n["helix_machine_type"]]) for n in cluster["nodes"]]
    milp = _milp(cluster)
    return {
        "schema_version": 1,
        "name": f"helix-{CLUSTERS[cluster['name']]}",
        "description": (f"{cluster['description']} Published in Helix (ASPLOS'25) "
                        f"{cluster['reported']['paper_section']}; "
                        f"its MILP placement serves {milp['objective_max_flow_tokens_per_s']} tokens/s. Converted by "
                        "instances/helix/convert.py from the Helix artifact "
                        "(github.com/Thesys-lab/Helix-ASPLOS25@148b733): "
                        "bandwidths x8 (Helix reads 'Mbps' as MB/s), coordinator links x2 more (2-byte tokens there, "
                        "4 here); see the script for every mapping."),
        "models": [{"id": model, "weight_format": "fp16"}],
        "devices": devices,
        "links": _links(cluster),
        "workload": [{"id": "serve", "source": "coordinator", "prompt_tokens": _PROMPT_TOKENS,
                      "output_tokens": _OUTPUT_TOKENS, "batch": _BATCH}],
        "objective": "throughput",
    }


def published_plan(cluster: dict, model: str) -> Plan:
    """The published placement: one shard per node, no routes (evaluate routes them by max-flow)."""
    milp = _milp(cluster)
    layout = sorted(milp["placement_layers_half_open"].items(), key=lambda kv: int(kv[0][1:]))
    shards = tuple(Shard(f"s-{node}", model, node, (int(a), int(b))) for node, (a, b) in layout)
    stats = {"published_max_flow_tok_s": milp["objective_max_flow_tokens_per_s"], "published_by": milp.get("solver"),
             "sources": milp.get("sources", []), "paper_section": cluster["reported"]["paper_section"]}
    return Plan(shards=shards, status=Status.FEASIBLE, termination=Termination.HEURISTIC, solver="helix-milp",
                stats=stats)


def _check_mapping(cluster: dict, reference: dict) -> None:
    """Raise unless the mapping keeps Helix's objective: activation bytes agree, and every link that
    carries only token ids (ingress in Helix; the loop here) outruns every placement by far."""
    from models import load_model

    key = _model_key(cluster)
    ours = ACTIVATION_BYTES * load_model(_MODELS[key]).arch.hidden_size
    theirs = int(reference["models"][key]["activation_bytes_per_token"])
    if ours != theirs:
        raise SystemExit(f"error: {cluster['name']}: activations are {ours} bytes per token here, {theirs} in Helix")
    table = _milp(cluster)["helix_node_capacity_tokens_per_s_by_layers"]["table"]
    layers = reference["models"][key]["layers"]
    # No placement carries more than every node's best tokens x layers spread over the model's layers.
    best = sum(max((k + 1) * v for k, v in enumerate(table[n["helix_machine_type"]]))
               for n in cluster["nodes"]) / layers
    slowest_in = min(l["bandwidth_mbps"] for l in cluster["links"] if l["kind"] == "ingress") * 1e6
    slowest_compute = min(l["bandwidth_mbps"] for l in cluster["links"] if l["kind"] == "compute") * 1e6
    carried = min(slowest_in / HELIX_TOKEN_BYTES, slowest_compute / TOKEN_ID_BYTES)
    if carried < _TOKEN_HEADROOM * best:
        raise SystemExit(f"error: {cluster['name']}: token links could bind ({carried:.3g} tokens/s against {best:.3g}): "
                         "the mapping of the sampled token's loop would change the objective")


def _yaml(data: dict) -> str:
    head = ("# Generated by instances/helix/convert.py from the Helix artifact extraction; do not edit by hand.\n"
            "# The published placement is the plan file next to this one (*.published.json).\n")
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def _read_reference(path: str | Path) -> dict:
    """The extraction at ``path``; OSError when it cannot be read, ValueError when it is not one."""
    try:
        reference = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(reference, dict) or not isinstance(reference.get("clusters"), list) \
            or not reference["clusters"]:
        raise ValueError(f"{path}: not a Helix cluster extraction (expected an object with a 'clusters' list)")
    unknown = sorted(str(c.get("name")) for c in reference["clusters"]
                     if not isinstance(c, dict) or c.get("name") not in CLUSTERS)
    if unknown:
        raise ValueError(f"{path}: unknown cluster(s) {', '.join(unknown)} (expected {', '.join(CLUSTERS)})")
    return reference


def _converted(cluster: dict, reference: dict) -> tuple[str, str, str, float, float, str]:
    """One cluster's instance file text, plan file text, published and evaluated max-flow, and routing,
    after checking the mapping (SystemExit when the conversion does not reproduce Helix's objective)."""
    name = CLUSTERS[cluster["name"]]
    _check_mapping(cluster, reference)
    data = instance(cluster, reference)
    text = _yaml(data)
    # As load_instance reads the file to be written: the plan file names the instance by its bytes' digest.
    problem = parse_instance(yaml.safe_load(text), default_name=name,
                             sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    plan = published_plan(cluster, data["models"][0]["id"])
    plan_text = json.dumps(plan_to_dict(plan, problem), indent=2) + "\n"
    metrics = evaluate(problem, plan)
    published = float(_milp(cluster)["objective_max_flow_tokens_per_s"])
    if abs(metrics.throughput_tok_s - published) > _TOLERANCE_TOK_S or not metrics.feasible:
        raise SystemExit(f"error: {name}: the published placement evaluates to {metrics.throughput_tok_s:.4f} "
                         f"tokens/s (published {published}); violations: {[str(v) for v in metrics.violations]}")
    return name, text, plan_text, published, metrics.throughput_tok_s, metrics.routing


def convert(reference_path: str | Path, out_dir: str | Path) -> list[tuple[str, float, float, str]]:
    """Write every cluster's instance and published plan; returns ``(name, published, evaluated, routing)``.

    Every cluster is converted and checked before any file is written, so a failed conversion leaves the
    folder as it was; each file is replaced atomically.

    Raises
    ------
    OSError
        When the extraction cannot be read.
    ValueError
        When it is not a Helix cluster extraction (a missing or malformed field), or ``out_dir`` is not a
        folder (``UnsafeFileError``).
    """
    reference = _read_reference(reference_path)
    out = Path(out_dir)
    if not out.is_dir():
        raise UnsafeFileError(f"{out} is not a folder")
    converted = []
    for cluster in reference["clusters"]:
        try:
            converted.append(_converted(cluster, reference))
        except (KeyError, TypeError, IndexError, StopIteration) as exc:
            raise ValueError(f"{reference_path}: cluster {cluster['name']}: a field is missing or malformed "
                             f"({type(exc).__name__}: {exc})") from exc
    for name, text, plan_text, *_ in converted:
        write_atomic(out / f"{name}.yaml", text)
        write_atomic(out / f"{name}.published.json", plan_text)
    return [(name, published, got, routing) for name, _, _, published, got, routing in converted]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line naming the argument (argparse's own message), exit 2: no usage block, no traceback."""
        self.exit(2, f"error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", help="the Helix cluster extraction (helix_clusters.json)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent), help="folder for the files")
    args = parser.parse_args(argv)
    try:
        results = convert(args.reference, args.out)
    except UnsafeFileError as exc:
        print(f"error: --out: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: REFERENCE: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = "REFERENCE" if exc.filename in (None, args.reference) else "--out"
        print(f"error: {where}: cannot {'read' if where == 'REFERENCE' else 'write'} "
              f"{exc.filename or args.reference}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for name, published, got, routing in results:
        print(f"{name}: published {published:.2f} tokens/s, evaluated {got:.4f} ({routing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
