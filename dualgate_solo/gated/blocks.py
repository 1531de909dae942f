"""Residual blocks that run in a dense or a gated branch over one set of conv weights.

The gated BasicBlock of VICReg-Dual-Gating (BMVC 2023): the gate reads the *block input*,
its mask multiplies conv1's post-BN-ReLU output (conv1's output channels = conv2's input
channels), conv2's output and the shortcut are never gated. The dense branch skips the gate.

``GatedBottleneck`` (ResNet-50) is this package's extension, not in the paper: one gate reads the
block input and emits ``2 * width`` logits; the first half masks conv1's output (the 1x1
reduction), the second half conv2's output (the 3x3), so both inner widths shrink. Per sample,
with active fractions f1 and f2, its MACs are ``conv1 * f1 + conv2 * f1 * f2 + conv3 * f2 +
shortcut``: the 3x3 conv pays for the product of its active inputs and outputs.

In ``gate_mode: width`` (a :class:`~dualgate_solo.gated.layers.GateMode` with ``width_choices``)
the gate is a :class:`~dualgate_solo.gated.layers.WidthGate` that picks one width per input and
block; its mask is the prefix of the first ``round(w * C)`` inner channels. In the Bottleneck ONE
choice sets both inner widths (conv1's and conv2's outputs keep the same prefix), as in Dynamic
Slimmable Network: the gate scores ``len(width_choices)`` widths instead of their square, and a
routed executor keeps one pre-sliced copy per choice. Per sample, with ``k`` active channels, a
prefix runs exactly the MACs of convs sliced to ``k`` channels, which :meth:`macs_for` counts.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from dualgate_solo.flops import MAC_DTYPE, BlockCost, conv_macs
from dualgate_solo.gated.layers import CHANNEL_GATES, GateMode, apply_norm, make_norm
from dualgate_solo.gated.layers.masked_conv import masked_conv2d


class BlockOutput(NamedTuple):
    """What a block returns.

    Attributes:
        out: block output ``[B, C_out, H_b, W_b]``.
        mask: gate values ``[B, gated_channels]`` (exactly 0/1) in the gated branch, else ``None``.
        macs: per-sample MACs of the block, gate excluded, ``[B]`` in float64.
        cost: static figures of the block at this input size.
        logits: the gate's float32 logits (gated branch), else ``None``: ``[B, gated_channels]``
            for a channel gate, ``[B, len(width_choices)]`` for a width gate.
    """

    out: Tensor
    mask: Tensor | None
    macs: Tensor
    cost: BlockCost
    logits: Tensor | None = None


def _dense_macs(cost: BlockCost, batch: int, device: torch.device) -> Tensor:
    """``[batch]`` copies of the block's dense MACs (float64)."""
    return torch.full((batch,), float(cost.dense_macs), dtype=MAC_DTYPE, device=device)


def _gated_forward(block: nn.Module, x: Tensor, branch: str, name: str) -> BlockOutput:
    """Shared block driver: gate (gated branch only), masked residual path, shortcut, MACs."""
    logits = block.gate.logits(x) if branch == "gated" else None
    mask = block.gate.sample(logits) if logits is not None else None
    y = block._residual(x, mask, branch)
    shortcut = x if block.downsample is None else block.downsample(x, branch)
    out = torch.relu(y + shortcut)
    cost = block.cost(name, tuple(x.shape[-2:]), tuple(out.shape[-2:]))
    macs = _dense_macs(cost, x.shape[0], x.device) if mask is None else block.macs_for(mask, cost)
    return BlockOutput(out, mask, macs, cost, logits)


class Shortcut(nn.Module):
    """1x1 strided conv + BN on the residual path (never gated); BN optionally dual."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dual_bn: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.bn = make_norm(out_channels, dual_bn)

    def forward(self, x: Tensor, branch: str) -> Tensor:
        return apply_norm(self.bn, self.conv(x), branch)


def _conv_masked(conv: nn.Conv2d, a: Tensor, mask: Tensor | None) -> Tensor:
    """``conv(a)`` (dense branch) or ``conv(a * mask)`` (gated) without storing the product."""
    return conv(a) if mask is None else masked_conv2d(conv, a, mask)


class GatedBasicBlock(nn.Module):
    """ResNet-18/34 BasicBlock with a channel gate between its two 3x3 convs.

    Args:
        in_channels: C_in.
        planes: C_out (BasicBlock expansion is 1).
        stride: stride of conv1 and of the shortcut.
        dual_bn: keep separate bn1/bn2 per branch (``dual_bn_scope`` ``block`` or wider).
        dual_shortcut_bn: keep separate shortcut BNs (``dual_bn_scope`` ``backbone`` or wider).
        gate_reduction, gate_tau: see :class:`~dualgate_solo.gated.layers.ChannelGate`.
        gates: the gate mode (:class:`~dualgate_solo.gated.layers.GateMode`): channel gates (the
            paper) or a :class:`~dualgate_solo.gated.layers.WidthGate` over fractions of ``planes``.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        dual_bn: bool,
        dual_shortcut_bn: bool,
        gate_reduction: int,
        gate_tau: float,
        gates: GateMode = CHANNEL_GATES,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(planes, dual_bn)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(planes, dual_bn)
        self.gate = gates.make_gate(in_channels, planes, 1, gate_reduction, gate_tau)
        needs_projection = stride != 1 or in_channels != planes
        self.downsample = (
            Shortcut(in_channels, planes, stride, dual_shortcut_bn) if needs_projection else None
        )

    def cost(self, name: str, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> BlockCost:
        """Static MAC figures for an input of spatial size ``in_hw`` (``out_hw`` after stride)."""
        inner = conv_macs(self.conv1, out_hw) + conv_macs(self.conv2, out_hw)
        shortcut = conv_macs(self.downsample.conv, out_hw) if self.downsample is not None else 0
        return BlockCost(
            name=name,
            in_channels=self.conv1.in_channels,
            out_channels=self.conv2.out_channels,
            gated_channels=self.conv1.out_channels,
            in_hw=in_hw,
            out_hw=out_hw,
            dense_macs=inner + shortcut,
            downsample_macs=shortcut,
            gate_macs=self.gate.macs,
            macs_per_active_channel=inner // self.conv1.out_channels,
        )

    def macs_for(self, mask: Tensor, cost: BlockCost) -> Tensor:
        """Per-sample MACs ``[B]`` (float64, differentiable) for ``mask [B, C_out]``."""
        return mask.to(MAC_DTYPE).sum(1) * cost.macs_per_active_channel + cost.downsample_macs

    def _residual(self, x: Tensor, mask: Tensor | None, branch: str) -> Tensor:
        a = torch.relu(apply_norm(self.bn1, self.conv1(x), branch))
        return apply_norm(self.bn2, _conv_masked(self.conv2, a, mask), branch)

    def forward(self, x: Tensor, branch: str, name: str = "") -> BlockOutput:
        return _gated_forward(self, x, branch, name)


class GatedBottleneck(nn.Module):
    """ResNet-50 Bottleneck (torchvision v1.5: stride on the 3x3) with both inner widths gated.

    Not in the paper; see the module docstring for the design and its MAC accounting.

    Args:
        in_channels: C_in.
        planes: inner width w; the output has ``4 * w`` channels.
        stride, dual_bn, dual_shortcut_bn, gate_reduction, gate_tau, gates: as in
            :class:`GatedBasicBlock` (a width choice sets both inner widths).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        dual_bn: bool,
        dual_shortcut_bn: bool,
        gate_reduction: int,
        gate_tau: float,
        gates: GateMode = CHANNEL_GATES,
    ):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = make_norm(planes, dual_bn)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = make_norm(planes, dual_bn)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = make_norm(out_channels, dual_bn)
        self.gate = gates.make_gate(in_channels, planes, 2, gate_reduction, gate_tau)
        needs_projection = stride != 1 or in_channels != out_channels
        self.downsample = (
            Shortcut(in_channels, out_channels, stride, dual_shortcut_bn)
            if needs_projection
            else None
        )

    def _conv_costs(
        self, in_hw: tuple[int, int], out_hw: tuple[int, int]
    ) -> tuple[int, int, int, int]:
        shortcut = conv_macs(self.downsample.conv, out_hw) if self.downsample is not None else 0
        return (
            conv_macs(self.conv1, in_hw),
            conv_macs(self.conv2, out_hw),
            conv_macs(self.conv3, out_hw),
            shortcut,
        )

    def cost(self, name: str, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> BlockCost:
        """Static MAC figures for an input of spatial size ``in_hw`` (``out_hw`` after stride)."""
        c1, c2, c3, shortcut = self._conv_costs(in_hw, out_hw)
        return BlockCost(
            name=name,
            in_channels=self.conv1.in_channels,
            out_channels=self.conv3.out_channels,
            gated_channels=2 * self.conv1.out_channels,
            in_hw=in_hw,
            out_hw=out_hw,
            dense_macs=c1 + c2 + c3 + shortcut,
            downsample_macs=shortcut,
            gate_macs=self.gate.macs,
            macs_per_active_channel=None,
        )

    def macs_for(self, mask: Tensor, cost: BlockCost) -> Tensor:
        """Per-sample MACs ``[B]`` for ``mask [B, 2 * width]``.

        ``c1 f1 + c2 f1 f2 + c3 f2 + shortcut`` with active fractions ``f1 = n1 / w, f2 = n2 / w``,
        computed as integer MACs per active channel times the counts ``n1, n2``, so a 0/1 mask
        gets the exact MACs of convs sliced to its active channels.
        """
        c1, c2, c3, shortcut = self._conv_costs(cost.in_hw, cost.out_hw)
        width = self.conv1.out_channels
        n1 = mask[:, :width].to(MAC_DTYPE).sum(1)
        n2 = mask[:, width:].to(MAC_DTYPE).sum(1)
        return (c1 // width) * n1 + (c2 // width**2) * n1 * n2 + (c3 // width) * n2 + shortcut

    def _residual(self, x: Tensor, mask: Tensor | None, branch: str) -> Tensor:
        width = self.conv1.out_channels
        m1, m2 = (None, None) if mask is None else (mask[:, :width], mask[:, width:])
        a = torch.relu(apply_norm(self.bn1, self.conv1(x), branch))
        b = torch.relu(apply_norm(self.bn2, _conv_masked(self.conv2, a, m1), branch))
        return apply_norm(self.bn3, _conv_masked(self.conv3, b, m2), branch)

    def forward(self, x: Tensor, branch: str, name: str = "") -> BlockOutput:
        return _gated_forward(self, x, branch, name)
