"""``dualgate-solo demo``: a short VICReg-Dual-Gating pre-training on the embedded dataset.

Runs the same objective as the solo-learn method, with the paper's LARS optimiser, (:func:`dualgate_solo.objective.dual_gating_objective`)
in a plain PyTorch loop, so it works without solo-learn and without any download, then reports
what the paper reports for both branches: k-NN top-1 (k = 20) on held-out images, the gated
branch's kept-MAC ratio r and FLOPs R. = 1 - r with deterministic gates, and the MAC table.

Outputs under ``--out``: ``metrics.csv`` (per step), ``summary.json``, ``budget.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dualgate_solo.gate_stats import collect_gate_statistics
from dualgate_solo.knn import knn_top1
from dualgate_solo.losses import RATIO_SOURCES, BudgetConfig, BudgetMultiplier, anneal_p
from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.models import create_backbone
from dualgate_solo.models.projector import Projector
from dualgate_solo.objective import dual_gating_objective
from dualgate_solo.optim import LARS
from dualgate_solo.provenance import provenance
from dualgate_solo.synthetic import augment, synthetic_shapes
from dualgate_solo.validation import check_interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps (default 100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--target-density", type=float, default=0.3, help="t_d: kept-MAC fraction")
    parser.add_argument(
        "--ratio-source",
        choices=RATIO_SOURCES,
        default="sampled",
        help="budget loss on sampled (paper) or eval-style masks",
    )
    parser.add_argument(
        "--multiplier-lr",
        type=float,
        default=0.0,
        help="Lagrange multiplier step (0: fixed lambda, the paper)",
    )
    parser.add_argument("--steps-per-epoch", type=int, default=10, help="steps between p updates")
    parser.add_argument(
        "--lr", type=float, default=0.3, help="base lr, scaled by batch/256 (paper: 0.3)"
    )
    parser.add_argument("--proj-dim", type=int, default=512, help="projector width (paper: 2048)")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))


def _features(backbone, images: torch.Tensor, branch: str, batch_size: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [backbone.forward_branch(x, branch).feats for x in images.split(batch_size)]
        )


def _plot(rows: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(
        steps, [r["train_flops_ratio"] for r in rows], label="training ratio r in the budget loss"
    )
    ax1.axhline(target, color="k", ls="--", label=f"target t_d = {target}")
    ax1.set_xlabel("step"), ax1.set_ylabel("kept-MAC ratio"), ax1.legend()
    ax2.plot(steps, [r["vicreg_loss"] for r in rows], label="VICReg")
    ax2.plot(steps, [r["budget_loss"] for r in rows], label="L_G")
    ax2.set_xlabel("step"), ax2.set_yscale("log"), ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate both branches and write the outputs; returns the summary dict."""
    check_interval("--steps", args.steps, 1, float("inf"))
    check_interval("--batch-size", args.batch_size, 2, float("inf"))
    budget = BudgetConfig(
        target_density=args.target_density,
        ratio_source=args.ratio_source,
        multiplier_lr=args.multiplier_lr,
    )
    multiplier = BudgetMultiplier()
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    train_x, train_y = synthetic_shapes(args.train_size, seed=args.seed)
    test_x, test_y = synthetic_shapes(args.test_size, seed=args.seed + 1)
    backbone = create_backbone("dg_resnet18", stem="cifar")
    projector = Projector(backbone.num_features, args.proj_dim, args.proj_dim)
    gate_params = [p for n, p in backbone.named_parameters() if ".gate." in n]
    other_params = [p for n, p in backbone.named_parameters() if ".gate." not in n]
    optimizer = LARS(
        [
            {"params": other_params + list(projector.parameters())},
            {"params": gate_params, "weight_decay": 0.0},  # D11: gates get no weight decay
        ],
        lr=args.lr * args.batch_size / 256,
        weight_decay=1e-4,
        eta=0.02,
    )
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    for step in tqdm(range(args.steps), desc="VICReg-Dual-Gating demo"):
        p = anneal_p(step // args.steps_per_epoch, budget.anneal_alpha)
        index = torch.randint(0, args.train_size, (args.batch_size,), generator=gen)
        views = (augment(train_x[index], gen), augment(train_x[index], gen))
        out = dual_gating_objective(
            backbone, projector, views, budget, p, vicreg_loss, multiplier=multiplier.value
        )
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        multiplier.update(out.budget.ratio, budget)
        rows.append(
            {
                "step": step,
                "p": p,
                "loss": out.loss.item(),
                "vicreg_loss": out.vicreg.item(),
                "budget_loss": out.budget.loss.item(),
                "train_flops_ratio": out.budget.ratio.item(),
                "multiplier": multiplier.value.item(),
            }
        )

    backbone.eval()
    stats = collect_gate_statistics(backbone, test_x.split(256), progress=False)
    accuracy = {
        branch: knn_top1(
            _features(backbone, train_x, branch),
            train_y,
            _features(backbone, test_x, branch),
            test_y,
        )
        for branch in ("dense", "gated")
    }
    summary = {
        **provenance(),
        "command": "dualgate-solo demo "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "command"),
        "target_density": args.target_density,
        "knn20_top1_dense": accuracy["dense"],
        "knn20_top1_gated": accuracy["gated"],
        "eval_flops_ratio": stats.mean_ratio,
        "eval_flops_ratio_std": stats.std_ratio,
        "eval_flops_reduction": stats.flops_reduction,
        "layer_densities": stats.layer_densities,
        "dense_macs": stats.costs.dense_macs,
        "gate_macs": stats.costs.gate_macs,
        "final_train_flops_ratio": rows[-1]["train_flops_ratio"],
    }
    with open(args.out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(rows, args.target_density, args.out / "budget.png")
    print(
        f"dense branch: k-NN top-1 {accuracy['dense']:.1f}% | gated branch: k-NN top-1 "
        f"{accuracy['gated']:.1f}%, kept MACs r = {stats.mean_ratio:.3f} +- {stats.std_ratio:.3f} "
        f"(FLOPs R. {100 * stats.flops_reduction:.1f}%, target t_d = {args.target_density}) "
        f"of {stats.costs.dense_macs:,} dense MACs\nwrote {args.out}/metrics.csv, summary.json, budget.png"
    )
    return summary
