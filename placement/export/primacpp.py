"""prima.cpp: one command per rank of its ring, with ``--world``, ``--rank``, ``--master``, ``--next`` and ``-lw``.

Flags and behaviour, checked in prima.cpp's source and README:

- https://github.com/Lizonghang/prima.cpp/blob/main/README.md: rank 0 is the head that takes requests (``llama-server`` there,
  ``llama-cli`` on the other ranks); ``-lw`` (``--layer-window``) lists the layers each
  device handles, one value per device in rank order, given to the head; ``-ngl``
  on a device says how many of its layers run on its GPU; ``--next`` is the next
  rank's IP address, and the last rank's next is the head.
- https://github.com/Lizonghang/prima.cpp/blob/main/common/arg.cpp: ``-w/--world``, ``-r/--rank``, ``-mip/--master``, ``-nip/--next``,
  ``-lw`` (at most 32 positive values), ``-c``, ``-ctk``/``-ctv``; ``--data-port`` and
  ``--signal-port`` are one setting for every rank.
- https://github.com/Lizonghang/prima.cpp/blob/main/src/llama.cpp (``this_layer_is_mine``, ``map_layer_to_subgf_id`` and the decode
  loop): layers are dealt out starting at rank 1, then 2, ..., then rank 0; rank 0
  computes the input embedding first, the last window and the output layer. So the
  plan's first stage is rank 1 and its last stage (with the LM head) is rank 0,
  which also embeds the tokens; ``-lw`` lists the last stage's blocks first.
  (Windows summing to fewer layers than the model make tokens go round the ring
  several times; here they sum to the model's layer count: one cycle.)
- https://github.com/Lizonghang/prima.cpp/blob/main/src/llama.cpp (``llm_load_tensors``): of a device's window, the last ``-ngl``
  layers go on its GPU; the input and output layers stay on rank 0's CPU.
"""

from __future__ import annotations

from models import weight_format
from placement.export.base import Export, ExportFile, ExportInput, Exporter, ExportRefused, safe_file_name
from placement.export.common import (
    GGML_KV_FLAGS, GGUF_FORMATS, check_room, header, require_single_accelerator, shares_host_memory,
)
from placement.export.formats import EngineFormat, kv_flags, one_format
from placement.export.shell import Script
from placement.export.stages import Stage, context_tokens

__all__ = ["EXPORTER", "rank_order", "MAX_RANKS"]

TITLE = "prima.cpp"
MAX_RANKS = 32  # -lw takes at most 32 values (common/arg.cpp)
FORMATS = {f: EngineFormat(f, name) for f, name in GGUF_FORMATS.items()}
_GPU_UNITS = ("gpu",)


def rank_order(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """Stages by prima.cpp rank: the last stage is rank 0, then the others in pipeline order.

    >>> from types import SimpleNamespace as S
    >>> [s.device for s in rank_order((S(device="a"), S(device="b"), S(device="c")))]
    ['c', 'a', 'b']
    """
    return (stages[-1], *stages[:-1])


def _uses_gpu(stage: Stage) -> bool:
    return stage.node.spec.default_unit in _GPU_UNITS


def _rank_script(inp: ExportInput, ranks: tuple[Stage, ...], rank: int, gguf_name: str) -> ExportFile:
    art = inp.artefacts
    stage = ranks[rank]
    world = len(ranks)
    program = "llama-server" if rank == 0 else "llama-cli"
    role = "head: embedding, the last blocks and the LM head" if rank == 0 else "worker"
    script = Script(f"{safe_file_name('prima', f'rank{rank}', stage.device)}.sh", run_on=stage.device, header=[
        *header(inp, TITLE), f"rank {rank} of {world} ({role}): blocks [{stage.start}, {stage.end}) on {stage.device}"])
    groups: list[list] = [[program], ["-m", art.gguf_word(f"the GGUF file of {inp.model.id} in {gguf_name}")]]
    if world > 1:
        groups += [["--world", str(world)], ["--rank", str(rank)], ["--master", art.host(ranks[0].device)],
                   ["--next", art.host(ranks[(rank + 1) % world].device)]]
        if rank == 0:
            groups.append(["-lw", ",".join(str(st.num_blocks) for st in ranks)])  # in rank order
    if _uses_gpu(stage):
        groups.append(["-ngl", str(stage.num_blocks)])
    if rank == 0:
        groups.append(["-c", str(context_tokens(inp.problem, inp.model))])
    groups.append(list(kv_flags(TITLE, GGML_KV_FLAGS, inp.model.kv_format)))
    script.command(*groups)
    return ExportFile(script.name, script.render(), stage.device, executable=True)


def _embedding_moves(inp: ExportInput, ranks: tuple[Stage, ...], fmt: str) -> str:
    """Rank 0 embeds the tokens: refuse when that does not fit its device, else say what moves where."""
    head, first = ranks[0], ranks[1]
    embed_gb = inp.model.graph.embed.weight_bytes(weight_format(fmt)) / 2 ** 30
    where = "its memory" if shares_host_memory(head) else "its host's RAM (rank 0 keeps it on the CPU)"
    if shares_host_memory(head):
        check_room(TITLE, inp, {head.device: embed_gb},
                   f"prima.cpp's rank 0 ({head.device}, which holds the last blocks) also holds the token embedding "
                   f"({embed_gb:.2f} GB in {fmt})")
    return (f"prima.cpp's rank 0 computes the token embedding as well as the last blocks and the LM head, so the "
            f"embedding ({embed_gb:.2f} GB in {fmt}) moves from {first.device}, where the plan puts it, to "
            f"{where} on {head.device}, and each token goes {head.device} -> {first.device} first")


def build(inp: ExportInput) -> Export:
    pipe = inp.pipeline
    assert pipe is not None
    stages = pipe.stages
    if len(stages) > MAX_RANKS:
        raise ExportRefused(TITLE, f"-lw takes at most {MAX_RANKS} devices and the pipeline has {len(stages)}")
    require_single_accelerator(TITLE, stages, "each rank runs on one GPU")
    fmt, warnings = one_format(TITLE, FORMATS, stages)
    warnings = [*inp.warnings, *warnings]
    ranks = rank_order(stages)
    if len(stages) > 1:
        warnings.append(_embedding_moves(inp, ranks, fmt.plan_format))
    if any(inp.artefacts.has_port(st.device) for st in stages):
        warnings.append("prima.cpp uses one --data-port and --signal-port for every rank; the devices' ports are "
                        "not used")
    files = [_rank_script(inp, ranks, r, fmt.name) for r in range(len(ranks))]
    notes = [f"every device needs the GGUF file at the path given to -m; start the worker ranks, then rank 0 "
             f"({ranks[0].device}), which serves the API"] if len(ranks) > 1 else []
    return Export(TITLE, tuple(files), tuple(warnings), tuple(notes))


EXPORTER = Exporter(
    name="prima.cpp", title=TITLE, aliases=("primacpp", "prima"),
    summary="a llama-server (rank 0) or llama-cli per rank with --world, --rank, --master, --next, -lw, -ngl",
    sources=("https://github.com/Lizonghang/prima.cpp/blob/main/README.md",
             "https://github.com/Lizonghang/prima.cpp/blob/main/common/arg.cpp",
             "https://github.com/Lizonghang/prima.cpp/blob/main/src/llama.cpp"),
    build=build,
)
