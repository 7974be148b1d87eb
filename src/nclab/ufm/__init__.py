"""The unconstrained-features model: problem, solvers (GD, convex program; ``solve`` picks one) and
closed forms."""

from nclab.ufm.convex import ConvexResult, convex_objective, solve_convex, ufm_to_convex_lambda
from nclab.ufm.problem import UFM, UFMResult
from nclab.ufm.solver import Solution, solve
from nclab.ufm.theory import (
    balanced_ce_minimizer,
    balanced_zero_threshold,
    group_collapse_threshold,
    minority_collapse_threshold,
    normalized_min_loss,
    zero_solution_threshold,
    zero_threshold,
)

__all__ = [
    "UFM",
    "ConvexResult",
    "Solution",
    "UFMResult",
    "balanced_ce_minimizer",
    "balanced_zero_threshold",
    "convex_objective",
    "group_collapse_threshold",
    "minority_collapse_threshold",
    "normalized_min_loss",
    "solve",
    "solve_convex",
    "ufm_to_convex_lambda",
    "zero_solution_threshold",
    "zero_threshold",
]
