"""One idempotent :func:`register` that plugs the methods and backbones into solo-learn 1.0.6.

It mutates solo-learn's own dicts in place (``solo.methods.METHODS`` and the class-level
``BaseMethod._BACKBONES``, which ``main_linear.py`` reads explicitly; contract §2), so every
unchanged script sees ``method: vicreg_dual_gating`` / ``vicreg_gating`` and
``backbone.name: dg_resnet18|34|50``. Safe to call any number of times (Hydra re-runs plugin
modules; the start-up hook and user code may call it too).
"""

from __future__ import annotations

import importlib
from typing import Any

from dualgate_solo.models import BACKBONE_DEPTHS, GatedResNet, create_backbone


class _Factory:
    """solo-learn backbone factory ``fn(method, **backbone.kwargs)`` for one name; ``method`` is unused."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, method: str | None = None, **kwargs: Any) -> GatedResNet:
        return create_backbone(self.name, **kwargs)

    def __repr__(self) -> str:
        return f"dualgate_solo backbone factory {self.name!r}"


def register() -> None:
    """Add ``vicreg_dual_gating``, ``vicreg_gating`` and ``dg_resnet*`` to solo-learn's registries."""
    # sys.modules, not the ``solo.methods`` attribute: the start-up hook runs while ``solo`` itself
    # is still initialising, before the attribute exists.
    methods = importlib.import_module("solo.methods")
    from solo.methods.base import BaseMethod

    from dualgate_solo.solo.custom_pipeline import install_custom_pipeline
    from dualgate_solo.solo.methods import METHOD_CLASSES

    for name, cls in METHOD_CLASSES.items():
        methods.METHODS.setdefault(name, cls)
    for name in BACKBONE_DEPTHS:
        BaseMethod._BACKBONES.setdefault(name, _Factory(name))
    install_custom_pipeline()
