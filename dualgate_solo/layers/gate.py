"""Input-conditioned channel gate of VICReg-(Dual-)Gating.

Krishna et al., "Unifying Synergies between Self-supervised Learning and Dynamic Computation"
(BMVC 2023), after DGNet (Li et al., ICCV 2021).

The gate squeezes the block input by global average pooling and maps it through a two-layer
1x1-conv bottleneck to one logit per gated channel::

    u [B, C_in, H, W] -GAP-> [B, C_in, 1, 1] -1x1-> [B, C_in/r] -BN-ReLU-1x1-> logits [B, C_gated]

Training draws a binary-concrete (Gumbel-sigmoid) sample per (sample, channel) and passes the hard
{0, 1} value forward with a straight-through gradient; evaluation thresholds ``logit >= 0``.
Everything after the pooling runs in float32 with autocast disabled, so fp16 never under-flows the
noise (bug 18 of the official code).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dualgate_solo.validation import check_interval

#: Uniform noise is clamped to ``[NOISE_EPS, 1 - NOISE_EPS]`` so that ``log(0)`` never occurs.
NOISE_EPS = 1e-6


def binary_concrete_ste(logits: Tensor, tau: float, training: bool) -> Tensor:
    """Hard {0, 1} gate values with a straight-through binary-concrete gradient.

    Args:
        logits: gate logits, any shape, e.g. ``[B, C]``.
        tau: temperature of the relaxed sample used for the backward pass (spec: 2/3).
        training: draw logistic noise (training) or threshold ``logits >= 0`` (evaluation).

    Returns:
        A tensor shaped like ``logits`` whose values are exactly 0 or 1. In training its gradient
        is that of ``sigmoid((logits + noise) / tau)``; in evaluation it carries no gradient.
    """
    if not training:
        return (logits >= 0).to(logits.dtype)
    uniform = torch.rand_like(logits).clamp_(NOISE_EPS, 1.0 - NOISE_EPS)
    noisy = logits + torch.log(uniform) - torch.log1p(-uniform)
    soft = torch.sigmoid(noisy / tau)
    hard = (noisy >= 0).to(logits.dtype)
    # ``soft - soft.detach()`` is exactly zero, so the forward value is exactly ``hard``.
    return hard + (soft - soft.detach())


class ChannelGate(nn.Module):
    """Per-sample channel gate: GAP -> 1x1 (C_in -> C_in // r) -> BN -> ReLU -> 1x1 -> logits.

    Args:
        in_channels: channels of the block input the gate looks at (C_in).
        gated_channels: number of channels it switches (C_out for a BasicBlock).
        reduction: bottleneck factor r (spec: 4); the hidden width is ``max(1, C_in // r)``.
        tau: straight-through temperature (spec: 2/3, constant).

    Shapes:
        ``forward(u)``: ``u [B, C_in, H, W]`` -> mask ``[B, gated_channels]`` in float32.
    """

    def __init__(
        self, in_channels: int, gated_channels: int, reduction: int = 4, tau: float = 2 / 3
    ):
        super().__init__()
        check_interval("gate_reduction", reduction, 1, float("inf"))
        self.tau = check_interval("gate_tau", tau, 0.0, float("inf"), low_inclusive=False)
        hidden = max(1, in_channels // int(reduction))
        self.reduce = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.expand = nn.Conv2d(hidden, gated_channels, kernel_size=1, bias=False)

    @property
    def macs(self) -> int:
        """MACs of the two 1x1 convs on the pooled vector (pooling not counted)."""
        return self.reduce.in_channels * self.reduce.out_channels + (
            self.expand.in_channels * self.expand.out_channels
        )

    def logits(self, u: Tensor) -> Tensor:
        """Gate logits ``[B, gated_channels]`` in float32, computed with autocast disabled."""
        with torch.autocast(device_type=u.device.type, enabled=False):
            pooled = u.float().mean(dim=(2, 3), keepdim=True)
            hidden = torch.relu(self.bn(self.reduce(pooled)))
            return self.expand(hidden).flatten(1)

    def sample(self, logits: Tensor) -> Tensor:
        """0/1 mask ``[B, gated_channels]`` from float32 ``logits``.

        Stochastic straight-through sample in training, ``logit >= 0`` in eval.
        """
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return binary_concrete_ste(logits, self.tau, self.training)

    def forward(self, u: Tensor) -> Tensor:
        return self.sample(self.logits(u))
