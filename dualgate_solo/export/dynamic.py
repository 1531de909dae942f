"""Dynamic execution of the gated branch at batch size 1: run only the active channels.

Spec §9 "Real speed-up", idea (ii), for VICReg-Dual-Gating (Krishna et al., BMVC 2023): per block,
compute the gate on the block input, gather the active channels' weights and run smaller convs

* BasicBlock: conv1 rows ``W1[idx] : [k, C_in, 3, 3]``, bn1 parameters ``[k]``, conv2 columns
  ``W2[:, idx] : [C_out, k, 3, 3]``;
* Bottleneck: conv1 rows ``[k1, C_in, 1, 1]``, conv2 ``[k2, k1, 3, 3]``, conv3 columns
  ``[C_out, k2, 1, 1]``;

so a switched-off channel costs nothing. Evaluation semantics only (deterministic ``logit >= 0``
gates, BN running statistics of the gated branch), and ``B = 1`` only: for larger batches the
active sets differ per sample (their union is close to everything, related_work.md §C.2).
The result equals ``GatedResNet.forward_branch(x, "gated").feats`` up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualgate_solo.export.exporter import gated_norm
from dualgate_solo.export.plan import check_backbone
from dualgate_solo.export.pruned_resnet import Downsample, PrunedGate
from dualgate_solo.models.blocks import GatedBottleneck
from dualgate_solo.models.gated_resnet import GatedResNet


def _bn_buffers(module: nn.Module, prefix: str, bn: nn.BatchNorm2d) -> None:
    """Register ``bn``'s affine parameters and running statistics as plain buffers ``<prefix>_*``."""
    for key in ("weight", "bias", "running_mean", "running_var"):
        module.register_buffer(f"{prefix}_{key}", getattr(bn, key).detach().clone())
    setattr(module, f"{prefix}_eps", bn.eps)


def _bn(module: nn.Module, prefix: str, x: Tensor, idx: Tensor | None) -> Tensor:
    """Eval-mode BN of ``x [1, k, H, W]`` with the buffered parameters of channels ``idx``."""
    params = [
        getattr(module, f"{prefix}_{k}") for k in ("running_mean", "running_var", "weight", "bias")
    ]
    if idx is not None:
        params = [p.index_select(0, idx) for p in params]
    mean, var, weight, bias = params
    return F.batch_norm(x, mean, var, weight, bias, False, 0.0, getattr(module, f"{prefix}_eps"))


def _bn_of_zeros(module: nn.Module, prefix: str) -> Tensor:
    """BN output ``[C]`` for an all-zero input (the residual when no channel is active)."""
    mean, var, weight, bias = (
        getattr(module, f"{prefix}_{k}") for k in ("running_mean", "running_var", "weight", "bias")
    )
    return bias - mean * weight / torch.sqrt(var + getattr(module, f"{prefix}_eps"))


def _copy_gate(src: nn.Module) -> PrunedGate:
    gate = PrunedGate(src.reduce.in_channels, src.reduce.out_channels, src.expand.out_channels)
    gate.load_state_dict(src.state_dict())
    return gate.eval()


def _copy_downsample(src: nn.Module | None) -> Downsample | None:
    if src is None:
        return None
    dst = Downsample(src.conv.in_channels, src.conv.out_channels, src.conv.stride[0])
    dst.conv.load_state_dict(src.conv.state_dict())
    dst.bn.load_state_dict(gated_norm(src.bn).state_dict())
    return dst


class DynamicBasicBlock(nn.Module):
    """Gathers the active inner channels of a gated BasicBlock per input (``B = 1``)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.register_buffer("w1", block.conv1.weight.detach().clone())  # [C, C_in, 3, 3]
        self.register_buffer("w2", block.conv2.weight.detach().clone())  # [C_out, C, 3, 3]
        self.stride = block.conv1.stride[0]
        _bn_buffers(self, "bn1", gated_norm(block.bn1))
        _bn_buffers(self, "bn2", gated_norm(block.bn2))
        self.gate = _copy_gate(block.gate)
        self.downsample = _copy_downsample(block.downsample)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        idx = torch.nonzero(self.gate(x)[0]).flatten()  # active channels, [k]
        if idx.numel() == 0:
            return torch.relu(shortcut + _bn_of_zeros(self, "bn2")[None, :, None, None])
        a = F.conv2d(x, self.w1.index_select(0, idx), stride=self.stride, padding=1)
        a = torch.relu(_bn(self, "bn1", a, idx))
        y = _bn(self, "bn2", F.conv2d(a, self.w2.index_select(1, idx), padding=1), None)
        return torch.relu(y + shortcut)


class DynamicBottleneck(nn.Module):
    """Gathers the active channels of both inner widths of a gated Bottleneck per input (``B = 1``)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.register_buffer("w1", block.conv1.weight.detach().clone())  # [w, C_in, 1, 1]
        self.register_buffer("w2", block.conv2.weight.detach().clone())  # [w, w, 3, 3]
        self.register_buffer("w3", block.conv3.weight.detach().clone())  # [C_out, w, 1, 1]
        self.width = block.conv1.out_channels
        self.stride = block.conv2.stride[0]
        for name in ("bn1", "bn2", "bn3"):
            _bn_buffers(self, name, gated_norm(getattr(block, name)))
        self.gate = _copy_gate(block.gate)
        self.downsample = _copy_downsample(block.downsample)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        mask = self.gate(x)[0]
        i1 = torch.nonzero(mask[: self.width]).flatten()
        i2 = torch.nonzero(mask[self.width :]).flatten()
        out_hw = shortcut.shape[-2:]
        if i2.numel() == 0:  # conv3 sees only zeros
            return torch.relu(shortcut + _bn_of_zeros(self, "bn3")[None, :, None, None])
        if i1.numel() == 0:  # conv2 sees only zeros: its BN output is a per-channel constant
            b = torch.relu(_bn_of_zeros(self, "bn2").index_select(0, i2))[None, :, None, None]
            b = b.expand(1, i2.numel(), *out_hw)
        else:
            a = torch.relu(_bn(self, "bn1", F.conv2d(x, self.w1.index_select(0, i1)), i1))
            w2 = self.w2.index_select(0, i2).index_select(1, i1)
            b = torch.relu(_bn(self, "bn2", F.conv2d(a, w2, stride=self.stride, padding=1), i2))
        y = _bn(self, "bn3", F.conv2d(b, self.w3.index_select(1, i2)), None)
        return torch.relu(y + shortcut)


class DynamicGatedResNet(nn.Module):
    """The gated branch of a :class:`GatedResNet`, executing only active channels (batch size 1).

    ``forward(x [1, 3, H, W]) -> [1, num_features]``; a batch larger than one raises ``ValueError``.
    Weights are copied at construction (later changes to ``backbone`` are not seen).
    """

    def __init__(self, backbone: GatedResNet):
        super().__init__()
        check_backbone(backbone)
        self.conv1 = nn.Conv2d(
            3,
            backbone.conv1.out_channels,
            backbone.conv1.kernel_size,
            stride=backbone.conv1.stride,
            padding=backbone.conv1.padding,
            bias=False,
        )
        self.conv1.load_state_dict(backbone.conv1.state_dict())
        src_bn = gated_norm(backbone.bn1)
        self.bn1 = nn.BatchNorm2d(src_bn.num_features, eps=src_bn.eps)
        self.bn1.load_state_dict(src_bn.state_dict())
        self.maxpool = nn.Identity() if backbone.stem == "cifar" else nn.MaxPool2d(3, 2, 1)
        self.blocks = nn.ModuleList(
            DynamicBottleneck(b) if isinstance(b, GatedBottleneck) else DynamicBasicBlock(b)
            for _, b in backbone.named_blocks()
        )
        self.num_features = backbone.num_features
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] != 1:
            raise ValueError(
                f"batch size {x.shape[0]} is invalid; allowed values: 1 (dynamic execution gathers one sample's active channels)"
            )
        h = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for block in self.blocks:
            h = block(h)
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
