"""vLLM: a Ray cluster over the plan's devices and one ``vllm serve`` with its layer partition.

Flags and behaviour, checked in vLLM's source and docs:

- https://github.com/vllm-project/vllm/blob/main/docs/serving/parallelism_scaling.md: ``--pipeline-parallel-size`` (nodes),
  ``--tensor-parallel-size`` (GPUs per node), ``--distributed-executor-backend ray``
  over a Ray cluster started with ``ray start --head`` and ``ray start --address``
  (https://docs.ray.io/en/latest/cluster/cli.html: ``--port``, default 6379, and
  ``--node-ip-address``).
- https://github.com/vllm-project/vllm/blob/main/vllm/distributed/utils.py (``get_pp_indices``): ``VLLM_PP_LAYER_PARTITION`` is
  comma-separated layer counts, one per pipeline rank, summing to the model's layer
  count; rank ``r`` holds layers ``[sum(p[:r]), sum(p[:r+1]))``.
  https://github.com/vllm-project/vllm/blob/main/vllm/ray/ray_env.py copies ``VLLM_*`` variables from the driver to the Ray
  workers, so the variable is set where ``vllm serve`` runs.
- https://github.com/vllm-project/vllm/blob/main/vllm/v1/executor/ray_executor.py (``sort_by_driver_then_worker_ip``): workers
  are ranked with the driver's node (where ``vllm serve`` runs) first, then by how
  many workers a node has, then by IP address compared as text, and every node
  needs its own IP; rank ``r`` belongs to pipeline stage ``r // tensor_parallel_size``.
  That order is no flag: with equal GPUs per node, the stages after the first
  follow their nodes' IP addresses as text, which this exporter checks.
- ``vllm serve --help``: ``--max-model-len``, ``--max-num-seqs``, ``--dtype``,
  ``--quantization``, ``--kv-cache-dtype``.
"""

from __future__ import annotations

from placement.export.base import Export, ExportFile, ExportInput, Exporter, ExportRefused, safe_file_name
from placement.export.common import header, stage_header
from placement.export.hf import checkpoint, kv_cache, layer_partition, tensor_parallel_size
from placement.export.shell import Script
from placement.export.stages import Stage, context_tokens, largest_batch
from placement.netaddr import is_ip_address

__all__ = ["EXPORTER", "RAY_PORT"]

TITLE = "vLLM"
RAY_PORT = 6379  # `ray start --head` default GCS port


def _ray_order(inp: ExportInput, stages: tuple[Stage, ...]) -> list[str]:
    """Refuse an order Ray would not keep; a warning when the addresses are not all known."""
    art = inp.artefacts
    rest = stages[1:]
    hosts = [art.known_host(st.device) for st in stages]
    known = [h for h in hosts if h is not None]
    if len(set(known)) < len(known):
        raise ExportRefused(TITLE, "two pipeline stages share one IP address; vLLM's Ray executor needs every node "
                                   "to have its own (it groups workers by node IP)")
    warnings = [f"Ray's --node-ip-address takes an IP address; {st.device}'s address {h} is a host name"
                for st, h in zip(stages, hosts) if h is not None and not is_ip_address(h)] if len(stages) > 1 else []
    if len(rest) < 2:  # the head's node comes first: with one other node there is no order to get wrong
        return warnings
    if None in hosts or not all(is_ip_address(h) for h in hosts):  # type: ignore[arg-type]
        return warnings + [f"vLLM ranks Ray workers after the head's ({stages[0].device}) by IP address compared as text: "
                f"the pipeline runs in the exported order ({' -> '.join(st.device for st in stages)}) only if "
                f"{', '.join(st.device for st in rest)} have IP addresses in that order as text"]
    ranked = sorted(rest, key=lambda st: art.known_host(st.device))  # type: ignore[arg-type,return-value]
    if [st.device for st in ranked] != [st.device for st in rest]:
        have = ", ".join(f"{st.device} {art.known_host(st.device)}" for st in rest)
        raise ExportRefused(TITLE, f"its Ray executor ranks the nodes after the head's ({stages[0].device}) by IP "
                                   f"address compared as text, so with {have} it would run "
                                   f"{' -> '.join(st.device for st in (stages[0], *ranked))}; give the devices "
                                   "addresses in pipeline order, or export to SGLang, which takes node ranks")
    return []


def _ray_script(inp: ExportInput, stage: Stage, index: int, count: int) -> ExportFile:
    art = inp.artefacts
    head = inp.pipeline.stages[0]  # type: ignore[union-attr]
    port = str(art.port(head.device, RAY_PORT))
    role = "head" if index == 0 else "worker"
    script = Script(f"{safe_file_name('ray', role, stage.device)}.sh", run_on=stage.device,
                    header=stage_header(inp, TITLE, stage, index, count))
    if index == 0:
        script.command(["ray", "start", "--head"], ["--port", port], ["--node-ip-address", art.host(stage.device)])
    else:
        script.command(["ray", "start"], ["--address", (art.host(head.device), f":{port}")],
                       ["--node-ip-address", art.host(stage.device)])
    return ExportFile(script.name, script.render(), stage.device, executable=True)


def build(inp: ExportInput) -> Export:
    pipe = inp.pipeline
    assert pipe is not None
    stages = pipe.stages
    tp = tensor_parallel_size(TITLE, stages)
    warnings = [*inp.warnings, *_ray_order(inp, stages)]
    ckpt = checkpoint(TITLE, inp, stages)
    warnings.extend(ckpt.warnings)
    first = stages[0].device
    script = Script("vllm-serve.sh", run_on=first, header=[
        *header(inp, TITLE),
        "pipeline: " + ", ".join(f"{st.device} [{st.start}, {st.end})" for st in stages),
    ])
    groups: list[list] = [["vllm", "serve", ckpt.repo],
                          ["--pipeline-parallel-size", str(len(stages))], ["--tensor-parallel-size", str(tp)]]
    if len(stages) > 1:
        script.comment("layers per pipeline stage, in stage order; vLLM passes VLLM_* variables to its Ray workers")
        script.env("VLLM_PP_LAYER_PARTITION", layer_partition(stages))
        groups.append(["--distributed-executor-backend", "ray"])
    if ckpt.flags:
        groups.append(list(ckpt.flags))
    groups.append(list(kv_cache(TITLE, inp, "fp8")))
    groups += [["--max-model-len", str(context_tokens(inp.problem, inp.model))],
               ["--max-num-seqs", str(largest_batch(inp.problem, inp.model))]]
    script.command(*groups)
    files = [_ray_script(inp, st, i, len(stages)) for i, st in enumerate(stages)] if len(stages) > 1 else []
    files.append(ExportFile(script.name, script.render(), first, executable=True))
    notes = list(ckpt.notes)
    if len(stages) > 1:
        workers = ", ".join(f.name for f in files[1:-1])
        where = "its device" if len(files) == 3 else "their devices"
        notes.insert(0, f"start {files[0].name} on {first}, then {workers} on {where}, then vllm-serve.sh "
                        f"on {first}; every node reads the checkpoint itself (download it to the same path or "
                        "share the Hugging Face cache)")
    return Export(TITLE, tuple(files), tuple(warnings), tuple(notes))


EXPORTER = Exporter(
    name="vllm", title=TITLE, aliases=(),
    summary="Ray head and worker lines; vllm serve with --pipeline-parallel-size, --tensor-parallel-size "
            "and VLLM_PP_LAYER_PARTITION",
    sources=("https://github.com/vllm-project/vllm/blob/main/docs/serving/parallelism_scaling.md",
             "https://github.com/vllm-project/vllm/blob/main/vllm/distributed/utils.py",
             "https://github.com/vllm-project/vllm/blob/main/vllm/v1/executor/ray_executor.py",
             "https://docs.ray.io/en/latest/cluster/cli.html"),
    build=build,
)
