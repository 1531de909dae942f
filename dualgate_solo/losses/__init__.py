"""Losses: the computation-budget loss L_G (VICReg itself is solo-learn's own)."""

from dualgate_solo.losses.budget import (
    BOUND_TARGETS,
    RATIO_SOURCES,
    BudgetMultiplier,
    BudgetOptions,
    BudgetTerms,
    anneal_p,
    bound_loss,
    budget_loss,
    deterministic_masks,
    flops_loss,
    layer_densities,
)

__all__ = [
    "BOUND_TARGETS",
    "RATIO_SOURCES",
    "BudgetOptions",
    "BudgetMultiplier",
    "BudgetTerms",
    "anneal_p",
    "bound_loss",
    "budget_loss",
    "deterministic_masks",
    "flops_loss",
    "layer_densities",
]
