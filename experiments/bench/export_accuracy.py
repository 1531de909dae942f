"""k-NN accuracy of the exported networks vs the gated branch they were cut from, on real images.

For a trained checkpoint: gate statistics on a calibration split (deterministic gates), the
``static`` and ``hybrid`` exports (optionally BN re-calibrated), then k-NN top-1 (k = 20 and 1,
distance-weighted, Euclidean) of the dense branch, the gated branch and each export, with the
same bank and queries at the native resolution. Also the kept-MAC ratio of each network.

    python scripts/export_accuracy.py --checkpoint trained_models/vicreg_dual_gating/<run> \\
        --train /data/cifar10_jpg/train --test /data/cifar10_jpg/test --out results/export_accuracy

Writes ``<out>/export_accuracy.{json,csv}`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from torch.utils.data import Subset

from dualgate_solo.checkpoint import load_backbone
from dualgate_solo.choices import POLICIES
from dualgate_solo.export import export_pruned, make_plan, recalibrate_bn
from dualgate_solo.gated.gate_stats import collect_gate_statistics
from dualgate_solo.knn import knn_top1
from dualgate_solo.provenance import provenance
from dualgate_solo.reports.eval_data import image_folder_split, loader
from experiments.bench.timing import count_macs


def _subset(split, size: int, seed: int):
    """A fixed random subset of ``size`` images (all when ``size`` <= 0)."""
    if size <= 0 or size >= len(split):
        return split
    return Subset(
        split,
        torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size].tolist(),
    )


@torch.no_grad()
def _features(fn, batches) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for images, targets in batches:
        feats.append(fn(images))
        labels.append(targets)
    return torch.cat(feats), torch.cat(labels)


def add_comparisons(rows: list[dict], dense_macs: float) -> list[dict]:
    """Add to every row ``kept_ratio`` (its ``macs_per_image`` / ``dense_macs``) and
    ``delta_vs_gated_k20`` (its k=20 top-1 minus the ``gated branch`` row's, in points)."""
    gated = next(r for r in rows if r["network"] == "gated branch")
    for row in rows:
        row["kept_ratio"] = row["macs_per_image"] / dense_macs
        row["delta_vs_gated_k20"] = row["knn_top1_k20"] - gated["knn_top1_k20"]
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="export_accuracy.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint", required=True, help="solo-learn run directory or .ckpt of a gated method"
    )
    parser.add_argument(
        "--train", type=Path, required=True, help="ImageFolder: k-NN bank and gate calibration"
    )
    parser.add_argument("--test", type=Path, required=True, help="ImageFolder: k-NN queries")
    parser.add_argument(
        "--dataset",
        default="cifar_jpg",
        help="evaluation transform (dualgate_solo.reports.eval_data)",
    )
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument(
        "--recalibrate-batches", type=int, default=20, help="BN re-calibration batches (0: off)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/export_accuracy"))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    loaded = load_backbone(args.checkpoint)
    backbone = loaded.backbone.eval()
    train = _subset(image_folder_split(args.train, args.dataset), args.train_size, 0)
    test = _subset(image_folder_split(args.test, args.dataset), args.test_size, 1)
    hw = tuple(train[0][0].shape[-2:])
    stats = collect_gate_statistics(backbone, loader(train, 256), max_batches=None)
    networks = {
        "dense branch": lambda x: backbone.forward_branch(x, "dense").feats,
        "gated branch": lambda x: backbone.forward_branch(x, "gated").feats,
    }
    macs = {
        "dense branch": stats.costs.dense_macs,
        "gated branch": stats.mean_ratio * stats.costs.dense_macs,
    }
    for policy in POLICIES:
        model = export_pruned(backbone, make_plan(backbone, stats, policy)).eval()
        networks[f"{policy} export"] = model
        macs[f"{policy} export"] = int(count_macs(model, [torch.zeros(1, 3, *hw)]))
        if args.recalibrate_batches and policy == "static":
            recal = export_pruned(backbone, make_plan(backbone, stats, policy))
            recalibrate_bn(recal, loader(train, 256), num_batches=args.recalibrate_batches)
            networks[f"{policy} export + BN re-calibration"] = recal.eval()
            macs[f"{policy} export + BN re-calibration"] = macs[f"{policy} export"]

    rows = []
    for name, fn in networks.items():
        bank, bank_labels = _features(fn, loader(train, 256))
        queries, query_labels = _features(fn, loader(test, 256))
        rows.append(
            {
                "network": name,
                "knn_top1_k20": knn_top1(bank, bank_labels, queries, query_labels, k=20),
                "knn_top1_k1": knn_top1(bank, bank_labels, queries, query_labels, k=1),
                "macs_per_image": float(macs[name]),
            }
        )
    add_comparisons(rows, stats.costs.dense_macs)
    for row in rows:
        print(
            f"{row['network']:>36}: k-NN top-1 {row['knn_top1_k20']:.2f} (k=20), "
            f"{row['knn_top1_k1']:.2f} (k=1), kept MACs {row['kept_ratio']:.3f}"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        **provenance(),
        "checkpoint": str(loaded.path),
        "method": loaded.method,
        "train_size": len(train),
        "test_size": len(test),
        "input_hw": list(hw),
        "calibration": "the k-NN bank (train subset), deterministic gates",
    }
    (args.out / "export_accuracy.json").write_text(
        json.dumps({"provenance": meta, "rows": rows}, indent=2)
    )
    with open(args.out / "export_accuracy.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
