"""One width of a slimmable ResNet as a plain, smaller network (the deployable export).

The width-``w`` sub-network of :class:`~dualgate_solo.models.SlimResNet` is an ordinary ResNet
with ``round(c * w)`` channels wherever the full one has ``c``: :func:`export_width` builds it as
a :class:`~dualgate_solo.export.pruned_resnet.PrunedResNet` (spec ``width = round(width * w)``,
every block at its scaled inner width, no gates) and copies the weight prefixes and the width's
private BatchNorms into it, once. The result needs no code of this package beyond
``pruned_resnet.py`` (``build_pruned_resnet(spec, state_dict)``), runs at exactly the
sub-network's MACs and exports to TorchScript/ONNX like any ResNet.
"""

from __future__ import annotations

import torch
from torch import nn

from dualgate_solo.export.pruned_resnet import SPEC_FORMAT, PrunedResNet, build_pruned_resnet
from dualgate_solo.slimmable.layers import SlimConv2d, SwitchableBatchNorm, scaled_channels
from dualgate_solo.slimmable.resnet import SlimResNet


def width_spec(backbone: SlimResNet, width_mult: float) -> dict:
    """The ``pruned_resnet`` spec of ``backbone``'s width-``width_mult`` network."""
    backbone.width_index(width_mult)  # UsageError for a width not in the list
    blocks = []
    for name, block in backbone.named_blocks():
        inner = scaled_channels(block.planes, width_mult)
        n_inner = 1 if block.expansion == 1 else 2
        blocks.append({"name": name, "widths": [inner] * n_inner, "gated": [0] * n_inner})
    return {
        "format": SPEC_FORMAT,
        "depth": backbone.depth,
        "stem": backbone.stem,
        "width": scaled_channels(backbone.width, width_mult),
        "blocks": blocks,
    }


@torch.no_grad()
def _copy_conv(dst: nn.Conv2d, src: SlimConv2d) -> None:
    rows, cols = dst.weight.shape[:2]
    dst.weight.copy_(src.weight[:rows, :cols])


@torch.no_grad()
def _copy_bn(dst: nn.BatchNorm2d, src: SwitchableBatchNorm, index: int) -> None:
    bn = src.bns[index]
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        getattr(dst, name).copy_(getattr(bn, name))
    dst.eps = bn.eps


def export_width(backbone: SlimResNet, width_mult: float) -> PrunedResNet:
    """``backbone`` at ``width_mult`` as a plain :class:`PrunedResNet` in eval mode.

    Its ``forward(x [B, 3, H, W]) -> [B, num_features(w)]`` equals
    ``backbone.eval().forward_width(x, width_mult).feats``.
    """
    index = backbone.width_index(width_mult)
    plain = build_pruned_resnet(width_spec(backbone, width_mult))
    plain.to(backbone.conv1.weight.device)
    _copy_conv(plain.conv1, backbone.conv1)
    _copy_bn(plain.bn1, backbone.bn1, index)
    for dst, (_, src) in zip(plain.blocks, backbone.named_blocks()):
        names = ("1", "2") if src.expansion == 1 else ("1", "2", "3")
        for n in names:
            _copy_conv(getattr(dst, f"conv{n}"), getattr(src, f"conv{n}"))
            _copy_bn(getattr(dst, f"bn{n}"), getattr(src, f"bn{n}"), index)
        if src.downsample is not None:
            _copy_conv(dst.downsample.conv, src.downsample.conv)
            _copy_bn(dst.downsample.bn, src.downsample.bn, index)
    return plain.eval()
