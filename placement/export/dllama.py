"""distributed-llama: ``dllama worker`` on every device but the root, ``dllama chat --workers`` on the root.

Checked in distributed-llama's source and README:

- https://github.com/b4rtaz/distributed-llama/blob/main/README.md: it runs on 1, 2, 4, ... 2^n nodes, at most as many as the model has
  KV heads; only ``q40`` weights with ``--buffer-float-type q80`` and ``f32`` with
  ``f32``; the root loads the model and is a worker too; ``dllama worker``,
  ``dllama inference``, ``dllama chat``.
- https://github.com/b4rtaz/distributed-llama/blob/main/src/app.cpp: ``--workers HOST:PORT ...`` (each its own argument; nodes =
  workers + 1), ``--port`` (default 9990), ``--nthreads`` (default 1), ``--model``,
  ``--tokenizer``, ``--buffer-float-type``, ``--max-seq-len``; it refuses more nodes
  than KV heads and q40 weights without q80 buffers.
- https://github.com/b4rtaz/distributed-llama/blob/main/src/nn/nn-network.cpp: IPv4 only (workers bind with ``inet_addr``, the root
  resolves them with ``AF_INET``).
- https://github.com/b4rtaz/distributed-llama/blob/main/src/llm.cpp and https://github.com/b4rtaz/distributed-llama/blob/main/src/nn/nn-core.cpp: it is tensor parallel: every node holds
  a ``1/n`` slice of every block (rows of q/k/v, w1, w3 and the LM head, columns of
  wo and w2) and asserts that the head count, KV dimension, query dimension, MLP
  width and vocabulary divide by ``n``; the root alone holds the token embedding,
  in f32, and every node its KV cache slice in f32.
- https://github.com/b4rtaz/distributed-llama/blob/main/converter/convert-hf.py: the families it converts: llama, mistral, qwen3, qwen3_moe.

A pipeline plan exports only when its stages hold equal block counts, so that
each device's ``1/n`` of every block is as many blocks' weights as the plan gave it.
"""

from __future__ import annotations

from models import kv_format, weight_format
from placement.export.base import Export, ExportFile, ExportInput, Exporter, ExportRefused, safe_file_name
from placement.export.common import check_room, header, require_ipv4, require_single_accelerator, stage_header
from placement.export.formats import EngineFormat, one_format
from placement.export.shell import Script, Var
from placement.export.stages import Stage, context_tokens

__all__ = ["EXPORTER", "WORKER_PORT", "node_count_problem"]

TITLE = "distributed-llama"
WORKER_PORT = 9990  # `dllama worker` default (src/app.cpp)
FAMILIES = ("llama", "mistral", "qwen3", "qwen3_moe")
FORMATS = {"q4_0": EngineFormat("q4_0", "q40"), "fp32": EngineFormat("fp32", "f32")}
_BUFFER = {"q4_0": "q80", "fp32": "f32"}


def node_count_problem(n: int, arch) -> str | None:
    """Why ``n`` nodes cannot split this architecture, or ``None``.

    >>> from models import load_model
    >>> arch = load_model("llama-3.1-8b").arch
    >>> node_count_problem(4, arch) is None, node_count_problem(3, arch)
    (True, 'it runs on a power-of-two number of nodes (1, 2, 4, 8, ...) and the pipeline has 3 devices')
    >>> node_count_problem(16, arch)
    'it runs on at most as many nodes as the model has KV heads (8) and the pipeline has 16 devices'
    """
    if n & (n - 1):
        return f"it runs on a power-of-two number of nodes (1, 2, 4, 8, ...) and the pipeline has {n} devices"
    if n > arch.num_kv_heads:
        return (f"it runs on at most as many nodes as the model has KV heads ({arch.num_kv_heads}) and the "
                f"pipeline has {n} devices")
    mlp = arch.moe_intermediate_size if arch.is_moe else arch.intermediate_size
    sizes = {"attention heads": arch.num_attention_heads, "KV dimension": arch.num_kv_heads * arch.head_dim,
             "query dimension": arch.num_attention_heads * arch.head_dim, "MLP width": mlp,
             "vocabulary": arch.vocab_size}
    bad = [f"{name} {size}" for name, size in sizes.items() if size % n]
    if bad:
        return f"it slices every block over its {n} nodes, which needs {', '.join(bad)} divisible by {n}"
    if (arch.num_kv_heads * arch.head_dim // n) % 2:
        return f"each of its {n} nodes needs an even share of the KV dimension for RoPE"
    return None


def _extra_memory_gb(inp: ExportInput, stages: tuple[Stage, ...], fmt: str) -> dict[str, float]:
    """What each node holds beyond the plan (GB): the root's f32 token embedding, a slice of the LM head
    on every node (the plan puts it whole on the last), and an f32 KV cache (src/llm.cpp)."""
    graph, n = inp.model.graph, len(stages)
    planned = weight_format(fmt)
    embed = graph.embed.params * (4.0 - planned.bytes_per_value) / 2 ** 30
    head = graph.head.weight_bytes(planned) / 2 ** 30
    values = sum(node.kv_values_per_token for node in graph.nodes if node.kind == "block")
    kv = context_tokens(inp.problem, inp.model) * values * (4.0 - kv_format(inp.model.kv_format).bytes_per_value)
    extra = {st.device: kv / n / 2 ** 30 + head / n for st in stages}
    extra[stages[0].device] += embed
    extra[stages[-1].device] -= head
    return extra


def _memory_differs(inp: ExportInput, stages: tuple[Stage, ...], fmt: str) -> str:
    extra = _extra_memory_gb(inp, stages, fmt)
    check_room(TITLE, inp, extra, "distributed-llama holds the token embedding in f32 on the root, a slice of "
                                  "the LM head on every node and the KV cache in f32")
    each = ", ".join(f"{d} {gb:+.2f}" for d, gb in extra.items())
    return (f"distributed-llama holds the token embedding in f32 on the root, a slice of the LM head on every "
            f"node and the KV cache in f32: memory beyond the plan's, in GB: {each} (each within its usable memory)")


def _threads(stage: Stage, stem: str) -> Var:
    return Var(f"{stem}_THREADS", f"the number of CPU cores of {stage.device}")


def build(inp: ExportInput) -> Export:
    pipe = inp.pipeline
    assert pipe is not None
    stages = pipe.stages
    arch = inp.model.graph.arch
    if arch.model_type not in FAMILIES:
        raise ExportRefused(TITLE, f"it converts {', '.join(FAMILIES)} models and {inp.model.id} is "
                                   f"{arch.model_type}")
    problem = node_count_problem(len(stages), arch)
    if problem:
        raise ExportRefused(TITLE, problem)
    counts = [st.num_blocks for st in stages]
    if len(set(counts)) > 1:
        each = ", ".join(f"{st.device} {st.num_blocks}" for st in stages)
        raise ExportRefused(TITLE, f"it gives every node an equal 1/{len(stages)} of each block (tensor "
                                   f"parallel), so it cannot hold the plan's unequal ranges ({each} blocks); a plan "
                                   "with equal ranges (e.g. from --solver uniform) exports")
    require_single_accelerator(TITLE, stages, "each node runs one process on its CPU or one GPU")
    require_ipv4(TITLE, inp.artefacts, stages, "workers bind with inet_addr and are reached through AF_INET, "
                                               "src/nn/nn-network.cpp")
    fmt, warnings = one_format(TITLE, FORMATS, stages)
    warnings = [*inp.warnings, *warnings]
    if len(stages) > 1:
        warnings.append(f"distributed-llama splits every block over the {len(stages)} devices and synchronises "
                        "them after each block (tensor parallel), where the plan runs one range after another: "
                        "each device holds as many blocks' weights as the plan gives it, but the plan's predicted "
                        "latency does not apply")
    warnings.append(_memory_differs(inp, stages, fmt.plan_format))
    art = inp.artefacts
    stems = {st.device: art.stems.get(st.device, st.device.upper()) for st in stages}
    files = []
    for i, st in enumerate(stages[1:], start=1):
        script = Script(f"{safe_file_name('dllama-worker', st.device)}.sh", run_on=st.device,
                        header=stage_header(inp, TITLE, st, i, len(stages)))
        script.command(["dllama", "worker"], ["--port", str(art.port(st.device, WORKER_PORT))],
                       ["--nthreads", _threads(st, stems[st.device])])
        files.append(ExportFile(script.name, script.render(), st.device, executable=True))
    root = stages[0]
    script = Script(f"{safe_file_name('dllama-root', root.device)}.sh", run_on=root.device, header=[
        *header(inp, TITLE), f"root node {root.device}; {len(stages)} node(s), each 1/{len(stages)} of every block"])
    groups: list[list] = [
        ["dllama", "chat"],
        ["--model", Var("DLLAMA_MODEL", f"the path of {inp.model.id} converted to {fmt.name} "
                                        "(converter/convert-hf.py)")],
        ["--tokenizer", Var("DLLAMA_TOKENIZER", "the path of its tokenizer (converter/convert-tokenizer-hf.py)")],
        ["--buffer-float-type", _BUFFER[fmt.plan_format]],
        ["--nthreads", _threads(root, stems[root.device])],
        ["--max-seq-len", str(context_tokens(inp.problem, inp.model))],
    ]
    if len(stages) > 1:
        groups.append(["--workers", *[(art.host(st.device), f":{art.port(st.device, WORKER_PORT)}")
                                      for st in stages[1:]]])
    script.command(*groups)
    files.append(ExportFile(script.name, script.render(), root.device, executable=True))
    notes = [f"start the workers, then {script.name} on {root.device}; only the root needs the model and "
             "tokenizer files, and a little more memory than the workers"] if len(stages) > 1 else []
    return Export(TITLE, tuple(files), tuple(warnings), tuple(notes))


EXPORTER = Exporter(
    name="distributed-llama", title=TITLE, aliases=("dllama",),
    summary="dllama worker per device and dllama chat --workers on the root; 2^n equal nodes",
    sources=("https://github.com/b4rtaz/distributed-llama/blob/main/README.md",
             "https://github.com/b4rtaz/distributed-llama/blob/main/src/app.cpp",
             "https://github.com/b4rtaz/distributed-llama/blob/main/src/nn/nn-core.cpp"),
    build=build,
)
