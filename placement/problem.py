"""The placement problem: models, topology, workload, objective and constraints.

Everything here is frozen. Solvers read a :class:`Problem` and return a new
:class:`~placement.plan.Plan`; nothing mutates the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models import LLMGraph, NumberFormat, Topology, kv_format

__all__ = ["ModelSpec", "SLO", "RequestClass", "Objective", "Constraints", "Problem", "METRICS", "require_problem"]

# Objective metrics: name -> (sense, unit, description).
METRICS: dict[str, tuple[str, str, str]] = {
    "latency": ("min", "ms", "mean end-to-end latency per request"),
    "ttft": ("min", "ms", "mean time to first token"),
    "tpot": ("min", "ms", "mean time per output token"),
    "energy": ("min", "J", "mean energy per request (active devices and links)"),
    "throughput": ("max", "tok/s", "decode tokens per second the plan can serve"),
}


@dataclass(frozen=True)
class ModelSpec:
    """A model to place, in a weight format, with the formats a solver may choose from.

    ``gguf`` (a GGUF file's path) and ``hf_repo`` (a Hugging Face repository id)
    name the model's weights for exports to serving engines; ``None`` when the
    instance does not give them. They play no part in the cost model.
    """

    id: str
    graph: LLMGraph
    weight_format: str
    kv_format: str = "fp16"
    allowed_formats: tuple[str, ...] = ()
    gguf: str | None = None
    hf_repo: str | None = None

    @property
    def kv_fmt(self) -> NumberFormat:
        return kv_format(self.kv_format)

    @property
    def num_blocks(self) -> int:
        return self.graph.num_blocks

    @property
    def formats(self) -> tuple[str, ...]:
        """Formats a shard of this model may use (the model's own first)."""
        return self.allowed_formats or (self.weight_format,)


@dataclass(frozen=True)
class SLO:
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def items(self) -> list[tuple[str, float]]:
        return [(k, v) for k, v in (("ttft_ms", self.ttft_ms), ("tpot_ms", self.tpot_ms),
                                     ("e2e_ms", self.e2e_ms)) if v is not None]


@dataclass(frozen=True)
class RequestClass:
    """A class of requests: where they enter, which model, how long, how often.

    ``batch`` sequences of this class run together in each forward step.
    """

    id: str
    source: str
    model: str
    prompt_tokens: int
    output_tokens: int
    rate_rps: float | None = None
    batch: int = 1
    slo: SLO = field(default_factory=SLO)
    profile: str | None = None


@dataclass(frozen=True)
class Objective:
    """What to optimise: one metric, or a weighted sum of minimised metrics.

    Examples
    --------
    >>> Objective.of("latency").name, Objective.of({"latency": 1.0, "energy": 0.01}).name
    ('latency', 'weighted')
    """

    terms: tuple[tuple[str, float], ...]

    @staticmethod
    def of(spec: str | dict[str, float]) -> Objective:
        if isinstance(spec, str):
            return Objective(((spec, 1.0),))
        return Objective(tuple((k, float(v)) for k, v in spec.items()))

    @property
    def name(self) -> str:
        return self.terms[0][0] if len(self.terms) == 1 else "weighted"

    @property
    def sense(self) -> str:
        return METRICS[self.terms[0][0]][0] if len(self.terms) == 1 else "min"

    @property
    def unit(self) -> str:
        return METRICS[self.terms[0][0]][1] if len(self.terms) == 1 else ""


@dataclass(frozen=True)
class Constraints:
    """Limits every plan must respect.

    ``memory_headroom`` keeps that share of each device's usable memory free.
    ``max_context_tokens`` sets the KV reservation per sequence (default: the
    request's prompt + output). ``device_order`` fixes the pipeline order for
    chain solvers.
    """

    memory_headroom: float = 0.0
    max_context_tokens: int | None = None
    device_order: tuple[str, ...] | None = None
    quality_floor: float | None = None


@dataclass(frozen=True)
class Problem:
    """A placement instance, ready for solvers and the cost model."""

    name: str
    models: tuple[ModelSpec, ...]
    topology: Topology
    workload: tuple[RequestClass, ...]
    objective: Objective = field(default_factory=lambda: Objective.of("latency"))
    constraints: Constraints = field(default_factory=Constraints)
    description: str = ""
    sha256: str = ""
    # Files the instance was read from (the instance file, then each config_file), as real paths;
    # a plan file is never written over one of them.
    input_files: tuple[str, ...] = field(default=(), compare=False)
    # Cost tables computed from this (immutable) problem, shared by solvers and evaluate().
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def model(self, model_id: str) -> ModelSpec:
        for m in self.models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)

    def request(self, request_id: str) -> RequestClass:
        for r in self.workload:
            if r.id == request_id:
                return r
        raise KeyError(request_id)

    def requests_for(self, model_id: str) -> tuple[RequestClass, ...]:
        return tuple(r for r in self.workload if r.model == model_id)

    def has_request_rates(self) -> bool:
        """Whether any request class gives a request rate."""
        return any(r.rate_rps for r in self.workload)

    def request_weights(self) -> dict[str, float]:
        """Weights of the request classes in averaged metrics: their rates when all
        classes give one, else equal."""
        if self.workload and all(r.rate_rps for r in self.workload):
            total = sum(r.rate_rps for r in self.workload)  # type: ignore[misc]
            return {r.id: r.rate_rps / total for r in self.workload}  # type: ignore[operator]
        return {r.id: 1.0 / len(self.workload) for r in self.workload}

    def context_tokens(self, request: RequestClass) -> int:
        """Tokens of KV cache reserved per sequence of ``request``."""
        return self.constraints.max_context_tokens or request.prompt_tokens + request.output_tokens


def require_problem(problem: object, name: str = "problem") -> None:
    """Raise a TypeError naming ``name`` unless ``problem`` is a :class:`Problem`.

    Examples
    --------
    >>> require_problem(None)
    Traceback (most recent call last):
    ...
    TypeError: problem must be a placement.Problem (from load_instance or parse_instance), got NoneType
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"{name} must be a placement.Problem (from load_instance or parse_instance), "
                        f"got {type(problem).__name__}")
