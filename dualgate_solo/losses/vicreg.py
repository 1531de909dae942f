"""VICReg loss (Bardes et al., ICLR 2022) with solo-learn 1.0.6's exact conventions.

Used by the stand-alone training loop (:mod:`dualgate_solo.demo`) where solo-learn is absent.
Inside solo-learn the methods call ``solo.losses.vicreg.vicreg_loss_func`` itself;
``tests/test_crosscheck.py`` checks that both agree (loss and gradients). As in solo-learn, the
variance term is the *sum* over the two views, where the authors' code (facebookresearch/vicreg)
averages them: this loss at variance weight ``w`` equals theirs at ``2 w``, which the same test
asserts. There is no cross-device gather here (single process).

Shapes: ``z1, z2 [N, D]`` -> scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def invariance_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """Mean squared error over all ``N * D`` entries."""
    return F.mse_loss(z1, z2)


def variance_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """Sum over views of ``mean_j relu(1 - sqrt(Var_batch(z_j) + 1e-4))`` (unbiased variance)."""
    std1 = torch.sqrt(z1.var(dim=0) + 1e-4)
    std2 = torch.sqrt(z2.var(dim=0) + 1e-4)
    return torch.mean(F.relu(1 - std1)) + torch.mean(F.relu(1 - std2))


def covariance_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """Sum over views of ``(1/D) sum_{i != j} C_ij^2`` with C the unbiased batch covariance."""
    n, d = z1.shape
    total = z1.new_zeros(())
    for z in (z1, z2):
        z = z - z.mean(dim=0)
        cov = (z.T @ z) / (n - 1)
        off_diagonal = cov - torch.diag(torch.diagonal(cov))
        total = total + off_diagonal.pow(2).sum() / d
    return total


def vicreg_loss(
    z1: Tensor,
    z2: Tensor,
    sim_loss_weight: float = 25.0,
    var_loss_weight: float = 25.0,
    cov_loss_weight: float = 1.0,
) -> Tensor:
    """``sim * MSE + var * (v(z1) + v(z2)) + cov * (c(z1) + c(z2))``, solo-learn's formula."""
    return (
        sim_loss_weight * invariance_loss(z1, z2)
        + var_loss_weight * variance_loss(z1, z2)
        + cov_loss_weight * covariance_loss(z1, z2)
    )
