"""Matching game: blocks and devices, deferred acceptance, then swaps until swap-stable.

A model's decoder blocks are one side of a many-to-one matching and the devices
the other: a device accepts blocks up to its memory quota (weights and KV cache
of every request class, plus the prefill workspace and the engine's runtime once
it holds any block) and its profile's ``max_layers``. Preferences carry
externalities: a block's cost on a device includes the transfers to the devices
its neighbouring blocks sit on and the per-stage overhead it adds when it opens
a new stage (the pipeline bubble); under a throughput objective, the load the
device already carries.

1. **Deferred acceptance** (:mod:`~solvers.matching.acceptance`), replayed with
   the last matching's externalities until it repeats; seeded restarts perturb
   the preferences.
2. **Contiguity repair** (same module): each device keeps one contiguous range.
3. **Swaps** (:mod:`~solvers.matching.swaps`, :mod:`~solvers.matching.search`),
   best improvement, until no single swap improves the plan. Each candidate is
   scored on the compiled cost table (:mod:`~solvers.matching.scoring`), the
   whole plan at once (transfers, loop, memory, SLOs, load, throughput over the
   physical links and NICs), with the table's own functions, so the scores rank
   plans as :func:`placement.evaluate` does.

The result is *swap-stable*: no plan in that neighbourhood is better. Nothing is
proven about the optimum, so the plan has no bound. A run stopped by the time
limit reports the improving swaps that remain as ``blocking_pairs``.
:func:`matching_unsupported` refuses instances whose tables would not fit its
memory budget (:mod:`~solvers.matching.tables`).
"""

from solvers.matching.solver import solve_matching
from solvers.matching.tables import TABLE_BUDGET_BYTES, matching_unsupported

__all__ = ["solve_matching", "matching_unsupported", "TABLE_BUDGET_BYTES"]
