"""Slimmable ResNet-18/50: every width multiplier of a list runs as a prefix of one network.

SlimCLR (Zhao et al., "Slimmable Networks for Contrastive Self-supervised Learning", IJCV 2024)
backbone: at width multiplier ``w`` every conv uses the first-k prefix of its weights (stem, stage
outputs, the BasicBlock/Bottleneck inner widths and the projection shortcuts all scale by ``w``;
the input keeps its 3 channels) and every BatchNorm is the width's private one. The width-``w``
sub-network is therefore an ordinary ResNet with ``round(c * w)`` channels wherever the full one
has ``c`` (:func:`dualgate_solo.slimmable.export.export_width` builds it as a plain network).

* ``forward(x)`` returns ONE tensor ``[B, num_features]`` at ``self.width_mult``: the contract of
  solo-learn's backbones, linear probe, k-NN and UMAP, so ``backbone.kwargs.width_mult`` selects
  the width the unchanged scripts evaluate.
* ``forward_width(x, w)`` returns :class:`WidthOutput` (features and MACs) at any listed width;
  ``forward_widths(x, widths)`` runs several.

MACs count convolutions only (one multiply-add = one MAC), from the tensor shapes of the forward
pass, as for the gated backbone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dualgate_solo.choices import DEFAULT_WIDTH_MULTS, RESNET_STAGES, SLIM_BACKBONE_DEPTHS, STEMS
from dualgate_solo.flops import zeros_pass
from dualgate_solo.slimmable.layers import (
    SlimConv2d,
    SwitchableBatchNorm,
    check_width,
    check_width_list,
    scaled_channels,
)
from dualgate_solo.state_guard import check_slim_load
from dualgate_solo.stems import stem_layers
from dualgate_solo.validation import check_choice, check_interval
from dualgate_solo.weight_init import init_resnet_weights


class WidthOutput(NamedTuple):
    """One width's pass: ``feats [B, num_features(w)]`` and ``macs`` (per sample, an int)."""

    feats: Tensor
    macs: int
    width_mult: float


class _ConvBN(nn.Module):
    """Slimmable conv followed by its switchable BatchNorm (no activation)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, widths: Sequence[float]):
        super().__init__()
        self.conv = SlimConv2d(c_in, c_out, kernel, stride, kernel // 2)
        self.bn = SwitchableBatchNorm(c_out, widths)

    def forward(self, x: Tensor, index: int, c_out: int) -> tuple[Tensor, int]:
        out = self.conv(x, c_out)
        return self.bn(out, index), self.conv.macs(x, out)


class SlimBasicBlock(nn.Module):
    """BasicBlock: 3x3 conv (stride) - BN - ReLU - 3x3 conv - BN, + shortcut, ReLU.

    ``forward(x [B, C_in(w), H, W], index, w) -> ([B, planes(w), H/s, W/s], MACs)``.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, widths: Sequence[float]):
        super().__init__()
        self.conv1 = SlimConv2d(in_channels, planes, 3, stride, 1)
        self.bn1 = SwitchableBatchNorm(planes, widths)
        self.conv2 = SlimConv2d(planes, planes, 3, 1, 1)
        self.bn2 = SwitchableBatchNorm(planes, widths)
        projection = stride != 1 or in_channels != planes
        self.downsample = _ConvBN(in_channels, planes, 1, stride, widths) if projection else None
        self.planes = planes

    def forward(self, x: Tensor, index: int, width_mult: float) -> tuple[Tensor, int]:
        c = scaled_channels(self.planes, width_mult)
        a = self.conv1(x, c)
        macs = self.conv1.macs(x, a)
        a = torch.relu(self.bn1(a, index))
        y = self.conv2(a, c)
        macs += self.conv2.macs(a, y)
        y = self.bn2(y, index)
        shortcut = x
        if self.downsample is not None:
            shortcut, down_macs = self.downsample(x, index, c)
            macs += down_macs
        return torch.relu(y + shortcut), macs


class SlimBottleneck(nn.Module):
    """Bottleneck v1.5 (stride on the 3x3): 1x1 - 3x3 - 1x1 (x4), + shortcut, ReLU.

    ``forward(x [B, C_in(w), H, W], index, w) -> ([B, 4 planes(w), H/s, W/s], MACs)``.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, widths: Sequence[float]):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = SlimConv2d(in_channels, planes, 1)
        self.bn1 = SwitchableBatchNorm(planes, widths)
        self.conv2 = SlimConv2d(planes, planes, 3, stride, 1)
        self.bn2 = SwitchableBatchNorm(planes, widths)
        self.conv3 = SlimConv2d(planes, out_channels, 1)
        self.bn3 = SwitchableBatchNorm(out_channels, widths)
        projection = stride != 1 or in_channels != out_channels
        self.downsample = (
            _ConvBN(in_channels, out_channels, 1, stride, widths) if projection else None
        )
        self.planes = planes

    def forward(self, x: Tensor, index: int, width_mult: float) -> tuple[Tensor, int]:
        c = scaled_channels(self.planes, width_mult)
        c_out = scaled_channels(self.planes * self.expansion, width_mult)
        a = self.conv1(x, c)
        macs = self.conv1.macs(x, a)
        a = torch.relu(self.bn1(a, index))
        b = self.conv2(a, c)
        macs += self.conv2.macs(a, b)
        b = torch.relu(self.bn2(b, index))
        y = self.conv3(b, c_out)
        macs += self.conv3.macs(b, y)
        y = self.bn3(y, index)
        shortcut = x
        if self.downsample is not None:
            shortcut, down_macs = self.downsample(x, index, c_out)
            macs += down_macs
        return torch.relu(y + shortcut), macs


ARCHITECTURES = {
    depth: ({"basic": SlimBasicBlock, "bottleneck": SlimBottleneck}[kind], counts)
    for depth, (kind, counts) in RESNET_STAGES.items()
    if depth in SLIM_BACKBONE_DEPTHS.values()
}


class SlimResNet(nn.Module):
    """Slimmable ResNet: one set of weights, one network per width multiplier.

    Args:
        depth: 18 (BasicBlock [2, 2, 2, 2]) or 50 (Bottleneck [3, 4, 6, 3]).
        stem: ``"cifar"`` (3x3/1 conv, padding 2, no max-pool) or ``"imagenet"`` (7x7/2 + pool).
        width: channels of the stem and stage 1 of the FULL network; stages have
            ``width * (1, 2, 4, 8)`` planes (64 = the standard ResNet).
        width_mult_list: the widths trained and kept, strictly decreasing from 1.0 (SlimCLR:
            ``[1.0, 0.75, 0.5, 0.25]``); one BatchNorm per width in every norm layer.
        width_mult: the width ``forward(x)`` runs (one of ``width_mult_list``).

    Attributes:
        num_features: feature width of ``forward(x)`` (at ``width_mult``);
            :meth:`features_at` gives any width's.
        trained_steps: buffer ``[len(width_mult_list)]`` counting training passes per width, so
            loading can refuse to evaluate a width that never trained.
        width_mults: buffer, the width list, checked when a state dict is loaded.
    """

    def __init__(
        self,
        depth: int = 18,
        stem: str = "cifar",
        width: int = 64,
        width_mult_list: Sequence[float] = DEFAULT_WIDTH_MULTS,
        width_mult: float = 1.0,
    ):
        super().__init__()
        check_interval("width", width, 1, float("inf"))
        block_type, counts = ARCHITECTURES[check_choice("depth", depth, ARCHITECTURES)]
        self.depth = depth
        self.stem = check_choice("stem", stem, STEMS)
        self.widths = check_width_list("width_mult_list", width_mult_list)
        self.width_mult = check_width("width_mult", width_mult, self.widths)
        self.width = width

        conv, self.maxpool = stem_layers(stem, width)
        self.conv1 = SlimConv2d(3, width, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        self.bn1 = SwitchableBatchNorm(width, self.widths)
        channels = width
        stages = []
        for stage, n_blocks in enumerate(counts):
            planes = width * 2**stage
            blocks = []
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block_type(channels, planes, stride, self.widths))
                channels = planes * block_type.expansion
            stages.append(nn.ModuleList(blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.full_features = channels
        self.register_buffer("trained_steps", torch.zeros(len(self.widths), dtype=torch.long))
        self.register_buffer("width_mults", torch.tensor(self.widths, dtype=torch.float64))
        init_resnet_weights(self)  # every width's BN (1, 0), as in the gated backbone
        self.register_load_state_dict_pre_hook(SlimResNet._check_checkpoint)

    # ------------------------------------------------------------------ widths
    @property
    def num_features(self) -> int:
        """Feature width at ``width_mult`` (solo-learn sizes its heads from it)."""
        return self.features_at(self.width_mult)

    def features_at(self, width_mult: float) -> int:
        """Pooled feature width of the width-``width_mult`` network."""
        return scaled_channels(self.full_features, width_mult)

    def width_index(self, width_mult: float) -> int:
        """Position of ``width_mult`` in ``width_mult_list`` (its BatchNorm); ``UsageError``
        for a width not in the list."""
        return self.widths.index(check_width("width_mult", width_mult, self.widths))

    def named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        """``("layer<s>.<i>", block)`` for every residual block, in forward order."""
        for s, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            for i, block in enumerate(stage):
                yield f"layer{s}.{i}", block

    # ------------------------------------------------------------------ forward
    def forward_width(self, x: Tensor, width_mult: float) -> WidthOutput:
        """The width-``width_mult`` network on ``x [B, 3, H, W]`` (any H, W)."""
        index = self.width_index(width_mult)
        if self.training and torch.is_grad_enabled():
            self.trained_steps[index] += 1
        h = self.conv1(x, scaled_channels(self.width, width_mult))
        macs = self.conv1.macs(x, h)
        h = self.maxpool(torch.relu(self.bn1(h, index)))
        for _, block in self.named_blocks():
            h, block_macs = block(h, index, width_mult)
            macs += block_macs
        feats = torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1)
        return WidthOutput(feats, macs, self.widths[index])

    def forward_widths(self, x: Tensor, widths: Sequence[float] | None = None) -> list[WidthOutput]:
        """Several widths on the same images (default: every width, full first)."""
        return [self.forward_width(x, w) for w in (self.widths if widths is None else widths)]

    def forward(self, x: Tensor) -> Tensor:
        """Features ``[B, num_features]`` at ``width_mult``: the solo-learn backbone contract."""
        return self.forward_width(x, self.width_mult).feats

    def macs_at(self, width_mult: float, input_hw: tuple[int, int]) -> int:
        """Per-image MACs of the width-``width_mult`` network at ``input_hw`` (one eval pass on
        zeros, :func:`~dualgate_solo.flops.zeros_pass`; train/eval state and BN statistics
        untouched)."""
        return zeros_pass(self, input_hw, lambda x: self.forward_width(x, width_mult).macs)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _check_checkpoint(
        module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors
    ) -> None:
        """Load-state-dict pre-hook: :func:`~dualgate_solo.state_guard.check_slim_load`."""
        check_slim_load(module, state_dict, prefix)

    def extra_repr(self) -> str:
        return (
            f"depth={self.depth}, stem={self.stem!r}, width={self.width}, "
            f"width_mult_list={list(self.widths)}, width_mult={self.width_mult:g}"
        )
