"""Weight and KV-cache number formats.

A format's ``bits_per_weight`` is the storage cost per parameter *including* its
quantisation scales, so ``params * bits_per_weight / 8`` is the size of the
weights in memory. ``compute_precision`` is the arithmetic the kernels run in:
weight-only formats (the GGUF k-quants, ``w4a16``) dequantise to fp16 on
accelerators, so their matrix products run at the fp16 peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import CatalogError

__all__ = [
    "NumberFormat",
    "WEIGHT_FORMATS",
    "KV_FORMATS",
    "weight_format",
    "kv_format",
    "PRECISION_FALLBACK",
    "DEQUANT_OPS",
]


@dataclass(frozen=True)
class NumberFormat:
    """A storage format for weights or KV-cache entries.

    Parameters
    ----------
    id : str
        Catalog id, e.g. ``"q4_k_m"``.
    bits_per_weight : float
        Storage bits per value including block scales.
    compute_precision : str
        Precision of the arithmetic: ``fp32``, ``fp16``, ``bf16``, ``fp8`` or ``int8``.
    family : str
        ``float``, ``int8`` or ``int4``; engine efficiencies are given per family.
    source : str
        Where the bit count (and the quality figure) come from.
    quality : float
        Relative model quality in this format, ``ppl_fp16 / ppl_format`` on a
        published perplexity run (1.0 for the unquantised float formats). A
        route's quality is the block-weighted mean over its shards;
        ``constraints.quality_floor`` bounds it from below.
    """

    id: str
    bits_per_weight: float
    compute_precision: str
    family: str
    description: str
    source: str
    quality: float = 1.0
    # Vector operations to expand one stored weight to the compute precision inside a matrix
    # kernel (0: the arithmetic runs in the stored format). See DEQUANT_OPS.
    dequant_ops_per_weight: float = 0.0

    @property
    def bytes_per_value(self) -> float:
        return self.bits_per_weight / 8.0


_GGML_QUANTS = "ggml block layouts: github:ggml-org/llama.cpp ggml/src/ggml-common.h"

# Quality = fp16 perplexity / the format's perplexity on WikiText-2, from published runs:
# llama.cpp's perplexity README, "LLaMA 3 8b Scoreboard" (f16 6.233160; no importance matrix).
_LLAMA_CPP_PPL = ("github:ggml-org/llama.cpp perplexity README, LLaMA 3 8b scoreboard (WikiText-2, "
                  "no imatrix): f16 PPL 6.233160")
_PPL_F16_LLAMA3_8B = 6.233160

# Vector operations per weight a kernel spends to expand a stored weight to fp16 before its
# matrix product, counted from the arithmetic of ggml's dequantize functions
# (github:ggml-org/llama.cpp ggml/src/ggml-cuda/dequantize.cuh, convert.cu) and of AWQ/GPTQ
# unpacking: q8_0 converts and scales (2); q4_0 masks or shifts, subtracts the offset of 8,
# converts and scales (4); w4a16 unpacks, subtracts the zero point, converts, scales (4);
# Q4_K adds a per-sub-block scale and minimum (5); Q3_K also assembles the high bit (7).
# Formats the hardware multiplies natively (fp16, bf16, fp8, int8 W8A8) expand nothing.
DEQUANT_OPS: dict[str, float] = {"q8_0": 2.0, "q4_0": 4.0, "w4a16": 4.0, "q4_k_m": 5.0, "q3_k_s": 7.0}

WEIGHT_FORMATS: dict[str, NumberFormat] = {
    f.id: f
    for f in (
        NumberFormat("fp32", 32.0, "fp32", "float", "IEEE single precision", "IEEE 754"),
        NumberFormat("fp16", 16.0, "fp16", "float", "IEEE half precision", "IEEE 754"),
        NumberFormat("bf16", 16.0, "bf16", "float", "bfloat16", "Google bfloat16 format"),
        NumberFormat(
            "fp8", 8.0, "fp8", "int8", "FP8 E4M3 weights and activations (per-tensor scales)",
            "NVIDIA Hopper FP8 (Transformer Engine); per-tensor scales are negligible. Quality: AMD Quark "
            "LLM PTQ example README, Llama-2-7b-hf WikiText-2 PPL FP16 5.47 vs FP8 (w_fp8_a_fp8) 5.54",
            quality=5.47 / 5.54,
        ),
        NumberFormat(
            "int8", 8.0, "int8", "int8", "INT8 weights and activations (W8A8, per-channel scales)",
            "SmoothQuant W8A8; per-channel scales are negligible. Quality: github:mit-han-lab/smoothquant "
            "README, Llama-3-8B WikiText-2 PPL FP16 6.138 vs SQ W8A8 6.258",
            quality=6.138 / 6.258,
        ),
        NumberFormat(
            "q8_0", 8.5, "fp16", "int8", "GGUF Q8_0: blocks of 32 int8 + one fp16 scale",
            _GGML_QUANTS + " (block_q8_0: 34 bytes per 32 weights). Quality: " + _LLAMA_CPP_PPL + ", q8_0 6.234284",
            quality=_PPL_F16_LLAMA3_8B / 6.234284, dequant_ops_per_weight=DEQUANT_OPS["q8_0"],
        ),
        NumberFormat(
            "q4_k_m", 4.89, "fp16", "int4", "GGUF Q4_K_M mix (Q4_K with Q6_K for some tensors)",
            "llama.cpp Llama-3-8B Q4_K_M file 4.58 GiB for 8.03 B parameters = 4.89 bits/weight "
            "(github:XiongjieDai/GPU-Benchmarks-on-LLM-Inference). Quality: " + _LLAMA_CPP_PPL + ", q4_K_M 6.407115",
            quality=_PPL_F16_LLAMA3_8B / 6.407115, dequant_ops_per_weight=DEQUANT_OPS["q4_k_m"],
        ),
        NumberFormat(
            "q4_0", 4.5, "fp16", "int4", "GGUF Q4_0: blocks of 32 4-bit + one fp16 scale",
            _GGML_QUANTS + " (block_q4_0: 18 bytes per 32 weights). Quality: " + _LLAMA_CPP_PPL + ", q4_0 6.700147",
            quality=_PPL_F16_LLAMA3_8B / 6.700147, dequant_ops_per_weight=DEQUANT_OPS["q4_0"],
        ),
        NumberFormat(
            "q3_k_s", 3.5, "fp16", "int4", "GGUF Q3_K_S (Q3_K super-blocks, 3.4375 bpw, plus Q6_K output)",
            _GGML_QUANTS + " (block_q3_K: 110 bytes per 256 weights = 3.4375 bpw). Quality: " + _LLAMA_CPP_PPL
            + ", q3_K_S 7.863786",
            quality=_PPL_F16_LLAMA3_8B / 7.863786, dequant_ops_per_weight=DEQUANT_OPS["q3_k_s"],
        ),
        NumberFormat(
            "w4a16", 4.25, "fp16", "int4", "4-bit weights, fp16 activations, group-128 fp16 scales (AWQ/GPTQ)",
            "AWQ/GPTQ group size 128: 4 + 16/128 (scale) + 4/128 (zero) = 4.16 bpw, rounded up for "
            "unquantised norms. Quality: AWQ paper (Lin et al., MLSys 2024, arXiv:2306.00978) Table 4, "
            "Llama-2-7B WikiText-2 PPL FP16 5.47 vs AWQ INT4 g128 5.60",
            quality=5.47 / 5.60, dequant_ops_per_weight=DEQUANT_OPS["w4a16"],
        ),
    )
}

KV_FORMATS: dict[str, NumberFormat] = {
    f.id: f
    for f in (
        WEIGHT_FORMATS["fp32"],
        WEIGHT_FORMATS["fp16"],
        WEIGHT_FORMATS["bf16"],
        NumberFormat("fp8", 8.0, "fp16", "int8", "FP8 KV cache", "vLLM --kv-cache-dtype fp8"),
        NumberFormat("int8", 8.0, "fp16", "int8", "INT8 KV cache", "lmdeploy --quant-policy 8"),
        NumberFormat("q8_0", 8.5, "fp16", "int8", "llama.cpp --cache-type-k q8_0", _GGML_QUANTS),
        NumberFormat("q4_0", 4.5, "fp16", "int4", "llama.cpp --cache-type-k q4_0", _GGML_QUANTS),
    )
}

# When a compute unit has no figure for a precision, the kernels run in the next one.
PRECISION_FALLBACK: dict[str, str] = {"fp8": "fp16", "int8": "fp16", "bf16": "fp16", "fp16": "fp32"}


def weight_format(fmt_id: str) -> NumberFormat:
    """Return the weight format ``fmt_id``.

    Examples
    --------
    >>> weight_format("q4_0").bits_per_weight
    4.5
    """
    try:
        return WEIGHT_FORMATS[fmt_id]
    except KeyError:
        raise CatalogError("weight format", fmt_id, sorted(WEIGHT_FORMATS)) from None


def kv_format(fmt_id: str) -> NumberFormat:
    """Return the KV-cache format ``fmt_id``."""
    try:
        return KV_FORMATS[fmt_id]
    except KeyError:
        raise CatalogError("KV format", fmt_id, sorted(KV_FORMATS)) from None
