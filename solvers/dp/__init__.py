"""Dynamic programming over contiguous pipelines of one model (see :mod:`solvers.dp.solver`)."""

from solvers.dp.solver import (
    MAX_COUNT_VECTORS, TABLE_BUDGET_BYTES, candidate_devices, device_classes, dp_unsupported, price_chain,
    relaxed_pipeline_bound, search_mode, solve_dp, subset_search_bytes,
)

__all__ = ["solve_dp", "dp_unsupported", "candidate_devices", "price_chain", "device_classes", "search_mode",
           "relaxed_pipeline_bound", "subset_search_bytes", "TABLE_BUDGET_BYTES", "MAX_COUNT_VECTORS"]
