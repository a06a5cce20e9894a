"""Dynamic programming over contiguous pipelines of one model (see :mod:`solvers.dp.solver`)."""

from solvers.dp.solver import TABLE_BUDGET_BYTES, candidate_devices, dp_unsupported, price_chain, solve_dp

__all__ = ["solve_dp", "dp_unsupported", "candidate_devices", "price_chain", "TABLE_BUDGET_BYTES"]
