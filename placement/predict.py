"""``predict()``: one model on one device, answered by the same cost model as plans.

It builds a one-device problem and a one-shard plan and evaluates it, so a
prediction and a plan's metrics can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from models import DeviceSpec, LLMGraph, Node, Topology, device_spec, formats, load_model, weight_format
from models.engines import engine as engine_info
from placement.costs.roofline import execution_rates, kv_concurrency, wave_batches
from placement.costs.tables import block_costs
from placement.evaluate import evaluate
from placement.plan import Plan, Route, Shard
from placement.problem import Constraints, ModelSpec, Problem, RequestClass

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """Predicted speed, energy and memory of one model on one device.

    ``prefill_tok_s`` is batch x prompt tokens / prefill time; ``decode_tok_s`` is
    the sequences running at once / TPOT (aggregate over them). Memory is in GiB, for the
    sequences running at once.
    """

    model: str
    device: str
    weight_format: str
    engine: str
    batch: int
    prompt_tokens: int
    output_tokens: int
    ttft_ms: float
    tpot_ms: float
    prefill_tok_s: float | None
    decode_tok_s: float
    e2e_ms: float
    energy_j_per_token: float | None
    power_w: float
    weights_gb: float
    kv_cache_gb: float
    peak_memory_gb: float
    memory_capacity_gb: float
    fits: bool
    calibrated: bool
    concurrent_sequences: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(model: str | LLMGraph | Mapping[str, Any], device: str | DeviceSpec, weight_format: str = "fp16",
            engine: str | None = None, batch: int = 1, prompt_tokens: int = 512, output_tokens: int = 128,
            kv_format: str = "fp16", context_tokens: int | None = None, threads: int | None = None) -> Prediction:
    """Predict TTFT, TPOT, throughput, energy and memory of ``model`` on ``device``.

    Parameters
    ----------
    model : str, LLMGraph or mapping
        A catalog id, a built graph, or a config dict.
    device : str or DeviceSpec
        A catalog id or a spec.
    weight_format : str
        e.g. ``fp16``, ``q4_k_m``, ``w4a16``.
    engine : str, optional
        Defaults to the device's default engine.
    batch : int
        Sequences decoded together.
    prompt_tokens, output_tokens : int
        Per sequence. ``prompt_tokens=0`` models ``llama-bench tg`` runs.
    context_tokens : int, optional
        KV reservation per sequence (default prompt + output).
    threads : int, optional
        Threads a CPU device runs (default: all its cores; see ``devices[].threads``).

    A serving engine whose KV-cache pool cannot hold the whole batch runs it in waves
    (:func:`placement.costs.roofline.kv_concurrency`): ``concurrent_sequences`` says how many
    run at once, ``decode_tok_s`` is their aggregate rate, ``ttft_ms`` and ``tpot_ms`` are the
    first wave's, and ``e2e_ms`` and ``prefill_tok_s`` cover every wave.

    Examples
    --------
    >>> from placement import predict
    >>> p = predict("llama-3-8b", "rtx-4090", "q4_k_m", prompt_tokens=512, output_tokens=128)
    >>> p.fits, p.decode_tok_s > 50
    (True, True)
    """
    graph = model if isinstance(model, LLMGraph) else load_model(model)
    spec = device if isinstance(device, DeviceSpec) else device_spec(device)
    _check(batch, prompt_tokens, output_tokens)
    if engine is not None:
        engine_info(engine)  # raises CatalogError naming the known engines
    node = Node(spec.id, spec, engine=engine or spec.default_engine, threads=threads)
    fmt_id = _format(weight_format)
    model_spec = ModelSpec(graph.id, graph, fmt_id, kv_format)
    req = RequestClass("predict", spec.id, graph.id, prompt_tokens, output_tokens, None, batch)
    context = context_tokens or prompt_tokens + output_tokens
    fmt = formats.weight_format(fmt_id)
    concurrency = kv_concurrency(model_spec, fmt, node, execution_rates(node, fmt), req, context)
    sizes = wave_batches(batch, concurrency)
    waves = {size: _one_wave(model_spec, node, replace(req, batch=size), context_tokens) for size in sorted(set(sizes))}
    first = waves[sizes[0]]
    prefill_s = sum(waves[w].prefill_s for w in sizes)
    e2e_ms = sum(waves[w].e2e_ms for w in sizes)
    energy_j = sum(waves[w].energy_j_per_token * w * output_tokens for w in sizes) if output_tokens else 0.0
    return Prediction(
        model=graph.id, device=spec.id, weight_format=fmt_id, engine=node.engine, batch=batch,
        prompt_tokens=prompt_tokens, output_tokens=output_tokens,
        ttft_ms=first.ttft_ms, tpot_ms=first.tpot_ms,
        prefill_tok_s=batch * prompt_tokens / prefill_s if prompt_tokens and prefill_s > 0 else None,
        decode_tok_s=float(concurrency / (first.tpot_ms * 1e-3)),
        e2e_ms=e2e_ms,
        energy_j_per_token=energy_j / (batch * output_tokens) if output_tokens else None,
        power_w=spec.power_active_w,
        weights_gb=first.weights_gb, kv_cache_gb=first.kv_cache_gb, peak_memory_gb=first.memory_gb,
        memory_capacity_gb=first.memory_capacity_gb, fits=first.fits, calibrated=first.calibrated,
        concurrent_sequences=concurrency,
    )


@dataclass(frozen=True)
class _Wave:
    """One batch that runs at once, evaluated as a one-shard plan."""

    ttft_ms: float
    tpot_ms: float
    e2e_ms: float
    prefill_s: float
    energy_j_per_token: float
    weights_gb: float
    kv_cache_gb: float
    memory_gb: float
    memory_capacity_gb: float
    fits: bool
    calibrated: bool


def _one_wave(model: ModelSpec, node: Node, req: RequestClass, context_tokens: int | None) -> _Wave:
    problem = Problem(
        name=f"predict:{model.id}@{node.id}",
        models=(model,),
        topology=Topology((node,)),
        workload=(req,),
        constraints=Constraints(max_context_tokens=context_tokens),
    )
    plan = Plan(shards=(Shard("s0", model.id, node.id, (0, model.num_blocks)),), routes=(Route("predict", ("s0",)),))
    metrics = evaluate(problem, plan)
    r = metrics.requests["predict"]
    dev = metrics.devices[node.id]
    bc = block_costs(problem, req)
    return _Wave(
        ttft_ms=float(r.ttft_ms), tpot_ms=float(r.tpot_ms), e2e_ms=float(r.e2e_ms),
        prefill_s=float(bc.stage_prefill_s(0, 0, model.num_blocks)),
        energy_j_per_token=float(r.energy_j_per_token or 0.0),
        weights_gb=dev.weights_gb, kv_cache_gb=dev.kv_cache_gb, memory_gb=dev.memory_gb,
        memory_capacity_gb=dev.memory_capacity_gb, fits=bool(dev.memory_gb <= dev.memory_capacity_gb),
        calibrated=metrics.calibrated,
    )


def _format(fmt: str) -> str:
    weight_format(fmt)  # raises CatalogError naming the known formats
    return fmt


def _check(batch: int, prompt_tokens: int, output_tokens: int) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    if not isinstance(prompt_tokens, int) or prompt_tokens < 0:
        raise ValueError(f"prompt_tokens must be an integer >= 0, got {prompt_tokens!r}")
    if not isinstance(output_tokens, int) or output_tokens < 0:
        raise ValueError(f"output_tokens must be an integer >= 0, got {output_tokens!r}")
    if prompt_tokens == 0 and output_tokens == 0:
        raise ValueError("prompt_tokens and output_tokens cannot both be 0")
