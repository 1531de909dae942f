"""Read a gated ResNet's architecture off its state dict, and refuse loads that do not fit.

solo-learn loads checkpoints non-strictly (``main_linear.py``, ``load_from_checkpoint``), so a
mismatch would silently keep random weights, and a shape mismatch ends in torch's list of every
differing tensor. :func:`read_architecture` recovers the constructor options a state dict was
saved with (depth, stem, width, ``dual_bn_scope``, ``gate_reduction``, ``gate_mode`` and
``width_choices``, trained branches), so a mismatch can be reported as one line naming the option
and the value to set. The gate mode is read off the ``gate_width_choices`` buffer that only a
``width``-mode network saves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from dualgate_solo.choices import BACKBONE_DEPTHS, RESNET_STAGES
from dualgate_solo.gated.layers import BRANCHES, CHANNEL_GATES, GateMode
from dualgate_solo.validation import UsageError

_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.")


@dataclass(frozen=True)
class GatedArchitecture:
    """The options of the gated ResNet that saved a state dict.

    Attributes:
        name: ``dg_resnet18/34/50``; ``None`` for a block layout of no registered depth.
        stem: ``cifar`` (3x3 first conv) or ``imagenet`` (7x7).
        width: channels of the first conv (``width`` of :class:`GatedResNet`).
        dual_bn_scope: ``none``, ``block`` or ``backbone`` (``all`` differs from ``backbone``
            only in the projector, which is not part of the backbone's state).
        gate_reduction: ``C_in // hidden`` of the widest gate.
        trained_steps: training passes per branch, in :data:`BRANCHES` order.
        mode: the gate mode (:class:`~dualgate_solo.gated.layers.GateMode`).
    """

    name: str | None
    stem: str
    width: int
    dual_bn_scope: str
    gate_reduction: int
    trained_steps: tuple[int, ...]
    mode: GateMode = CHANNEL_GATES

    @property
    def trained_branches(self) -> tuple[str, ...]:
        return tuple(b for b, n in zip(BRANCHES, self.trained_steps) if n > 0)

    def options(self) -> dict[str, object]:
        """``backbone.<key>`` -> value, the settings that rebuild this architecture (the gate
        mode only in ``width`` mode: ``channel`` is the default)."""
        options: dict[str, object] = {
            "name": self.name or "dg_resnet<depth>",
            "kwargs.stem": self.stem,
            "kwargs.width": self.width,
            "kwargs.dual_bn_scope": self.dual_bn_scope,
            "kwargs.gate_reduction": self.gate_reduction,
        }
        if self.mode.routed:
            options["kwargs.gate_mode"] = self.mode.name
            options["kwargs.width_choices"] = _choices_text(self.mode.width_choices)
        return options

    def describe(self) -> str:
        choices = self.mode.width_choices
        gates = f", gate_mode='width', width_choices={_choices_text(choices)}" if choices else ""
        return (
            f"{self.name or 'gated ResNet of unregistered depth'} (stem={self.stem!r}, "
            f"width={self.width}, dual_bn_scope={self.dual_bn_scope!r}{gates})"
        )


def _choices_text(choices: tuple[float, ...] | None) -> str:
    """``[0.25,0.5,1.0]``: a list a Hydra override accepts as one argument."""
    return "[" + ",".join(repr(float(w)) for w in choices or ()) + "]"


def _stem(conv1: Tensor) -> str:
    """The stem whose first conv has this weight: a 3x3 kernel is ``cifar``, 7x7 ``imagenet``."""
    return "cifar" if conv1.shape[-1] == 3 else "imagenet"


@dataclass(frozen=True)
class SlimArchitecture:
    """The options of the slimmable ResNet that saved a state dict: ``width_mult_list``,
    ``width`` (channels of the first conv) and ``stem``."""

    widths: list[float]
    width: int
    stem: str


def read_slim_architecture(
    state: Mapping[str, Tensor], prefix: str = ""
) -> SlimArchitecture | None:
    """The slimmable ResNet whose keys start with ``prefix``; ``None`` if the state holds none
    (only a slimmable ResNet saves ``width_mults``)."""
    if prefix + "width_mults" not in state:
        return None
    conv1 = state[prefix + "conv1.weight"]
    widths = [round(float(w), 6) for w in state[prefix + "width_mults"].tolist()]
    return SlimArchitecture(widths, int(conv1.shape[0]), _stem(conv1))


def _depth_name(bottleneck: bool, counts: tuple[int, ...]) -> str | None:
    for name, depth in BACKBONE_DEPTHS.items():
        kind, depth_counts = RESNET_STAGES[depth]
        if depth_counts == counts and (kind == "bottleneck") == bottleneck:
            return name
    return None


def read_architecture(state: Mapping[str, Tensor], prefix: str = "") -> GatedArchitecture | None:
    """The architecture of the gated ResNet whose keys start with ``prefix``; ``None`` if none.

    A state dict counts as a gated ResNet's when it holds ``trained_steps``, ``conv1.weight`` and
    a gate in every block; nothing else saves ``trained_steps``.
    """
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    blocks = sorted(
        {m.group(0)[:-1] for k in own if (m := _BLOCK.match(k))},
        key=lambda b: tuple(int(x) for x in b[len("layer") :].split(".")),
    )
    gates = [own.get(f"{b}.gate.reduce.weight") for b in blocks]
    if "trained_steps" not in own or "conv1.weight" not in own or not blocks or None in gates:
        return None
    counts = tuple(sum(b.startswith(f"layer{s}.") for b in blocks) for s in range(1, 5))
    bottleneck = any(k.startswith(f"{blocks[0]}.conv3.") for k in own)
    conv1 = own["conv1.weight"]
    widest = max(gates, key=lambda w: w.shape[1])
    if "bn1.dense.weight" in own:
        scope = "backbone"
    elif f"{blocks[0]}.bn1.dense.weight" in own:
        scope = "block"
    else:
        scope = "none"
    choices = own.get("gate_width_choices")
    return GatedArchitecture(
        name=_depth_name(bottleneck, counts),
        stem=_stem(conv1),
        width=int(conv1.shape[0]),
        dual_bn_scope=scope,
        gate_reduction=int(widest.shape[1] // widest.shape[0]),
        trained_steps=tuple(int(n) for n in own["trained_steps"].tolist()),
        mode=CHANNEL_GATES
        if choices is None
        else GateMode("width", tuple(round(float(w), 6) for w in choices)),
    )


def setting(module: nn.Module, key: str, value: object) -> str:
    """``backbone.<key>=<value>``, a Hydra override to paste; ``+backbone.kwargs.<name>=...``
    when the run's cfg has no such key (Hydra refuses to override an absent key). solo-learn's
    factory records the ``backbone.kwargs`` a module was built from in ``module.config_kwargs``;
    without it (a module built in Python) no ``+`` is added."""
    given = getattr(module, "config_kwargs", None)
    absent = given is not None and key.startswith("kwargs.") and key[len("kwargs.") :] not in given
    return f"{'+' if absent else ''}backbone.{key}={value}"


def _shapes(state: Mapping[str, Tensor], prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix) :]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}


def _key_differences(
    own: dict[str, tuple[int, ...]], given: dict[str, tuple[int, ...]], prefix: str
) -> str:
    lacking = sorted(prefix + k for k in own.keys() - given.keys())
    extra = sorted(prefix + k for k in given.keys() - own.keys())
    reshaped = sorted(prefix + k for k in own.keys() & given.keys() if own[k] != given[k])
    return (
        f"{len(lacking)} of its {len(own)} keys are missing (e.g. {lacking[:3]}), {len(extra)} "
        f"are unexpected (e.g. {extra[:3]}) and {len(reshaped)} have another shape "
        f"(e.g. {reshaped[:3]})"
    )


def _not_a(
    backbone: str, kind: str, own: dict[str, tuple[int, ...]], given: dict[str, tuple[int, ...]]
) -> UsageError:
    """The error for a state dict that holds no network of ``kind`` at all."""
    lacking = sorted(set(own) - set(given))
    return UsageError(
        f"checkpoint does not match the backbone {backbone}: it holds no {kind} "
        f"({len(lacking)} of the backbone's {len(own)} tensors are missing, e.g. "
        f"{lacking[:3]}); set backbone.name and backbone.kwargs to the network it was "
        "pre-trained with"
    )


def _fix(
    settings: list[str],
    own: dict[str, tuple[int, ...]],
    given: dict[str, tuple[int, ...]],
    prefix: str,
) -> str:
    """``set <settings>`` when options explain a mismatch, else which keys differ."""
    return f"set {' '.join(settings)}" if settings else _key_differences(own, given, prefix)


def check_gated_load(module: nn.Module, state: Mapping[str, Tensor], prefix: str) -> None:
    """Refuse to load ``state`` (keys under ``prefix``) into the gated ResNet ``module``.

    Raises:
        UsageError: ``state`` is not a gated ResNet's; it was saved in the other gate mode (the
            message names both); its architecture differs (the message names each
            ``backbone.name``/``backbone.kwargs`` value to set); or ``module.branch`` never ran
            in training while the other branch did.
    """
    own_shapes, given_shapes = _shapes(module.state_dict(), ""), _shapes(state, prefix)
    own = read_architecture(module.state_dict())
    given = read_architecture(state, prefix)
    if given is None:
        raise _not_a(own.describe(), "gated ResNet", own_shapes, given_shapes)
    if given.mode.name != own.mode.name:
        gate_keys = ("kwargs.gate_mode", "kwargs.width_choices")
        fix = " ".join(
            setting(module, key, value)
            for key, value in given.options().items()
            if key in gate_keys
        ) or setting(module, "kwargs.gate_mode", "channel")
        raise UsageError(
            f"checkpoint does not match the backbone: the checkpoint was trained with "
            f"backbone.kwargs.gate_mode={given.mode.name!r}, the backbone is built with "
            f"backbone.kwargs.gate_mode={own.mode.name!r}; set {fix}"
        )
    wanted, have = given.options(), own.options()
    settings = [setting(module, key, wanted[key]) for key in wanted if wanted[key] != have[key]]
    if own_shapes != given_shapes or settings:
        detail = _fix(settings, own_shapes, given_shapes, prefix)
        raise UsageError(
            f"checkpoint does not match the backbone: the checkpoint holds a {given.describe()}, "
            f"the backbone is a {own.describe()}; {detail}"
        )
    branch = module.branch
    if sum(given.trained_steps) > 0 and branch not in given.trained_branches:
        steps = dict(zip(BRANCHES, given.trained_steps))
        raise UsageError(
            f"backbone.kwargs.branch={branch!r} was never trained in this checkpoint "
            f"(training passes: {steps}); allowed values: {', '.join(given.trained_branches)}"
        )


def check_slim_load(module: nn.Module, state: Mapping[str, Tensor], prefix: str) -> None:
    """Refuse to load ``state`` (keys under ``prefix``) into the slimmable ResNet ``module``.

    Keys the module does not have are ignored, as a non-strict load ignores them (solo-learn's
    ``main_linear.py`` also hands over a momentum encoder's keys, renamed ``momentum_*``).

    Raises:
        UsageError: ``state`` is not a slimmable ResNet's; it was saved with another width list,
            ``width``, stem or depth (the message names the ``backbone.kwargs`` value to set); or
            ``module.width_mult`` never ran in training while other widths did.
    """
    own_shapes = _shapes(module.state_dict(), "")
    given_shapes = {k: v for k, v in _shapes(state, prefix).items() if k in own_shapes}
    given = read_slim_architecture(state, prefix)
    if given is None:
        raise _not_a(f"slim_resnet{module.depth}", "slimmable ResNet", own_shapes, given_shapes)
    widths = given.widths
    if widths != list(module.widths):
        raise UsageError(
            f"backbone.kwargs.width_mult_list={list(module.widths)} does not match the "
            f"checkpoint, which holds {widths}; allowed values: {widths}"
        )
    if own_shapes != given_shapes:
        wanted = {"width": given.width, "stem": given.stem}
        have = {"width": module.width, "stem": module.stem}
        settings = [setting(module, f"kwargs.{k}", v) for k, v in wanted.items() if v != have[k]]
        detail = _fix(settings, own_shapes, given_shapes, prefix)
        raise UsageError(
            f"checkpoint does not match the backbone slim_resnet{module.depth} "
            f"(width={module.width}, stem={module.stem!r}); {detail}"
        )
    steps = [int(n) for n in state[prefix + "trained_steps"].tolist()]
    trained = [w for w, n in zip(widths, steps) if n > 0]
    if trained and module.width_mult not in trained:
        raise UsageError(
            f"backbone.kwargs.width_mult={module.width_mult:g} was never trained in this "
            f"checkpoint (training passes per width: {dict(zip(widths, steps))}); allowed values: "
            f"{', '.join(format(w, 'g') for w in trained)}"
        )
