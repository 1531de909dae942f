"""``dualgate-solo umap``: UMAP of the dense and the gated branch side by side, one checkpoint.

A fixed-seed subset of ``--data`` (spread over all classes) goes through both branches
(:func:`dualgate_solo.reports.umap_branches.branch_features`); one figure shows both 2-D
embeddings (:func:`~dualgate_solo.reports.umap_branches.plot_umap_branches`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dualgate_solo.checkpoint_path import find_checkpoint
from dualgate_solo.commands.options import (
    add_checkpoint_options,
    add_data_options,
    add_device_option,
    add_loader_options,
    add_output_options,
    integer,
)
from dualgate_solo.output_dir import interrupts_deferred, staged_output

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
#: fewest images UMAP can embed with this command's neighbourhood size
MIN_SAMPLES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_options(parser)
    add_data_options(parser)
    add_loader_options(parser, batch_size=256)
    parser.add_argument(
        "--max-samples",
        type=integer(MIN_SAMPLES),
        default=5000,
        help="images embedded (a fixed-seed subset of --data)",
    )
    add_device_option(parser)
    add_output_options(
        parser, "outputs/umap_branches.png", f"figure file ({', '.join(FIGURE_SUFFIXES)})"
    )


def run(args: argparse.Namespace) -> None:
    find_checkpoint(args.checkpoint)  # a wrong path fails before torch is imported
    with staged_output(
        args.out, overwrite=args.overwrite, directory=False, suffixes=FIGURE_SUFFIXES
    ) as stage:
        _plot(args, stage.path)


def _plot(args: argparse.Namespace, figure: Path) -> None:
    """Embed both branches' features and draw the figure to ``figure`` (the staged file)."""
    with interrupts_deferred():  # a Ctrl-C inside an import leaves it half done
        import torch

        from dualgate_solo.commands.options import check_device, open_checkpoint
        from dualgate_solo.reports.eval_data import image_folder_split, loader
        from dualgate_solo.reports.umap_branches import branch_features, plot_umap_branches
        from dualgate_solo.validation import UsageError

    check_device(args.device)
    loaded, dataset, source = open_checkpoint(args)
    num_classes = loaded.args.get("data", {}).get("num_classes")
    split = image_folder_split(args.data, dataset, num_classes, args.skip_unreadable)
    if len(split) < MIN_SAMPLES:
        raise UsageError(
            f"--data={str(args.data)!r} holds {len(split)} images; allowed values: a split of at "
            f"least {MIN_SAMPLES} images"
        )
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    subset = torch.utils.data.Subset(split, index[: args.max_samples].tolist())
    features, labels = branch_features(
        loaded.backbone.to(args.device),
        loader(subset, args.batch_size, args.num_workers),
        args.max_samples,
        args.device,
    )
    plot_umap_branches(features, labels, figure, class_names=split.classes)
    side = subset[0][0].shape[-1]
    print(
        f"UMAP of both branches ({len(labels)} images at {side}x{side} px, {dataset} from "
        f"{source}) -> {args.out}"
    )
