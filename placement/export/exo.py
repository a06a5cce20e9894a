"""exo: an explicit pipeline shard assignment, each runner's start and end layer, in exo's own fields.

Checked in exo's source and docs:

- https://github.com/exo-explore/exo/blob/main/src/exo/shared/types/worker/shards.py: ``PipelineShardMetadata`` has ``device_rank``,
  ``world_size``, ``start_layer``, ``end_layer`` and ``n_layers``; layers are the
  half-open range ``[start_layer, end_layer)``; https://github.com/exo-explore/exo/blob/main/src/exo/utils/pydantic_ext.py
  serialises models by camelCase alias, tagged with the class name.
- https://github.com/exo-explore/exo/blob/main/src/exo/shared/types/worker/runners.py: ``ShardAssignments`` maps runners to
  shards (``runnerToShard``) and nodes to runners (``nodeToRunner``).
- https://github.com/exo-explore/exo/blob/main/src/exo/master/placement_utils.py: exo places a pipeline itself, layers in
  proportion to each node's free memory, ranks in ring order; there is no flag for
  a given split. Its API (https://github.com/exo-explore/exo/blob/main/docs/api.md; README, "Using the API") previews
  placements (``GET /instance/previews``) and creates an instance from one
  (``POST /instance``), which is where this assignment's ranges go.
- https://github.com/exo-explore/exo/blob/main/PLATFORMS.md, README: exo runs MLX on Apple silicon GPUs and, on Linux, on the CPU.

MLX quantises weights in groups of 64 with a 16-bit scale and bias each
(https://ml-explore.github.io/mlx/build/html/python/_autosummary/mlx.core.quantize.html):
8-bit is 8.5 bits per weight, 4-bit 4.5, 3-bit 3.5, the stand-ins here for the
GGUF types of as many bits or more.
"""

from __future__ import annotations

import json

from placement.export.base import Export, ExportFile, ExportInput, Exporter
from placement.export.common import FLOAT_KV, require_single_accelerator
from placement.export.formats import EngineFormat, kv_flags, one_format
from placement.export.shell import Var

__all__ = ["EXPORTER", "shard_assignment"]

TITLE = "exo"
FORMATS = {
    "bf16": EngineFormat("bf16", "bf16"),
    "fp16": EngineFormat("fp16", "bf16", exact=False, bits_per_weight=16.0),
    "q8_0": EngineFormat("q8_0", "8bit", exact=False, bits_per_weight=8.5),
    "q4_k_m": EngineFormat("q4_k_m", "4bit", exact=False, bits_per_weight=4.5),
    "q4_0": EngineFormat("q4_0", "4bit", exact=False, bits_per_weight=4.5),
    "q3_k_s": EngineFormat("q3_k_s", "3bit", exact=False, bits_per_weight=3.5),
}


def _text(word) -> str:
    return f"<{word.description}>" if isinstance(word, Var) else str(word)


def shard_assignment(inp: ExportInput, model_id: str) -> dict:
    """The pipeline as exo's ``ShardAssignments``: one runner per stage, node ids to be filled in."""
    stages = inp.pipeline.stages  # type: ignore[union-attr]
    runner_to_shard, node_to_runner = {}, {}
    for rank, st in enumerate(stages):
        runner = f"runner-{st.device}"
        runner_to_shard[runner] = {"PipelineShardMetadata": {
            "deviceRank": rank, "worldSize": len(stages), "startLayer": st.start, "endLayer": st.end,
            "nLayers": inp.model.num_blocks}}
        node_to_runner[f"<exo node id of {st.device}>"] = runner
    return {"modelId": model_id, "runnerToShard": runner_to_shard, "nodeToRunner": node_to_runner}


def build(inp: ExportInput) -> Export:
    pipe = inp.pipeline
    assert pipe is not None
    stages = pipe.stages
    require_single_accelerator(TITLE, stages, "exo runs one runner per node")
    kv_flags(TITLE, FLOAT_KV, inp.model.kv_format)  # MLX keeps the cache in the weights' float type
    fmt, warnings = one_format(TITLE, FORMATS, stages)
    warnings = [*inp.warnings, *warnings]
    cpu_only = [f"{st.device} ({st.node.spec.device_class})" for st in stages
                if st.node.spec.device_class != "apple_soc" and st.node.spec.default_unit == "gpu"]
    if cpu_only:
        warnings.append(f"exo runs on Apple silicon GPUs and, on Linux, on the CPU: the plan's speed for "
                        f"{', '.join(cpu_only)} assumes its GPU")
    repo, _ = inp.artefacts.repo_word(f"an MLX {fmt.name} conversion of {inp.model.id}", catalog_fits=False)
    model_id = _text(repo)
    if isinstance(repo, Var):
        warnings.append(f"give the model with --hf-repo (an MLX {fmt.name} conversion of {inp.model.id}, e.g. "
                        "from mlx-community); exo serves only MLX weights")
    document = shard_assignment(inp, model_id)
    text = json.dumps(document, indent=2) + "\n"
    notes = [f"exo places models itself: run GET /instance/previews?model_id={model_id} on a node, take the "
             f"Pipeline/MlxRing preview over {', '.join(st.device for st in stages)} in this order, set each "
             "runner's startLayer and endLayer (and deviceRank) as in exo-shards.json, and POST it to /instance; "
             "the node ids are in GET /state"]
    if any(inp.artefacts.has_port(st.device) for st in stages):
        warnings.append("exo finds its peers itself; the devices' ports are not used")
    return Export(TITLE, (ExportFile("exo-shards.json", text),), tuple(warnings), tuple(notes))


EXPORTER = Exporter(
    name="exo", title=TITLE, aliases=(),
    summary="the pipeline as exo shard assignments: each runner's deviceRank, startLayer and endLayer",
    sources=("https://github.com/exo-explore/exo/blob/main/src/exo/shared/types/worker/shards.py",
             "https://github.com/exo-explore/exo/blob/main/src/exo/master/placement_utils.py",
             "https://github.com/exo-explore/exo/blob/main/docs/api.md"),
    build=build,
)
