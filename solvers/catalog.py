"""The registered solvers. Adding a solver = one ``register`` call here."""

from __future__ import annotations

from solvers.registry import Capabilities, SolverInfo, register

_BASELINE = Capabilities()

register(SolverInfo(
    name="greedy", family="baselines", exact=False, entry="solvers.baselines:solve_greedy",
    summary="blocks proportional to usable memory, largest memory first (exo's rule)",
    capabilities=_BASELINE,
))
register(SolverInfo(
    name="uniform", family="baselines", exact=False, entry="solvers.baselines:solve_uniform",
    summary="equal number of blocks on every reachable device",
    capabilities=_BASELINE,
))
register(SolverInfo(
    name="source", family="baselines", exact=False, entry="solvers.baselines:solve_source",
    summary="whole model on each request's source device (all-on-device)",
    capabilities=_BASELINE, plan_space="replicated",
))
register(SolverInfo(
    name="cloud", family="baselines", exact=False, entry="solvers.baselines:solve_cloud",
    summary="whole model on the largest reachable cloud-tier device",
    capabilities=_BASELINE,
))
register(SolverInfo(
    name="random", family="baselines", exact=False, entry="solvers.baselines:solve_random",
    summary="random contiguous split over a random subset and order of devices (seeded)",
    capabilities=_BASELINE,
))
register(SolverInfo(
    name="matching", family="matching", exact=False, entry="solvers.matching:solve_matching",
    summary="matching game: blocks propose to devices (deferred acceptance with memory quotas and transfer "
            "externalities), then swaps until swap-stable",
    capabilities=Capabilities(),
    options={
        "restarts": "deferred-acceptance starts (the first with exact preferences, the others seeded "
                    "perturbations); the best swap-stable matching is kept (default 8)",
        "max_swaps": "most swaps per start before stopping with the improving swaps left (default 10000)",
    },
))
register(SolverInfo(
    name="bruteforce", family="bruteforce", exact=True, entry="solvers.bruteforce:solve_bruteforce",
    summary="every contiguous pipeline (device sequence x cut points x formats) judged by evaluate; "
            "the test oracle for tiny instances",
    capabilities=Capabilities(format_choice=True, max_devices=8, max_blocks=64),
    options={"max_plans": "refuse instances with more candidate plans than this (default 200000)"},
))
register(SolverInfo(
    name="dp", family="dp", exact=True, entry="solvers.dp:solve_dp", precondition="solvers.dp:dp_unsupported",
    summary="dynamic programming over contiguous pipelines of one model: device order given, or every "
            "subset and order (exact up to max_exact_devices); SLOs by branch and bound",
    capabilities=Capabilities(multi_model=False),
    options={"max_exact_devices": "above this many devices (and no constraints.device_order), search a few "
                                  "device orders only: a heuristic answer (default 10)"},
))
register(SolverInfo(
    name="ilp", family="ilp", exact=True, entry="solvers.ilp:solve_ilp", precondition="solvers.ilp:ilp_unsupported",
    summary="one mixed-integer program over shards (device, block range, format): memory, SLOs, load, "
            "quality floor, transfers on the chosen path; proven bound and gap",
    capabilities=Capabilities(format_choice=True),
    requires=("scipy", "pulp", "ortools"),
    backends=("highs", "cbc", "cpsat", "scip"),
    options={"backend": "highs (scipy.optimize.milp, default), cbc (PuLP), cpsat (OR-Tools CP-SAT; not for "
                        "throughput over several classes without rate_rps) or scip (OR-Tools)"},
))
