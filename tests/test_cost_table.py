"""The cost table: one read-only source of every number, and no solver computing costs of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from conftest import INSTANCES, ROOT
from placement import block_costs, cost_table, evaluate, load_instance
from solvers import solve

# Inputs only the cost model may turn into seconds, bytes, joules, loads or throughput.
RAW_INPUTS = {
    "rate_rps", "batch", "output_tokens", "prompt_tokens", "profile_for", "throughput_at", "usable_memory_gb",
    "memory_gb", "reserved_memory_gb", "bandwidth_mbps", "bytes_per_s", "latency_ms", "power_active_w", "power_idle_w",
    "execution_rates", "node_times", "kv_bytes_per_block_token", "hidden_size", "TOKEN_ID_BYTES", "ACTIVATION_BYTES",
    "GIB", "bits_per_weight", "bytes_per_value", "linear_flops_per_token", "streamed_params", "memory_bandwidth_gbs",
    "peak_tflops", "weight_bytes", "kv_bytes", "workspace_bytes", "head_workspace_bytes", "tied_head_bytes",
    "max_layers", "nic_mbps", "rate_mbps", "energy_nj_per_bit",
}


def _raw_uses(path: Path) -> list[str]:
    """Names and attributes from RAW_INPUTS read in code (text in strings and f-strings is not code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_text: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            in_text.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name in RAW_INPUTS and id(node) not in in_text:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_no_solver_computes_a_cost_of_its_own():
    offenders = [hit for path in sorted((ROOT / "solvers").rglob("*.py")) for hit in _raw_uses(path)]
    assert not offenders, "solvers read raw cost inputs; ask the cost table instead:\n" + "\n".join(offenders)


def test_the_scan_would_see_a_formula():
    sample = ROOT / "tests" / "_scan_sample.py"
    sample.write_text("def load(r, busy):\n    return r.rate_rps * busy / r.batch\n", encoding="utf-8")
    try:
        assert len(_raw_uses(sample)) == 2
    finally:
        sample.unlink()


def _arrays(part):
    if isinstance(part, np.ndarray):
        yield part
    elif hasattr(part, "__dataclass_fields__"):
        for f in part.__dataclass_fields__:
            value = getattr(part, f)
            if isinstance(value, np.ndarray):
                yield value


def test_every_table_array_is_read_only():
    problem = load_instance(INSTANCES / "hybrid.yaml")
    plan = solve(problem, "ilp")
    evaluate(problem, plan)
    table = cost_table(problem)
    arrays = [a for part in table._parts.values() for a in _arrays(part)]
    arrays += [table.capacity_bytes, problem.topology.transfer_time_s(1000.0), problem.topology.resource_bytes_per_s]
    assert len(arrays) > 40
    for a in arrays:
        with pytest.raises(ValueError, match="read-only"):
            a.reshape(-1)[0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        block_costs(problem, "quick").prefill_s[:] *= 2


def test_evaluate_reads_the_same_table_as_the_solvers():
    problem = load_instance(INSTANCES / "hybrid.yaml")
    plan = solve(problem, "ilp")
    before = evaluate(problem, plan).objective
    assert cost_table(problem) is cost_table(problem)
    assert evaluate(problem, plan).objective == before == plan.objective
