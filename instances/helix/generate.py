"""Helix-class clusters: heterogeneous cloud GPUs serving one large model to a coordinator, in one region
or several.

Usage::

    python -m instances.helix.generate --nodes A100=4,L4=8,T4=12 [--regions 3] [--seed 0] [-o FILE]

Machine types are Helix's: ``A100`` (A100 40GB), ``V100`` (V100 16GB), ``L4``, ``L4x2``, ``T4``, ``T4x2``,
``T4x4`` (2- and 4-GPU machines are one node of ``count`` 2 or 4). Every node relays nothing (each pair
talks over its own link, as cloud VMs do) and the coordinator, which holds no blocks, is every
request's source. Links follow Helix's cluster generator, with its figures converted to llmplace's
units (its "Mbps" are megabytes per second: x8; see :mod:`instances.helix.convert`):

- one region: every pair at ``bandwidth_mbps`` (default 8000, Helix's 1000 "Mbps") and 1 ms, written as
  one fully connected group;
- several regions: nodes dealt round-robin to regions; pairs inside a region at 1250 +- 125 "Mbps" and
  1 ms, pairs across regions and the coordinator's links at 12.5 +- 2.5 "Mbps" and 50 +- 10 ms (uniform,
  seeded), as in Helix's geo-distributed cluster.

``profiles="helix"`` (default) gives each node Helix's measured tokens/s-by-layers table for LLaMA-2 70B
(taken from the converted 42-node cluster, which has every machine type) and its ``max_layers``;
``profiles="analytic"`` leaves speed and memory to the cost model, for any model.

Examples
--------
>>> from placement import parse_instance
>>> data = helix_cluster({"A100": 2, "T4": 4}, regions=2, seed=1)
>>> problem = parse_instance(data)
>>> len(problem.topology.nodes), problem.topology.node("coordinator").holds_blocks
(7, False)
"""

from __future__ import annotations

import argparse
import random
import sys
from functools import lru_cache
from pathlib import Path

import yaml

from placement import write_atomic
from placement.safefiles import UnsafeFileError
from placement.costs import TOKEN_ID_BYTES
from placement.textfiles import read_mapping_file

__all__ = ["helix_cluster", "MACHINES"]

MACHINES = {"A100": ("a100-sxm-40gb", 1), "V100": ("v100-16gb", 1), "L4": ("l4", 1), "L4x2": ("l4", 2),
            "T4": ("t4", 1), "T4x2": ("t4", 2), "T4x4": ("t4", 4)}
_MBYTE_TO_MBIT = 8
_HELIX_TOKEN_BYTES = 2
_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def _helix_profiles() -> dict[str, dict]:
    """Helix's LLaMA-2 70B profile of each machine type, from the converted 42-node cluster."""
    data, _, _ = read_mapping_file(_HERE / "hetero42.yaml")
    by_kind = {v: k for k, v in MACHINES.items()}
    out: dict[str, dict] = {}
    for dev in data["devices"]:
        if "profile" in dev:
            out.setdefault(by_kind[(dev["type"], dev.get("count", 1))], dev["profile"])
    return out


def _check_nodes(nodes: dict[str, int]) -> None:
    unknown = sorted(set(nodes) - set(MACHINES))
    if unknown:
        raise ValueError(f"nodes: unknown machine type(s) {', '.join(map(repr, unknown))} "
                         f"(expected {', '.join(MACHINES)})")
    for kind, count in nodes.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"nodes: {kind}: expected a whole number of machines >= 1, got {count!r}")
    if not nodes:
        raise ValueError("nodes: expected at least one machine type with its count")


def _spread(rng: random.Random, mean: float, half_width: float) -> float:
    return round(rng.uniform(mean - half_width, mean + half_width), 1)


def helix_cluster(nodes: dict[str, int], regions: int = 1, seed: int = 0, model: str = "llama-2-70b",
                  profiles: str = "helix", bandwidth_mbps: float = 1000.0 * _MBYTE_TO_MBIT,
                  name: str | None = None) -> dict:
    """An instance dict of a Helix-class cluster (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown machine type, a count below 1, no nodes, ``regions`` below 1 or above the
        number of nodes (a region without nodes), or a profile choice that does not fit the model;
        the message names the argument.

    Examples
    --------
    >>> helix_cluster({"A100": 2}, regions=0)
    Traceback (most recent call last):
    ...
    ValueError: regions: expected a whole number from 1 to the number of nodes (2), got 0
    """
    _check_nodes(nodes)
    total = sum(nodes.values())
    if isinstance(regions, bool) or not isinstance(regions, int) or not 1 <= regions <= total:
        raise ValueError(f"regions: expected a whole number from 1 to the number of nodes ({total}), got {regions!r}")
    if profiles not in ("helix", "analytic"):
        raise ValueError(f"profiles: expected helix or analytic, got {profiles!r}")
    if profiles == "helix" and model != "llama-2-70b":
        raise ValueError("model: Helix's measured profiles are for llama-2-70b; use profiles='analytic' for other "
                         "models")
    rng = random.Random(seed)
    kinds = [kind for kind, count in nodes.items() for _ in range(count)]
    devices: list[dict] = [{"id": "coordinator", "type": "intel-i9-13900k", "tier": "cloud", "holds_blocks": False,
                            "relays": False}]
    region_of: dict[str, int] = {}
    for k, kind in enumerate(kinds):
        catalog, count = MACHINES[kind]
        dev: dict = {"id": f"n{k}", "type": catalog}
        if count > 1:
            dev["count"] = count
        dev["relays"] = False
        if profiles == "helix":
            dev["profile"] = dict(_helix_profiles()[kind])
        devices.append(dev)
        region_of[dev["id"]] = k % regions
    ids = [d["id"] for d in devices[1:]]
    token_scale = TOKEN_ID_BYTES / _HELIX_TOKEN_BYTES
    links: list[dict] = []
    if regions == 1:
        links.append({"group": ids, "bandwidth_mbps": bandwidth_mbps, "latency_ms": 1.0})
        links += [{"a": "coordinator", "b": i, "bandwidth_mbps": bandwidth_mbps * token_scale, "latency_ms": 1.0}
                  for i in ids]
    else:
        for j, a in enumerate(ids):
            for b in ids[j + 1:]:
                if region_of[a] == region_of[b]:
                    links.append({"a": a, "b": b, "bandwidth_mbps": _spread(rng, 1250, 125) * _MBYTE_TO_MBIT,
                                  "latency_ms": 1.0})
                else:
                    links.append({"a": a, "b": b, "bandwidth_mbps": round(_spread(rng, 12.5, 2.5) * _MBYTE_TO_MBIT, 1),
                                  "latency_ms": float(rng.randint(40, 60))})
        links += [{"a": "coordinator", "b": i,
                   "bandwidth_mbps": round(_spread(rng, 12.5, 2.5) * _MBYTE_TO_MBIT * token_scale, 1),
                   "latency_ms": float(rng.randint(40, 60))} for i in ids]
    mix = ", ".join(f"{count}x {kind}" for kind, count in nodes.items())
    return {
        "schema_version": 1,
        "name": name or f"helix-class-{sum(nodes.values())}n-{regions}r-s{seed}",
        "description": f"Helix-class cluster ({mix}) in {regions} region(s), generated by instances/helix/generate.py "
                       f"(seed {seed}, {profiles} profiles).",
        "models": [{"id": model, "weight_format": "fp16"}],
        "devices": devices,
        "links": links,
        "workload": [{"id": "serve", "source": "coordinator", "profile": "sharegpt"}],
        "objective": "throughput",
    }


def _counts(text: str) -> dict[str, int]:
    """``TYPE=COUNT,...`` as counts; ValueError (naming ``--nodes``) for a malformed or repeated entry."""
    out: dict[str, int] = {}
    for part in text.split(","):
        kind, _, count = (piece.strip() for piece in part.partition("="))
        if not kind or not count.isdigit():
            raise ValueError(f"--nodes: expected TYPE=COUNT, got {part.strip()!r}")
        if kind in out:
            raise ValueError(f"--nodes: gives {kind} twice")
        out[kind] = int(count)
    return out


# Where each of helix_cluster's argument names comes from on the command line.
_OPTIONS = {"nodes": "--nodes", "regions": "--regions", "model": "--model", "profiles": "--profiles"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line naming the argument (argparse's own message), exit 2: no usage block, no traceback."""
        self.exit(2, f"error: {message}\n")


def _known_model(model: str) -> None:
    from models import CatalogError, load_model
    try:
        load_model(model)
    except (CatalogError, OSError, ValueError) as exc:
        raise ValueError(f"--model: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", required=True, help="machine counts, e.g. A100=4,L4=8,T4=12")
    parser.add_argument("--regions", type=int, default=1, help="regions the nodes are dealt to (1 to the nodes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="llama-2-70b")
    parser.add_argument("--profiles", choices=("helix", "analytic"), default="helix")
    parser.add_argument("-o", "--output", help="write the instance here (default: print it)")
    args = parser.parse_args(argv)
    try:
        counts = _counts(args.nodes)
        _known_model(args.model)
        data = helix_cluster(counts, args.regions, args.seed, args.model, args.profiles)
    except ValueError as exc:
        name, sep, rest = str(exc).partition(": ")
        print(f"error: {_OPTIONS.get(name, name)}: {rest}" if sep else f"error: {exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    if args.output:
        try:
            write_atomic(args.output, text)
        except UnsafeFileError as exc:  # a folder, a device, a missing folder
            print(f"error: --output: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: --output: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
