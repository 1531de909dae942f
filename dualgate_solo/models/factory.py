"""Named constructors ``dg_resnet18/34/50`` and ``slim_resnet18/50`` shared by timm, solo-learn
and user code.

Names deliberately do not start with ``resnet``: solo-learn patches any backbone named
``resnet*`` (replaces ``conv1`` and ``fc``, reads ``inplanes``), which would break the dual-BN stem.
"""

from __future__ import annotations

from typing import Any

from dualgate_solo.choices import BACKBONE_DEPTHS, SLIM_BACKBONE_DEPTHS
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.slimmable.resnet import SlimResNet
from dualgate_solo.validation import check_choice

#: every backbone name this package registers -> (class, depth, its keyword arguments)
BACKBONES: dict[str, tuple[type, int, tuple[str, ...]]] = {
    **{
        name: (
            GatedResNet,
            depth,
            (
                "stem",
                "branch",
                "dual_bn_scope",
                "gate_reduction",
                "gate_tau",
                "width",
                "gate_mode",
                "width_choices",
            ),
        )
        for name, depth in BACKBONE_DEPTHS.items()
    },
    **{
        name: (SlimResNet, depth, ("stem", "width", "width_mult_list", "width_mult"))
        for name, depth in SLIM_BACKBONE_DEPTHS.items()
    },
}


def create_backbone(name: str, **kwargs: Any) -> GatedResNet | SlimResNet:
    """A registered backbone by name, e.g. ``create_backbone("dg_resnet18", stem="cifar")``.

    Keyword arguments are those of :class:`GatedResNet` (``dg_resnet*``: ``stem``, ``branch``,
    ``dual_bn_scope``, ``gate_reduction``, ``gate_tau``, ``width``, ``gate_mode``,
    ``width_choices``) or :class:`SlimResNet`
    (``slim_resnet*``: ``stem``, ``width``, ``width_mult_list``, ``width_mult``); an unknown
    keyword raises ``ValueError`` naming it.
    """
    kind, depth, allowed = BACKBONES[check_choice("backbone.name", name, BACKBONES)]
    for key in kwargs:
        check_choice("backbone.kwargs key", key, allowed)
    return kind(depth=depth, **kwargs)
