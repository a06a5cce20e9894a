"""Plan files (JSON): what a solver decided, how, and what the cost model predicts.

Files are written atomically (a temporary file in the same folder, then a
rename), so an interrupted run leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from placement.errors import InvalidPlanError, Issue
from placement.metrics import Metrics
from placement.plan import Plan, Proof, Route, Shard, Status, Termination
from placement.problem import Problem
from placement.textfiles import read_mapping_file

__all__ = ["plan_to_dict", "plan_from_dict", "save_plan", "load_plan", "write_atomic", "PLAN_SCHEMA_VERSION"]

PLAN_SCHEMA_VERSION = 1


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a mix.

    The text goes to a temporary file in the same folder, is flushed to disk, and
    then renamed over ``path`` (a rename within one file system is atomic). If
    anything fails or the run is interrupted, the temporary file is removed and
    the old file is left as it was. A replaced file keeps its permissions.

    Raises
    ------
    OSError
        If the folder does not exist or cannot be written.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _sync_folder(folder)


def _mode_for(target: Path) -> int:
    """The old file's permissions, or those a new file gets under the umask (mkstemp's are 0600)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; not every platform lets a folder be opened for this."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: write ``null`` instead, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def plan_to_dict(plan: Plan, problem: Problem | None = None) -> dict[str, Any]:
    """The plan in the plan-file format (see README, "Plan files")."""
    predicted: dict[str, Any] | None = None
    if plan.predicted is not None:
        m = plan.predicted
        predicted = {
            "requests": {k: v.to_dict() for k, v in m.requests.items()},
            "devices": {k: v.to_dict() for k, v in m.devices.items() if v.shards},
            "throughput_tok_s": m.throughput_tok_s,
            "feasible": m.feasible,
            "calibrated": m.calibrated,
            "aggregates": m.aggregates,
            "routing": m.routing,
        }
    out = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "instance": {"name": problem.name if problem else "", "sha256": problem.sha256 if problem else ""},
        "status": plan.status.value,
        "termination": plan.termination.value,
        "proof": plan.proof.value,
        "objective": {
            "name": plan.objective_name, "value": plan.objective, "unit": plan.objective_unit,
            "bound": plan.bound, "gap": plan.gap,
        },
        "solver": {
            "name": plan.solver, "backend": plan.backend, "params": plan.params,
            "solve_time_s": plan.solve_time_s, "stats": plan.stats,
        },
        "shards": [
            {"id": s.id, "model": s.model, "device": s.device, "layers": list(s.layers),
             "weight_format": s.weight_format}
            for s in plan.shards
        ],
        "routes": [
            {"request": r.request, "path": list(r.path), "rate_tok_s": r.rate_tok_s, "fraction": r.fraction}
            for r in plan.routes
        ],
        "predicted": predicted,
        "reasons": list(plan.reasons),
    }
    return _finite(out)


def plan_to_json(plan: Plan, problem: Problem | None = None) -> str:
    return json.dumps(plan_to_dict(plan, problem), indent=2) + "\n"


def save_plan(path: str | Path, plan: Plan, problem: Problem | None = None) -> None:
    """Write ``plan`` as JSON to ``path`` atomically."""
    write_atomic(path, plan_to_json(plan, problem))


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str, issues: list[Issue],
         default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            issues.append(Issue(f"{path}{key}", "is required"))
        return None if default is ... else default
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        issues.append(Issue(f"{path}{key}", f"has the wrong type ({type(value).__name__})"))
        return None if default is ... else default
    return value


def _section(d: dict[str, Any], key: str, issues: list[Issue]) -> dict[str, Any]:
    """An optional object-valued section (``objective``, ``solver``); ``{}`` when absent or malformed."""
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        issues.append(Issue(key, f"must be an object, got {type(value).__name__}"))
        return {}
    return value


def plan_from_dict(d: Any) -> Plan:
    """Read a plan-file dict back into a :class:`Plan`.

    Raises
    ------
    InvalidPlanError
        Naming every malformed field.
    """
    issues: list[Issue] = []
    if not isinstance(d, dict):
        raise InvalidPlanError(Issue("", "a plan file must hold a JSON object"))
    shards: list[Shard] = []
    for i, s in enumerate(_get(d, "shards", list, "", issues) or []):
        p = f"shards[{i}]."
        if not isinstance(s, dict):
            issues.append(Issue(p[:-1], "must be an object"))
            continue
        layers = _get(s, "layers", list, p, issues)
        sid, model, device = (_get(s, k, str, p, issues) for k in ("id", "model", "device"))
        fmt = _get(s, "weight_format", (str, type(None)), p, issues, default=None)
        if layers is not None and (len(layers) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers)):
            issues.append(Issue(f"{p}layers", "must be [start, end] integers"))
            continue
        if None in (sid, model, device, layers):
            continue
        shards.append(Shard(sid, model, device, (layers[0], layers[1]), fmt))
    routes: list[Route] = []
    for i, r in enumerate(_get(d, "routes", list, "", issues) or []):
        p = f"routes[{i}]."
        if not isinstance(r, dict):
            issues.append(Issue(p[:-1], "must be an object"))
            continue
        req = _get(r, "request", str, p, issues)
        path = _get(r, "path", list, p, issues)
        rate = _get(r, "rate_tok_s", (int, float, type(None)), p, issues, default=None)
        frac = _get(r, "fraction", (int, float, type(None)), p, issues, default=None)
        if path is not None and not all(isinstance(x, str) for x in path):
            issues.append(Issue(f"{p}path", "must list shard ids (strings)"))
            continue
        if req is None or path is None:
            continue
        routes.append(Route(req, tuple(path), None if rate is None else float(rate), None if frac is None else float(frac)))
    status = d.get("status", "feasible")
    termination = d.get("termination", "heuristic")
    try:
        status_v = Status(status)
    except ValueError:
        issues.append(Issue("status", f"must be one of {', '.join(s.value for s in Status)}, got {status!r}"))
        status_v = Status.ERROR
    try:
        term_v = Termination(termination)
    except ValueError:
        issues.append(Issue("termination", f"must be one of {', '.join(t.value for t in Termination)}, got {termination!r}"))
        term_v = Termination.ERROR
    proof = d.get("proof", "none")
    try:
        proof_v = Proof(proof)
    except ValueError:
        issues.append(Issue("proof", f"must be one of {', '.join(p.value for p in Proof)}, got {proof!r}"))
        proof_v = Proof.NONE
    obj = _section(d, "objective", issues)
    solver = _section(d, "solver", issues)
    for key in ("value", "bound", "gap"):
        _get(obj, key, (int, float, type(None)), "objective.", issues, default=None)
    _get(solver, "solve_time_s", (int, float, type(None)), "solver.", issues, default=None)
    reasons = _get(d, "reasons", list, "", issues, default=[])
    if reasons is not None and not all(isinstance(x, str) for x in reasons):
        issues.append(Issue("reasons", "must list strings"))
    predicted = d.get("predicted")
    metrics = None
    if isinstance(predicted, dict) and "requests" in predicted:
        try:
            metrics = Metrics.from_dict(predicted)
        except (TypeError, ValueError, AttributeError) as exc:
            issues.append(Issue("predicted", f"cannot be read ({exc}); remove it and `llmplace evaluate` recomputes it"))
    if issues:
        raise InvalidPlanError(issues)
    return Plan(
        shards=tuple(shards), routes=tuple(routes), status=status_v, termination=term_v, proof=proof_v,
        objective=obj.get("value"), objective_name=obj.get("name", ""), objective_unit=obj.get("unit", ""),
        bound=obj.get("bound"), gap=obj.get("gap"),
        solver=solver.get("name", ""), backend=solver.get("backend"), params=solver.get("params") or {},
        solve_time_s=float(solver.get("solve_time_s") or 0.0), stats=solver.get("stats") or {},
        predicted=metrics, reasons=tuple(reasons or ()),
    )


def load_plan(path: str | Path) -> Plan:
    """Read a plan file.

    Raises
    ------
    InvalidPlanError
        If the file cannot be read, is not JSON, or has malformed fields.
    """
    p = Path(path)
    data, _, duplicates = read_mapping_file(p, InvalidPlanError, "plan")
    if duplicates:
        raise InvalidPlanError(duplicates, str(p))
    try:
        return plan_from_dict(data)
    except InvalidPlanError as exc:
        exc.source = str(p)
        raise
