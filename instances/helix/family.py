"""The ``helix`` benchmark family: throughput serving on clusters of the Helix class.

For every seed: the four published clusters (the same files for every seed), a
16-node one-region and a 24-node three-region cluster of the seven published
machine types drawn from the seed (:func:`instances.helix.generate.helix_cluster`),
and the consumer-GPU swarm ``instances/swarm-consumer-gpus.yaml``.

Examples
--------
>>> names = [name for name, _ in bench_instances(0)]
>>> names[:4]
['helix-single24', 'helix-geo3region24', 'helix-hetero42', 'helix-quality10']
>>> names[4:]
['helix-class-16n-1r-s0', 'helix-class-24n-3r-s0', 'swarm-consumer-gpus']
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from instances.helix.generate import MACHINES, helix_cluster
from placement.textfiles import read_mapping_file

__all__ = ["bench_instances", "PUBLISHED"]

PUBLISHED = ("single24", "geo3region24", "hetero42", "quality10")
_HERE = Path(__file__).resolve().parent


def _file(path: Path) -> tuple[str, dict[str, Any]]:
    data, _, _ = read_mapping_file(path)
    return str(data.get("name", path.stem)), data


def _mix(rng: random.Random, nodes: int) -> dict[str, int]:
    kinds = sorted(MACHINES)
    counts: dict[str, int] = {}
    for _ in range(nodes):
        kind = rng.choice(kinds)
        counts[kind] = counts.get(kind, 0) + 1
    return {kind: counts[kind] for kind in kinds if kind in counts}


def bench_instances(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The published clusters, two Helix-class clusters drawn from ``seed`` and the swarm."""
    out = [_file(_HERE / f"{name}.yaml") for name in PUBLISHED]
    for nodes, regions in ((16, 1), (24, 3)):
        rng = random.Random(f"helix-family-{nodes}-{regions}-{seed}")
        data = helix_cluster(_mix(rng, nodes), regions=regions, seed=seed)
        out.append((data["name"], data))
    out.append(_file(_HERE.parent / "swarm-consumer-gpus.yaml"))
    return out
