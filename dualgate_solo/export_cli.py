"""``dualgate-solo export``: a trained gated checkpoint -> a physically pruned, deployable network.

Static prune export of VICReg-Dual-Gating (Krishna et al., BMVC 2023; spec §9 "Real speed-up"):
gate statistics of the gated branch over an image split (or the embedded synthetic set), a
``static`` or ``hybrid`` prune plan, weight copy from the gated branch, optional BN
re-calibration, and the files of :func:`dualgate_solo.export.save_export` (``weights.pt`` +
``spec.json``, ``model.ts``, ``model.onnx``, ``plan.json``) plus ``export_summary.json`` in ``--out``.
Prints the kept inner widths per block and the MACs of the exported network.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import torch

from dualgate_solo.export import EXPORT_FORMATS, ONNX_EXPORTERS, POLICIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="a .ckpt/.pt file or a solo-learn run directory"
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
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="backbone width when the checkpoint has no args.json",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="ImageFolder split for the gate statistics (default: embedded synthetic images)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="transform family of --data (default: args.json's data.dataset)",
    )
    parser.add_argument(
        "--synthetic-size", type=int, default=512, help="synthetic images when --data is not given"
    )
    parser.add_argument("--image-size", type=int, default=32, help="synthetic image size")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="stop the gate statistics after this many batches",
    )
    parser.add_argument("--policy", choices=POLICIES, default="static")
    parser.add_argument(
        "--off-threshold", type=float, default=0.0, help="drop channels with on-rate <= this"
    )
    parser.add_argument(
        "--on-threshold",
        type=float,
        default=1.0,
        help="hybrid: channels with on-rate >= this run without a gate",
    )
    parser.add_argument(
        "--recalibrate-batches",
        type=int,
        default=0,
        help="re-estimate BN statistics on this many batches (0: keep the gated branch's)",
    )
    parser.add_argument(
        "--formats", nargs="+", choices=EXPORT_FORMATS, default=list(EXPORT_FORMATS)
    )
    parser.add_argument("--onnx-exporter", choices=ONNX_EXPORTERS, default="dynamo")
    parser.add_argument("--out", type=Path, default=Path("outputs/export"))


def _batches(args: argparse.Namespace, loaded) -> Iterable:
    """Synthetic image batches ``[B, 3, S, S]`` (a list), or a loader over ``--data``."""
    if args.data is None:
        from dualgate_solo.synthetic import synthetic_shapes

        images, _ = synthetic_shapes(args.synthetic_size, seed=12345, size=args.image_size)
        return list(images.split(args.batch_size))
    from dualgate_solo.reports.eval_data import image_folder_split, loader

    data_cfg = loaded.args.get("data", {})
    dataset = args.dataset or data_cfg.get("dataset") or "custom"
    return loader(
        image_folder_split(args.data, dataset, data_cfg.get("num_classes")),
        args.batch_size,
        args.num_workers,
    )


def run(args: argparse.Namespace) -> dict:
    from dualgate_solo.checkpoint import load_backbone
    from dualgate_solo.export import export_pruned, make_plan, recalibrate_bn, save_export
    from dualgate_solo.gate_stats import collect_gate_statistics
    from dualgate_solo.provenance import provenance
    from dualgate_solo.validation import check_interval

    check_interval("--recalibrate-batches", args.recalibrate_batches, 0, float("inf"))
    kwargs = {
        k: v for k, v in (("stem", args.stem), ("width", args.width)) if v is not None
    } or None
    loaded = load_backbone(args.checkpoint, args.backbone, kwargs)
    backbone = loaded.backbone.eval()
    batches = _batches(args, loaded)
    stats = collect_gate_statistics(backbone, batches, max_batches=args.max_batches, progress=False)
    plan = make_plan(backbone, stats, args.policy, args.off_threshold, args.on_threshold)
    model = export_pruned(backbone, plan)
    if args.recalibrate_batches:
        recalibrate_bn(model, batches, args.recalibrate_batches)
    example = torch.zeros(2, 3, *stats.costs.input_hw)
    for batch in batches:
        example = (batch[0] if isinstance(batch, (tuple, list)) else batch)[:2]
        break
    files = save_export(
        model, args.out, example, args.formats, plan, onnx_exporter=args.onnx_exporter
    )
    summary = {
        **provenance(),
        "checkpoint": str(loaded.path),
        "method": loaded.method,
        "data": str(args.data) if args.data else f"synthetic ({args.synthetic_size} images)",
        "num_samples": stats.num_samples,
        "policy": plan.policy,
        "off_threshold": plan.off_threshold,
        "on_threshold": plan.on_threshold,
        "recalibrate_batches": args.recalibrate_batches,
        "input_hw": plan.input_hw,
        "dense_macs": plan.dense_macs,
        "exported_macs": plan.predicted_macs,
        "gated_branch_mean_macs": stats.mean_ratio * stats.costs.dense_macs,
        "theoretical_speedup": plan.dense_macs / plan.predicted_macs,
        "blocks": [
            {
                "block": b.name,
                "full": b.group_sizes,
                "kept": [len(k) for k in b.kept],
                "built": b.widths,
                "gated": b.gated,
                "macs": b.macs,
                "dense_macs": b.dense_macs,
            }
            for b in plan.blocks
        ],
        "files": files,
    }
    (args.out / "export_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{'block':10} {'full':>10} {'kept':>10} {'gated':>8} {'MACs':>14} {'dense MACs':>14}")
    for b in summary["blocks"]:
        print(
            f"{b['block']:10} {str(b['full']):>10} {str(b['kept']):>10} {str(b['gated']):>8} {b['macs']:>14,} {b['dense_macs']:>14,}"
        )
    print(
        f"{plan.policy} export at {plan.input_hw[0]}x{plan.input_hw[1]}: {plan.predicted_macs:,} MACs vs {plan.dense_macs:,} dense "
        f"({plan.dense_macs / plan.predicted_macs:.2f}x fewer; gated branch mean {summary['gated_branch_mean_macs']:,.0f}) -> {args.out}"
    )
    return summary
