"""Property-based tests: generated valid instances solve or are explained; corrupted ones are typed errors.

- valid instances (small catalog models, random devices, links that may leave
  devices unconnected, random workloads, SLOs and constraints) parse; every
  applicable solver among greedy, dp and bruteforce returns a plan that
  ``evaluate`` confirms, or an infeasible / no_solution plan with its reasons;
  a face-value infeasibility proof never contradicts a feasible plan;
- one targeted corruption (dropped key, wrong type, negated number, NaN,
  dangling reference, duplicate id, unknown key) raises ``InvalidInstanceError``
  with an issue at the corrupted field;
- arbitrary junk anywhere in a valid dict, or arbitrary text as a file, gives a
  Problem or ``InvalidInstanceError``: never any other exception.

``LLMPLACE_FUZZ_EXAMPLES`` raises the number of examples (default: a run of a
few seconds for CI); ``LLMPLACE_FUZZ_SOLVERS`` picks the solvers.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import InvalidInstanceError, Status, evaluate, load_instance, parse_instance
from placement.feasibility import infeasibility_reasons
from solvers import SolveParams, UnsupportedProblemError, registered, solve

# The default run is short and derandomised, so CI is reproducible; asking for more examples
# also draws them at random, to search further.
EXAMPLES = int(os.environ.get("LLMPLACE_FUZZ_EXAMPLES", "0")) or 100
FAST = settings(max_examples=EXAMPLES, deadline=None, derandomize="LLMPLACE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow])

MODELS = ["tinyllama-1.1b", "qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b"]
FORMATS = ["q4_0", "q4_k_m", "q8_0", "fp16"]
DEVICES = ["snapdragon-8-gen3", "apple-m1", "rtx-3060", "jetson-orin-nano-8gb", "raspberry-pi-5-8gb", "l4"]
# Those of these that are registered are run (LLMPLACE_FUZZ_SOLVERS=a,b,c to choose others).
SOLVERS = os.environ.get("LLMPLACE_FUZZ_SOLVERS", "greedy,dp,bruteforce").split(",")
# Keep the oracle to instances it enumerates in well under a second (above: a typed refusal).
SOLVER_OPTIONS = {"bruteforce": {"max_plans": 500}}
PLAN_TIME_LIMIT_S = 2.0


@st.composite
def valid_instances(draw) -> dict[str, Any]:
    """A valid instance dict: 1-2 models, 1-4 devices, any links, 1-3 request classes."""
    model_ids = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=2, unique=True))
    models = []
    for mid in model_ids:
        m: dict[str, Any] = {"id": mid, "weight_format": draw(st.sampled_from(FORMATS))}
        if draw(st.booleans()):
            m["kv_format"] = draw(st.sampled_from(["fp16", "q8_0"]))
        models.append(m)
    n = draw(st.integers(1, 4))
    devices = []
    for i in range(n):
        d: dict[str, Any] = {"id": f"d{i}", "type": draw(st.sampled_from(DEVICES))}
        if draw(st.integers(0, 3)) == 0:
            d["memory_gb"] = draw(st.sampled_from([4, 8, 16, 32]))
            d["reserved_memory_gb"] = draw(st.sampled_from([0, 1, 2]))
        devices.append(d)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    links = []
    for a, b in chosen:
        link: dict[str, Any] = {"a": f"d{a}", "b": f"d{b}", "latency_ms": draw(st.sampled_from([0, 1, 5, 30]))}
        if draw(st.integers(0, 4)) == 0:
            link.update(channel_mhz=draw(st.sampled_from([5, 20, 80])), snr_db=draw(st.sampled_from([0, 10, 25])))
        else:
            link["bandwidth_mbps"] = draw(st.sampled_from([10, 100, 1000, 10000]))
        if draw(st.booleans()):
            link["energy_nj_per_bit"] = draw(st.sampled_from([1, 10, 100]))
        links.append(link)
    workload = []
    for j in range(draw(st.integers(1, 3))):
        req: dict[str, Any] = {
            "id": f"r{j}", "source": f"d{draw(st.integers(0, n - 1))}", "model": draw(st.sampled_from(model_ids)),
            "prompt_tokens": draw(st.integers(1, 2048)), "output_tokens": draw(st.integers(1, 512)),
        }
        if draw(st.booleans()):
            req["batch"] = draw(st.integers(1, 4))
        if draw(st.integers(0, 3)) == 0:
            req["rate_rps"] = draw(st.sampled_from([0.01, 0.5, 5.0]))
        if draw(st.integers(0, 3)) == 0:
            req["slo"] = {draw(st.sampled_from(["ttft_ms", "tpot_ms", "e2e_ms"])): draw(st.sampled_from([1, 100, 1e5]))}
        workload.append(req)
    data: dict[str, Any] = {"schema_version": 1, "name": "generated", "models": models, "devices": devices,
                            "links": links, "workload": workload,
                            "objective": draw(st.sampled_from(["latency", "ttft", "energy", "throughput",
                                                               {"latency": 1.0, "energy": 0.01}]))}
    constraints: dict[str, Any] = {}
    if draw(st.booleans()):
        constraints["memory_headroom"] = draw(st.sampled_from([0.0, 0.1, 0.5]))
    if draw(st.integers(0, 3)) == 0:
        constraints["quality_floor"] = draw(st.sampled_from([0.5, 0.95, 1.0]))
    if constraints:
        data["constraints"] = constraints
    return data


def _solvers() -> list[str]:
    names = {s.name for s in registered()}
    return [s for s in SOLVERS if s in names]


def _check_plan(problem, plan) -> None:
    """A plan holds what its status says: confirmed by evaluate, or explained."""
    if plan.status in (Status.OPTIMAL, Status.FEASIBLE):
        metrics = evaluate(problem, plan)
        assert metrics.feasible, metrics.violations
        assert plan.objective == pytest.approx(metrics.objective, rel=1e-9)
    else:
        assert plan.status in (Status.INFEASIBLE, Status.NO_SOLUTION), (plan.status, plan.reasons)
        assert plan.reasons and all(isinstance(r, str) and r for r in plan.reasons)


@FAST
@given(valid_instances())
def test_valid_instances_give_confirmed_or_explained_plans(data):
    problem = parse_instance(data)
    reasons = infeasibility_reasons(problem)
    feasible_by: list[str] = []
    proven_infeasible_by: list[str] = []
    for name in _solvers():
        for precheck in (True, False):
            try:
                plan = solve(problem, name, SolveParams(time_limit_s=PLAN_TIME_LIMIT_S, seed=0),
                             options={**SOLVER_OPTIONS.get(name, {}), "precheck": precheck})
            except UnsupportedProblemError:
                break  # a typed refusal (capability or size), named for the user
            _check_plan(problem, plan)
            if precheck and reasons:
                assert plan.status is Status.INFEASIBLE and list(plan.reasons) == reasons
            if plan.has_solution:
                feasible_by.append(name)
            elif plan.status is Status.INFEASIBLE and not precheck:
                proven_infeasible_by.append(name)
    # A proof of infeasibility (face-value or an exact solver's) never meets a feasible plan.
    assert not (feasible_by and reasons), (feasible_by, reasons)
    assert not (feasible_by and proven_infeasible_by), (feasible_by, proven_infeasible_by)


# -- corruptions with a known field path ------------------------------------------------------------

def _corrupt(data: dict[str, Any], kind: str, draw) -> str:
    """Apply one corruption of ``kind`` to ``data`` in place; return the path the error must name."""
    i = draw(st.integers(0, len(data["devices"]) - 1))
    j = draw(st.integers(0, len(data["workload"]) - 1))
    if kind == "drop":
        target = draw(st.sampled_from([("devices", i, "id"), ("workload", j, "source"),
                                       ("workload", j, "prompt_tokens"), ("models", 0, "id"), ("workload",),
                                       ("devices",), ("models",)]))
        if len(target) == 1:
            del data[target[0]]
            return target[0]
        del data[target[0]][target[1]][target[2]]
        return f"{target[0]}[{target[1]}].{target[2]}"
    if kind in ("type", "negate", "nan"):
        field = draw(st.sampled_from([("devices", i, "memory_gb"), ("workload", j, "output_tokens"),
                                      ("workload", j, "prompt_tokens"), ("workload", j, "batch")]
                                     + ([("links", 0, "latency_ms")] if data["links"] else [])))
        section, k, key = field
        entry = data[section][k]
        if kind == "type":
            entry[key] = draw(st.sampled_from(["12", [1], {"value": 1}, True, "lots"]))
        elif kind == "negate":
            entry[key] = -abs(entry.get(key) or 1) - 1
        else:
            entry[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return f"{section}[{k}].{key}"
    if kind == "dangling":
        options = [("workload", j, "source"), ("workload", j, "model")] + ([("links", 0, "b")] if data["links"] else [])
        section, k, key = draw(st.sampled_from(options))
        data[section][k][key] = "ghost"
        return f"{section}[{k}].{key}"
    if kind == "duplicate":
        section = draw(st.sampled_from(["devices", "workload", "models"]))
        entries = data[section]
        entries.append(copy.deepcopy(entries[draw(st.integers(0, len(entries) - 1))]))
        return f"{section}[{len(entries) - 1}].id"
    assert kind == "unknown"
    where = draw(st.sampled_from(["", "devices", "workload", "models"]))
    if not where:
        data["colour"] = "blue"
        return "colour"
    data[where][0]["colour"] = "blue"
    return f"{where}[0].colour"


@FAST
@given(valid_instances(), st.sampled_from(["drop", "type", "negate", "nan", "dangling", "duplicate", "unknown"]),
       st.data())
def test_corrupted_instances_raise_the_typed_error_at_the_field(data, kind, drawer):
    path = _corrupt(data, kind, drawer.draw)
    with pytest.raises(InvalidInstanceError) as err:
        parse_instance(data)
    paths = [issue.path for issue in err.value.issues]
    assert path in paths, f"{kind}: expected an issue at {path!r}, got {[str(x) for x in err.value.issues]}"
    assert all(issue.message for issue in err.value.issues)


# -- junk anywhere: a Problem or the typed error, nothing else ----------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            out.extend(_paths(value, (*prefix, k)))
    return out


def _replace(node: Any, path: tuple, value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


@FAST
@given(valid_instances(), st.data())
def test_junk_anywhere_is_a_problem_or_the_typed_error(data, drawer):
    path = drawer.draw(st.sampled_from(_paths(data)))
    _replace(data, path, drawer.draw(JUNK))
    try:
        problem = parse_instance(data)
    except InvalidInstanceError as exc:
        assert exc.issues and all(isinstance(i.path, str) and i.message for i in exc.issues)
        return
    # Junk that happens to be valid must still solve or be explained.
    try:
        plan = solve(problem, "greedy", SolveParams(time_limit_s=PLAN_TIME_LIMIT_S))
    except UnsupportedProblemError:
        return
    _check_plan(problem, plan)


@FAST
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))),
       st.sampled_from([".yaml", ".json"]))
def test_any_text_as_a_file_is_a_problem_or_the_typed_error(text, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"instance{suffix}"
        raw = text.encode("utf-8")
        path.write_bytes(raw)
        try:
            load_instance(path)
        except InvalidInstanceError as exc:
            assert exc.issues
        assert path.read_bytes() == raw


def test_generated_instances_are_not_all_trivial():
    # The strategy must reach every kind of answer, or the properties above test little.
    statuses = set()

    @settings(max_examples=40, deadline=None, database=None, derandomize=True)
    @given(valid_instances())
    def collect(data):
        plan = solve(parse_instance(data), "greedy", SolveParams(time_limit_s=PLAN_TIME_LIMIT_S))
        statuses.add(plan.status)

    collect()
    assert Status.FEASIBLE in statuses and statuses & {Status.INFEASIBLE, Status.NO_SOLUTION}


# -- numbers and ids at the edges ---------------------------------------------------------------------

def edge_numbers() -> st.SearchStrategy:
    """Numbers where arithmetic breaks: subnormals, the largest floats, NaN, infinities, huge integers."""
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
        st.floats(min_value=-1e-300, max_value=1e-300, allow_subnormal=True),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.sampled_from([0, 0.0, -0.0, 5e-324, 1e-320, 1e-9, 1e-3, 1e6, 1e9, 1e12, 1e306, 1.7976931348623157e308,
                         2**53 + 1, 10**5000, True, False]),
    )


# Fields that are divided by, multiplied into sums, or compared: every one must be refused or safe.
NUMERIC_FIELDS = [("devices", "memory_gb"), ("devices", "memory_bandwidth_gbs"), ("devices", "reserved_memory_gb"),
                  ("links", "bandwidth_mbps"), ("links", "latency_ms"), ("links", "energy_nj_per_bit"),
                  ("workload", "rate_rps"), ("workload", "prompt_tokens"), ("objective", "latency"),
                  ("objective", "energy")]


@FAST
@given(valid_instances(), st.sampled_from(NUMERIC_FIELDS), edge_numbers())
def test_a_number_at_the_edge_is_refused_at_its_field_or_solves_to_finite_figures(data, field, value):
    section, key = field
    data = copy.deepcopy(data)
    if section == "objective":
        data["objective"] = {"latency": 1.0, key: value} if key != "latency" else {"latency": value}
        where = f"objective.{key}"
    elif data.get(section):
        entry = data[section][0]
        entry.pop("channel_mhz", None), entry.pop("snr_db", None)
        entry[key] = value
        where = f"{section}[0].{key}"
    else:
        return
    try:
        problem = parse_instance(data)
    except InvalidInstanceError as exc:
        paths = [i.path for i in exc.issues]
        # At the field, or at its entry when the value breaks a relation (a reserve above the memory).
        assert where in paths or any(p.startswith(f"{section}[0]") for p in paths), (where, paths)
        return
    accepted = value
    assert not isinstance(accepted, bool) and math.isfinite(accepted) and abs(accepted) < 1e13
    assert accepted == 0 or abs(accepted) >= 1e-9, "no subnormal or vanishing value is accepted"
    plan = solve(problem, "greedy", SolveParams(time_limit_s=PLAN_TIME_LIMIT_S))
    if plan.predicted is not None:
        assert math.isfinite(plan.predicted.objective) or plan.status is not Status.FEASIBLE


_YAML_NUMBERISH = st.one_of(
    st.from_regex(r"\A[-+]?(0|[1-9][0-9]{0,6}|0[0-7]{1,4}|0x[0-9a-fA-F]{1,4}|0o[0-7]{1,4}|0b[01]{1,6})\Z"),
    st.from_regex(r"\A[-+]?[0-9]{1,3}(_[0-9]{3}){0,2}(\.[0-9_]{0,3})?([eE][-+]?[0-9]{1,3})?\Z"),
    st.from_regex(r"\A[-+]?[0-9]{1,2}(:[0-5]?[0-9]){1,2}(\.[0-9]{0,2})?\Z"),
    st.from_regex(r"\A[-+]?\.[0-9]{1,3}([eE][-+][0-9]{1,2})?\Z"),
    st.sampled_from([".inf", "-.inf", ".nan", ".NaN", "1e3", "1.0e3", "1.0e+3", "6:40", "0x27", "+39", "2024-05-01"]),
)


@FAST
@given(_YAML_NUMBERISH)
def test_yaml_reads_a_number_only_where_yaml_1_1_and_1_2_agree(text):
    """A plain scalar our reader takes as a number is that number to PyYAML (YAML 1.1) and to a decimal
    reading (YAML 1.2's core schema for decimal text); anything else is kept as the exact text."""
    import yaml

    from placement.textfiles import OversizedNumber, parse_yaml_text

    ours = parse_yaml_text(f"x: {text}\n")[0]["x"]
    if isinstance(ours, str):
        assert ours == text
        return
    assert not isinstance(ours, OversizedNumber)
    theirs = yaml.safe_load(f"x: {text}\n")["x"]
    decimal = float(text.replace(".inf", "inf").replace(".nan", "nan").replace(".NaN", "nan"))
    if math.isnan(ours):
        assert math.isnan(theirs) and math.isnan(decimal)
    else:
        assert ours == theirs == decimal and type(ours) is type(theirs)


_ID_CHARACTERS = st.characters(categories=["Lu", "Ll", "Nd", "Pd", "Po", "Zs", "Cc", "Cf", "Mn", "Lo", "So"])


@FAST
@given(st.lists(st.one_of(st.text(_ID_CHARACTERS, min_size=1, max_size=12),
                          st.from_regex(r"\A[a-z][a-z0-9_.:/+-]{0,10}\Z")), min_size=2, max_size=3))
def test_ids_that_are_accepted_print_as_themselves_and_apart(ids):
    """Every accepted id is plain printable ASCII without spaces, so two different ids never print alike;
    every refused one is reported at its own field."""
    import unicodedata

    data = {"models": [{"id": "tinyllama-1.1b", "weight_format": "q4_0"}],
            "devices": [{"id": i, "type": "l4"} for i in ids],
            "workload": [{"id": "chat", "source": ids[0], "prompt_tokens": 8, "output_tokens": 8}]}
    try:
        problem = parse_instance(data)
    except InvalidInstanceError as exc:
        assert all(i.path.startswith(("devices[", "workload[0].source")) for i in exc.issues), exc.issues
        return
    printed = [n.id for n in problem.topology.nodes]
    for text in printed:
        assert text.isascii() and text.isprintable() and " " not in text
        assert unicodedata.normalize("NFKC", text) == text
    assert len(set(printed)) == len(printed)
