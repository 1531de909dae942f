"""Option groups and value checks shared by the sub-commands (torch-free: ``--help`` stays fast).

Every command that reads a checkpoint defines ``--checkpoint --backbone --stem --width`` through
:func:`add_checkpoint_options` and ``--dataset --data`` through :func:`add_data_options`, so the
options are spelled, checked and documented identically everywhere. Numeric options use the
argparse types below, which refuse a bad value while the command line is parsed, before anything
is read or written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dualgate_solo.choices import BACKBONE_DEPTHS, DATASETS, STEMS
from dualgate_solo.output_dir import check_output as check_output  # bench.latency uses it
from dualgate_solo.validation import UsageError


def user_path(text: str) -> Path:
    """An argparse ``type`` for paths: ``~`` expanded (in ``--out=~/x`` no shell expands it)."""
    return Path(text).expanduser()


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is invalid; allowed values: an integer >= {minimum}"
            )
        return value

    return parse


def fraction(text: str) -> float:
    """An argparse ``type``: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed values: a number in [0, 1]")
    return value


def add_architecture_options(parser: argparse.ArgumentParser, *, from_checkpoint: bool) -> None:
    """``--backbone --stem --width``.

    ``from_checkpoint``: the options describe a checkpoint's backbone, default to its
    ``args.json`` and are needed only for a plain state dict; otherwise they build a fresh
    backbone and default to ResNet-18, CIFAR stem, width 64.
    """
    group = parser.add_argument_group("backbone")
    group.add_argument(
        "--backbone",
        choices=tuple(BACKBONE_DEPTHS),
        default=None if from_checkpoint else "dg_resnet18",
        help="gated ResNet"
        + (
            " (default: the run's args.json; a plain state dict needs it)"
            if from_checkpoint
            else ""
        ),
    )
    group.add_argument(
        "--stem",
        choices=STEMS,
        default=None if from_checkpoint else "cifar",
        help="cifar: 3x3/1 conv, no max-pool; imagenet: 7x7/2 conv + max-pool"
        + (" (default: the run's args.json, else cifar)" if from_checkpoint else ""),
    )
    group.add_argument(
        "--width",
        type=integer(1),
        default=None if from_checkpoint else 64,
        help="channels of the stem and of stage 1; the paper: 64"
        + (" (default: the run's args.json, else 64)" if from_checkpoint else ""),
    )


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` and the architecture options describing it."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=user_path,
        help="a solo-learn run directory (args.json + *.ckpt), a .ckpt file, or a plain backbone "
        "state dict (.pt/.pth; then give --backbone and --dataset)",
    )
    add_architecture_options(parser, from_checkpoint=True)


def add_data_options(parser: argparse.ArgumentParser, *, data_default: str | None = None) -> None:
    """``--dataset`` (the evaluation transform, hence the input size) and ``--data``.

    ``data_default``: what the command uses when ``--data`` is not given; ``None`` makes
    ``--data`` required.
    """
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="evaluation transform and input size: cifar*: 32 px, stl10: 96 px, imagenet*/custom: "
        "224 px (default: from the run's args.json; needed for a plain state dict)",
    )
    group.add_argument(
        "--data",
        type=user_path,
        required=data_default is None,
        default=None,
        help="ImageFolder split (one sub-folder per class), e.g. cifar10_jpg/test"
        + (f" (default: {data_default})" if data_default else ""),
    )
    add_skip_unreadable_option(group)


def add_skip_unreadable_option(group: Any) -> None:
    """``--skip-unreadable``: leave out images that cannot be decoded (else they are refused)."""
    group.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files of the split that are not readable images and say how many "
        "(default: refuse the split, naming the first such file)",
    )


def add_output_options(parser: argparse.ArgumentParser, default: str, help_text: str) -> None:
    """``--out`` (``~`` expanded) and ``--overwrite``; see :mod:`dualgate_solo.output_dir`."""
    parser.add_argument("--out", type=user_path, default=Path(default), help=help_text)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out whole, once the new output is complete (default: "
        "refuse an existing --out)",
    )


def add_loader_options(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """``--batch-size --num-workers``."""
    parser.add_argument(
        "--batch-size", type=integer(1), default=batch_size, help="images per forward pass"
    )
    parser.add_argument(
        "--num-workers", type=integer(0), default=2, help="data-loading worker processes"
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``; checked by :func:`check_device` when the command runs."""
    parser.add_argument("--device", default="cpu", help="device to run on, e.g. cpu, cuda, cuda:1")


def check_device(text: str) -> None:
    """``UsageError`` naming ``--device`` unless ``text`` is a torch device this machine has."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or (device.type == "cuda" and not torch.cuda.is_available()):
        available = "cpu" + (", cuda, cuda:<index>" if torch.cuda.is_available() else "")
        raise UsageError(f"--device={text!r} is invalid here; allowed values: {available}")


def open_checkpoint(args: argparse.Namespace) -> tuple[Any, str, str]:
    """Load ``--checkpoint`` and decide its evaluation dataset (the input size).

    Returns ``(loaded, dataset, source)``: the
    :class:`~dualgate_solo.checkpoint.LoadedBackbone`, the dataset name and where it came from.
    Raises ``UsageError`` before anything is written (see :func:`load_backbone` and
    :func:`~dualgate_solo.reports.eval_data.evaluation_dataset`).
    """
    from dualgate_solo.checkpoint import load_backbone
    from dualgate_solo.reports.eval_data import evaluation_dataset

    given = {key: getattr(args, key) for key in ("stem", "width") if getattr(args, key) is not None}
    loaded = load_backbone(args.checkpoint, args.backbone, given)
    dataset, source = evaluation_dataset(args.dataset, loaded.args, loaded.path)
    return loaded, dataset, source
