"""What vLLM and SGLang share: Hugging Face checkpoints, one tensor-parallel size, NVIDIA GPUs.

Both load a checkpoint of the Hugging Face layout and read a pre-quantised one's
method (AWQ, GPTQ, compressed-tensors W8A8) from its config, so no flag names it;
``--dtype`` casts an unquantised one and ``--quantization fp8`` quantises it to FP8
as it loads (https://docs.vllm.ai/en/latest/features/quantization/,
https://docs.sglang.io/advanced_features/quantization.html). Both run one
``--tensor-parallel-size`` for every pipeline stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from placement.export.base import ExportInput, ExportRefused
from placement.export.common import require_cuda
from placement.export.formats import EngineFormat, kv_flags, one_format
from placement.export.shell import Word
from placement.export.stages import Stage

__all__ = ["Checkpoint", "checkpoint", "tensor_parallel_size", "layer_partition", "kv_cache"]


@dataclass(frozen=True)
class _HfFormat:
    fmt: EngineFormat
    flags: tuple[str, ...]  # what tells the engine the format
    prequantised: str | None  # the checkpoint needed, when the catalog's unquantised repository will not do


_W8A8 = "a W8A8 INT8 checkpoint (compressed-tensors or SmoothQuant)"
_W4A16 = "an AWQ or GPTQ 4-bit checkpoint (group size 128)"
_FORMATS = {
    "fp16": _HfFormat(EngineFormat("fp16", "float16"), ("--dtype", "float16"), None),
    "bf16": _HfFormat(EngineFormat("bf16", "bfloat16"), ("--dtype", "bfloat16"), None),
    "fp32": _HfFormat(EngineFormat("fp32", "float32"), ("--dtype", "float32"), None),
    "fp8": _HfFormat(EngineFormat("fp8", "fp8"), ("--quantization", "fp8"), None),
    "int8": _HfFormat(EngineFormat("int8", "int8 (W8A8)"), (), _W8A8),
    "w4a16": _HfFormat(EngineFormat("w4a16", "w4a16 (AWQ/GPTQ)"), (), _W4A16),
    # GGUF types have no GGUF-free equal; these stand-ins store no more bits per weight.
    "q8_0": _HfFormat(EngineFormat("q8_0", "int8 (W8A8)", exact=False, bits_per_weight=8.0), (), _W8A8),
    "q4_k_m": _HfFormat(EngineFormat("q4_k_m", "w4a16 (AWQ/GPTQ)", exact=False, bits_per_weight=4.25), (), _W4A16),
    "q4_0": _HfFormat(EngineFormat("q4_0", "w4a16 (AWQ/GPTQ)", exact=False, bits_per_weight=4.25), (), _W4A16),
}
FORMATS = {k: v.fmt for k, v in _FORMATS.items()}


@dataclass(frozen=True)
class Checkpoint:
    """The repository to serve, the flags naming its format, and warnings/notes about both."""

    repo: Word
    flags: tuple[str, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def checkpoint(engine: str, inp: ExportInput, stages: Sequence[Stage]) -> Checkpoint:
    """The checkpoint every stage loads (one model file: the smallest of the plan's formats)."""
    fmt, warnings = one_format(engine, FORMATS, stages)
    spec = _FORMATS[fmt.plan_format]
    model = inp.model
    what = (f"{spec.prequantised} of {model.id}" if spec.prequantised
            else f"the Hugging Face repository of {model.id}")
    repo, note = inp.artefacts.repo_word(what, catalog_fits=spec.prequantised is None)
    notes = [note] if note else []
    if spec.prequantised and isinstance(repo, str):
        notes.append(f"{engine} reads the quantisation ({fmt.name}) from the checkpoint's config: {repo} must be "
                     f"{spec.prequantised} of {model.id}")
    elif spec.prequantised:
        notes.append(f"{engine} reads the quantisation ({fmt.name}) from the checkpoint's config: give "
                     f"{spec.prequantised} of {model.id} with --hf-repo or models[].hf_repo")
    return Checkpoint(repo, spec.flags, tuple(warnings), tuple(notes))


def tensor_parallel_size(engine: str, stages: Sequence[Stage]) -> int:
    """The one tensor-parallel size of every stage: each node's accelerator count, which must agree."""
    require_cuda(engine, stages)
    counts = {st.node.count for st in stages}
    if len(counts) > 1:
        each = ", ".join(f"{st.device} {st.node.count}" for st in stages)
        raise ExportRefused(engine, f"it runs one --tensor-parallel-size for every pipeline stage, but the plan's "
                                    f"devices have different accelerator counts ({each})")
    return counts.pop()


def layer_partition(stages: Sequence[Stage]) -> str:
    """The ``*_PP_LAYER_PARTITION`` value: each stage's block count, in pipeline order."""
    return ",".join(str(st.num_blocks) for st in stages)


def kv_cache(engine: str, inp: ExportInput, fp8_name: str) -> tuple[str, ...]:
    """``--kv-cache-dtype`` for the plan's KV format: the weights' 16-bit type by default, or FP8."""
    table = {"fp16": (), "bf16": (), "fp8": ("--kv-cache-dtype", fp8_name)}
    return kv_flags(engine, table, inp.model.kv_format)
