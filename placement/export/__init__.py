"""Export a plan to the serving engines people run: the scripts and configuration that deploy it.

What every engine shares is an ordered list of devices, each holding one
contiguous half-open range of blocks of one model (:mod:`placement.export.stages`);
each engine module only writes that shape in its own terms and checks its own
constraints. An engine that cannot run the plan raises :class:`ExportRefused`
with the reason; what it runs differently from the plan (replicas left out, one
weight format for every device, routing fractions) comes back as warnings.

Examples
--------
>>> from placement import load_instance
>>> from placement.plan import Plan, Route, Shard
>>> problem = load_instance("instances/device-edge-cloud.yaml")
>>> plan = Plan(shards=(Shard("s0", "llama-3.1-70b", "edge", (0, 41)),
...                     Shard("s1", "llama-3.1-70b", "cloud", (41, 80))),
...             routes=(Route("chat", ("s0", "s1")),))
>>> out = export_plan(problem, plan, "llama.cpp", addresses={"edge": "10.0.0.2", "cloud": "10.0.0.3"})
>>> [f.name for f in out.files]
['rpc-server-edge.sh', 'rpc-server-cloud.sh', 'llama-server.sh']
>>> "--tensor-split 41,40" in out.file("llama-server.sh").text
True
>>> [e.name for e in exporters()]
['llama.cpp', 'vllm', 'sglang', 'petals', 'prima.cpp', 'exo', 'distributed-llama']
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from placement.export import dllama, exo, llamacpp, petals, primacpp, sglang, vllm
from placement.export.artefacts import Artefacts, resolve_artefacts
from placement.export.base import (
    Export, ExportArgumentError, ExportError, ExportFile, ExportInput, Exporter, ExportRefused,
)
from placement.export.stages import Pipeline, Stage, choose_model, choose_pipeline, model_shards
from placement.plan import Plan
from placement.problem import Problem

__all__ = ["export_plan", "exporters", "exporter", "Export", "ExportFile", "Exporter", "ExportError",
           "ExportRefused", "ExportArgumentError", "Artefacts", "Pipeline", "Stage"]

_EXPORTERS: tuple[Exporter, ...] = (llamacpp.EXPORTER, vllm.EXPORTER, sglang.EXPORTER, petals.EXPORTER,
                                    primacpp.EXPORTER, exo.EXPORTER, dllama.EXPORTER)


def exporters() -> tuple[Exporter, ...]:
    """The registered engines, in the order the README lists them."""
    return _EXPORTERS


def exporter(name: str) -> Exporter:
    """The engine called ``name`` (or one of its aliases, any case).

    Raises
    ------
    ExportArgumentError
        For an unknown engine, naming the known ones.
    """
    key = name.strip().lower()
    for e in _EXPORTERS:
        if key == e.name or key in e.aliases:
            return e
    names = [e.name for e in _EXPORTERS]
    close = difflib.get_close_matches(key, names + [a for e in _EXPORTERS for a in e.aliases], n=1)
    hint = f"; did you mean {exporter(close[0]).name!r}?" if close else ""
    raise ExportArgumentError(f"unknown engine {name!r} (expected one of {', '.join(names)}){hint}")


def export_plan(problem: Problem, plan: Plan, engine: str, *, model: str | None = None, pipeline: int | None = None,
                addresses: Mapping[str, str] | None = None, gguf: str | None = None,
                hf_repo: str | None = None) -> Export:
    """The files that deploy ``plan`` on ``engine``, with what the engine cannot express as warnings.

    Parameters
    ----------
    problem : Problem
        The instance the plan was solved for.
    plan : Plan
        A plan of that instance (e.g. from :func:`placement.load_plan`).
    engine : str
        A registered engine (see :func:`exporters`): ``llama.cpp``, ``vllm``, ``sglang``,
        ``petals``, ``prima.cpp``, ``exo``, ``distributed-llama``.
    model : str, optional
        The model to deploy, when the plan places several.
    pipeline : int, optional
        Which of the plan's pipelines (numbered from 1) a single-pipeline engine runs,
        when the plan holds several.
    addresses : mapping of device id to ``HOST[:PORT]``, optional
        Where devices are reached; overrides ``devices[].address`` and ``devices[].port``.
    gguf, hf_repo : str, optional
        The model's GGUF file and Hugging Face repository; override ``models[].gguf``
        and ``models[].hf_repo``.

    Returns
    -------
    Export

    Raises
    ------
    ExportRefused
        If the engine cannot run the plan, with the reason.
    ExportArgumentError
        For an unknown engine, device, model or pipeline, or a malformed address.
    InvalidPlanError
        If the plan does not fit the instance.
    """
    chosen = exporter(engine)
    spec = choose_model(problem, plan, chosen.title, model)
    art = resolve_artefacts(problem, spec, addresses, gguf, hf_repo)
    shards, warnings = model_shards(problem, plan, spec)
    pipe = None
    if not chosen.whole_plan:
        pipe, warnings = choose_pipeline(problem, plan, spec, chosen.title, pipeline)
    elif pipeline is not None:
        raise ExportArgumentError(f"--pipeline: {chosen.title} takes every shard of the plan, not one pipeline")
    result = chosen.build(ExportInput(problem, plan, spec, pipe, shards, art, tuple(warnings)))
    names = [f.name for f in result.files]
    if len(set(names)) != len(names):  # file names carry digests of odd ids; a clash would lose a script
        raise ExportError(f"two exported files would share a name ({', '.join(sorted(names))})")
    return result
