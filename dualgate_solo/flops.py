"""Multiply-accumulate (MAC) accounting of the gated branch.

Conventions, as in the paper's "FLOPs" column and its official code:

* only convolutions count (one MAC = one multiply-add; ``FlopCounterMode`` reports 2 per MAC);
  BatchNorm, ReLU, pooling, residual additions and any FC head are free;
* the stem and the downsample shortcuts are always dense;
* the gate's two 1x1 convs on the pooled vector are paid by the gated branch only (numerator),
  never by the dense reference (denominator);
* a gated channel removes its share of every conv that produces or consumes it.

All numbers are derived from the real tensor shapes of a forward pass, so they hold at any input
size; nothing here is a hard-coded table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from dualgate_solo.validation import UsageError

T = TypeVar("T")


def check_input_hw(option: str, input_hw: object) -> tuple[int, int]:
    """``(H, W)`` as two ints if both are integers >= 1, else ``UsageError`` naming ``option``.

    A MAC table needs a real forward pass, and a conv cannot run on an empty image.
    """
    if (
        isinstance(input_hw, (tuple, list))
        and len(input_hw) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in input_hw)
    ):
        return int(input_hw[0]), int(input_hw[1])
    raise UsageError(
        f"{option}={input_hw!r} is invalid; allowed values: (height, width), integers >= 1"
    )


def conv_macs(conv: nn.Conv2d, out_hw: tuple[int, int]) -> int:
    """Dense MACs of ``conv`` producing an output of spatial size ``out_hw``.

    ``H_out * W_out * C_out * (C_in / groups) * k_h * k_w``.
    """
    k_h, k_w = conv.kernel_size
    return out_hw[0] * out_hw[1] * conv.out_channels * (conv.in_channels // conv.groups) * k_h * k_w


@dataclass(frozen=True)
class BlockCost:
    """Static MAC figures of one residual block at one input size (no per-sample information).

    Attributes:
        name: module path, e.g. ``"layer2.0"``.
        in_channels, out_channels: block input / output channels.
        gated_channels: channels the block's gate switches (C_out for BasicBlock, 2*width for
            Bottleneck).
        in_hw: input spatial size.
        out_hw: output spatial size ``(H_b, W_b)``.
        dense_macs: convs of the residual branch plus the shortcut, all channels on.
        downsample_macs: the 1x1 shortcut conv (0 for identity shortcuts); part of ``dense_macs``.
        gate_macs: the gate's 1x1 convs.
        macs_per_active_channel: MACs one gated channel costs when the block is linear in its
            active-channel count (BasicBlock); ``None`` for Bottleneck, whose middle conv costs
            the product of its two active widths.
    """

    name: str
    in_channels: int
    out_channels: int
    gated_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    dense_macs: int
    downsample_macs: int
    gate_macs: int
    macs_per_active_channel: int | None


@dataclass(frozen=True)
class CostTable:
    """Static MAC figures of a whole backbone at one input size.

    Attributes:
        input_hw: the input size ``(H, W)`` the table was measured at.
        stem_macs: stem conv MACs (S).
        blocks: one :class:`BlockCost` per residual block, in forward order.
    """

    input_hw: tuple[int, int]
    stem_macs: int
    blocks: tuple[BlockCost, ...]

    @property
    def dense_macs(self) -> int:
        """F_full: stem plus every block with all channels on (the denominator of r)."""
        return self.stem_macs + sum(b.dense_macs for b in self.blocks)

    @property
    def gate_macs(self) -> int:
        """G: all gates' MACs (240,640 for ResNet-18)."""
        return sum(b.gate_macs for b in self.blocks)

    @property
    def min_ratio(self) -> float:
        """The floor of r: stem, shortcuts and gates are always paid (1.50% on CIFAR R18)."""
        floor = self.stem_macs + self.gate_macs + sum(b.downsample_macs for b in self.blocks)
        return floor / self.dense_macs

    def as_rows(self) -> list[dict[str, object]]:
        """The table as a list of dicts (one per block), e.g. for CSV or markdown output."""
        return [
            {
                "block": b.name,
                "c_in": b.in_channels,
                "c_out": b.out_channels,
                "h_out": b.out_hw[0],
                "w_out": b.out_hw[1],
                "dense_macs": b.dense_macs,
                "macs_per_active_channel": b.macs_per_active_channel,
                "downsample_macs": b.downsample_macs,
                "gate_macs": b.gate_macs,
            }
            for b in self.blocks
        ]


def kept_ratio(total_macs: Tensor, dense_macs: int) -> Tensor:
    """Per-sample kept-MAC ratio r = gated MACs / dense MACs; ``[B] -> [B]``."""
    return total_macs / dense_macs


def flops_reduction(ratio: Tensor) -> Tensor:
    """The paper's "FLOPs R." = 1 - r (higher is cheaper); same shape as ``ratio``."""
    return 1.0 - ratio


MAC_DTYPE = torch.float64
"""MAC bookkeeping runs in float64: totals near 1e9 would lose integer precision in float32."""


@torch.no_grad()
def zeros_pass(module: nn.Module, input_hw: tuple[int, int], run: Callable[[Tensor], T]) -> T:
    """``run(x)`` on one image of zeros ``x [1, 3, H, W]`` with ``module`` in eval mode.

    How the backbones read their static MAC figures off the tensor shapes of a real forward; the
    module's train/eval state and BatchNorm running statistics are left untouched.
    """
    input_hw = check_input_hw("input_hw", input_hw)
    was_training = module.training
    module.eval()
    try:
        param = next(module.parameters())
        return run(torch.zeros(1, 3, *input_hw, device=param.device, dtype=param.dtype))
    finally:
        module.train(was_training)
