"""SGLang: one ``sglang.launch_server`` per device, node rank = pipeline stage, with its layer partition.

Flags and behaviour, checked in SGLang's source and docs:

- https://docs.sglang.io/references/multi_node_deployment/multi_node.html:
  ``--dist-init-addr HOST:PORT`` (the first node's; the docs use port 20000, this
  exporter's default), ``--nnodes``, ``--node-rank``.
- https://docs.sglang.io/advanced_features/server_arguments.html: ``--tp-size``,
  ``--pp-size``, ``--dtype``, ``--quantization``, ``--kv-cache-dtype``,
  ``--context-length``, ``--max-running-requests``.
- https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/distributed/utils.py (``get_pp_indices``): each process reads
  ``SGLANG_PP_LAYER_PARTITION`` from its own environment (so every node sets it):
  comma-separated layer counts, one per pipeline rank, summing to the model's
  layer count; rank ``r`` holds layers ``[sum(p[:r]), sum(p[:r+1]))``.
- https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/entrypoints/engine.py (the scheduler launch): with
  ``nnodes == pp_size`` each node runs ``pp_size // nnodes = 1`` pipeline rank,
  number ``node_rank``, on its ``tp_size`` GPUs; so node ranks are the stage order.
"""

from __future__ import annotations

from placement.export.base import Export, ExportFile, ExportInput, Exporter, safe_file_name
from placement.export.common import stage_header
from placement.export.hf import checkpoint, kv_cache, layer_partition, tensor_parallel_size
from placement.export.shell import Script
from placement.export.stages import Stage, context_tokens, largest_batch

__all__ = ["EXPORTER", "DIST_INIT_PORT"]

TITLE = "SGLang"
DIST_INIT_PORT = 20000  # the port SGLang's multi-node docs give --dist-init-addr


def _node_script(inp: ExportInput, stage: Stage, rank: int, tp: int, repo, flags: tuple[str, ...],
                 kv: tuple[str, ...]) -> ExportFile:
    art = inp.artefacts
    stages = inp.pipeline.stages  # type: ignore[union-attr]
    head = stages[0].device
    script = Script(f"{safe_file_name('sglang-node', str(rank), stage.device)}.sh", run_on=stage.device,
                    header=stage_header(inp, TITLE, stage, rank, len(stages)))
    groups: list[list] = [["python", "-m", "sglang.launch_server"], ["--model-path", repo],
                          ["--tp-size", str(tp)], ["--pp-size", str(len(stages))]]
    if len(stages) > 1:
        script.comment("layers per pipeline stage, in stage order; every node reads it from its own environment")
        script.env("SGLANG_PP_LAYER_PARTITION", layer_partition(stages))
        groups += [["--nnodes", str(len(stages))], ["--node-rank", str(rank)],
                   ["--dist-init-addr", (art.host(head), f":{art.port(head, DIST_INIT_PORT)}")]]
    groups += [list(flags), list(kv)]
    groups += [["--context-length", str(context_tokens(inp.problem, inp.model))],
               ["--max-running-requests", str(largest_batch(inp.problem, inp.model))]]
    script.command(*groups)
    return ExportFile(script.name, script.render(), stage.device, executable=True)


def build(inp: ExportInput) -> Export:
    pipe = inp.pipeline
    assert pipe is not None
    stages = pipe.stages
    tp = tensor_parallel_size(TITLE, stages)
    ckpt = checkpoint(TITLE, inp, stages)
    kv = kv_cache(TITLE, inp, "fp8_e4m3")
    files = [_node_script(inp, st, r, tp, ckpt.repo, ckpt.flags, kv) for r, st in enumerate(stages)]
    notes = list(ckpt.notes)
    if len(stages) > 1:
        notes.insert(0, f"start every sglang-node script on its device (node 0, {stages[0].device}, serves the API); "
                        "every node reads the checkpoint itself")
    return Export(TITLE, tuple(files), (*inp.warnings, *ckpt.warnings), tuple(notes))


EXPORTER = Exporter(
    name="sglang", title=TITLE, aliases=(),
    summary="sglang.launch_server per device with --pp-size, --tp-size, --node-rank and SGLANG_PP_LAYER_PARTITION",
    sources=("https://docs.sglang.io/references/multi_node_deployment/multi_node.html",
             "https://docs.sglang.io/advanced_features/server_arguments.html",
             "https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/distributed/utils.py",
             "https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/entrypoints/engine.py"),
    build=build,
)
