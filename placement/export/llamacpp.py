"""llama.cpp over RPC: an ``rpc-server`` per device and one ``llama-server`` that splits the layers.

Flags and behaviour, checked in llama.cpp's source and docs:

- https://github.com/ggml-org/llama.cpp/blob/master/tools/rpc/rpc-server.cpp and https://github.com/ggml-org/llama.cpp/blob/master/tools/rpc/README.md:
  ``rpc-server -H HOST -p PORT`` (default port 50052) exposes every accelerator of
  its host (or its CPU when there is none), each as one device of the client; it
  must never be exposed on an open network.
- https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-rpc/ggml-rpc.cpp: ``-H`` is bound with ``inet_addr`` and ``--rpc``
  hosts are resolved with ``gethostbyname``, so RPC is IPv4 only and ``-H`` an
  address; the client names RPC devices ``RPC0``, ``RPC1``, ... in the order the
  servers are added (the ``--rpc`` list) and, within a server, in its device order
  (older releases named them ``RPC[host:port]``).
- https://github.com/ggml-org/llama.cpp/blob/master/common/arg.cpp: ``--rpc HOST:PORT,...`` registers the servers' devices as it is
  parsed, so it comes before ``--device``, which lists the devices to use, in order;
  ``--tensor-split`` takes proportions and refuses as many entries as
  ``llama_max_devices()`` (16, in ``src/llama.cpp``), so at most 15 devices;
  ``-ngl``/``--n-gpu-layers``, ``--split-mode layer``, ``-c``, ``-np``/``--parallel``,
  ``-ctk``/``-ctv``.
- https://github.com/ggml-org/llama.cpp/blob/master/src/llama-model.cpp (``load_tensors``), how proportions become layers: the
  proportions are summed into a running total and divided by the total (float32),
  giving split points ``c_j / S``; with ``-ngl N >= L + 1`` all ``L`` blocks and the
  output layer (index ``L``) are offloaded, and layer ``i`` goes to the first device
  ``j`` whose split point exceeds ``i / (L + 1)`` (an ``upper_bound``). The input
  embedding always stays on the main host's CPU.

So whole-number proportions that count each device's blocks (the last device
one more, for the output layer) reproduce the plan's ranges exactly: layer ``i``
goes to the first ``j`` with ``c_j > i``, and since the split points and
``i / (L + 1)`` are both correctly rounded divisions by the same ``S = L + 1``,
float32 rounding keeps that order for any ``S`` below 2^23.

Examples
--------
>>> tensor_split([41, 39])
[41, 40]
"""

from __future__ import annotations

from placement.export.base import Export, ExportFile, ExportInput, Exporter, ExportRefused, safe_file_name
from placement.export.common import (
    GGML_KV_FLAGS, GGUF_FORMATS, distinct_endpoints, header, require_ipv4, stage_header,
)
from placement.export.formats import EngineFormat, kv_flags, one_format
from placement.export.shell import Script
from placement.export.stages import Stage, context_tokens, largest_batch
from placement.netaddr import is_ip_address

__all__ = ["EXPORTER", "tensor_split", "accelerator_blocks", "RPC_PORT", "MAX_DEVICES"]

TITLE = "llama.cpp RPC"
RPC_PORT = 50052  # rpc-server's default (tools/rpc/rpc-server.cpp)
MAX_DEVICES = 15  # --tensor-split refuses llama_max_devices() = 16 entries or more
FORMATS = {f: EngineFormat(f, name) for f, name in GGUF_FORMATS.items()}


def accelerator_blocks(stage: Stage) -> list[int]:
    """The stage's blocks over its node's accelerators, in order, as even as whole blocks allow.

    >>> from types import SimpleNamespace
    >>> accelerator_blocks(SimpleNamespace(num_blocks=9, node=SimpleNamespace(count=2)))
    [5, 4]
    """
    n, k = stage.num_blocks, stage.node.count
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def tensor_split(blocks_per_device: list[int]) -> list[int]:
    """``--tensor-split`` proportions for devices holding these block counts, in order.

    The last device also holds the output layer, which llama.cpp counts as one more layer.
    """
    return [*blocks_per_device[:-1], blocks_per_device[-1] + 1]


def _ipv4_only(stages: tuple[Stage, ...], inp: ExportInput) -> list[str]:
    """llama.cpp's RPC speaks IPv4: refuse IPv6 addresses; a host name cannot be bound, only reached."""
    require_ipv4(TITLE, inp.artefacts, stages, "rpc-server binds with inet_addr, llama-server resolves with "
                                                "gethostbyname")
    warnings = []
    for st in stages:
        host = inp.artefacts.known_host(st.device)
        if host is None:
            continue
        if not is_ip_address(host):
            warnings.append(f"rpc-server binds an IPv4 address, not a host name: the one on {st.device} "
                            f"({host}) listens on all its interfaces (-H 0.0.0.0)")
    return warnings


def _rpc_server(inp: ExportInput, stage: Stage, index: int, count: int) -> ExportFile:
    art = inp.artefacts
    script = Script(f"{safe_file_name('rpc-server', stage.device)}.sh", run_on=stage.device,
                    header=stage_header(inp, TITLE, stage, index, count))
    script.comment(f"exposes the device's {stage.node.count} accelerator(s) to llama-server; "
                   "never on an open network (rpc-server has no authentication)")
    known = art.known_host(stage.device)
    bind = "0.0.0.0" if known is not None and not is_ip_address(known) else art.host(stage.device, "IPv4 address")
    script.command(["rpc-server"], ["-H", bind], ["-p", str(art.port(stage.device, RPC_PORT))])
    return ExportFile(script.name, script.render(), stage.device, executable=True)


def _main(inp: ExportInput, stages: tuple[Stage, ...], gguf_name: str) -> ExportFile:
    art = inp.artefacts
    model = inp.model
    blocks = [b for st in stages for b in accelerator_blocks(st)]
    split = tensor_split(blocks)
    rpc = []
    for i, st in enumerate(stages):
        if i:
            rpc.append(",")
        rpc.extend([art.host(st.device, "IPv4 address"), f":{art.port(st.device, RPC_PORT)}"])
    devices = ",".join(f"RPC{j}" for j in range(len(blocks)))
    batch = largest_batch(inp.problem, model)
    context = context_tokens(inp.problem, model) * batch
    first = stages[0].device
    script = Script("llama-server.sh", run_on=first, header=[
        *header(inp, TITLE),
        f"main host: {first}; RPC devices {devices} hold blocks "
        + ", ".join(f"[{a}, {a + n})" for a, n in zip(_starts(blocks), blocks)) + " and the output layer on the last",
    ])
    script.command(
        ["llama-server"],
        ["-m", art.gguf_word(f"the GGUF file of {model.id} in {gguf_name}")],
        ["--rpc", tuple(rpc)],
        ["--device", devices],
        ["--split-mode", "layer"],
        ["--tensor-split", ",".join(str(p) for p in split)],
        ["-ngl", str(model.num_blocks + 1)],
        ["-c", str(context)],
        ["-np", str(batch)],
        list(kv_flags(TITLE, GGML_KV_FLAGS, model.kv_format)),
    )
    return ExportFile(script.name, script.render(), first, executable=True)


def _starts(blocks: list[int]) -> list[int]:
    out, start = [], 0
    for n in blocks:
        out.append(start)
        start += n
    return out


def build(inp: ExportInput) -> Export:
    pipe = inp.pipeline
    assert pipe is not None
    stages = pipe.stages
    devices = sum(st.node.count for st in stages)
    if devices > MAX_DEVICES:
        raise ExportRefused(TITLE, f"the pipeline's {len(stages)} devices expose {devices} accelerators and "
                                   f"--tensor-split takes at most {MAX_DEVICES}")
    distinct_endpoints(TITLE, inp.artefacts, stages, RPC_PORT)
    fmt, warnings = one_format(TITLE, FORMATS, stages)
    warnings = [*inp.warnings, *warnings, *_ipv4_only(stages, inp)]
    for st in stages:
        if st.node.count > 1:
            warnings.append(f"{st.device} has {st.node.count} accelerators: llama.cpp splits its blocks "
                            f"{accelerator_blocks(st)} between them by layer, not tensor-parallel as the plan's "
                            "cost model assumes")
    if len(stages) > 2:
        warnings.append(f"llama.cpp's RPC backend passes activations between servers through the main host "
                        f"({stages[0].device}), not straight from one device to the next as the plan's transfer "
                        "times assume")
    files = [_rpc_server(inp, st, i, len(stages)) for i, st in enumerate(stages)]
    files.append(_main(inp, stages, fmt.name))
    names = ", ".join(f.name for f in files[:-1])
    where = "its device" if len(stages) == 1 else "their devices"
    notes = [f"start {names} on {where}, then llama-server.sh on {stages[0].device}",
             "each rpc-server must expose exactly its node's accelerators (restrict it with --device or "
             "CUDA_VISIBLE_DEVICES), since llama-server numbers the RPC devices RPC0, RPC1, ... in that order",
             f"llama.cpp keeps the token embeddings in the main host's RAM ({stages[0].device}, which the plan "
             "gives the embedding)"]
    return Export(TITLE, tuple(files), tuple(warnings), tuple(notes))


EXPORTER = Exporter(
    name="llama.cpp", title=TITLE, aliases=("llamacpp", "llama-cpp"),
    summary="an rpc-server per device; llama-server with --rpc, --device order, --tensor-split, -ngl",
    sources=("https://github.com/ggml-org/llama.cpp/blob/master/tools/rpc/README.md",
             "https://github.com/ggml-org/llama.cpp/blob/master/common/arg.cpp",
             "https://github.com/ggml-org/llama.cpp/blob/master/src/llama-model.cpp"),
    build=build,
)
