"""Gradient shares of trained Dual-Gating runs: ``scripts/gradient_shares.py``.

For each ``--checkpoint`` (a solo-learn run directory or ``.ckpt`` of ``vicreg_dual_gating``) and,
with ``--at-init``, for a freshly initialised network of each variant's config, it draws
``--batches`` training batches with the run's own augmentations (solo-learn's pipeline from the
run's ``args.json``), runs one training-mode step's forward per batch and splits the gradient into
the paths of :mod:`experiments.analysis.gradient_shares`. Writes to ``--out``:

* ``gradient_shares.csv``: one row per (run, state, path, group), ``state`` ``init`` or
  ``trained`` (at checkpoint ``epoch``): means and sample stds over the batches of the path's
  norm, share and cosine;
* ``gradient_shares_by_variant.csv``: the same per (variant, state, path, group), the variant
  being the run's name without its seed: mean and sample std over the runs (seeds) of the
  per-run mean share and cosine;
* ``gradient_shares.json``: the rows, the per-batch path losses, every run's ``args.json`` and
  checkpoint, the command and the machine (:func:`dualgate_solo.provenance.provenance`);
* ``gradient_shares.png``: the shares per group, one panel per (variant, state), with std bars
  over the seeds (over the batches for a single run).

    python scripts/gradient_shares.py --checkpoint /runs/cpu-lr0.3/runs/<run> \\
        --at-init --out results/dense_parity/gradient_shares
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shlex
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from dualgate_solo.checkpoint import load_backbone
from dualgate_solo.gated.budget import BudgetOptions, anneal_p
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.method_registry import METHODS, VICRegOptions
from dualgate_solo.models.factory import create_backbone
from dualgate_solo.models.projector import Projector
from dualgate_solo.output_dir import staged_output
from dualgate_solo.provenance import provenance
from dualgate_solo.validation import UsageError, check_interval
from experiments.analysis.gradient_shares import PATHS, parameter_groups, path_losses, path_shares
from experiments.runner.protocols import Run

METHOD = "vicreg_dual_gating"
VARIANT_COLUMNS = (
    "variant",
    "state",
    "epoch",
    "path",
    "group",
    "runs",
    "share_mean",
    "share_std",
    "cosine_mean",
)
COLUMNS = (
    "run",
    "state",
    "epoch",
    "path",
    "group",
    "batches",
    "norm_mean",
    "norm_std",
    "share_mean",
    "share_std",
    "cosine_mean",
)


def run_name(checkpoint: Path, args: dict[str, Any]) -> str:
    """The grid run folder above ``pretrain/`` (``runs/<run>/pretrain/...``), else the solo-learn
    run name in ``args.json``, else the file name."""
    for folder in checkpoint.parents:
        if folder.name == "pretrain":
            return folder.parent.name
    return str(args.get("name") or checkpoint.stem)


def _spread(values: list[float]) -> float:
    """Sample standard deviation (0 for one value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def grid_checkpoint(path: str) -> str:
    """``path``, or for a grid run folder (``runs/<run>``, holding ``pretrain/trained_models``)
    its newest pre-training checkpoint."""
    found = sorted(
        Path(path).glob("pretrain/trained_models/*/*/*.ckpt"), key=lambda f: f.stat().st_mtime
    )
    return str(found[-1]) if found else path


class Subject:
    """One network to measure: a run's trained weights or its config freshly initialised."""

    def __init__(self, checkpoint: str, at_init: bool, seed: int):
        loaded = load_backbone(grid_checkpoint(checkpoint), require_gates=True)
        if loaded.method != METHOD:
            raise UsageError(
                f"--checkpoint={checkpoint!r} was pre-trained with method={loaded.method!r}; "
                f"allowed values: a run of {METHOD!r}"
            )
        self.args = loaded.args
        self.path = loaded.path
        self.run = run_name(loaded.path, self.args)
        options = METHODS[METHOD].parse_method_kwargs(self.args["method_kwargs"])
        self.budget: BudgetOptions = options[BudgetOptions]
        self.dual: DualGatingOptions = options[DualGatingOptions]
        vicreg: VICRegOptions = options[VICRegOptions]
        self.vicreg_fn = vicreg.weighted(vicreg_loss)
        dual_projector = self.args["backbone"]["kwargs"].get("dual_bn_scope") == "all"
        if at_init:
            torch.manual_seed(seed)
            self.backbone = create_backbone(
                self.args["backbone"]["name"], **self.args["backbone"]["kwargs"]
            )
            self.epoch = 0
            self.multiplier = 0.0
        else:
            self.backbone = loaded.backbone
            raw = torch.load(loaded.path, map_location="cpu", weights_only=True)
            self.epoch = int(raw.get("epoch", 0))
            state = raw["state_dict"]
            self.multiplier = float(state.get("budget_multiplier.value", torch.zeros(())))
        self.projector = Projector(
            self.backbone.num_features,
            vicreg.proj_hidden_dim,
            vicreg.proj_output_dim,
            dual_projector,
        )
        if not at_init:
            prefix = "projector."
            self.projector.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        self.state = "init" if at_init else "trained"
        self.p = anneal_p(self.dual.gate_epoch(self.epoch), self.budget.anneal_alpha)


def training_batches(args: dict[str, Any], count: int, seed: int):
    """``count`` batches of two views ``[B, 3, H, W]`` drawn as the run's pre-training draws them
    (solo-learn's transform pipeline from ``args``; its batch size; a seeded shuffle and seeded
    augmentations, so equal ``args`` data options and ``seed`` give equal batches)."""
    try:
        from omegaconf import OmegaConf
        from solo.data.pretrain_dataloader import (
            FullTransformPipeline,
            NCropAugmentation,
            build_transform_pipeline,
        )
    except ImportError:
        raise UsageError(
            "the gradient-share analysis draws the run's augmentations with solo-learn, which is "
            "not importable; allowed: an environment with solo-learn 9187ea3 installed"
        ) from None
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    cfg = OmegaConf.create(args)
    pipeline = FullTransformPipeline(
        [
            NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops)
            for aug in cfg.augmentations
        ]
    )
    train = Path(cfg.data.train_path)
    if not train.is_dir():
        raise UsageError(
            f"args.json data.train_path={str(train)!r} is not a folder; allowed values: the "
            "run's training ImageFolder, present on this machine"
        )
    loader = DataLoader(
        ImageFolder(train, transform=pipeline),
        batch_size=cfg.optimizer.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    # The augmentations draw from the global generators (torchvision from torch's, solo-learn's
    # blur from Python's): seeding them here gives every network the same batches, whatever
    # was measured before it.
    random.seed(seed)
    torch.manual_seed(seed)
    batches = []
    for views, _ in loader:
        batches.append((views[0], views[1]))
        if len(batches) == count:
            break
    return batches


def measure(subject: Subject, batches, seed: int) -> tuple[list[dict], list[dict]]:
    """The CSV rows of ``subject`` over ``batches`` and each batch's path-loss values."""
    subject.backbone.train()
    subject.projector.train()
    groups = parameter_groups(subject.backbone, subject.projector)
    per_key: dict[tuple[str, str], list] = {}
    losses_log = []
    for index, views in enumerate(tqdm(batches, desc=f"{subject.run} ({subject.state})")):
        torch.manual_seed(seed + index)  # the gate noise of this batch
        losses = path_losses(
            subject.backbone,
            subject.projector,
            views,
            subject.budget,
            subject.dual,
            subject.p,
            subject.vicreg_fn,
            subject.multiplier,
        )
        losses_log.append({path: float(loss.detach()) for path, loss in losses.items()})
        for share in path_shares(losses, groups):
            per_key.setdefault((share.path, share.group), []).append(share)
    rows = []
    for (path, group), shares in sorted(
        per_key.items(), key=lambda kv: (PATHS.index(kv[0][0]), list(groups).index(kv[0][1]))
    ):
        norms = [s.norm for s in shares]
        fractions = [s.share for s in shares]
        rows.append(
            {
                "run": subject.run,
                "state": subject.state,
                "epoch": subject.epoch,
                "path": path,
                "group": group,
                "batches": len(shares),
                "norm_mean": statistics.fmean(norms),
                "norm_std": _spread(norms),
                "share_mean": statistics.fmean(fractions),
                "share_std": _spread(fractions),
                "cosine_mean": statistics.fmean(s.cosine for s in shares),
            }
        )
    return rows, losses_log


def variant_of(run: str) -> str:
    """The run's name without its seed (``...-seed1-paper`` -> ``...-paper``); a name the grid
    runner did not make stays as it is."""
    try:
        return replace(Run.from_name(run), seed=None).name
    except UsageError:
        return run


def by_variant(rows: list[dict]) -> list[dict]:
    """:data:`VARIANT_COLUMNS` rows: per (variant, state, epoch, path, group), the mean and sample
    std over runs of their mean share, the mean of their mean cosine; the std of a single run is
    its std over batches."""
    grouped: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (variant_of(row["run"]), row["state"], row["epoch"], row["path"], row["group"])
        grouped.setdefault(key, []).append(row)
    out = []
    for (variant, state, epoch, path, group), members in grouped.items():
        shares = [m["share_mean"] for m in members]
        out.append(
            {
                "variant": variant,
                "state": state,
                "epoch": epoch,
                "path": path,
                "group": group,
                "runs": len(members),
                "share_mean": statistics.fmean(shares),
                "share_std": _spread(shares) if len(members) > 1 else members[0]["share_std"],
                "cosine_mean": statistics.fmean(m["cosine_mean"] for m in members),
            }
        )
    return out


def plot(rows: list[dict], path: Path) -> None:
    """One panel per (variant, state) of :func:`by_variant` rows: each group's path shares as
    grouped bars with std bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    panels = sorted(
        dict.fromkeys((r["variant"], r["state"]) for r in rows),
        key=lambda panel: (variants.index(panel[0]), panel[1] != "init"),
    )
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.8 * len(panels)), squeeze=False, sharey=True
    )
    for ax, (variant, state) in zip(axes[:, 0], panels):
        mine = [r for r in rows if (r["variant"], r["state"]) == (variant, state)]
        groups = list(dict.fromkeys(r["group"] for r in mine))
        paths = [p for p in PATHS if any(r["path"] == p for r in mine)]
        width = 0.8 / len(paths)
        for i, name in enumerate(paths):
            got = {r["group"]: r for r in mine if r["path"] == name}
            xs = [g + (i - (len(paths) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(
                xs,
                [got[g]["share_mean"] if g in got else 0.0 for g in groups],
                width,
                yerr=[got[g]["share_std"] if g in got else 0.0 for g in groups],
                label=name,
                color=f"C{PATHS.index(name)}",  # one colour per path in every panel
                capsize=2,
            )
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        ax.set_ylabel("share of the step")
        runs = mine[0]["runs"]
        ax.set_title(f"{variant}, {state} ({runs} run{'s' * (runs > 1)})", fontsize=9)
        ax.set_ylim(top=1.35)  # room for the legend above the bars
        ax.legend(fontsize=7, ncol=len(paths), loc="upper left")
    fig.suptitle("Share of each loss path in the gradient of each parameter group", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradient_shares.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help=f"a {METHOD} grid run folder, solo-learn run directory or .ckpt; repeatable",
    )
    parser.add_argument(
        "--at-init",
        action="store_true",
        help="also measure a freshly initialised network of each variant (its first run's config)",
    )
    parser.add_argument("--batches", type=int, default=8, help="training batches per network")
    parser.add_argument("--seed", type=int, default=0, help="batch order and gate noise")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    check_interval("--batches", args.batches, 1, float("inf"))
    check_interval("--threads", args.threads, 1, float("inf"))
    torch.set_num_threads(args.threads)
    subjects = [Subject(c, at_init=False, seed=args.seed) for c in args.checkpoint]
    if args.at_init:  # one initial network per variant, from its first run's config
        first: dict[str, Subject] = {}
        for subject in subjects:
            first.setdefault(variant_of(subject.run), subject)
        inits = [Subject(str(s.path), at_init=True, seed=args.seed) for s in first.values()]
        subjects = [*inits, *subjects]
    with staged_output(args.out, overwrite=args.overwrite) as stage:
        rows, record = [], []
        for subject in subjects:
            batches = training_batches(subject.args, args.batches, args.seed)
            got, losses = measure(subject, batches, args.seed)
            rows.extend(got)
            record.append(
                {
                    "run": subject.run,
                    "state": subject.state,
                    "checkpoint": str(subject.path),
                    "anneal_p": subject.p,
                    "budget_multiplier": subject.multiplier,
                    "path_losses": losses,
                    "args": subject.args,
                }
            )
        variants = by_variant(rows)
        for name, columns, table in (
            ("gradient_shares.csv", COLUMNS, rows),
            ("gradient_shares_by_variant.csv", VARIANT_COLUMNS, variants),
        ):
            with open(stage.path / name, "w", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(table)
        meta = {
            **provenance(),
            "command": shlex.join(["python", "scripts/gradient_shares.py", *argv]),
            "batches": args.batches,
            "seed": args.seed,
        }
        (stage.path / "gradient_shares.json").write_text(
            json.dumps({"provenance": meta, "networks": record, "rows": rows}, indent=2)
        )
        plot(variants, stage.path / "gradient_shares.png")
