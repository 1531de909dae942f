"""Load the gated backbone of a trained checkpoint, refusing anything that does not match.

Accepts a solo-learn pre-training checkpoint (Lightning ``.ckpt`` whose ``state_dict`` keys start
with ``backbone.``, with the run's ``args.json`` beside it), a solo-learn run directory, or a plain
backbone state dict (``.pt``/``.pth``) plus the backbone name and the ``stem``/``width`` it was
built with. Loads with ``weights_only=True`` and ``strict=True``. :func:`load_slim_backbone` does
the same for the slimmable ResNet of a SlimCLR / SACL-XD run, which needs the run's ``args.json``.

Every refusal is a :class:`~dualgate_solo.validation.UsageError` of one line that names the
command-line option to change (``--checkpoint``, ``--backbone``, ``--stem``, ``--width``): a file
that is not a checkpoint, a plain state dict without ``--backbone``, a run that never trained
gates, or a backbone built differently from the one the checkpoint holds (the message names the
first differing constructor argument and both values, read off the checkpoint's tensors).
"""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dualgate_solo.checkpoint_path import find_checkpoint, run_args
from dualgate_solo.choices import SLIM_BACKBONE_DEPTHS
from dualgate_solo.method_registry import METHODS, trained_branches
from dualgate_solo.models import BACKBONE_DEPTHS, GatedResNet, SlimResNet, create_backbone
from dualgate_solo.state_guard import read_architecture
from dualgate_solo.validation import UsageError, check_choice

#: stem conv kernel size -> stem name
#: constructor argument -> where a user sets it
OPTIONS = {
    "backbone": "--backbone",
    "stem": "--stem",
    "width": "--width",
    "dual_bn_scope": "backbone.kwargs.dual_bn_scope",
}
NOT_A_CHECKPOINT = "allowed values: a Lightning .ckpt or a state dict saved with torch.save"


@dataclass
class LoadedBackbone:
    """A backbone rebuilt from a checkpoint.

    Attributes:
        backbone: the :class:`GatedResNet` (:func:`load_backbone`) or :class:`SlimResNet`
            (:func:`load_slim_backbone`), weights loaded strictly, in eval mode.
        method: the pre-training method from ``args.json`` (``None`` for plain state dicts).
        args: the run's ``args.json`` content (empty when absent).
        path: the checkpoint file.
    """

    backbone: GatedResNet | SlimResNet
    method: str | None
    path: Path
    args: dict[str, Any] = field(default_factory=dict)


def backbone_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the ``backbone.`` prefix of a Lightning state dict; plain backbone dicts pass as is."""
    prefixed = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return prefixed or state


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The backbone tensors of checkpoint file ``path`` (``weights_only`` load, no code runs).

    Raises:
        UsageError: the file is not a torch checkpoint, holds Python objects a weights-only load
            refuses, or holds no tensors.
    """
    where = f"--checkpoint={str(path)!r}"
    try:
        with warnings.catch_warnings():  # e.g. torch's note on the pickle protocol of the file
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found:
            raise UsageError(
                f"{where} holds a pickled {found.group(1)}, which a weights-only load refuses to "
                f"run, so it is not a state dict or a Lightning checkpoint; {NOT_A_CHECKPOINT}"
            ) from None
        raise UsageError(f"{where} is not a PyTorch checkpoint file; {NOT_A_CHECKPOINT}") from None
    except Exception:  # torch.load fails on foreign bytes with any of a dozen exception types
        raise UsageError(f"{where} is not a PyTorch checkpoint file; {NOT_A_CHECKPOINT}") from None
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state:
        kind = f"a {type(raw).__name__}" if state is None else "no tensors"
        raise UsageError(f"{where} holds {kind}, not a state dict; {NOT_A_CHECKPOINT}")
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and torch.is_tensor(v)}
    if len(tensors) != len(state):
        raise UsageError(
            f"{where} holds a dict of non-tensors, not a state dict; {NOT_A_CHECKPOINT}"
        )
    return backbone_state_dict(tensors)


def _mismatch(
    backbone: GatedResNet,
    name: str,
    state: dict[str, torch.Tensor],
    sources: dict[str, str],
    path: Path,
) -> str | None:
    """One line saying how ``state`` differs from ``backbone``'s own state dict; ``None`` if not."""
    own = backbone.state_dict()
    if own.keys() == state.keys() and all(own[k].shape == state[k].shape for k in own):
        return None
    where = f"checkpoint {str(path)!r}"
    arch = read_architecture(state)
    if arch is None:
        return f"{where} holds no gates, so it is not a gated dg_resnet backbone"
    held = {
        "backbone": arch.name,
        "stem": arch.stem,
        "width": arch.width,
        "dual_bn_scope": arch.dual_bn_scope,
    }
    built = {
        "backbone": name,
        "stem": backbone.stem,
        "width": backbone.conv1.out_channels,
        "dual_bn_scope": "backbone" if backbone.dual_bn_scope == "all" else backbone.dual_bn_scope,
    }
    for key, option in OPTIONS.items():
        if held[key] is not None and held[key] != built[key]:
            return (
                f"{key}={built[key]!r} ({sources.get(key, 'the default')}) does not match {where}, "
                f"which holds {key}={held[key]!r}; allowed values: {option} {held[key]}"
            )
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    return (
        f"{where} does not hold a {name} with kwargs {backbone.extra_repr()}: {len(missing)} "
        f"missing keys (e.g. {missing[:2]}), {len(extra)} unexpected keys (e.g. {extra[:2]}), "
        f"{len(shapes)} shape mismatches (e.g. {sorted(shapes)[:2]})"
    )


def load_backbone(
    checkpoint: str | Path,
    backbone_name: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    require_gates: bool = True,
) -> LoadedBackbone:
    """Rebuild and load the backbone of ``checkpoint``.

    Args:
        checkpoint: a ``.ckpt``/``.pt``/``.pth`` file or a solo-learn run directory.
        backbone_name: ``dg_resnet18/34/50`` (``--backbone``); read from ``args.json`` when
            omitted, and required for a plain state dict without one.
        backbone_kwargs: constructor kwargs (``--stem``, ``--width``) that override
            ``args.json``'s ``backbone.kwargs``. A plain state dict's ``dual_bn_scope``,
            ``gate_mode`` and ``width_choices``, which no option sets, are read off its keys; its
            ``branch`` is ``gated``.
        require_gates: refuse checkpoints whose ``args.json`` names a method that never trained
            the gates (e.g. solo-learn's own ``vicreg``).

    Raises:
        UsageError: one line naming the option, the value and what is allowed (see the module).
    """
    path = find_checkpoint(checkpoint)
    args = run_args(path)
    method = args.get("method")
    if require_gates and method is not None and "gated" not in trained_branches(method):
        gated = ", ".join(repr(m) for m, spec in METHODS.items() if spec.trains_gates)
        raise UsageError(
            f"checkpoint {str(path)!r} was pre-trained with method={method!r}, which never trains "
            f"gates; allowed values: a checkpoint of {gated}"
        )
    state = read_state_dict(path)
    recorded = args.get("backbone") or {}
    if backbone_name is None and recorded.get("name") is None:
        raise UsageError(
            f"--backbone is required: checkpoint {str(path)!r} is a plain state dict with no "
            "args.json beside it (give --stem and --width too unless they are the defaults "
            f"'cifar' and 64); allowed values: {', '.join(BACKBONE_DEPTHS)}"
        )
    if backbone_name is None:
        name = check_choice("backbone.name (args.json)", recorded["name"], BACKBONE_DEPTHS)
    else:
        name = check_choice("--backbone", backbone_name, BACKBONE_DEPTHS)
    given = dict(backbone_kwargs or {})
    kwargs = {**(recorded.get("kwargs") or {}), **given}
    sources = {key: f"args.json backbone.kwargs.{key}" for key in kwargs}
    sources.update({key: OPTIONS.get(key, key) for key in given})
    sources["backbone"] = "--backbone" if backbone_name is not None else "args.json backbone.name"
    if not args:
        arch = read_architecture(state)
        if arch is not None:
            read = {"dual_bn_scope": arch.dual_bn_scope}
            read.update(arch.mode.backbone_kwargs())
            for key, value in read.items():
                kwargs.setdefault(key, value)
                sources.setdefault(key, "read off the checkpoint")
        kwargs.setdefault("branch", "gated")
    backbone = create_backbone(name, **kwargs)
    problem = _mismatch(backbone, name, state, sources, path)
    if problem is not None:
        raise UsageError(problem)
    try:
        backbone.load_state_dict(state, strict=True)
    except ValueError as error:  # the backbone's own guard, e.g. a branch that never trained
        raise UsageError(f"checkpoint {str(path)!r}: {error}") from None
    return LoadedBackbone(backbone.eval(), method, path, args)


def load_slim_backbone(checkpoint: str | Path) -> LoadedBackbone:
    """Rebuild and load the slimmable ResNet of a ``slimclr_vicreg``/``slimclr_mocov3``/
    ``sacl_xd`` run: ``checkpoint`` is its run directory or ``.ckpt``, with the run's
    ``args.json`` beside it (``backbone.name`` ``slim_resnet18/50`` and ``backbone.kwargs``).

    Raises:
        UsageError: one line naming ``--checkpoint``: no checkpoint, no ``args.json``, a run
            that did not train a slimmable backbone, or tensors that do not match its
            ``backbone.kwargs`` (:func:`~dualgate_solo.state_guard.check_slim_load`).
    """
    path = find_checkpoint(checkpoint)
    args = run_args(path)
    method = args.get("method")
    name = (args.get("backbone") or {}).get("name")
    slim = ", ".join(repr(m) for m, spec in METHODS.items() if spec.slimmable)
    if not args:
        raise UsageError(
            f"--checkpoint={str(path)!r} has no args.json beside it, so its slimmable backbone "
            f"is unknown; allowed values: the run directory or .ckpt of a {slim} run"
        )
    if name not in SLIM_BACKBONE_DEPTHS or (method in METHODS and not METHODS[method].slimmable):
        raise UsageError(
            f"--checkpoint={str(path)!r} holds method={method!r} with backbone.name={name!r} "
            f"(args.json), not a slimmable ResNet; allowed values: a checkpoint of {slim} "
            f"({', '.join(SLIM_BACKBONE_DEPTHS)})"
        )
    state = read_state_dict(path)
    backbone = create_backbone(name, **(args["backbone"].get("kwargs") or {}))
    try:
        backbone.load_state_dict(state, strict=True)
    except ValueError as error:  # check_slim_load's UsageError: another width list, width, ...
        raise UsageError(f"--checkpoint={str(path)!r}: {error}") from None
    return LoadedBackbone(backbone.eval(), method, path, args)
