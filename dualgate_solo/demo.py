"""A short VICReg-Dual-Gating pre-training on the embedded dataset, evaluated as the paper does.

Runs the method's objective (:func:`dualgate_solo.gated.objective.dual_gating_objective`) with the
paper's LARS optimiser in a plain PyTorch loop, so it needs neither solo-learn nor a download,
then reports for both branches what the paper reports: weighted k-NN top-1 on held-out images,
and for the gated branch the kept-MAC ratio r and FLOPs R. = 1 - r with deterministic gates.
The options are :mod:`dualgate_solo.commands.demo`'s (checked there); :func:`run_demo` writes
into the folder it is given (the staged ``--out``):

* ``metrics.csv``: per step p, the losses, the ratio r the budget loss costs, the multiplier nu;
* ``summary.json``: results, whether ``|r - t_d| <= tolerance``, wall-clock seconds, machine,
  date and command;
* ``args.json``: the full configuration (options, budget loss, backbone, optimiser);
* ``budget.png``: training ratio per step against t_d with the evaluated r, and the losses.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dualgate_solo.gated.budget import BudgetMultiplier, BudgetOptions, anneal_p
from dualgate_solo.gated.gate_stats import GateStatistics, collect_gate_statistics
from dualgate_solo.gated.objective import dual_gating_objective
from dualgate_solo.knn import knn_top1
from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.models import GatedResNet, create_backbone
from dualgate_solo.models.projector import Projector
from dualgate_solo.optim import LARS
from dualgate_solo.provenance import provenance
from dualgate_solo.synthetic import augment, synthetic_shapes

BACKBONE = "dg_resnet18"
STEM = "cifar"
WEIGHT_DECAY = 1e-4
LARS_ETA = 0.02
EVAL_BATCH = 256
OUTPUT_FILES = ("metrics.csv", "args.json", "budget.png", "summary.json")


def budget_config(args: argparse.Namespace) -> BudgetOptions:
    """The budget loss L_G of the options (other fields: the paper's defaults)."""
    return BudgetOptions(
        target_density=args.target_density,
        lambda_flops=args.lambda_flops,
        ratio_source=args.ratio_source,
        multiplier_lr=args.multiplier_lr,
    )


def optimizer_settings(args: argparse.Namespace) -> dict:
    """LARS keyword arguments: the base lr scaled by batch/256, as in the paper's recipe."""
    return {
        "lr": args.lr * args.batch_size / 256,
        "momentum": 0.9,
        "weight_decay": WEIGHT_DECAY,
        "eta": LARS_ETA,
    }


def configuration(args: argparse.Namespace) -> dict:
    """Everything the run depends on: the options and what they resolve to (``args.json``)."""
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return {
        "options": options,
        "budget": dataclasses.asdict(budget_config(args)),
        "backbone": {"name": BACKBONE, "stem": STEM, "width": args.width},
        "projector": {"hidden_dim": args.proj_dim, "out_dim": args.proj_dim},
        "optimizer": {"name": "LARS", **optimizer_settings(args), "gate_weight_decay": 0.0},
        "data": {"dataset": "embedded synthetic shapes (dualgate_solo.synthetic)", "size": 32},
    }


def train(
    backbone: GatedResNet,
    projector: Projector,
    images: Tensor,
    args: argparse.Namespace,
    budget: BudgetOptions,
) -> list[dict]:
    """``args.steps`` VICReg-Dual-Gating steps on random batches of ``images [N, 3, 32, 32]``.

    Returns one row per step: ``step, p, loss, vicreg_loss, budget_loss, train_flops_ratio``
    (the batch-mean r the budget loss costs) and ``multiplier`` (nu after the step).
    """
    gate_params = [p for n, p in backbone.named_parameters() if ".gate." in n]
    other_params = [p for n, p in backbone.named_parameters() if ".gate." not in n]
    optimizer = LARS(
        [
            {"params": other_params + list(projector.parameters())},
            {"params": gate_params, "weight_decay": 0.0},  # gates get no weight decay
        ],
        **optimizer_settings(args),
    )
    multiplier = BudgetMultiplier()
    gen = torch.Generator().manual_seed(args.seed)
    backbone.train()
    projector.train()
    rows = []
    bar = tqdm(range(args.steps), desc="training", unit="step")
    for step in bar:
        p = anneal_p(step // args.steps_per_epoch, budget.anneal_alpha)
        index = torch.randint(0, images.shape[0], (args.batch_size,), generator=gen)
        views = (augment(images[index], gen), augment(images[index], gen))
        out = dual_gating_objective(
            backbone, projector, views, budget, p, vicreg_loss, multiplier=multiplier.value
        )
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        multiplier.update(out.budget.ratio, budget)
        row = {
            "step": step,
            "p": p,
            "loss": out.loss.item(),
            "vicreg_loss": out.vicreg.item(),
            "budget_loss": out.budget.loss.item(),
            "train_flops_ratio": out.budget.ratio.item(),
            "multiplier": multiplier.value.item(),
        }
        rows.append(row)
        bar.set_postfix(
            loss=f"{row['loss']:.2f}",
            r=f"{row['train_flops_ratio']:.3f}",
            p=f"{p:.2f}",
            refresh=False,
        )
    return rows


def _ticking(batches: list[Tensor], bar: tqdm, stage: str):
    """Yield ``batches``, naming ``stage`` on ``bar`` and advancing it once per batch."""
    bar.set_postfix_str(stage)
    for batch in batches:
        yield batch
        bar.update()


@torch.no_grad()
def evaluate(
    backbone: GatedResNet,
    train_data: tuple[Tensor, Tensor],
    test_data: tuple[Tensor, Tensor],
    k: int,
) -> tuple[GateStatistics, dict[str, float]]:
    """Gate statistics on the test images and k-NN top-1 (%) of both branches, eval mode.

    ``train_data``/``test_data`` are ``(images [N, 3, 32, 32], labels [N])``; one progress bar
    counts every batch of the gate statistics and of the feature extraction, and each k-NN.
    """
    backbone.eval()
    train_batches = train_data[0].split(EVAL_BATCH)
    test_batches = test_data[0].split(EVAL_BATCH)
    total = len(test_batches) + 2 * (len(train_batches) + len(test_batches) + 1)
    with tqdm(total=total, desc="evaluation", unit="batch") as bar:
        stats = collect_gate_statistics(
            backbone, _ticking(test_batches, bar, "gate statistics"), progress=False
        )
        accuracy = {}
        for branch in ("dense", "gated"):
            feats = [
                torch.cat(
                    [
                        backbone.forward_branch(x, branch).feats
                        for x in _ticking(batches, bar, f"{branch} features, {split}")
                    ]
                )
                for split, batches in (("train", train_batches), ("test", test_batches))
            ]
            bar.set_postfix_str(f"{branch} k-NN (k={k})")
            accuracy[branch] = knn_top1(feats[0], train_data[1], feats[1], test_data[1], k=k)
            bar.update()
    return stats, accuracy


def plot(rows: list[dict], args: argparse.Namespace, eval_ratio: float, path: Path) -> None:
    """``budget.png``: training ratio vs step with t_d, tolerance band and final eval r; losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    t_d, tol = args.target_density, args.tolerance
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.plot(
        steps,
        [r["train_flops_ratio"] for r in rows],
        lw=1,
        label=f"training r ({args.ratio_source} masks, costed by L_G)",
    )
    ax1.axhline(t_d, color="k", ls="--", label=f"target t_d = {t_d:g}")
    ax1.axhspan(t_d - tol, t_d + tol, color="k", alpha=0.08, label=f"t_d ± {tol:g}")
    ax1.plot(
        [steps[-1]], [eval_ratio], "r*", ms=12, label=f"evaluated r = {eval_ratio:.3f} (eval gates)"
    )
    ax1.set_xlabel("step"), ax1.set_ylabel("kept-MAC ratio r"), ax1.set_ylim(0, 1)
    ax1.legend(fontsize=8)
    ax2.plot(steps, [r["vicreg_loss"] for r in rows], lw=1, label="VICReg")
    ax2.plot(steps, [r["budget_loss"] for r in rows], lw=1, label="L_G (budget)")
    ax2.set_xlabel("step"), ax2.set_yscale("symlog", linthresh=1e-2), ax2.legend(fontsize=8)
    fig.suptitle(
        f"VICReg-Dual-Gating demo: ResNet-18 width {args.width}, lambda {args.lambda_flops:g}, "
        f"multiplier lr {args.multiplier_lr:g}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(
    out: Path, rows: list[dict], config: dict, args: argparse.Namespace, eval_ratio: float
) -> None:
    """``metrics.csv``, ``args.json`` and ``budget.png`` under ``out`` (created here)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "args.json").write_text(json.dumps(config, indent=2) + "\n")
    plot(rows, args, eval_ratio, out / "budget.png")


def run_demo(args: argparse.Namespace, command: str, folder: Path) -> dict:
    """Train, evaluate and write the outputs for checked ``args`` into ``folder`` (``args.out``
    is only named); returns the summary dict."""
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_data = synthetic_shapes(args.train_size, seed=args.seed)
    test_data = synthetic_shapes(args.test_size, seed=args.seed + 1)
    budget = budget_config(args)
    backbone = create_backbone(BACKBONE, stem=STEM, width=args.width)
    projector = Projector(backbone.num_features, args.proj_dim, args.proj_dim)
    train_start = time.perf_counter()
    rows = train(backbone, projector, train_data[0], args, budget)
    train_seconds = time.perf_counter() - train_start
    stats, accuracy = evaluate(backbone, train_data, test_data, args.knn_k)
    ratio = stats.mean_ratio
    error = abs(ratio - args.target_density)
    summary = {
        **provenance(),
        "command": command,
        "target_density": args.target_density,
        "eval_flops_ratio": ratio,
        "eval_flops_ratio_std": stats.std_ratio,
        "eval_flops_reduction": stats.flops_reduction,
        "budget_error": error,
        "tolerance": args.tolerance,
        "budget_met": error <= args.tolerance,
        "final_train_flops_ratio": rows[-1]["train_flops_ratio"],
        "knn_k": args.knn_k,
        "knn_top1_dense": accuracy["dense"],
        "knn_top1_gated": accuracy["gated"],
        "width": args.width,
        "dense_macs": stats.costs.dense_macs,
        "gate_macs": stats.costs.gate_macs,
        "layer_densities": stats.layer_densities,
        "train_seconds": train_seconds,
    }
    write_outputs(folder, rows, configuration(args), args, ratio)
    summary["total_seconds"] = time.perf_counter() - start
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    verdict = "budget met" if summary["budget_met"] else "budget NOT met"
    sign = "<=" if summary["budget_met"] else ">"
    print(
        f"k-NN top-1 (k={args.knn_k}): dense {accuracy['dense']:.1f}%, gated "
        f"{accuracy['gated']:.1f}% | gated kept MACs r = {ratio:.3f} ± {stats.std_ratio:.3f} of "
        f"{stats.costs.dense_macs:,} dense MACs (width {args.width}), FLOPs R. "
        f"{100 * stats.flops_reduction:.1f}%\n"
        f"wrote {', '.join(OUTPUT_FILES)} to {args.out} in {summary['total_seconds']:.0f} s "
        f"(training {train_seconds:.0f} s)\n"
        f"{verdict}: |r - t_d| = |{ratio:.3f} - {args.target_density:g}| = {error:.3f} {sign} "
        f"{args.tolerance:g}"
    )
    return summary
