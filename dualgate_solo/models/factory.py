"""Named constructors ``dg_resnet18/34/50`` shared by timm, solo-learn and user code.

Names deliberately do not start with ``resnet``: solo-learn patches any backbone named
``resnet*`` (replaces ``conv1`` and ``fc``, reads ``inplanes``), which would break the dual-BN stem.
"""

from __future__ import annotations

from typing import Any

from dualgate_solo.choices import BACKBONE_DEPTHS
from dualgate_solo.models.gated_resnet import GatedResNet
from dualgate_solo.validation import check_choice

#: Backbone name -> depth.


def create_backbone(name: str, **kwargs: Any) -> GatedResNet:
    """A registered gated ResNet by name, e.g. ``create_backbone("dg_resnet18", stem="cifar")``.

    Keyword arguments are those of :class:`GatedResNet` (``stem``, ``branch``, ``dual_bn_scope``,
    ``gate_reduction``, ``gate_tau``, ``width``); an unknown keyword raises
    ``ValueError`` naming it.
    """
    depth = BACKBONE_DEPTHS[check_choice("backbone.name", name, BACKBONE_DEPTHS)]
    allowed = ("stem", "branch", "dual_bn_scope", "gate_reduction", "gate_tau", "width")
    for key in kwargs:
        check_choice("backbone.kwargs key", key, allowed)
    return GatedResNet(depth=depth, **kwargs)
