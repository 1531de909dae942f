"""Dynamic execution of the gated branch at batch size 1: run only the active channels.

Real speed-up from per-input gating, for VICReg-Dual-Gating (Krishna et al., BMVC 2023): per
block, compute the gate on the block input, gather the active channels' weights and run smaller
convs

* BasicBlock: conv1 rows ``W1[idx] : [k, C_in, 3, 3]``, bn1 parameters ``[k]``, conv2 columns
  ``W2[:, idx] : [C_out, k, 3, 3]``;
* Bottleneck: conv1 rows ``[k1, C_in, 1, 1]``, conv2 ``[k2, k1, 3, 3]``, conv3 columns
  ``[C_out, k2, 1, 1]``;

so a switched-off channel costs nothing. The weights are those of the full-width, fully gated
:class:`~dualgate_solo.export.pruned_resnet.PrunedResNet` that
:func:`~dualgate_solo.export.weights.copy_to_pruned` fills from the backbone (the gated branch
as a plain network). Evaluation semantics only (deterministic ``logit >= 0`` gates, BN running
statistics of the gated branch), and ``B = 1`` only: for larger batches the active sets differ
per sample (their union is close to everything). The result equals
``GatedResNet.forward_branch(x, "gated").feats`` up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualgate_solo.export.plan import full_width_blocks
from dualgate_solo.export.pruned_resnet import PrunedBasicBlock, PrunedBottleneck
from dualgate_solo.export.weights import copy_to_pruned
from dualgate_solo.models.gated_resnet import GatedResNet


def _bn(bn: nn.BatchNorm2d, x: Tensor, idx: Tensor | None) -> Tensor:
    """Eval-mode BN of ``x [1, k, H, W]`` with ``bn``'s parameters of channels ``idx``."""
    params = [bn.running_mean, bn.running_var, bn.weight, bn.bias]
    if idx is not None:
        params = [p.index_select(0, idx) for p in params]
    mean, var, weight, bias = params
    return F.batch_norm(x, mean, var, weight, bias, False, 0.0, bn.eps)


def _bn_of_zeros(bn: nn.BatchNorm2d) -> Tensor:
    """BN output ``[C]`` for an all-zero input (the residual when no channel is active)."""
    return bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _shortcut(block: nn.Module, x: Tensor) -> Tensor:
    return x if block.downsample is None else block.downsample(x)


def dynamic_basic_block(block: PrunedBasicBlock, x: Tensor) -> Tensor:
    """``block(x)`` for ``x [1, C_in, H, W]``, running only the active inner channels."""
    shortcut = _shortcut(block, x)
    idx = torch.nonzero(block.gate(x)[0]).flatten()  # active channels, [k]
    if idx.numel() == 0:
        return torch.relu(shortcut + _bn_of_zeros(block.bn2)[None, :, None, None])
    w1 = block.conv1.weight.index_select(0, idx)
    a = F.conv2d(x, w1, stride=block.conv1.stride, padding=1)
    a = torch.relu(_bn(block.bn1, a, idx))
    y = F.conv2d(a, block.conv2.weight.index_select(1, idx), padding=1)
    return torch.relu(_bn(block.bn2, y, None) + shortcut)


def dynamic_bottleneck(block: PrunedBottleneck, x: Tensor) -> Tensor:
    """``block(x)`` for ``x [1, C_in, H, W]``, running only the active channels of both inner
    widths."""
    shortcut = _shortcut(block, x)
    mask = block.gate(x)[0]
    i1 = torch.nonzero(mask[: block.g1]).flatten()
    i2 = torch.nonzero(mask[block.g1 :]).flatten()
    if i2.numel() == 0:  # conv3 sees only zeros
        return torch.relu(shortcut + _bn_of_zeros(block.bn3)[None, :, None, None])
    if i1.numel() == 0:  # conv2 sees only zeros: its BN output is a per-channel constant
        b = torch.relu(_bn_of_zeros(block.bn2).index_select(0, i2))[None, :, None, None]
        b = b.expand(1, i2.numel(), *shortcut.shape[-2:])
    else:
        a = F.conv2d(x, block.conv1.weight.index_select(0, i1))
        a = torch.relu(_bn(block.bn1, a, i1))
        w2 = block.conv2.weight.index_select(0, i2).index_select(1, i1)
        b = F.conv2d(a, w2, stride=block.conv2.stride, padding=1)
        b = torch.relu(_bn(block.bn2, b, i2))
    y = _bn(block.bn3, F.conv2d(b, block.conv3.weight.index_select(1, i2)), None)
    return torch.relu(y + shortcut)


class DynamicGatedResNet(nn.Module):
    """The gated branch of a :class:`GatedResNet`, executing only active channels (batch size 1).

    ``forward(x [1, 3, H, W]) -> [1, num_features]``; a batch larger than one raises
    ``ValueError``. Weights are copied at construction into :attr:`network` (later changes to
    ``backbone`` are not seen); ``network(x)`` itself runs the masked gated branch at any batch.
    """

    def __init__(self, backbone: GatedResNet):
        super().__init__()
        self.network = copy_to_pruned(backbone, full_width_blocks(backbone, gated=True), "gated")
        self.num_features = self.network.num_features
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] != 1:
            raise ValueError(
                f"batch size {x.shape[0]} is invalid; allowed values: 1 (dynamic execution "
                "gathers one sample's active channels)"
            )
        net = self.network
        h = net.maxpool(torch.relu(net.bn1(net.conv1(x))))
        for block in net.blocks:
            run = dynamic_bottleneck if isinstance(block, PrunedBottleneck) else dynamic_basic_block
            h = run(block, h)
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
