"""Answer quality of models: benchmark scores from model cards and papers (``catalog/quality.yaml``).

A model's :class:`ModelScores` hold its published score on each benchmark (at the precision
it was evaluated in) and, where a publication measured it, its score in a given weight
format. :meth:`ModelScores.score` answers "how good are this model's answers on this
benchmark in this format": the measured figure when there is one, else the published score
times the format's ``quality`` (an estimate; see the catalog's header).

Examples
--------
>>> from models.quality import benchmark_ids, model_scores
>>> benchmark_ids()
['gsm8k', 'mmlu']
>>> s = model_scores("llama-3.2-3b")
>>> s.score("mmlu", "bf16"), round(s.score("mmlu", "q4_k_m"), 2)
(63.4, 61.68)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from models._catalog import read_yaml
from models.errors import CatalogError
from models.formats import weight_format

__all__ = ["ModelScores", "model_scores", "benchmark_ids", "benchmark_name", "has_scores"]


@dataclass(frozen=True)
class ModelScores:
    """Benchmark scores of one model (percent correct).

    ``scores``: ``(benchmark, score)`` at the model's published precision; ``measured``:
    ``(weight format, benchmark, score)`` measured in a format; ``source`` says where the
    figures come from.
    """

    model: str
    scores: tuple[tuple[str, float], ...] = ()
    measured: tuple[tuple[str, str, float], ...] = ()
    source: str = ""

    def benchmarks(self) -> tuple[str, ...]:
        return tuple(b for b, _ in self.scores)

    def score(self, benchmark: str, weight_format_id: str) -> float | None:
        """The model's score on ``benchmark`` in ``weight_format_id`` (``None`` without a figure)."""
        for fmt, bench, value in self.measured:
            if fmt == weight_format_id and bench == benchmark:
                return value
        for bench, value in self.scores:
            if bench == benchmark:
                return value * weight_format(weight_format_id).quality
        return None


@cache
def _catalog() -> dict:
    return read_yaml("quality.yaml")


def benchmark_ids() -> list[str]:
    """Benchmarks the quality catalog has scores for."""
    return sorted(_catalog()["benchmarks"])


def benchmark_name(benchmark: str) -> str:
    return str(_catalog()["benchmarks"][benchmark]["name"])


def has_scores(model_id: str) -> bool:
    return model_id in _catalog()["models"]


def model_scores(model_id: str) -> ModelScores:
    """The catalog's scores of ``model_id``.

    Raises
    ------
    CatalogError
        When the catalog has no scores for the model.
    """
    models = _catalog()["models"]
    if model_id not in models:
        raise CatalogError("model with quality scores", model_id, sorted(models))
    entry = models[model_id]
    measured = tuple((str(fmt), str(bench), float(value)) for fmt, figures in (entry.get("formats") or {}).items()
                     for bench, value in figures.items() if bench != "source")
    source = f"{entry.get('variant', model_id)}: {entry['source']}"
    return ModelScores(model_id, tuple((str(b), float(v)) for b, v in entry["scores"].items()), measured, source)
