"""Petals: one ``run_server`` per shard, replicas included, in a private swarm.

Flags and behaviour, checked in Petals' source and README:

- https://github.com/bigscience-workshop/petals/blob/main/src/petals/cli/run_server.py: ``python -m petals.cli.run_server MODEL``,
  ``--block_indices START:END``, ``--port``, ``--new_swarm`` (start a private swarm)
  or ``--initial_peers MULTIADDR`` (join one), ``--torch_dtype`` (float16, bfloat16,
  float32, auto), ``--quant_type`` (none, int8, nf4), ``--inference_max_length``;
  https://github.com/bigscience-workshop/petals/blob/main/README.md runs servers with ``--port 31330``, this exporter's default.
- https://github.com/bigscience-workshop/petals/blob/main/src/petals/server/server.py: ``--block_indices a:b`` serves ``range(a, b)``, the
  plan's half-open range.
- https://github.com/bigscience-workshop/petals/blob/main/src/petals/server/block_utils.py: a block's memory is 1 byte per weight in
  int8 (LLM.int8()) and 4.25 bits in nf4 (measured by Petals), the stand-ins here
  for the 8-bit and 4-bit formats.
- https://github.com/bigscience-workshop/petals/blob/main/src/petals/models: the model families it serves: Llama, Falcon, BLOOM, Mixtral.

Every shard becomes a server with its own format, so replicas and per-shard
formats carry over; routes do not: Petals clients choose their servers
themselves, by measured throughput and latency. Servers hold blocks only; the
embedding and the LM head stay with the client.
"""

from __future__ import annotations

from placement.export.artefacts import multiaddr_host
from placement.export.base import Export, ExportFile, ExportInput, Exporter, ExportRefused, safe_file_name
from placement.export.common import FLOAT_KV, header
from placement.export.formats import EngineFormat, engine_format, kv_flags
from placement.export.shell import Script, Var, Word
from placement.export.stages import Stage, context_tokens

__all__ = ["EXPORTER", "PETALS_PORT"]

TITLE = "Petals"
PETALS_PORT = 31330  # the port Petals' README gives its servers
FAMILIES = ("llama", "falcon", "bloom", "mixtral")

_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
FORMATS = {
    **{f: EngineFormat(f, f"--torch_dtype {d} --quant_type none") for f, d in _DTYPES.items()},
    "int8": EngineFormat("int8", "--quant_type int8 (LLM.int8())", exact=False, bits_per_weight=8.0),
    "fp8": EngineFormat("fp8", "--quant_type int8 (LLM.int8())", exact=False, bits_per_weight=8.0),
    "q8_0": EngineFormat("q8_0", "--quant_type int8 (LLM.int8())", exact=False, bits_per_weight=8.0),
    "w4a16": EngineFormat("w4a16", "--quant_type nf4", exact=False, bits_per_weight=4.25),
    "q4_k_m": EngineFormat("q4_k_m", "--quant_type nf4", exact=False, bits_per_weight=4.25),
    "q4_0": EngineFormat("q4_0", "--quant_type nf4", exact=False, bits_per_weight=4.25),
}


def _format_flags(fmt: EngineFormat) -> list[str]:
    if fmt.plan_format in _DTYPES:
        return ["--torch_dtype", _DTYPES[fmt.plan_format], "--quant_type", "none"]
    return ["--quant_type", "int8" if "int8" in fmt.name else "nf4"]


def _initial_peer(inp: ExportInput, boot: Stage) -> Word:
    art = inp.artefacts
    port = art.port(boot.device, PETALS_PORT)
    host = art.known_host(boot.device)
    if host is None:
        return Var("PETALS_INITIAL_PEER", f"the multiaddr the server on {boot.device} prints when it starts "
                                          f"(/ip4/<its address>/tcp/{port}/p2p/<its peer id>)")
    return (f"{multiaddr_host(host)}/tcp/{port}/p2p/",
            Var("PETALS_PEER_ID", f"the peer id the server on {boot.device} prints when it starts"))


def _server(inp: ExportInput, shard: Stage, index: int, repo: Word, fmt: EngineFormat, peer: Word) -> ExportFile:
    art = inp.artefacts
    sid = shard.shard_ids[0]
    script = Script(f"{safe_file_name('petals-server', sid, shard.device)}.sh", run_on=shard.device, header=[
        *header(inp, TITLE), f"shard {sid}: blocks [{shard.start}, {shard.end}) on device {shard.device}"])
    groups: list[list] = [["python", "-m", "petals.cli.run_server", repo],
                          ["--block_indices", f"{shard.start}:{shard.end}"], _format_flags(fmt),
                          ["--inference_max_length", str(context_tokens(inp.problem, inp.model))]]
    if index == 0:
        script.comment("the first server starts the private swarm; the others join it")
        groups += [["--new_swarm"], ["--port", str(art.port(shard.device, PETALS_PORT))]]
    else:
        groups.append(["--initial_peers", peer])
    script.command(*groups)
    return ExportFile(script.name, script.render(), shard.device, executable=True)


def build(inp: ExportInput) -> Export:
    family = inp.model.graph.arch.model_type
    if family not in FAMILIES:
        raise ExportRefused(TITLE, f"it serves {', '.join(FAMILIES)} models and {inp.model.id} is {family}")
    kv_flags(TITLE, FLOAT_KV, inp.model.kv_format)  # its cache is in the blocks' float type
    warnings = list(inp.warnings)
    formats = []
    for shard in inp.shards:
        fmt, more = engine_format(TITLE, FORMATS, shard.formats[0])
        formats.append(fmt)
        warnings.extend(w for w in more if w not in warnings)
    repo, note = inp.artefacts.repo_word(f"the Hugging Face repository of {inp.model.id}", catalog_fits=True)
    boot = inp.shards[0]
    peer = _initial_peer(inp, boot)
    files = [_server(inp, sh, i, repo, fmt, peer) for i, (sh, fmt) in enumerate(zip(inp.shards, formats))]
    paths = {r.path for r in inp.plan.routes if inp.problem.request(r.request).model == inp.model.id}
    fractions = [r for r in inp.plan.routes if r.fraction is not None and r.fraction < 1 - 1e-9]
    if len(paths) > 1 or fractions:
        warnings.append("Petals clients choose their servers themselves (by throughput and latency): the plan's "
                        f"{len(paths)} routes and their fractions are not expressible")
    notes = [f"start {files[0].name} first (on {boot.device}), then the other servers; a client joins with "
             f"AutoDistributedModelForCausalLM.from_pretrained(<the model>, initial_peers=[<the multiaddr "
             f"{boot.device}'s server prints>])"]
    if note:
        notes.append(note)
    return Export(TITLE, tuple(files), tuple(warnings), tuple(notes))


EXPORTER = Exporter(
    name="petals", title=TITLE, aliases=(), whole_plan=True,
    summary="one run_server --block_indices a:b per shard, replicas included, in a private swarm",
    sources=("https://github.com/bigscience-workshop/petals/blob/main/src/petals/cli/run_server.py",
             "https://github.com/bigscience-workshop/petals/blob/main/src/petals/server/server.py",
             "https://github.com/bigscience-workshop/petals/blob/main/src/petals/server/block_utils.py"),
    build=build,
)
