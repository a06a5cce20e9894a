"""The placement problem, plans, and the one cost model that judges them.

Planners write::

    from placement import load_instance, evaluate, predict
    from solvers import solve

``placement`` imports ``models`` only.
"""

from placement.costs import BlockCosts, CostTable, TransferCosts, block_costs, cost_table, transfer_costs
from placement.errors import InstanceMismatchError, InvalidInstanceError, InvalidPlanError, Issue
from placement.evaluate import check_plan, evaluate
from placement.instance import load_instance, parse_instance
from placement.metrics import DeviceMetrics, Metrics, RequestMetrics
from placement.plan import Plan, Proof, Reason, Route, Shard, Status, Termination, Unserved
from placement.planio import load_plan, plan_from_dict, plan_to_dict, save_plan, write_atomic
from placement.predict import Prediction, predict
from placement.problem import SLO, CacheEntry, Cascade, Constraints, ModelSpec, Objective, Problem, RequestClass
from placement.violations import Kind, Violation

__all__ = [
    "Problem", "ModelSpec", "RequestClass", "SLO", "Objective", "Constraints",
    "Plan", "Shard", "Route", "Status", "Termination", "Proof", "Unserved", "Reason", "Cascade", "CacheEntry",
    "Metrics", "RequestMetrics", "DeviceMetrics",
    "evaluate", "check_plan", "predict", "Prediction", "Violation", "Kind",
    "load_instance", "parse_instance", "load_plan", "save_plan", "plan_to_dict", "plan_from_dict", "write_atomic",
    "cost_table", "CostTable", "block_costs", "transfer_costs", "BlockCosts", "TransferCosts",
    "InvalidInstanceError", "InvalidPlanError", "InstanceMismatchError", "Issue",
]
