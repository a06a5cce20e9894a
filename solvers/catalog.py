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
    capabilities=_BASELINE,
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
