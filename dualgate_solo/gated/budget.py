"""Computation-budget loss L_G of VICReg-(Dual-)Gating.

With r the batch-mean kept-MAC ratio of the gated branch and rho_b the batch-mean active fraction
of block b's gated channels::

    L_flops = lambda * (r - t_d)^2
    L_bound = gamma * mean_b [ relu(p*q - rho_b)^2 + relu(rho_b - (1 - p + p*q))^2 ]
    L_G     = L_flops + L_bound,      p = exp(-alpha * epoch),   q = sqrt(t_d) or t_d

``t_d`` is the *kept* fraction (0.1 keeps 10% of the dense MACs). Options: ``bound_target``
(``q``), ``l1_count`` (the active count as an L1 norm, whose gradient is 0 at closed gates, as in
the official code); ``p`` is annealed per epoch.

Hitting the budget (off by default, the paper's behaviour). The paper's evaluated ratio
overshoots t_d (18.5% kept at t_d = 10%) for two reasons, each with an option:

* ``ratio_source: deterministic`` costs the *eval-style* masks ``1[logit >= 0]`` (with a
  straight-through sigmoid gradient) instead of the sampled ones, so the loss sees the ratio that
  is reported;
* ``multiplier_lr > 0`` adds an augmented-Lagrangian term ``nu * (r - t_d)`` whose multiplier
  follows ``nu <- nu + multiplier_lr * (r - t_d)`` after every step (:class:`BudgetMultiplier`),
  removing the equilibrium offset a fixed quadratic penalty leaves against the SSL loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from dualgate_solo.choices import BOUND_TARGETS, RATIO_SOURCES
from dualgate_solo.validation import check_choice, check_interval


@dataclass(frozen=True)
class BudgetOptions:
    """Hyper-parameters of L_G, validated at construction.

    Attributes:
        target_density: t_d in (0, 1], the kept-MAC fraction aimed at.
        lambda_flops: lambda, weight of the squared ratio error (5).
        gamma_bound: gamma, weight of the per-layer bound term (1).
        anneal_alpha: alpha of p = exp(-alpha * epoch) (0.02).
        bound_target: ``"sqrt"`` (q = sqrt(t_d), the paper) or ``"linear"`` (q = t_d).
        l1_count: count active channels as an L1 norm (paper) rather than a plain sum.
        ratio_source: ``"sampled"`` (paper: the training masks) or ``"deterministic"``
            (eval-style masks with a straight-through gradient).
        multiplier_lr: step size of the Lagrange multiplier nu (0: fixed lambda, the paper).
    """

    target_density: float = 0.1
    lambda_flops: float = 5.0
    gamma_bound: float = 1.0
    anneal_alpha: float = 0.02
    bound_target: str = "sqrt"
    l1_count: bool = True
    ratio_source: str = "sampled"
    multiplier_lr: float = 0.0

    def __post_init__(self) -> None:
        check_interval("target_density", self.target_density, 0.0, 1.0, low_inclusive=False)
        check_interval("lambda_flops", self.lambda_flops, 0.0, math.inf)
        check_interval("gamma_bound", self.gamma_bound, 0.0, math.inf)
        check_interval("anneal_alpha", self.anneal_alpha, 0.0, math.inf)
        check_choice("bound_target", self.bound_target, BOUND_TARGETS)
        check_choice("l1_count", self.l1_count, (True, False))
        check_choice("ratio_source", self.ratio_source, RATIO_SOURCES)
        check_interval("multiplier_lr", self.multiplier_lr, 0.0, math.inf)

    @property
    def layer_target(self) -> float:
        """q: the per-layer density the bound interval starts from."""
        return (
            math.sqrt(self.target_density) if self.bound_target == "sqrt" else self.target_density
        )


class BudgetTerms(NamedTuple):
    """The parts of L_G for one gated pass (all scalars except ``densities``).

    Attributes:
        loss: L_flops + L_bound.
        flops: L_flops.
        bound: L_bound.
        ratio: batch-mean kept-MAC ratio r.
        densities: per-block batch-mean active fraction rho ``[n_blocks]``.
    """

    loss: Tensor
    flops: Tensor
    bound: Tensor
    ratio: Tensor
    densities: Tensor


def anneal_p(epoch: int, alpha: float) -> float:
    """p(e) = exp(-alpha * e): 1 at epoch 0, e^-2 at epoch 100 for alpha = 0.02."""
    return math.exp(-alpha * epoch)


def flops_loss(
    ratio: Tensor, target_density: float, weight: float, multiplier: float | Tensor = 0.0
) -> Tensor:
    """L_flops = weight * (r - t_d)^2 + multiplier * (r - t_d) for a scalar batch-mean ratio r."""
    error = ratio - target_density
    return weight * error**2 + multiplier * error


def deterministic_masks(logits: tuple[Tensor, ...], tau: float) -> tuple[Tensor, ...]:
    """Eval-style masks ``1[logit >= 0]`` with the gradient of ``sigmoid(logit / tau)``."""
    masks = []
    for block_logits in logits:
        soft = torch.sigmoid(block_logits / tau)
        masks.append((block_logits >= 0).to(soft.dtype) + (soft - soft.detach()))
    return tuple(masks)


class BudgetMultiplier(torch.nn.Module):
    """The Lagrange multiplier nu of ``multiplier_lr > 0``, kept in a buffer (saved in checkpoints).

    Call :meth:`update` with the step's detached batch ratio after the optimiser step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("value", torch.zeros(()))

    @torch.no_grad()
    def update(self, ratio: Tensor | float, config: BudgetOptions) -> None:
        """nu <- nu + multiplier_lr * (r - t_d)."""
        self.value += config.multiplier_lr * (float(ratio) - config.target_density)


def bound_loss(densities: Tensor, layer_target: float, p: float, weight: float) -> Tensor:
    """L_bound = weight * mean_b[relu(p*q - rho_b)^2 + relu(rho_b - (1 - p + p*q))^2].

    Args:
        densities: rho ``[n_blocks]``.
        layer_target: q.
        p: annealing factor in [0, 1].
        weight: gamma.
    """
    lower = p * layer_target
    upper = 1.0 - p + p * layer_target
    below = torch.relu(lower - densities) ** 2
    above = torch.relu(densities - upper) ** 2
    return weight * (below + above).mean()


def layer_densities(masks: tuple[Tensor, ...], l1_count: bool) -> Tensor:
    """rho: per-block batch-mean fraction of active gated channels.

    ``masks``: one ``[B, C_b]`` tensor per gated block -> ``[n_blocks]``.
    """
    counts = [(m.abs() if l1_count else m).sum(1) / m.shape[1] for m in masks]
    return torch.stack([c.mean() for c in counts])


def budget_loss(
    ratio: Tensor,
    masks: tuple[Tensor, ...],
    config: BudgetOptions,
    p: float,
    multiplier: float | Tensor = 0.0,
) -> BudgetTerms:
    """L_G for one gated pass.

    Args:
        ratio: per-sample kept-MAC ratio ``[B]`` (``BranchOutput.ratio``).
        masks: the gated pass's masks, one ``[B, C_b]`` per block.
        config: loss hyper-parameters.
        p: the current annealing factor (:func:`anneal_p`).
        multiplier: the Lagrange multiplier nu (0 unless ``multiplier_lr > 0``).
    """
    mean_ratio = ratio.mean().float()  # MAC bookkeeping is float64; the loss stays float32
    densities = layer_densities(masks, config.l1_count)
    flops = flops_loss(mean_ratio, config.target_density, config.lambda_flops, multiplier)
    bound = bound_loss(densities, config.layer_target, p, config.gamma_bound)
    return BudgetTerms(flops + bound, flops, bound, mean_ratio, densities)
