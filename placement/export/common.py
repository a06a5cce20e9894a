"""Small pieces several exporters share: script headers, listening endpoints, GPU classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from placement.evaluate import evaluate
from placement.export.artefacts import Artefacts
from placement.export.base import ExportInput, ExportRefused
from placement.export.stages import Stage
from placement.netaddr import is_ip_address

__all__ = ["header", "stage_header", "distinct_endpoints", "CUDA_CLASSES", "require_cuda", "require_single_accelerator",
           "GGUF_FORMATS", "GGML_KV_FLAGS", "FLOAT_KV", "DISCRETE_GPU_CLASSES", "shares_host_memory", "check_room", "require_ipv4"]

# Device classes with memory of their own (VRAM), apart from the host's RAM; every other class shares one memory.
DISCRETE_GPU_CLASSES = frozenset({"datacenter_gpu", "workstation_gpu", "consumer_gpu"})

# Device classes whose accelerator is an NVIDIA GPU (CUDA): what vLLM and SGLang run on here.
CUDA_CLASSES = frozenset({"datacenter_gpu", "workstation_gpu", "consumer_gpu", "jetson", "desktop_superchip"})

# GGUF tensor types of the catalog's formats, as llama.cpp names them (ggml-org/llama.cpp ggml/include/ggml.h).
GGUF_FORMATS = {"fp32": "F32", "fp16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_k_m": "Q4_K_M",
                "q4_0": "Q4_0", "q3_k_s": "Q3_K_S"}

# KV cache types llama.cpp (and prima.cpp) take with -ctk/-ctv (common/arg.cpp); f16 is the default.
GGML_KV_FLAGS = {"fp16": (), **{kv: ("-ctk", t, "-ctv", t) for kv, t in
                                (("fp32", "f32"), ("bf16", "bf16"), ("q8_0", "q8_0"), ("q4_0", "q4_0"))}}
# Engines whose KV cache is the weights' 16-bit float type: a plan's 16- or 32-bit cache fits in it.
FLOAT_KV = {"fp16": (), "bf16": (), "fp32": ()}


def header(inp: ExportInput, title: str) -> list[str]:
    """The first comment lines of every script: what plan, instance and model it deploys."""
    plan = inp.plan
    solver = plan.solver + (f":{plan.backend}" if plan.backend else "") if plan.solver else "a plan file"
    return [f"llmplace export to {title}: instance {inp.problem.name}, plan by {solver} ({plan.status}), "
            f"model {inp.model.id} ({inp.model.num_blocks} blocks)"]


def stage_header(inp: ExportInput, title: str, stage: Stage, index: int, count: int) -> list[str]:
    return [*header(inp, title),
            f"stage {index + 1} of {count}: blocks [{stage.start}, {stage.end}) on device {stage.device}"]


def distinct_endpoints(engine: str, art: Artefacts, stages: Sequence[Stage], default_port: int) -> None:
    """Refuse two servers that would listen at one host and port (known hosts only)."""
    seen: dict[tuple[str, int], str] = {}
    for st in stages:
        host = art.known_host(st.device)
        if host is None:
            continue
        key = (host, art.port(st.device, default_port))
        if key in seen and seen[key] != st.device:
            raise ExportRefused(engine, f"devices {seen[key]} and {st.device} would both listen at "
                                        f"{key[0]}:{key[1]}; give them distinct ports (--address DEVICE=HOST:PORT)")
        seen[key] = st.device


def require_cuda(engine: str, stages: Sequence[Stage]) -> None:
    """Refuse stages on devices without an NVIDIA GPU."""
    bad = [f"{st.device} ({st.node.spec.device_class})" for st in stages if st.node.spec.device_class not in CUDA_CLASSES]
    if bad:
        raise ExportRefused(engine, f"its pipeline stages run on NVIDIA GPUs (CUDA); {', '.join(bad)} "
                                    f"{'is' if len(bad) == 1 else 'are'} not one")


def require_single_accelerator(engine: str, stages: Sequence[Stage], why: str) -> None:
    """Refuse nodes of several accelerators, which the engine cannot spread a stage over."""
    multi = [f"{st.device} ({st.node.count} accelerators)" for st in stages if st.node.count > 1]
    if multi:
        raise ExportRefused(engine, f"{why}; the plan spreads stages over {', '.join(multi)}")


def shares_host_memory(stage: Stage) -> bool:
    """Whether what an engine keeps in host RAM counts against the memory the plan gave the device."""
    return stage.node.spec.device_class not in DISCRETE_GPU_CLASSES


def check_room(engine: str, inp: ExportInput, extra_gb: Mapping[str, float], what: str) -> None:
    """Refuse when the engine puts more on a device than the memory the cost model leaves it.

    ``extra_gb`` is what the engine holds on each device beyond the plan (GB = GiB, as
    the cost model reports memory); the room is each device's usable memory minus what
    :func:`~placement.evaluate` says the plan uses there.
    """
    devices = evaluate(inp.problem, inp.plan).devices
    over = []
    for device, gb in extra_gb.items():
        dm = devices.get(device)
        if gb > 0 and dm is not None and dm.memory_gb + gb > dm.memory_capacity_gb:
            over.append(f"{device} would need {dm.memory_gb:.2f} + {gb:.2f} GB of its usable "
                        f"{dm.memory_capacity_gb:.2f} GB")
    if over:
        raise ExportRefused(engine, f"{what}: {'; '.join(over)}")


def require_ipv4(engine: str, art: Artefacts, stages: Sequence[Stage], why: str) -> None:
    """Refuse IPv6 addresses for an engine whose sockets are IPv4 only (``why`` says where that shows)."""
    for st in stages:
        host = art.known_host(st.device)
        if host is not None and is_ip_address(host) and ":" in host:
            raise ExportRefused(engine, f"it speaks IPv4 only ({why}); {st.device} has {host}")
