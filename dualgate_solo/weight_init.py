"""The weight initialisation every backbone of the package shares."""

from __future__ import annotations

from torch import nn


def init_resnet_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) for every conv (gates included); every BatchNorm (1, 0)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
