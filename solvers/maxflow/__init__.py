"""maxflow: throughput serving with replicated shards (the Helix class): each device holds at most one
contiguous range of the model's blocks, and the request classes are routed over them by max-flow
(see :mod:`solvers.maxflow.solver`)."""

from solvers.maxflow.solver import maxflow_unsupported, solve_maxflow

__all__ = ["solve_maxflow", "maxflow_unsupported"]
