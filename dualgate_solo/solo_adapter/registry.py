"""One idempotent :func:`register` that plugs the package into solo-learn 1.0.6.

It mutates solo-learn's own registries in place (``solo.methods.METHODS`` and the class-level
``BaseMethod._BACKBONES``, which ``main_linear.py`` reads explicitly), so every unchanged script
sees each method of :data:`dualgate_solo.method_registry.METHODS` and ``backbone.name:
dg_resnet18|34|50|slim_resnet18|50``. It also guards solo-learn's own backbones against this
package's checkpoints (:mod:`~dualgate_solo.solo_adapter.load_guard`), completes every run's cfg
(:mod:`~dualgate_solo.solo_adapter.run_cfg`) and installs the custom-data pipeline choice
(:mod:`~dualgate_solo.solo_adapter.custom_pipeline`). Safe to call any number of times (Hydra
re-runs plugin modules; the start-up hook and user code may call it too).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterable
from typing import Any

from dualgate_solo.method_registry import METHODS
from dualgate_solo.models import BACKBONES, GatedResNet, SlimResNet, create_backbone
from dualgate_solo.validation import UsageError


def qualify(message: str, names: Iterable[str], given: Collection[str]) -> str:
    """A constructor's message in the cfg's terms: each keyword ``<name>=`` of ``names`` becomes
    ``backbone.kwargs.<name>=`` (``+backbone.kwargs.<name>=`` after ``set`` when the cfg lacks the
    key ``given`` lists, since Hydra refuses to override an absent key)."""
    pattern = re.compile(rf"(set )?(?<![\w.+])({'|'.join(map(re.escape, names))})=")

    def full_path(match: re.Match) -> str:
        plus = "+" if match.group(1) and match.group(2) not in given else ""
        return f"{match.group(1) or ''}{plus}backbone.kwargs.{match.group(2)}="

    return pattern.sub(full_path, message)


class _Factory:
    """solo-learn backbone factory ``fn(method, **backbone.kwargs)``; ``method`` is unused.

    A bad keyword value is refused with the cfg's key path (:func:`qualify`); the module records
    the keys it was given in ``config_kwargs``, so a later checkpoint mismatch suggests ``+``
    for the absent ones (:func:`dualgate_solo.state_guard.setting`).
    """

    def __init__(self, name: str):
        self.name = name

    def __call__(self, method: str | None = None, **kwargs: Any) -> GatedResNet | SlimResNet:
        try:
            backbone = create_backbone(self.name, **kwargs)
        except UsageError as error:
            raise UsageError(qualify(str(error), BACKBONES[self.name][2], kwargs)) from None
        backbone.config_kwargs = frozenset(kwargs)
        return backbone

    def __repr__(self) -> str:
        return f"dualgate_solo backbone factory {self.name!r}"


def register() -> None:
    """Add every registered method, ``dg_resnet*`` and ``slim_resnet*`` to solo-learn's
    registries."""
    # sys.modules, not the ``solo.methods`` attribute: the start-up hook runs while ``solo`` itself
    # is still initialising, before the attribute exists.
    methods = importlib.import_module("solo.methods")
    from solo.methods.base import BaseMethod

    from dualgate_solo.solo_adapter.custom_pipeline import install_custom_pipeline
    from dualgate_solo.solo_adapter.load_guard import guard_backbones
    from dualgate_solo.solo_adapter.run_cfg import install as install_run_cfg

    ours = {name: spec.solo_class_object() for name, spec in METHODS.items()}
    for name, cls in ours.items():  # all checked before any is added: nothing half-registered
        theirs = methods.METHODS.get(name, cls)
        if theirs is not cls:
            raise UsageError(
                f"method {name!r} is already registered in solo-learn by "
                f"{theirs.__module__}.{theirs.__qualname__}; allowed: method names solo-learn "
                f"does not have (dualgate-solo would register {METHODS[name].solo_class})"
            )
    methods.METHODS.update(ours)
    guard_backbones(BaseMethod._BACKBONES, own=BACKBONES)
    for name in BACKBONES:
        BaseMethod._BACKBONES.setdefault(name, _Factory(name))
    install_run_cfg()
    install_custom_pipeline()
