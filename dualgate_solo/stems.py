"""ResNet input stems shared by the gated backbone and the exported plain network (torch only)."""

from __future__ import annotations

from torch import nn


def stem_layers(stem: str, width: int) -> tuple[nn.Conv2d, nn.Module]:
    """``(conv1, maxpool)`` of a ResNet stem with ``width`` output channels (no BN/ReLU)."""
    if stem == "cifar":
        return nn.Conv2d(3, width, kernel_size=3, stride=1, padding=2, bias=False), nn.Identity()
    return nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False), nn.MaxPool2d(
        kernel_size=3, stride=2, padding=1
    )
