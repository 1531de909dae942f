"""Branch-routed batch normalisation.

VICReg-Dual-Gating runs the same convolution weights in a *dense* and a *gated* branch; the
normalisation layers selected by ``dual_bn_scope`` keep one BatchNorm per branch, because the two
branches see different activation statistics.

``DualBatchNorm`` is a container holding two ordinary BatchNorm modules (``.dense`` and ``.gated``)
rather than a BatchNorm subclass, so ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts both
children and the routing survives (solo-learn's ``sync_batchnorm: true``).
"""

from __future__ import annotations

from torch import Tensor, nn

from dualgate_solo.choices import BRANCHES
from dualgate_solo.validation import check_choice


class DualBatchNorm(nn.Module):
    """Two BatchNorms, one per branch; ``forward(x, branch)`` normalises with the branch's own.

    Args:
        norm: a BatchNorm module used as the template for both branches, e.g.
            ``nn.BatchNorm2d(64)``; the gated copy is a fresh module with the same configuration.

    Shapes:
        ``x`` is whatever the template accepts (``[B, C, H, W]`` for 2d, ``[B, C]`` for 1d).
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.dense = norm
        self.gated = type(norm)(
            norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=norm.affine
        )

    def forward(self, x: Tensor, branch: str) -> Tensor:
        if branch not in BRANCHES:
            check_choice("branch", branch, BRANCHES)
        return self.dense(x) if branch == "dense" else self.gated(x)


def apply_norm(norm: nn.Module, x: Tensor, branch: str) -> Tensor:
    """Normalise ``x`` with ``norm``, routing by ``branch`` when ``norm`` is a ``DualBatchNorm``."""
    return norm(x, branch) if isinstance(norm, DualBatchNorm) else norm(x)


def make_norm(channels: int, dual: bool) -> nn.Module:
    """A ``BatchNorm2d(channels)`` shared by both branches, or a ``DualBatchNorm`` of two."""
    norm = nn.BatchNorm2d(channels)
    return DualBatchNorm(norm) if dual else norm
