"""Benchmark suites: which instance families, seeds and solvers a run covers, under which time limit.

=============  =================================================================================
``smoke``      a few instances of every kind, every registered solver, 5 s per solve: under two
               minutes on two cores (a check that everything runs, not a measurement)
``standard``   the committed report (``benchmarks/results/standard/``): zoo seeds 0-1, chains of
               32-160 blocks over 4-64 devices, the edge architectures (files and seeds 0-1), the
               solver-speed instances (60 s), stress seeds 0-1, the helix (5 s) and portfolio
               families, and a latency-energy sweep (the exact dp and ilp/highs and the
               heuristics); 10 s per solve otherwise
``large``      more seeds of everything and 60 s per solve, for sweeps on a cluster
``speed``      the solver-speed benchmark: dp and every ilp backend on its three instances, 120 s
``matching``   the matching-quality benchmark: matching against the brute-force optimum on zoo
               seeds 0-4, and against dp on eight stress instances, 60 s
=============  =================================================================================

A part of a suite with no solvers of its own runs every registered solver (each
backend of those that have several); a solver that cannot take an instance gets
an ``unsupported`` row, so every solver is accounted for on every instance.

Examples
--------
>>> [s.name for s in SUITES.values()]
['smoke', 'standard', 'large', 'speed', 'matching']
>>> suite("smoke").parts[0].family
'tiny'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Part", "Suite", "SUITES", "suite"]

Entry = tuple[str, "str | None"]


@dataclass(frozen=True)
class Part:
    """Instances of one family (``names``: only these; ``None``: all) for each of ``seeds``, solved by
    ``solvers`` (``None``: every registered one) under each of ``solver_seeds``."""

    family: str
    seeds: tuple[int, ...] = (0,)
    time_limit_s: float = 10.0
    names: tuple[str, ...] | None = None
    solvers: tuple[Entry, ...] | None = None
    solver_seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    parts: tuple[Part, ...]


_ZOO_SMOKE = ("latency-2dev-4blk-chain-ample", "throughput-3dev-6blk-mesh-ample", "format-choice-latency-3dev-4blk",
              "two-models-latency-3dev-4blk", "infeasible-slo-below-fastest")
_PORTFOLIO_SMOKE = ("portfolio-5mod-20dev-10cls-seed0", "portfolio-10mod-20dev-10cls-seed0-replan")
_ILP = tuple(("ilp", b) for b in ("highs", "cbc", "cpsat", "scip"))
# The latency-energy sweep needs the plans, not every backend's time: the exact dp and ilp/highs, and each heuristic.
_PARETO = (("auto", None), ("dp", None), ("ilp", "highs"), ("greedy", None), ("uniform", None), ("source", None),
           ("cloud", None), ("random", None), ("matching", None))

SUITES = {s.name: s for s in (
    Suite("smoke", "a few instances of every kind, every registered solver, 5 s per solve (under 2 minutes on "
                   "2 cores)", (
        Part("tiny", (0,), 5.0, names=_ZOO_SMOKE),
        Part("chains", (0,), 5.0, names=("chain-32blk-4dev",)),
        Part("architectures", (0,), 5.0),
        # The caching solvers: the smallest portfolio and the re-planning one (route needs a current cache), and a
        # tiny portfolio with a cache the caching oracle can enumerate (cache-bruteforce refuses 20 devices).
        Part("portfolio", (0,), 5.0, names=_PORTFOLIO_SMOKE),
        Part("caching-tiny", (0,), 5.0, names=("cache-weighted-pe-3mod-2cls-cache-churn",)),
    )),
    Suite("standard", "the committed report: zoo, chains 32-160 blocks x 4-64 devices, edge architectures, "
                      "solver speed, stress, helix, portfolio, a latency-energy sweep", (
        Part("tiny", (0, 1), 10.0),
        Part("chains", (0,), 10.0),
        Part("architectures", (0,), 10.0),
        Part("edge", (0, 1), 10.0),
        Part("speed", (7,), 60.0, solvers=(("dp", None), *_ILP)),
        Part("stress", (0, 1), 10.0),
        Part("helix", (0,), 5.0),
        Part("portfolio", (0,), 10.0),
        Part("pareto", (0,), 10.0, solvers=_PARETO),
    )),
    Suite("large", "more seeds of every family and 60 s per solve, for sweeps on a cluster", (
        Part("tiny", (0, 1, 2, 3, 4), 60.0),
        Part("chains", (0, 1, 2, 3, 4), 60.0),
        Part("architectures", (0,), 60.0),
        Part("edge", (0, 1, 2, 3, 4), 60.0),
        Part("speed", (7,), 120.0, solvers=(("dp", None), *_ILP)),
        Part("stress", tuple(range(8)), 60.0),
        Part("helix", (0, 1, 2), 60.0),
        Part("portfolio", (0, 1, 2), 60.0),
        Part("pareto", (0, 1, 2), 60.0, solvers=_PARETO),
    )),
    Suite("speed", "the solver-speed benchmark: dp and every ilp backend on 80 x 8 ordered, 32 x 8 free and "
                   "32 x 8 with a format choice (links of seed 7), 120 s", (
        Part("speed", (7,), 120.0, solvers=(("dp", None), *_ILP)),
    )),
    Suite("matching", "the matching-quality benchmark: matching against the brute-force optimum on zoo seeds "
                      "0-4 and against dp on stress seeds 0-7, 60 s", (
        Part("tiny", (0, 1, 2, 3, 4), 60.0, solvers=(("matching", None), ("bruteforce", None))),
        Part("stress", tuple(range(8)), 60.0, solvers=(("matching", None), ("dp", None))),
    )),
)}


def suite(name: str) -> Suite:
    """The suite called ``name``; ``KeyError`` naming the known ones for a typo."""
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r} (known: {', '.join(SUITES)})") from None
