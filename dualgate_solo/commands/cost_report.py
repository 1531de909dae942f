"""``dualgate-solo cost-report``: what the gated branch of a checkpoint costs on an image split.

Writes ``cost_report.json``, ``layers.csv``, ``channel_usage.csv`` and ``channel_usage.png``
(:func:`dualgate_solo.reports.cost_report.write_report`) and prints the kept-MAC ratio r and the
paper's "FLOPs R." = 1 - r. The input size follows from ``--dataset`` or the run's ``args.json``.
"""

from __future__ import annotations

import argparse

from dualgate_solo.checkpoint_path import find_checkpoint
from dualgate_solo.commands.options import (
    add_checkpoint_options,
    add_data_options,
    add_device_option,
    add_loader_options,
    add_output_options,
    fraction,
    integer,
)
from dualgate_solo.output_dir import StagedOutput, interrupts_deferred, staged_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_options(parser)
    add_data_options(parser)
    add_loader_options(parser, batch_size=256)
    parser.add_argument(
        "--max-batches", type=integer(1), default=None, help="stop after this many batches"
    )
    parser.add_argument(
        "--off-below",
        type=fraction,
        default=0.0,
        help="on-rate at or below which a channel counts as always off",
    )
    parser.add_argument(
        "--on-above",
        type=fraction,
        default=1.0,
        help="on-rate at or above which a channel counts as always on",
    )
    add_device_option(parser)
    add_output_options(parser, "outputs/cost_report", "output directory")


def run(args: argparse.Namespace) -> dict[str, object]:
    from dualgate_solo.validation import UsageError

    if args.off_below >= args.on_above:
        raise UsageError(
            f"--off-below={args.off_below} is invalid with --on-above={args.on_above}; "
            "allowed values: --off-below < --on-above"
        )
    find_checkpoint(args.checkpoint)  # a wrong path fails before torch is imported
    with staged_output(args.out, overwrite=args.overwrite) as stage:
        return _report(args, stage)


def _report(args: argparse.Namespace, stage: StagedOutput) -> dict[str, object]:
    """Compute the report and write it into ``stage`` (moved to ``--out`` once complete)."""
    with interrupts_deferred():  # a Ctrl-C inside an import leaves it half done
        from dualgate_solo.commands.options import check_device, open_checkpoint
        from dualgate_solo.provenance import provenance
        from dualgate_solo.reports.cost_report import cost_report, write_report
        from dualgate_solo.reports.eval_data import image_folder_split, loader

    check_device(args.device)
    loaded, dataset, source = open_checkpoint(args)
    num_classes = loaded.args.get("data", {}).get("num_classes")
    split = image_folder_split(args.data, dataset, num_classes, args.skip_unreadable)
    report = cost_report(
        loaded.backbone.to(args.device),
        loader(split, args.batch_size, args.num_workers),
        args.device,
        args.max_batches,
        args.off_below,
        args.on_above,
    )
    report["provenance"] = {
        **provenance(),
        "checkpoint": str(loaded.path),
        "method": loaded.method,
        "data": str(args.data),
        "dataset": dataset,
        "dataset_source": source,
    }
    write_report(report, stage.path, title=f"{loaded.method or 'checkpoint'}: {loaded.path.name}")
    s = report["summary"]
    print(
        f"{s['num_samples']} images at {s['input_hw'][0]}x{s['input_hw'][1]} px ({dataset}, "
        f"from {source}): kept MACs r = {s['flops_ratio']:.4f} +- {s['flops_ratio_std']:.4f}, "
        f"FLOPs R. = {100 * s['flops_reduction']:.2f}% of {s['dense_macs']:,} dense MACs "
        f"-> {args.out}"
    )
    return report
