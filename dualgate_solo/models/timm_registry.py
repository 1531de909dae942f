"""Registers ``dg_resnet18/34/50`` and ``slim_resnet18/50`` in timm's model registry.

``timm.create_model(name, ...)`` then builds them.

Imported by :mod:`dualgate_solo.models`; no pretrained weights exist, so ``pretrained=True``
raises ``ValueError``.
"""

from __future__ import annotations

from typing import Any

from timm.models import is_model, register_model

from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.models.factory import create_backbone
from dualgate_solo.slimmable.resnet import SlimResNet

_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _build(name: str, pretrained: bool, kwargs: dict[str, Any]) -> GatedResNet | SlimResNet:
    if pretrained:
        raise ValueError(
            f"pretrained=True is invalid for {name}; "
            "allowed values: False (no weights are published)"
        )
    for key in _TIMM_ONLY:
        kwargs.pop(key, None)
    return create_backbone(name, **kwargs)


def dg_resnet18(pretrained: bool = False, **kwargs: Any) -> GatedResNet:
    """Gated ResNet-18 (BasicBlock [2, 2, 2, 2]) of VICReg-Dual-Gating."""
    return _build("dg_resnet18", pretrained, kwargs)


def dg_resnet34(pretrained: bool = False, **kwargs: Any) -> GatedResNet:
    """Gated ResNet-34 (BasicBlock [3, 4, 6, 3])."""
    return _build("dg_resnet34", pretrained, kwargs)


def dg_resnet50(pretrained: bool = False, **kwargs: Any) -> GatedResNet:
    """Gated ResNet-50 (gated Bottleneck [3, 4, 6, 3]; this package's extension)."""
    return _build("dg_resnet50", pretrained, kwargs)


def slim_resnet18(pretrained: bool = False, **kwargs: Any) -> SlimResNet:
    """Slimmable ResNet-18 (SlimCLR's weight-sharing widths, switchable BN)."""
    return _build("slim_resnet18", pretrained, kwargs)


def slim_resnet50(pretrained: bool = False, **kwargs: Any) -> SlimResNet:
    """Slimmable ResNet-50 (Bottleneck v1.5; SlimCLR's backbone)."""
    return _build("slim_resnet50", pretrained, kwargs)


for _entrypoint in (dg_resnet18, dg_resnet34, dg_resnet50, slim_resnet18, slim_resnet50):
    if not is_model(_entrypoint.__name__):
        register_model(_entrypoint)
