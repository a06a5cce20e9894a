"""The cost model: the one place where llmplace turns models, devices and requests
into seconds, bytes and joules.

- :mod:`placement.costs.roofline`: per-node physics (roofline times, weights, KV, workspace);
- :mod:`placement.costs.tables`: the compiled, read-only cost table of a problem;
- :mod:`placement.costs.routes`: a route's times, energy, quality and resource use, summed on the table;
- :mod:`placement.costs.throughput`: what the resources can carry (closed form, LP, given rates);
- :mod:`placement.costs.chains`: dense views of the table for solvers that build pipelines.
"""

from placement.costs.roofline import ACTIVATION_BYTES, GIB, TOKEN_ID_BYTES
from placement.costs.routes import RouteTimes, Stage, route_quality, route_times, route_usage
from placement.costs.tables import (
    BlockCosts, CostTable, KVCosts, TransferCosts, WeightCosts, block_costs, cost_table, transfer_costs,
)

__all__ = [
    "GIB", "TOKEN_ID_BYTES", "ACTIVATION_BYTES",
    "CostTable", "BlockCosts", "WeightCosts", "KVCosts", "TransferCosts", "cost_table", "block_costs", "transfer_costs",
    "Stage", "RouteTimes", "route_times", "route_usage", "route_quality",
]
