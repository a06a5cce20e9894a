"""Plan files (JSON): what a solver decided, how, and what the cost model predicts.

Files are written by :func:`placement.safefiles.write_atomic` (regular files only,
never a file the instance reads; an interrupted run leaves the old file or the new
one). Plan files are read as JSON whatever their name, and checked: the schema
version, every number finite (the writer stores ``null`` for what is not), ids that
print as themselves, layers, rates and fractions in range, and, given the instance,
that the plan was made for it (its sha256).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from placement.errors import InstanceMismatchError, InvalidPlanError, Issue
from placement.metrics import Metrics
from placement.plan import Plan, Proof, Reason, Route, Shard, Status, Termination, Unserved
from placement.problem import Problem
from placement.safefiles import write_atomic
from placement.textfiles import OversizedNumber, kind_of, read_mapping_file
from placement.values import id_problem, text_problem

__all__ = ["plan_to_dict", "plan_from_dict", "save_plan", "load_plan", "write_atomic", "check_plan_instance",
           "PLAN_SCHEMA_VERSION"]

PLAN_SCHEMA_VERSION = 1


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
        # The metrics as they serialise, less what a plan file does not keep there (the objective is
        # objective.value; violations are not kept) and the devices the plan leaves empty.
        predicted = {k: v for k, v in plan.predicted.to_dict().items() if k not in ("objective", "violations")}
        predicted["devices"] = {k: v for k, v in predicted["devices"].items() if v["shards"]}
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
        "routes": [_route_dict(r) for r in plan.routes],
        "predicted": predicted,
        "reasons": list(plan.reasons),
    }
    if plan.unserved:  # written only when there is any, so that plain plans read as they always have
        out["unserved"] = [{"request": u.request, "share": u.share, "reason": u.reason.value, "detail": u.detail}
                           for u in plan.unserved]
    return _finite(out)


def _route_dict(r: Route) -> dict[str, Any]:
    out: dict[str, Any] = {"request": r.request, "path": list(r.path), "rate_tok_s": r.rate_tok_s,
                           "fraction": r.fraction}
    if r.escalate_to is not None:
        out["escalate_to"] = list(r.escalate_to)
    return out


def _unserved_from(d: dict[str, Any], issues: list[Issue]) -> list[Unserved]:
    out = []
    for i, u in enumerate(_get(d, "unserved", list, "", issues, default=[]) or []):
        p = f"unserved[{i}]."
        if not isinstance(u, dict):
            issues.append(Issue(p[:-1], "must be an object"))
            continue
        req = _get(u, "request", str, p, issues)
        share = _get(u, "share", (int, float), p, issues)
        reason = _get(u, "reason", str, p, issues)
        detail = _get(u, "detail", str, p, issues, default="")
        try:
            why = Reason(reason) if reason is not None else None
        except ValueError:
            issues.append(Issue(f"{p}reason", f"must be one of {', '.join(r.value for r in Reason)}, got {reason!r}"))
            continue
        if None not in (req, share, why):
            out.append(Unserved(req, float(share), why, detail or ""))  # type: ignore[arg-type]
    return out


def plan_to_json(plan: Plan, problem: Problem | None = None) -> str:
    return json.dumps(plan_to_dict(plan, problem), indent=2) + "\n"


def save_plan(path: str | Path, plan: Plan, problem: Problem | None = None) -> None:
    """Write ``plan`` as JSON to ``path`` atomically; never over a file ``problem`` was read from.

    Raises
    ------
    placement.safefiles.UnsafeFileError
        If ``path`` is not a regular file or a new name, or is one of ``problem.input_files``.
    OSError
        If the folder cannot be written (the old file is then left as it was).
    """
    write_atomic(path, plan_to_json(plan, problem), protected=problem.input_files if problem else ())


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


def _unreadable_values(data: Any) -> list[Issue]:
    """Every number that is not finite and every text that would not print as one line, with its path.

    The plan writer stores ``null`` for what is not finite, so a NaN or infinity was
    put there by hand; a line break or terminal escape in a text would reach the
    terminal when the plan is printed. Walked without recursion: JSON may nest deeply.
    """
    issues: list[Issue] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, OversizedNumber) or isinstance(value, float) and not math.isfinite(value):
            issues.append(Issue(path, f"must be a finite number, got {kind_of(value) if isinstance(value, OversizedNumber) else value}"))
        elif isinstance(value, str) and text_problem(value):
            issues.append(Issue(path, text_problem(value)))  # type: ignore[arg-type]
        elif isinstance(value, dict):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if text_problem(str(key)):
                    issues.append(Issue(path, f"has a key that {text_problem(str(key))}"))
                    continue
                stack.append((here, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return sorted(issues, key=lambda issue: issue.path)


def _schema_version(d: dict[str, Any]) -> list[Issue]:
    if "schema_version" not in d:
        return [Issue("schema_version", f"is required (the integer {PLAN_SCHEMA_VERSION}, which every plan file "
                                        "llmplace writes holds)")]
    version = d["schema_version"]
    if type(version) is not int or version != PLAN_SCHEMA_VERSION:
        return [Issue("schema_version", f"must be the integer {PLAN_SCHEMA_VERSION} (the plan-file version this "
                                        f"llmplace reads), got {kind_of(version)}")]
    return []


def _id(d: dict[str, Any], key: str, path: str, issues: list[Issue]) -> str | None:
    """``d[key]``, an id, required."""
    if key not in d:
        issues.append(Issue(f"{path}.{key}", "is required"))
        return None
    return _id_value(d[key], f"{path}.{key}", issues)


def _id_value(value: Any, path: str, issues: list[Issue]) -> str | None:
    if not isinstance(value, str):
        issues.append(Issue(path, f"must be an id (a string), got {kind_of(value)}"))
        return None
    problem = id_problem(value)
    if problem:
        issues.append(Issue(path, f"{problem}; got {value!r}"))
        return None
    return value


def _shard(s: Any, p: str, issues: list[Issue]) -> Shard | None:
    if not isinstance(s, dict):
        issues.append(Issue(p, f"must be an object with id, model, device and layers, got {kind_of(s)}"))
        return None
    n_issues = len(issues)
    sid, model, device = (_id(s, key, p, issues) for key in ("id", "model", "device"))
    fmt = s.get("weight_format")
    if fmt is not None:
        fmt = _id_value(fmt, f"{p}.weight_format", issues)
    layers = s.get("layers")
    if not (isinstance(layers, list) and len(layers) == 2
            and all(type(x) is int and 0 <= x <= 1_000_000 for x in layers) and layers[0] < layers[1]):
        issues.append(Issue(f"{p}.layers", f"must be [start, end] integers with 0 <= start < end, got "
                                           f"{kind_of(layers) if not isinstance(layers, list) else layers}"))
    if len(issues) > n_issues:
        return None
    return Shard(sid, model, device, (layers[0], layers[1]), fmt)  # type: ignore[arg-type, index]


def _route(r: Any, p: str, issues: list[Issue]) -> Route | None:
    if not isinstance(r, dict):
        issues.append(Issue(p, f"must be an object with request and path, got {kind_of(r)}"))
        return None
    n_issues = len(issues)
    req = _id(r, "request", p, issues)
    path = r.get("path")
    if not isinstance(path, list):
        issues.append(Issue(f"{p}.path", f"must list shard ids, got {kind_of(path)}"))
        path = []
    ids = [_id_value(x, f"{p}.path[{j}]", issues) for j, x in enumerate(path)]
    rate = r.get("rate_tok_s")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate >= 0):
        issues.append(Issue(f"{p}.rate_tok_s", f"must be a number >= 0 or null, got {kind_of(rate)}"))
    frac = r.get("fraction")
    if frac is not None and (isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1):
        issues.append(Issue(f"{p}.fraction", f"must be a number in (0, 1] or null, got {kind_of(frac)}"))
    escalate = r.get("escalate_to")
    if escalate is not None and not (isinstance(escalate, list) and escalate):
        issues.append(Issue(f"{p}.escalate_to", f"must list shard ids, got {kind_of(escalate)}"))
        escalate = None
    escalated = [_id_value(x, f"{p}.escalate_to[{j}]", issues) for j, x in enumerate(escalate or [])]
    if len(issues) > n_issues:
        return None
    return Route(req, tuple(ids), None if rate is None else float(rate),  # type: ignore[arg-type]
                 None if frac is None else float(frac), tuple(escalated) if escalate is not None else None)


def plan_from_dict(d: Any) -> Plan:
    """Read a plan-file dict back into a :class:`Plan`.

    Raises
    ------
    InvalidPlanError
        Naming every malformed field.
    """
    if not isinstance(d, dict):
        raise InvalidPlanError(Issue("", "a plan file must hold a JSON object"))
    issues = [*_schema_version(d), *_unreadable_values(d)]
    shards = [_shard(s, f"shards[{i}]", issues) for i, s in enumerate(_get(d, "shards", list, "", issues) or [])]
    routes = [_route(r, f"routes[{i}]", issues) for i, r in enumerate(_get(d, "routes", list, "", issues) or [])]
    instance = _section(d, "instance", issues)
    for key in ("name", "sha256"):
        _get(instance, key, str, "instance.", issues, default=None)
    status = d.get("status", "feasible")
    termination = d.get("termination", "heuristic")
    try:
        status_v = Status(status)
    except (ValueError, TypeError):
        issues.append(Issue("status", f"must be one of {', '.join(s.value for s in Status)}, got {kind_of(status)}"))
        status_v = Status.ERROR
    try:
        term_v = Termination(termination)
    except (ValueError, TypeError):
        issues.append(Issue("termination", f"must be one of {', '.join(t.value for t in Termination)}, "
                                           f"got {kind_of(termination)}"))
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
    for key in ("name", "unit"):
        _get(obj, key, str, "objective.", issues, default="")
    _get(solver, "name", str, "solver.", issues, default="")
    _get(solver, "backend", (str, type(None)), "solver.", issues, default=None)
    for key in ("params", "stats"):
        _get(solver, key, (dict, type(None)), "solver.", issues, default=None)
    time_s = _get(solver, "solve_time_s", (int, float, type(None)), "solver.", issues, default=None)
    if time_s is not None and time_s < 0:
        issues.append(Issue("solver.solve_time_s", f"must be >= 0, got {time_s}"))
    reasons = _get(d, "reasons", list, "", issues, default=[])
    unserved = _unserved_from(d, issues)
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
        # A NaN rate is both not finite and out of range: say it once, at its field.
        raise InvalidPlanError(list({issue.path: issue for issue in reversed(issues)}.values())[::-1])
    return Plan(
        shards=tuple(shards), routes=tuple(routes), status=status_v, termination=term_v, proof=proof_v,  # type: ignore[arg-type]
        objective=obj.get("value"), objective_name=obj.get("name", ""), objective_unit=obj.get("unit", ""),
        bound=obj.get("bound"), gap=obj.get("gap"),
        solver=solver.get("name", ""), backend=solver.get("backend"), params=solver.get("params") or {},
        solve_time_s=float(solver.get("solve_time_s") or 0.0), stats=solver.get("stats") or {},
        predicted=metrics, reasons=tuple(reasons or ()), unserved=tuple(unserved),
    )


def check_plan_instance(data: dict[str, Any], problem: Problem) -> Issue | None:
    """Why a plan-file dict was not made for ``problem`` (its instance sha256 differs), or ``None``.

    A plan that records no sha256 (written by hand, or for an instance given as a
    dict) is not checked.

    Examples
    --------
    >>> from placement import parse_instance
    >>> problem = parse_instance({"models": [{"id": "tinyllama-1.1b"}], "devices": [{"id": "d", "type": "l4"}],
    ...                           "workload": [{"source": "d", "prompt_tokens": 8, "output_tokens": 8}]})
    >>> check_plan_instance({"instance": {"sha256": problem.sha256}}, problem) is None
    True
    >>> print(check_plan_instance({"instance": {"sha256": "ab" * 32}}, problem))  # doctest: +ELLIPSIS
    instance.sha256: the plan was made for an instance with sha256 abab...; the instance given has sha256 ...
    """
    saved = (data.get("instance") or {}).get("sha256") if isinstance(data.get("instance"), dict) else None
    if not saved or saved == problem.sha256:
        return None
    return Issue("instance.sha256", f"the plan was made for an instance with sha256 {saved}; the instance given "
                                    f"has sha256 {problem.sha256} (solve it again, or evaluate the plan anyway with "
                                    "llmplace evaluate --ignore-instance-mismatch)")


def load_plan(path: str | Path, problem: Problem | None = None, *, ignore_instance_mismatch: bool = False) -> Plan:
    """Read a plan file (JSON, whatever its name), and check it was made for ``problem`` when given.

    Raises
    ------
    InvalidPlanError
        If the file cannot be read (missing, not a regular file, over 16 MiB), is not
        JSON, or has malformed fields, each named.
    InstanceMismatchError
        If ``problem`` is given, the plan records an instance sha256 and it is not
        ``problem.sha256`` (unless ``ignore_instance_mismatch``).
    """
    p = Path(path)
    data, _, duplicates = read_mapping_file(path, InvalidPlanError, "plan", json_only=True)
    if duplicates:
        raise InvalidPlanError(duplicates, str(p))
    try:
        plan = plan_from_dict(data)
    except InvalidPlanError as exc:
        exc.source = str(p)
        raise
    mismatch = check_plan_instance(data, problem) if problem is not None and not ignore_instance_mismatch else None
    if mismatch:
        raise InstanceMismatchError(mismatch, str(p))
    return plan
