"""The registered solvers. Adding a solver = one ``register`` call here."""

from __future__ import annotations

import dataclasses

from solvers.options import Option
from solvers.registry import (
    CACHE, CACHING_OBJECTIVES, RANGES, REPLICATED, ROUTING, WITH_GOODPUT, Capabilities, SolverInfo, register,
)

_BASELINE = Capabilities(objectives=WITH_GOODPUT, queueing=True)

register(SolverInfo(
    name="auto", family="auto", exact=True, entry="solvers.auto:solve_auto",
    summary="picks the exact solver that handles the instance (maxflow for the throughput of one model, dp for "
            "one model on devices it can search exactly, else ilp) and says which it picked; matching when no "
            "exact solver takes it",
    capabilities=Capabilities(objectives=WITH_GOODPUT, format_choice=True, portfolio=True, queueing=True),
    precondition="solvers.caching:auto_unsupported",
))
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
    capabilities=_BASELINE, plan_space=REPLICATED,
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
    precondition="solvers.matching:matching_unsupported",
    summary="matching game: blocks propose to devices (deferred acceptance with memory quotas and transfer "
            "externalities), then swaps until swap-stable",
    capabilities=Capabilities(queueing=True),
    options=(
        Option("restarts", int, 8, "deferred-acceptance starts (the first with exact preferences, the others "
                                   "seeded perturbations); the best swap-stable matching is kept", minimum=1,
               maximum=10_000),
        Option("max_swaps", int, 10_000, "most swaps per start before stopping with the improving swaps left",
               minimum=0),
    ),
))
register(SolverInfo(
    name="bruteforce", family="bruteforce", exact=True, entry="solvers.bruteforce:solve_bruteforce",
    summary="every contiguous pipeline (device sequence x cut points x formats) judged by evaluate; "
            "the test oracle for tiny instances",
    capabilities=Capabilities(objectives=WITH_GOODPUT, format_choice=True, queueing=True, max_devices=8, max_blocks=64),
    options=(Option("max_plans", int, 200_000, "refuse instances with more candidate plans than this",
                    minimum=1, maximum=100_000_000),),
))
register(SolverInfo(
    name="dp", family="dp", exact=True, entry="solvers.dp:solve_dp", precondition="solvers.dp:dp_unsupported",
    summary="dynamic programming over contiguous pipelines of one model: device order given, or every "
            "subset and order (exact up to max_exact_devices); SLOs by branch and bound",
    capabilities=Capabilities(multi_model=False),
    options=(Option("max_exact_devices", int, 10, "above this many devices (and no constraints.device_order), "
                                                  "count interchangeable devices (types mode) or, without them, "
                                                  "search a few device orders only: a heuristic answer",
                    minimum=1, maximum=12),
             Option("max_count_vectors", int, 2**20, "types mode: most count vectors (product of class sizes + 1) "
                                                     "it searches; above, a few device orders only",
                    minimum=1, maximum=2**40),),
))
register(SolverInfo(
    name="ilp", family="ilp", exact=True, entry="solvers.ilp:solve_ilp", precondition="solvers.ilp:ilp_unsupported",
    summary="one mixed-integer program over shards (device, block range, format): memory, SLOs, load, "
            "quality floor, transfers on the chosen path; proven bound and gap. On a model-caching instance, "
            "the joint caching and routing program of cache-ilp (backends highs, cbc, scip)",
    capabilities=Capabilities(format_choice=True, portfolio=True),
    requires=("scipy", "ortools"), backend_requires=(("cbc", ("pulp",)),),
    backends=("highs", "cbc", "cpsat", "scip"),
    options=(Option("backend", str, "highs", "highs (scipy.optimize.milp), cbc (PuLP), cpsat (OR-Tools CP-SAT; not "
                                             "for throughput over several classes without rate_rps) or scip "
                                             "(OR-Tools)", choices=("highs", "cbc", "cpsat", "scip")),
             Option("warm_start", str, "auto", "plans to start from and to beat: auto (every registered provider "
                                               "that takes the instance: dp), none, or provider names"),),
))

_CACHING = Capabilities(objectives=CACHING_OBJECTIVES, format_choice=True, portfolio=True)
register(SolverInfo(
    name="cache-ilp", family="caching", exact=True, entry="solvers.caching.ilp:solve_cache_ilp",
    precondition="solvers.caching:caching_unsupported", plan_space=CACHE,
    summary="joint model caching and request routing as one mixed-integer program: which whole-model instances "
            "stay where, which share of each class (and cascade) goes where, the rest unserved with its reason; "
            "memory, utilisation limit, SLOs and quality floors; proven bound and gap",
    capabilities=_CACHING, requires=("scipy", "ortools"), backend_requires=(("cbc", ("pulp",)),),
    backends=("highs", "cbc", "scip"),
    options=(Option("backend", str, "highs", "highs (scipy.optimize.milp), cbc (PuLP) or scip (OR-Tools)",
                    choices=("highs", "cbc", "scip")),),
))
register(SolverInfo(
    name="cache-greedy", family="caching", exact=False, entry="solvers.caching.greedy:solve_cache_greedy",
    precondition="solvers.caching:caching_unsupported", plan_space=CACHE,
    summary="greedy additions of whole-model instances on marginal gain, priced and routed by the routing "
            "program, then swap and drop moves; for large portfolios",
    capabilities=_CACHING,
    options=(Option("local_moves", bool, True, "swap and drop instances once additions stop gaining"),
             Option("exact_routing", bool, True, "price and route every step by the routing program (else "
                                                 "the water-filling greedy alone)")),
))
register(SolverInfo(
    name="route", family="caching", exact=True, entry="solvers.caching.route:solve_route",
    precondition="solvers.caching:route_unsupported", plan_space=ROUTING,
    summary="routing for the given cache (the instance's cache: section): the shares of each class over its "
            "resident instances, an LP (a small MILP when KV reservations compete for memory)",
    capabilities=_CACHING, requires=("scipy",),
))
register(SolverInfo(
    name="cache-bruteforce", family="caching", exact=True, entry="solvers.caching.bruteforce:solve_cache_bruteforce",
    precondition="solvers.caching:bruteforce_unsupported", plan_space=CACHE,
    summary="every cache of whole-model instances and every maximal set of KV reservations, each routed by an "
            "LP; the caching solvers' test oracle for tiny portfolios",
    capabilities=dataclasses.replace(_CACHING, max_devices=8), requires=("scipy",),
    options=(Option("max_caches", int, 20_000, "refuse instances with more candidate caches than this",
                    minimum=1, maximum=100_000_000),),
))
register(SolverInfo(
    name="maxflow", family="maxflow", exact=True, entry="solvers.maxflow:solve_maxflow",
    precondition="solvers.maxflow:maxflow_unsupported",
    summary="throughput serving with replicated shards (the Helix class): each device one range or none, routed "
            "by max-flow; stage layouts and local search, then a MILP warm-started by a cutoff; fluid, cover and "
            "MILP bounds",
    capabilities=Capabilities(objectives=frozenset({"throughput"}), multi_model=False),
    # scipy (HiGHS, the routing LPs) and OR-Tools (the routing max-flow) serve every run; PuLP only cbc.
    requires=("scipy", "ortools"), backend_requires=(("cbc", ("pulp",)),),
    plan_space=RANGES,
    options=(
        Option("backend", str, "highs", "MILP backend for the route, line and cover programs: highs "
                                        "(scipy.optimize.milp), cbc (PuLP) or scip (OR-Tools); not cpsat, which takes "
                                        "no rows of several continuous flows", choices=("highs", "cbc", "scip")),
        Option("milp", str, "auto", "the exact program after the search: route (every candidate route listed; "
                                    "skipped beyond max_routes routes), line (arcs on block boundaries), off, or "
                                    "auto: route on at most 12 devices (line when the routes are more than "
                                    "max_routes), else line when it has at most 4,000 range variables (one per "
                                    "range that fits a group of interchangeable devices), else none (the search "
                                    "takes the whole time limit)", choices=("auto", "route", "line", "off")),
        Option("max_routes", int, 20_000, "the route MILP's largest number of candidate routes", minimum=1,
               maximum=1_000_000),
        Option("search_share", float, 0.5, "share of the time limit the combinatorial search may take before "
                                           "the MILP", minimum=0.01, maximum=1.0),
        Option("starts", int, 3, "stage layouts the local search starts from", minimum=1, maximum=100),
        Option("kicks", int, 300, "random kicks in a row without improvement after which the iterated local "
                                  "search stops (before the time limit); none where every route can be listed and "
                                  "the route MILP follows", minimum=0, maximum=1_000_000),
    ),
))
