"""Slimmable MLP heads (projectors, predictors) with one BatchNorm per width.

SlimCLR makes the heads slimmable too: at width ``w`` the hidden layers keep
``round(hidden * w)`` units (weight prefixes), every BatchNorm is the width's own and the output
dimension stays fixed, so all widths are compared in one embedding space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dualgate_solo.slimmable.layers import SlimLinear, SwitchableBatchNorm, scaled_channels


class SlimMLP(nn.Module):
    """``num_layers`` linear layers, BN + ReLU between them, a fixed-width output.

    ``forward(x [B, F_in(w)], index, w) -> [B, out_dim]``; ``F_in(w)`` is the backbone's feature
    width at ``w`` (read from ``x``).

    Args:
        in_dim: full-width input features.
        hidden_dim: full-width hidden units (``round(hidden_dim * w)`` at width ``w``).
        out_dim: output features (every width).
        widths: the width multipliers (one BatchNorm each).
        num_layers: linear layers (VICReg / Barlow Twins projector 3, MoCo v3 heads 2).
        bias: linear biases (solo-learn: yes for VICReg/Barlow, no for MoCo v3).
        last_bn: ``None``, or ``"plain"`` for a per-width ``BatchNorm1d(affine=False)`` on the
            output (MoCo v3's projector).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        widths: Sequence[float],
        num_layers: int = 3,
        bias: bool = True,
        last_bn: str | None = None,
    ):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.linears = nn.ModuleList(
            SlimLinear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:])
        )
        self.norms = nn.ModuleList(
            SwitchableBatchNorm(hidden_dim, widths, dims=1) for _ in range(num_layers - 1)
        )
        self.last_norm = (
            SwitchableBatchNorm(out_dim, widths, dims=1, affine=False, scale=False)
            if last_bn == "plain"
            else None
        )
        self.hidden_dim = hidden_dim

    def forward(self, x: Tensor, index: int, width_mult: float) -> Tensor:
        hidden = scaled_channels(self.hidden_dim, width_mult)
        for linear, norm in zip(self.linears[:-1], self.norms):
            x = torch.relu(norm(linear(x, hidden), index))
        x = self.linears[-1](x)
        return x if self.last_norm is None else self.last_norm(x, index)
