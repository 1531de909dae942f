"""``dualgate-solo slim-linear``: SlimCLR's switchable linear probe of a slimmable checkpoint.

The backbone of a ``slimclr_vicreg``/``slimclr_mocov3``/``sacl_xd`` run is frozen in eval mode;
every probed width gets its own linear head and all heads train together, the narrower ones
distilled in place from the full width (:mod:`dualgate_solo.slimmable.probe`). Each split goes
through the backbone once, without augmentation (the evaluation transform); the heads then train on
the cached features. Writes ``<out>/slim_linear.json`` (per width: top-1, losses, feature width,
MACs per image; provenance and command) and ``<out>/args.json`` (the probe's full config), staged
(:mod:`dualgate_solo.output_dir`): ``--out`` appears only complete.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from dualgate_solo.checkpoint_path import find_checkpoint
from dualgate_solo.choices import DATASETS
from dualgate_solo.commands.options import (
    add_device_option,
    add_loader_options,
    add_output_options,
    add_skip_unreadable_option,
    integer,
    user_path,
)
from dualgate_solo.output_dir import interrupts_deferred, staged_output


def real(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    """An argparse ``type``: a finite number ``>= minimum`` (``inclusive``) or ``> minimum``."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(
                f"{text!r} is invalid; allowed values: a number {bound}"
            )
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=user_path,
        help="run directory (args.json + *.ckpt) or .ckpt of a slimclr_vicreg, slimclr_mocov3 "
        "or sacl_xd run",
    )
    parser.add_argument(
        "--widths",
        type=float,
        nargs="+",
        default=None,
        help="width multipliers to probe (default: every trained width of the checkpoint's "
        "width_mult_list)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--train", type=user_path, required=True, help="ImageFolder training split")
    data.add_argument("--val", type=user_path, required=True, help="ImageFolder validation split")
    data.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="evaluation transform and input size (default: from the run's args.json)",
    )
    data.add_argument(
        "--train-per-class",
        type=integer(1),
        default=None,
        help="use the first N training images of every class (file order)",
    )
    data.add_argument(
        "--val-per-class",
        type=integer(1),
        default=None,
        help="use the first N validation images of every class (file order)",
    )
    add_skip_unreadable_option(data)
    add_loader_options(parser, batch_size=256)
    optim = parser.add_argument_group("linear heads (SGD, cosine learning rate)")
    optim.add_argument("--epochs", type=integer(1), default=30, help="passes over the features")
    optim.add_argument(
        "--lr", type=real(0.0, inclusive=False), default=0.1, help="initial learning rate"
    )
    optim.add_argument(
        "--momentum", type=real(0.0, inclusive=True), default=0.9, help="SGD momentum"
    )
    optim.add_argument(
        "--weight-decay", type=real(0.0, inclusive=True), default=0.0, help="L2 weight"
    )
    optim.add_argument(
        "--seed", type=integer(0), default=0, help="head initialisation and shuffling"
    )
    add_device_option(parser)
    add_output_options(parser, "outputs/slim_linear", "output directory")


def command_line(args: argparse.Namespace) -> str:
    """The ``dualgate-solo slim-linear`` command that reproduces the resolved ``args``."""
    words = ["dualgate-solo", "slim-linear"]
    for key, value in vars(args).items():
        if isinstance(value, bool):
            words += ["--" + key.replace("_", "-")] if value else []
        elif value is not None and key != "command":  # the sub-command name (cli's dest)
            values = value if isinstance(value, list) else [value]
            words += [
                "--" + key.replace("_", "-"),
                *(format(v, "g") if isinstance(v, float) else str(v) for v in values),
            ]
    return shlex.join(words)


class ProbeInputs(NamedTuple):
    """Everything :func:`run` reads, checked before anything is written."""

    loaded: Any  # dualgate_solo.checkpoint.LoadedBackbone (its backbone: a SlimResNet)
    widths: tuple[float, ...]
    dataset: str
    dataset_source: str
    train: Any  # torchvision ImageFolder
    val: Any


def resolve(args: argparse.Namespace) -> ProbeInputs:
    """Check every input; ``UsageError`` (one line naming the option) on the first bad one."""
    from dualgate_solo.checkpoint import load_slim_backbone
    from dualgate_solo.commands.options import check_device
    from dualgate_solo.reports.eval_data import evaluation_dataset, image_folder_split
    from dualgate_solo.slimmable.layers import check_width
    from dualgate_solo.slimmable.probe import trained_widths
    from dualgate_solo.validation import UsageError

    check_device(args.device)
    loaded = load_slim_backbone(args.checkpoint)
    allowed = trained_widths(loaded.backbone)
    chosen = {check_width("--widths", w, allowed) for w in args.widths or allowed}
    widths = tuple(w for w in loaded.backbone.widths if w in chosen)  # full width first
    dataset, dataset_source = evaluation_dataset(args.dataset, loaded.args, loaded.path)

    def split(option: str, path: Path):
        try:
            return image_folder_split(path, dataset, skip_unreadable=args.skip_unreadable)
        except UsageError as error:  # image_folder_split names --data
            raise UsageError(str(error).replace("--data=", f"{option}=", 1)) from None

    train, val = split("--train", args.train), split("--val", args.val)
    if val.classes != train.classes:
        raise UsageError(
            f"--val={str(args.val)!r} has {len(val.classes)} classes, --train="
            f"{str(args.train)!r} {len(train.classes)}, not the same class folders; allowed "
            "values: a split with exactly --train's class folders"
        )
    return ProbeInputs(loaded, widths, dataset, dataset_source, train, val)


def run(args: argparse.Namespace) -> dict[str, object]:
    """Check the inputs, probe every width; ``args.json`` and ``slim_linear.json`` appear in
    ``--out`` together, once the probe is done."""
    find_checkpoint(args.checkpoint)  # a wrong path fails before torch is imported
    with staged_output(args.out, overwrite=args.overwrite) as stage:
        return _probe(args, stage.path)


def _probe(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    """:func:`run` inside its staged output ``folder``."""
    with interrupts_deferred():  # a Ctrl-C inside an import leaves it half done
        import torch

        from dualgate_solo.choices import DATASET_INPUT_SIZES
        from dualgate_solo.method_registry import width_label
        from dualgate_solo.provenance import provenance
        from dualgate_solo.reports.eval_data import loader
        from dualgate_solo.slimmable.probe import (
            SwitchableLinearProbe,
            describe_objective,
            evaluate_probe,
            extract_features,
            per_class_subset,
            train_probe,
        )

    inputs = resolve(args)
    loaded, widths, dataset = inputs.loaded, inputs.widths, inputs.dataset
    backbone, side = loaded.backbone, DATASET_INPUT_SIZES[dataset]
    objective = describe_objective(widths)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    options.pop("command", None)  # the sub-command name (cli's dest)
    config = {
        **options,
        "widths": list(widths),
        "checkpoint_file": str(loaded.path),
        "method": loaded.method,
        "backbone": loaded.args.get("backbone"),
        "dataset": dataset,
        "dataset_source": inputs.dataset_source,
        "input_hw": [side, side],
        "num_classes": len(inputs.train.classes),
        "objective": objective,
    }
    (folder / "args.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"{loaded.method} checkpoint {loaded.path}: probing widths {list(widths)}; {objective}")

    torch.manual_seed(args.seed)
    backbone.to(args.device).requires_grad_(False)
    train_set = per_class_subset(inputs.train, args.train_per_class)
    val_set = per_class_subset(inputs.val, args.val_per_class)

    def features(split, desc: str):
        batches = loader(split, args.batch_size, args.num_workers)
        return extract_features(backbone, batches, widths, args.device, desc)

    train_feats = features(train_set, "features (train)")
    val_feats = features(val_set, "features (val)")
    probe = SwitchableLinearProbe(backbone, widths, len(inputs.train.classes))
    train_losses = train_probe(
        probe,
        train_feats,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=args.device,
    )
    evaluations = evaluate_probe(probe, val_feats, args.device)
    per_width = {
        width_label(w): {
            "width_mult": w,
            "val_top1": result.top1,
            "val_loss": result.loss,
            "train_loss": train_loss,
            "features_dim": backbone.features_at(w),
            "macs_per_image": backbone.macs_at(w, (side, side)),
        }
        for w, result, train_loss in zip(widths, evaluations, train_losses)
    }
    report = {
        "widths": per_width,
        "objective": objective,
        "in_place_distillation": 1.0 in widths,
        "num_train": len(train_set),
        "num_val": len(val_set),
        "provenance": {
            **provenance(),
            "command": command_line(args),
            "checkpoint": str(loaded.path),
            "method": loaded.method,
            "dataset": dataset,
            "dataset_source": inputs.dataset_source,
        },
    }
    (folder / "slim_linear.json").write_text(json.dumps(report, indent=2) + "\n")
    for label, row in per_width.items():
        print(
            f"{label}: top-1 {row['val_top1']:.2f}% (val CE {row['val_loss']:.4f}, "
            f"train loss {row['train_loss']:.4f}), {row['features_dim']} features, "
            f"{row['macs_per_image']:,} MACs/image"
        )
    print(f"-> {args.out / 'slim_linear.json'}")
    return report
