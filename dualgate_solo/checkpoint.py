"""Load the gated backbone of a trained checkpoint, refusing anything that does not match.

Accepts a solo-learn pre-training checkpoint (Lightning ``.ckpt`` whose ``state_dict`` keys start
with ``backbone.``, with the run's ``args.json`` beside it), a solo-learn run directory, or a plain
backbone state dict (``.pt``/``.pth``) plus explicit backbone name and kwargs. Loads with
``weights_only=True`` and ``strict=True``: a checkpoint of another architecture, or a run that
never trained gates, raises ``ValueError`` instead of silently giving random weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dualgate_solo.models import BACKBONE_DEPTHS, GatedResNet, create_backbone

#: Methods whose checkpoints have trained gates.
GATED_METHODS = ("vicreg_dual_gating", "vicreg_gating")
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


@dataclass
class LoadedBackbone:
    """A backbone rebuilt from a checkpoint.

    Attributes:
        backbone: the :class:`GatedResNet`, weights loaded strictly, in eval mode.
        method: the pre-training method from ``args.json`` (``None`` for plain state dicts).
        args: the run's ``args.json`` content (empty when absent).
        path: the checkpoint file.
    """

    backbone: GatedResNet
    method: str | None
    path: Path
    args: dict[str, Any] = field(default_factory=dict)


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint file for ``path``: the file itself, or the single newest ``*.ckpt`` of a run dir."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise ValueError(f"checkpoint={str(path)!r} is a directory without any *.ckpt file")
        return candidates[-1]
    if not path.is_file():
        raise ValueError(f"checkpoint={str(path)!r} does not exist")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(
            f"checkpoint={str(path)!r} is invalid; allowed values: a file ending in {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    return path


def backbone_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the ``backbone.`` prefix of a Lightning state dict; plain backbone dicts pass through."""
    prefixed = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return prefixed or state


def load_backbone(
    checkpoint: str | Path,
    backbone_name: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    require_gates: bool = True,
) -> LoadedBackbone:
    """Rebuild and load the backbone of ``checkpoint``.

    Args:
        checkpoint: a ``.ckpt``/``.pt``/``.pth`` file or a solo-learn run directory.
        backbone_name: ``dg_resnet18/34/50``; read from ``args.json`` when omitted.
        backbone_kwargs: constructor kwargs; ``args.json``'s ``backbone.kwargs`` when omitted.
        require_gates: refuse checkpoints whose ``args.json`` names a method that never trained
            the gates (e.g. solo-learn's own ``vicreg``).
    """
    path = find_checkpoint(checkpoint)
    args_file = path.parent / "args.json"
    args = json.loads(args_file.read_text()) if args_file.is_file() else {}
    method = args.get("method")
    if require_gates and method is not None and method not in GATED_METHODS:
        raise ValueError(
            f"checkpoint {str(path)!r} was pre-trained with method={method!r}, which never trains gates; "
            f"allowed values: {', '.join(repr(m) for m in GATED_METHODS)}"
        )
    name = backbone_name or args.get("backbone", {}).get("name")
    if name not in BACKBONE_DEPTHS:
        raise ValueError(
            f"backbone.name={name!r} (checkpoint {str(path)!r}) is invalid; allowed values: "
            f"{', '.join(repr(n) for n in BACKBONE_DEPTHS)}"
        )
    kwargs = (
        dict(args.get("backbone", {}).get("kwargs") or {})
        if backbone_kwargs is None
        else dict(backbone_kwargs)
    )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = backbone_state_dict(raw.get("state_dict", raw))
    backbone = create_backbone(name, **kwargs)
    try:
        backbone.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"checkpoint {str(path)!r} does not hold a {name} with kwargs {kwargs}: {error}"
        ) from error
    return LoadedBackbone(backbone.eval(), method, path, args)
