"""Gated ResNets (dense and gated branch over shared weights), slimmable ResNets, factories."""

from dualgate_solo.gated.blocks import BlockOutput, GatedBasicBlock, GatedBottleneck
from dualgate_solo.gated.resnet import (
    DUAL_BN_SCOPES,
    STEMS,
    BranchOutput,
    DualOutput,
    GatedResNet,
)
from dualgate_solo.models import timm_registry  # noqa: F401  (registers dg_resnet* in timm)
from dualgate_solo.models.factory import BACKBONE_DEPTHS, BACKBONES, create_backbone
from dualgate_solo.slimmable.resnet import SlimResNet, WidthOutput

__all__ = [
    "BACKBONES",
    "BACKBONE_DEPTHS",
    "DUAL_BN_SCOPES",
    "STEMS",
    "BlockOutput",
    "BranchOutput",
    "DualOutput",
    "GatedBasicBlock",
    "GatedBottleneck",
    "GatedResNet",
    "SlimResNet",
    "WidthOutput",
    "create_backbone",
]
