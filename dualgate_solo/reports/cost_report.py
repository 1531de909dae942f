"""Gated-branch cost report (spec §5.3, D13): what the gated encoder costs on an image split.

With deterministic (eval) gates over the split: per-sample kept-MAC ratio r (mean, std), the
paper's "FLOPs R." = 1 - mean r, per-layer kept MACs and densities, per-channel on-rates, and the
channel-usage figure. Python API :func:`cost_report`; CLI ``dualgate-solo cost-report``.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable
from pathlib import Path

from dualgate_solo.gate_stats import GateStatistics, collect_gate_statistics
from dualgate_solo.models import GatedResNet
from dualgate_solo.provenance import provenance
from dualgate_solo.reports.channel_usage import channel_usage_rows, write_channel_usage
from dualgate_solo.reports.eval_data import DATASETS


def layer_rows(stats: GateStatistics) -> list[dict[str, object]]:
    """Per gated block: dense MACs, mean kept MACs, per-layer FLOPs R. and channel density."""
    rows = []
    for cost, macs_sum, density in zip(
        stats.costs.blocks, stats.block_macs_sum.tolist(), stats.layer_densities
    ):
        kept = macs_sum / stats.num_samples
        rows.append(
            {
                "block": cost.name,
                "dense_macs": cost.dense_macs,
                "mean_kept_macs": kept,
                "flops_reduction": 1 - kept / cost.dense_macs,
                "channel_density": density,
                "gate_macs": cost.gate_macs,
            }
        )
    return rows


def cost_report(
    backbone: GatedResNet,
    batches: Iterable,
    device: str = "cpu",
    max_batches: int | None = None,
    off_below: float = 0.0,
    on_above: float = 1.0,
    progress: bool = True,
) -> dict[str, object]:
    """Summary, per-layer rows, channel-usage rows and on-rates of the gated branch over ``batches``."""
    stats = collect_gate_statistics(backbone, batches, device, max_batches, progress)
    return {
        "summary": {
            "num_samples": stats.num_samples,
            "input_hw": list(stats.costs.input_hw),
            "dense_macs": stats.costs.dense_macs,
            "gate_macs": stats.costs.gate_macs,
            "mean_kept_macs": stats.mean_ratio * stats.costs.dense_macs,
            "flops_ratio": stats.mean_ratio,
            "flops_ratio_std": stats.std_ratio,
            "flops_reduction": stats.flops_reduction,
            "min_possible_ratio": stats.costs.min_ratio,
        },
        "layers": layer_rows(stats),
        "channel_usage": channel_usage_rows(stats, off_below, on_above),
        "on_rates": {name: rate.tolist() for name, rate in zip(stats.block_names, stats.on_rates)},
    }


def write_report(report: dict[str, object], out: Path, title: str = "") -> None:
    """``cost_report.json``, ``layers.csv``, ``channel_usage.csv`` and ``channel_usage.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost_report.json").write_text(json.dumps(report, indent=2))
    with open(out / "layers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(report["layers"][0]))
        writer.writeheader()
        writer.writerows(report["layers"])
    write_channel_usage(
        report["channel_usage"], out / "channel_usage.csv", out / "channel_usage.png", title
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="a .ckpt/.pt file or a solo-learn run directory"
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="ImageFolder split, e.g. cifar10_jpg/test"
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="transform family (default: args.json's data.dataset)",
    )
    parser.add_argument(
        "--backbone", default=None, help="backbone name when the checkpoint has no args.json"
    )
    parser.add_argument(
        "--stem",
        default=None,
        choices=("cifar", "imagenet"),
        help="stem when the checkpoint has no args.json",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument(
        "--off-below",
        type=float,
        default=0.0,
        help="on-rate at or below which a channel is 'always off'",
    )
    parser.add_argument(
        "--on-above",
        type=float,
        default=1.0,
        help="on-rate at or above which a channel is 'always on'",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("outputs/cost_report"))


def run(args: argparse.Namespace) -> dict[str, object]:
    from dualgate_solo.checkpoint import load_backbone
    from dualgate_solo.reports.eval_data import image_folder_split, loader

    kwargs = {"stem": args.stem} if args.stem else None
    loaded = load_backbone(args.checkpoint, args.backbone, kwargs)
    data_cfg = loaded.args.get("data", {})
    dataset = args.dataset or data_cfg.get("dataset") or "custom"
    split = image_folder_split(args.data, dataset, data_cfg.get("num_classes"))
    batches = loader(split, args.batch_size, args.num_workers)
    report = cost_report(
        loaded.backbone.to(args.device),
        batches,
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
    }
    write_report(
        report, args.out, title=f"{loaded.method or 'checkpoint'}: {Path(loaded.path).name}"
    )
    s = report["summary"]
    print(
        f"{s['num_samples']} images: kept MACs r = {s['flops_ratio']:.4f} +- {s['flops_ratio_std']:.4f}, "
        f"FLOPs R. = {100 * s['flops_reduction']:.2f}% of {s['dense_macs']:,} dense MACs -> {args.out}"
    )
    return report
