"""VICReg projector 512-2048-2048-2048, optionally with per-branch BatchNorm.

With ``dual_bn_scope: all`` the projector's two BatchNorm1d layers keep one
copy per branch, like the backbone's; otherwise one projector is shared by both branches, as in
the paper.
"""

from __future__ import annotations

from torch import Tensor, nn

from dualgate_solo.gated.layers import DualBatchNorm, apply_norm


class Projector(nn.Module):
    """Linear -> BN -> ReLU -> Linear -> BN -> ReLU -> Linear.

    Args:
        in_dim: backbone feature width (512 for ResNet-18).
        hidden_dim: hidden width (2048).
        out_dim: embedding width (2048).
        dual_bn: one BatchNorm1d per branch for the two hidden BNs.

    Shapes:
        ``forward(h, branch)``: ``h [B, in_dim]`` -> ``z [B, out_dim]``.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dual_bn: bool = False):
        super().__init__()

        def norm() -> nn.Module:
            bn = nn.BatchNorm1d(hidden_dim)
            return DualBatchNorm(bn) if dual_bn else bn

        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.bn1 = norm()
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.bn2 = norm()
        self.fc3 = nn.Linear(hidden_dim, out_dim)

    def forward(self, h: Tensor, branch: str = "dense") -> Tensor:
        h = apply_norm(self.bn1, self.fc1(h), branch).relu()
        h = apply_norm(self.bn2, self.fc2(h), branch).relu()
        return self.fc3(h)
