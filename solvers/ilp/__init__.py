"""Placement as one mixed-integer program on open backends (see :mod:`solvers.ilp.solver`)."""

from solvers.ilp.backends import BACKENDS
from solvers.ilp.formulation import Formulation, build_formulation
from solvers.ilp.solver import MAX_VARIABLES, estimated_variables, ilp_unsupported, solve_ilp

__all__ = ["solve_ilp", "build_formulation", "Formulation", "estimated_variables", "ilp_unsupported",
           "MAX_VARIABLES", "BACKENDS"]
