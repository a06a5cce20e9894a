"""The placement problem: models, topology, workload, objective and constraints.

Everything here is frozen. Solvers read a :class:`Problem` and return a new
:class:`~placement.plan.Plan`; nothing mutates the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models import LLMGraph, ModelScores, NumberFormat, Topology, kv_format

__all__ = ["ModelSpec", "SLO", "RequestClass", "Cascade", "CacheEntry", "Objective", "Constraints", "Problem",
           "METRICS", "PORTFOLIO_METRICS", "require_problem"]

# Objective metrics: name -> (sense, unit, description).
METRICS: dict[str, tuple[str, str, str]] = {
    "latency": ("min", "ms", "mean end-to-end latency per request"),
    "ttft": ("min", "ms", "mean time to first token"),
    "tpot": ("min", "ms", "mean time per output token"),
    "energy": ("min", "J", "mean energy per request (active devices and links)"),
    "throughput": ("max", "tok/s", "decode tokens per second the plan can serve"),
    "goodput": ("max", "req/s", "the highest request rate, every class's rate scaled alike, at which "
                                "constraints.goodput_share of the requests meet their SLOs (with queueing)"),
    "quality": ("max", "points", "mean benchmark score of the answers (an unserved request scores 0)"),
    "churn": ("min", "s", "seconds spent loading model weights that are not resident in the current cache"),
    "unserved": ("min", "share", "share of the requests the plan leaves unserved (weighted as the classes are)"),
}
# Metrics only the model-caching solvers optimise (see Problem.portfolio_features).
PORTFOLIO_METRICS = frozenset({"quality", "churn", "unserved"})


def aggregate_key(metric: str) -> str:
    """The key of ``metric`` in :attr:`placement.metrics.Metrics.aggregates`: its name and unit.

    >>> aggregate_key("latency"), aggregate_key("throughput")
    ('latency_ms', 'throughput_tok_per_s')
    """
    return f"{metric}_{METRICS[metric][1].replace('/', '_per_')}"


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
    scores: ModelScores | None = None  # benchmark scores (models/catalog/quality.yaml or inline)

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
class Cascade:
    """A route option of a request class: ``first`` answers every request, and a share
    ``escalate_share`` of them is sent on to ``then``, whose answer is the one kept."""

    first: str
    then: str
    escalate_share: float


@dataclass(frozen=True)
class RequestClass:
    """A class of requests: where they enter, which models may answer, how long, how often.

    ``batch`` sequences of this class run together in each forward step. ``model`` is the
    class's model (the first of ``models`` when it accepts several); ``models`` lists every
    model whose answers it accepts (empty: ``model`` alone). ``benchmark`` names the
    benchmark its answers are judged by and ``min_quality`` the least score it accepts.
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
    models: tuple[str, ...] = ()
    min_quality: float | None = None
    benchmark: str | None = None
    cascades: tuple[Cascade, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """Models whose answers this class accepts."""
        return self.models or (self.model,)

    def cascade(self, first: str, then: str) -> Cascade | None:
        for c in self.cascades:
            if (c.first, c.then) == (first, then):
                return c
        return None


@dataclass(frozen=True)
class CacheEntry:
    """A shard resident now: blocks ``layers`` of ``model`` in ``weight_format`` on ``device``."""

    device: str
    model: str
    weight_format: str
    layers: tuple[int, int]


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
    chain solvers. ``max_utilization`` bounds each device's busy share at the
    request rates (arrival rate x service time). With ``queueing``, TTFT and
    end-to-end latency include the wait for a free slot at the request rates
    (:mod:`placement.costs.queueing`); ``goodput_share`` is the share of requests
    that must meet their SLOs for a rate to count towards goodput.
    """

    memory_headroom: float = 0.0
    max_context_tokens: int | None = None
    device_order: tuple[str, ...] | None = None
    quality_floor: float | None = None
    max_utilization: float = 1.0
    queueing: bool = False
    goodput_share: float = 0.9


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
    cache: tuple[CacheEntry, ...] | None = None  # what is resident now (None: not given)
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

    def requests_accepting(self, model_id: str) -> tuple[RequestClass, ...]:
        """Classes that accept answers of ``model_id`` (its own classes, and those listing it in ``models``)."""
        return tuple(r for r in self.workload if model_id in r.accepted)

    def portfolio_features(self) -> list[str]:
        """What makes this a model-caching instance (empty for a plain placement instance).

        Examples
        --------
        >>> from placement import load_instance
        >>> load_instance("instances/hybrid.yaml").portfolio_features()
        []
        """
        out = []
        if any(len(r.accepted) > 1 for r in self.workload):
            out.append("request classes accepting several models")
        if any(r.min_quality is not None for r in self.workload):
            out.append("a minimum quality per request class (min_quality)")
        if any(r.cascades for r in self.workload):
            out.append("cascades")
        if self.cache is not None:
            out.append("a current cache (cache:)")
        if self.constraints.max_utilization != 1.0:
            out.append("constraints.max_utilization")
        terms = sorted({name for name, _ in self.objective.terms} & PORTFOLIO_METRICS)
        if terms:
            out.append(f"objective term(s) {', '.join(terms)}")
        return out

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
