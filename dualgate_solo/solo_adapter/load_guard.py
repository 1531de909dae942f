"""Make solo-learn's own backbones refuse this package's checkpoints.

``main_linear.py`` loads ``pretrained_feature_extractor`` non-strictly into whatever
``backbone.name`` builds. Given a VICReg-Dual-Gating checkpoint, solo-learn's plain ``resnet18``
would load 22 of its 257 tensors (stem and block convs) and train a probe on a network whose
every block BN and shortcut stays at random initialisation, with exit code 0. The package's own
backbones refuse mismatches themselves (:mod:`dualgate_solo.state_guard`); this module
wraps every other factory of ``BaseMethod._BACKBONES`` so the modules it builds refuse, before
any training, a state dict that :func:`~dualgate_solo.state_guard.read_architecture`
recognises as a gated ResNet's. Other checkpoints load exactly as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, MutableMapping
from functools import partial
from typing import Any

from torch import Tensor, nn

from dualgate_solo.method_registry import METHODS
from dualgate_solo.models import GatedResNet
from dualgate_solo.state_guard import read_architecture, read_slim_architecture
from dualgate_solo.validation import UsageError

_DEFAULT_GATE_REDUCTION = inspect.signature(GatedResNet).parameters["gate_reduction"].default


def refuse_gated_state(
    backbone_name: str, module: nn.Module, state: Mapping[str, Tensor], prefix: str, *_: Any
) -> None:
    """Load-state-dict pre-hook of a non-gated backbone: :class:`UsageError` for a gated state.

    The message names the checkpoint's architecture and trained branches (and the registered
    method that trains exactly those), how many of its tensors ``backbone_name`` would load, and
    the ``backbone`` settings that load all of them.
    """
    slim = read_slim_architecture(state, prefix)
    if slim is not None:
        widths = slim.widths
        raise UsageError(
            f"checkpoint is a slimmable ResNet checkpoint (width_mult_list={widths}); "
            f"backbone.name={backbone_name} would load part of it and leave the rest at random "
            f"initialisation; use backbone.name=slim_resnet<depth> backbone.kwargs.width="
            f"{slim.width} backbone.kwargs.width_mult_list={widths} "
            f"backbone.kwargs.width_mult=<{'|'.join(format(w, 'g') for w in widths)}>"
        )
    given = read_architecture(state, prefix)
    if given is None:
        return
    own = {key: value.shape for key, value in module.state_dict().items()}
    tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    loadable = sum(key in own and own[key] == value.shape for key, value in tensors.items())
    branches = given.trained_branches
    methods = [n for n, spec in METHODS.items() if set(spec.branches) == set(branches)]
    trained = f"trained branches: {', '.join(branches) or 'none'}"
    if methods:
        trained += f", as {' / '.join(methods)} trains"
    settings = {key: value for key, value in given.options().items() if key != "name"}
    if given.gate_reduction == _DEFAULT_GATE_REDUCTION:
        del settings["kwargs.gate_reduction"]
    use = " ".join(f"backbone.{key}={value}" for key, value in settings.items())
    raise UsageError(
        f"checkpoint is a {given.describe()} checkpoint ({trained}); backbone.name="
        f"{backbone_name} would load {loadable} of its {len(tensors)} tensors and leave the rest "
        f"at random initialisation; use backbone.name={given.options()['name']} {use} "
        f"backbone.kwargs.branch=<{'|'.join(branches or ('dense', 'gated'))}>"
    )


class GuardedFactory:
    """A solo-learn backbone factory whose modules refuse gated checkpoints."""

    def __init__(self, name: str, factory: Callable[..., nn.Module]):
        self.name = name
        self.factory = factory

    def __call__(self, method: str | None = None, *args: Any, **kwargs: Any) -> nn.Module:
        module = self.factory(method, *args, **kwargs)
        module.register_load_state_dict_pre_hook(partial(refuse_gated_state, self.name))
        return module

    def __repr__(self) -> str:
        return f"{self.factory!r} (refuses dualgate_solo checkpoints)"


def guard_backbones(
    factories: MutableMapping[str, Callable[..., nn.Module]], own: Collection[str]
) -> None:
    """Wrap every factory of ``factories`` (solo-learn's ``_BACKBONES``) once, in place, except
    those named in ``own`` (the package's backbones, which check checkpoints themselves)."""
    for name, factory in factories.items():
        if name not in own and not isinstance(factory, GuardedFactory):
            factories[name] = GuardedFactory(name, factory)
