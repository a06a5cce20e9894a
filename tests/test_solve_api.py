"""solve(): what a pipeline solver's 'infeasible' may claim, refusals, options."""

from __future__ import annotations

import pytest

from conftest import tiny_instance
from placement import Status, parse_instance
from solvers import InvalidOptionError, SolveParams, UnsupportedProblemError, applicable_solvers, solve


def _tight(**workload):
    # tinyllama in fp16 (2.2 GB) fits neither in the phone's usable memory nor in the 3060 capped at 1.5 GB.
    data = tiny_instance(models=[{"id": "tinyllama-1.1b", "weight_format": "fp16"}])
    data["devices"][1]["memory_gb"] = 1.5
    data["devices"][0]["memory_gb"] = 7.0
    data["workload"] = [{"id": "chat", "source": "phone", "prompt_tokens": 64, "output_tokens": 16, **workload}]
    return data


@pytest.mark.parametrize("solver", ["dp", "bruteforce"])
def test_no_feasible_pipeline_with_one_class_proves_infeasibility(solver):
    plan = solve(parse_instance(_tight()), solver, options={"precheck": False})
    assert plan.status is Status.INFEASIBLE and plan.reasons


@pytest.mark.parametrize("solver", ["dp", "bruteforce"])
def test_with_request_rates_no_feasible_pipeline_proves_nothing(solver):
    # With rates, replicas could share the load, so a pipeline search cannot prove infeasibility.
    plan = solve(parse_instance(_tight(rate_rps=0.01)), solver, options={"precheck": False})
    assert plan.status is Status.NO_SOLUTION and plan.termination.value == "converged"
    assert "replicate" in plan.reasons[0] and len(plan.reasons) > 1


def test_precondition_refusals_name_the_solvers_that_can():
    data = tiny_instance(models=[{"id": "tinyllama-1.1b", "weight_format": "q4_0"},
                                 {"id": "qwen2.5-0.5b", "weight_format": "q8_0"}],
                         workload=[{"id": "a", "source": "phone", "model": "tinyllama-1.1b", "prompt_tokens": 8,
                                    "output_tokens": 8},
                                   {"id": "b", "source": "edge", "model": "qwen2.5-0.5b", "prompt_tokens": 8,
                                    "output_tokens": 8}])
    problem = parse_instance(data)
    assert "dp" not in {s.name for s in applicable_solvers(problem)}
    with pytest.raises(UnsupportedProblemError, match="solvers that do: .*ilp"):
        solve(problem, "dp")


def test_unknown_option_is_refused():
    with pytest.raises(InvalidOptionError, match="no option"):
        solve(parse_instance(tiny_instance()), "greedy", options={"speed": "fast"})


def test_solve_never_mutates_the_problem():
    problem = parse_instance(tiny_instance())
    before = (problem.models, problem.topology.nodes, problem.topology.links, problem.workload, problem.objective)
    solve(problem, "dp", SolveParams(time_limit_s=5))
    assert (problem.models, problem.topology.nodes, problem.topology.links, problem.workload,
            problem.objective) == before


def test_a_proof_for_any_plan_stays_infeasible_with_rates():
    # Matching explains its failure with the face-value checks; their memory bound holds for
    # replicated plans too, so solve() keeps "infeasible" even though the instance has rates.
    plan = solve(parse_instance(_tight(rate_rps=0.01)), "matching", options={"precheck": False})
    assert plan.status is Status.INFEASIBLE and plan.reasons[0].startswith("memory:")


@pytest.mark.parametrize("instance, picked, space", [
    ("helix/quality10.yaml", "maxflow", "ranges"),
    ("portfolio.yaml", "ilp", "cache"),
    ("device-edge-cloud.yaml", "dp", "pipeline"),
])
def test_a_plan_names_the_space_it_was_searched_in(instance, picked, space):
    """auto's proof is its pick's, over the pick's plan space (ilp on a caching instance searches caches)."""
    from conftest import INSTANCES
    from placement import load_instance

    plan = solve(load_instance(INSTANCES / instance), "auto", SolveParams(time_limit_s=30))
    assert plan.stats["picked"] == picked and plan.stats["plan_space"] == space


@pytest.mark.parametrize("solver", ["ilp", "cache-ilp"])
def test_without_pulp_only_cbc_is_unavailable(solver, monkeypatch):
    """PuLP runs only the cbc backend: without it the solver stays available and cbc is refused by name."""
    import importlib.util

    from conftest import INSTANCES
    from placement import load_instance
    from solvers import SolverUnavailableError
    from solvers.registry import solver_info

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pulp" else real(name, *a))
    assert solver_info(solver).available()
    with pytest.raises(SolverUnavailableError, match=r"backend 'cbc' needs pulp"):
        solve(load_instance(INSTANCES / "portfolio.yaml"), solver, options={"backend": "cbc"})
