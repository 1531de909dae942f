"""Reorder a fresh slimmable ResNet's channels so the L1-largest filters form every prefix.

SACL-XD (Meng et al., NeurIPS 2023) slims its host network by keeping, in every layer, the output
channels whose filters have the largest L1 norm at initialisation (its authors' solo-learn fork).
A permutation of a ResNet's hidden channels, applied to every tensor that writes or reads them,
does not change what the network computes; :func:`order_channels_by_l1` permutes each channel
group so that its L1-largest channels come first. The slimmed network ("host times a channel
mask") is then the prefix network of :class:`~dualgate_solo.models.SlimResNet` at the slim width,
which trains and exports (:func:`dualgate_solo.slimmable.export.export_width`, the gather of the
kept channels, done once) like any other width.

Channel groups: the residual stream of each stage (written by the stem or the stage's first
projection shortcut and by every block's last conv, read by the next blocks, shortcuts and the
pooled features) and every block's inner width(s). A group's score is the L1 norm of each output
channel summed over the convs that write it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dualgate_solo.slimmable.resnet import SlimResNet
from dualgate_solo.validation import UsageError


def _l1(conv: nn.Conv2d) -> Tensor:
    return conv.weight.detach().abs().sum(dim=(1, 2, 3))


def _groups(backbone: SlimResNet) -> list[tuple[list[nn.Module], list[nn.Module]]]:
    """``(writers, readers)`` of every channel group; a writer is a conv with its BN, a reader
    a conv whose input channels the group is."""
    groups = []
    stream_writers: list[nn.Module] = [backbone.conv1, backbone.bn1]
    stream_readers: list[nn.Module] = []
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for block in stage:
            convs = [block.conv1, block.conv2] + ([block.conv3] if block.expansion > 1 else [])
            norms = [block.bn1, block.bn2] + ([block.bn3] if block.expansion > 1 else [])
            first_readers = [convs[0]]
            if block.downsample is not None:
                # a projection starts a new stream: close the old one
                first_readers.append(block.downsample.conv)
                groups.append((stream_writers, stream_readers + first_readers))
                stream_writers = [block.downsample.conv, block.downsample.bn]
                stream_readers = []
            else:
                stream_readers.extend(first_readers)
            for conv, norm, reader in zip(convs[:-1], norms[:-1], convs[1:]):
                groups.append(([conv, norm], [reader]))
            stream_writers += [convs[-1], norms[-1]]
    groups.append((stream_writers, stream_readers))
    return groups


@torch.no_grad()
def order_channels_by_l1(backbone: SlimResNet) -> list[Tensor]:
    """Permute every channel group of an untrained ``backbone`` in place, L1-largest first.

    Returns the permutation of each group (``order[i]`` = old index of new channel ``i``), the
    residual stream of the last stage (the pooled features) last.

    Raises:
        UsageError: ``backbone`` has already trained (its per-width BatchNorms hold statistics
            of the old channel order).
    """
    if int(backbone.trained_steps.sum()) > 0:
        raise UsageError(
            "order_channels_by_l1 is invalid on a trained backbone "
            f"(training passes per width: {backbone.trained_steps.tolist()}); allowed values: "
            "a freshly initialised SlimResNet"
        )
    orders = []
    for writers, readers in _groups(backbone):
        convs = [m for m in writers if isinstance(m, nn.Conv2d)]
        order = torch.argsort(sum(_l1(c) for c in convs), descending=True, stable=True)
        for module in writers:
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(module.weight[order])
            else:  # the full width's BN; narrower BNs are still identical at initialisation
                full = module.bns[0]
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(full, name).copy_(getattr(full, name)[order])
        for conv in readers:
            conv.weight.copy_(conv.weight[:, order])
        orders.append(order)
    return orders
