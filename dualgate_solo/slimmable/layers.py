"""Slimmable layers: weight-sharing prefixes of one full-width layer, and switchable BatchNorm.

Slimmable networks (Yu et al., ICLR 2019), as SlimCLR (Zhao et al., IJCV 2024) uses them: at
width multiplier ``w`` a layer with ``C_out x C_in`` weights runs its first-k prefix
``W[:C_out(w), :C_in(w)]``, so every narrower network is a contiguous prefix of the full one, and
each width keeps a private BatchNorm (its statistics differ with the width). The input width of a
layer is read from its input tensor, so a network only tells each layer its output width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from dualgate_solo.validation import UsageError


def scaled_channels(channels: int, width_mult: float) -> int:
    """``round(channels * width_mult)`` (halves up), at least 1: the channels kept at ``w``."""
    return max(1, math.floor(channels * width_mult + 0.5))


def check_width_list(option: str, widths: object) -> tuple[float, ...]:
    """The width multipliers as a tuple of floats, or ``UsageError`` naming ``option``.

    Allowed: a non-empty list of distinct numbers in (0, 1], strictly decreasing, starting with
    1.0 (the full network, whose parameters all the others share).
    """
    allowed = "a non-empty, strictly decreasing list of numbers in (0, 1] starting with 1.0"
    try:
        values = tuple(float(w) for w in widths)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UsageError(f"{option}={widths!r} is invalid; allowed values: {allowed}") from None
    ok = (
        bool(values)
        and values[0] == 1.0
        and all(0.0 < w <= 1.0 for w in values)
        and all(a > b for a, b in zip(values, values[1:]))
    )
    if not ok:
        raise UsageError(f"{option}={list(widths)!r} is invalid; allowed values: {allowed}")
    return values


def check_width(option: str, width_mult: object, widths: Sequence[float]) -> float:
    """``width_mult`` as a float if it is one of ``widths``, else ``UsageError``."""
    try:
        value = float(width_mult)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if value not in widths:
        names = ", ".join(format(w, "g") for w in widths)
        raise UsageError(f"{option}={width_mult!r} is invalid; allowed values: {names}")
    return value


class SlimConv2d(nn.Conv2d):
    """A ``Conv2d`` that runs the prefix ``weight[:out_channels, :C_in]`` of its full weight.

    ``forward(x [B, C_in, H, W], out_channels) -> [B, out_channels, H', W']`` where ``C_in`` is
    read from ``x`` (at most ``in_channels``). No bias, no groups (ResNet convs).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)

    def forward(self, x: Tensor, out_channels: int | None = None) -> Tensor:  # type: ignore[override]
        rows = self.out_channels if out_channels is None else out_channels
        weight = self.weight[:rows, : x.shape[1]]
        return F.conv2d(x, weight, None, self.stride, self.padding)

    def macs(self, x: Tensor, out: Tensor) -> int:
        """MACs of the call that mapped ``x`` to ``out``: ``H' W' C_out C_in k_h k_w``."""
        k_h, k_w = self.kernel_size
        return out.shape[-2] * out.shape[-1] * out.shape[1] * x.shape[1] * k_h * k_w


class SlimLinear(nn.Linear):
    """A ``Linear`` that runs ``weight[:out_features, :F_in]`` (``F_in`` read from the input).

    ``forward(x [B, F_in], out_features) -> [B, out_features]``; ``bias[:out_features]`` if any.
    """

    def forward(self, x: Tensor, out_features: int | None = None) -> Tensor:  # type: ignore[override]
        rows = self.out_features if out_features is None else out_features
        bias = None if self.bias is None else self.bias[:rows]
        return F.linear(x, self.weight[:rows, : x.shape[1]], bias)


class SwitchableBatchNorm(nn.Module):
    """One private BatchNorm per width: ``bns[i]`` has ``scaled_channels(C, widths[i])`` channels.

    ``forward(x, index)`` normalises ``x [B, C(w_i), ...]`` with ``bns[index]``; training one
    width never touches another width's statistics or affine parameters.

    Args:
        channels: full-width channels.
        widths: the width multipliers (first = 1.0).
        dims: 1 (``BatchNorm1d``, MLP heads) or 2 (``BatchNorm2d``, convs).
        affine: learnable scale and shift (``False`` for MoCo v3's last projector BN).
        scale: ``False`` for a layer whose width does not scale (a head's fixed output): every
            BN then has ``channels`` channels.
    """

    def __init__(
        self,
        channels: int,
        widths: Sequence[float],
        dims: int = 2,
        affine: bool = True,
        scale: bool = True,
    ):
        super().__init__()
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.bns = nn.ModuleList(
            norm(scaled_channels(channels, w) if scale else channels, affine=affine) for w in widths
        )

    def forward(self, x: Tensor, index: int) -> Tensor:
        return self.bns[index](x)
