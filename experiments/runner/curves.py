"""Learning curves of a grid's runs from solo-learn's per-epoch validation.

A protocol with online validation (``cpu_long``) logs, after every epoch, solo-learn's online
k-NN top-1 and linear-head top-1 of every trained network (``val_knn_acc1`` for the run's primary
network, ``val_<network>_knn_acc1`` for the others) and the epoch mean of the VICReg term
(``train_vicreg_loss_epoch``), all in the pre-training's ``lightning_logs/version_*/metrics.csv``
(one version per start of a resumed run). :func:`pretrain_metrics` merges them,
:func:`learning_curves` turns them into one row per (run, network, epoch), and :func:`write_curves`
writes ``curves.csv`` and the figure: online k-NN top-1 and VICReg loss against the step, plain
VICReg as the reference.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from experiments.runner.protocols import BASELINE, Run

#: the merged pre-training metrics a published run keeps (see :func:`pretrain_metrics`)
METRICS_FILE = "pretrain-metrics.csv"
CURVE_COLUMNS = ("run", "network", "epoch", "step", "knn_top1", "linear_top1", "vicreg_loss")


def _version(path: Path) -> int:
    return int(path.parent.name.removeprefix("version_"))


def pretrain_metrics(run_dir: Path) -> list[dict[str, str]]:
    """Rows of the run's pre-training metrics: the published :data:`METRICS_FILE`, else every
    ``pretrain/lightning_logs/version_*/metrics.csv`` in version order (empty if none)."""
    published = run_dir / METRICS_FILE
    files = (
        [published]
        if published.is_file()
        else sorted(run_dir.glob("pretrain/lightning_logs/version_*/metrics.csv"), key=_version)
    )
    return [row for f in files for row in csv.DictReader(f.open())]


def write_merged_metrics(run_dir: Path, dest: Path) -> bool:
    """Write the run's merged pre-training metrics to ``dest``; ``False`` if it has none."""
    rows = pretrain_metrics(run_dir)
    if not rows:
        return False
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(dest, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return True


def _metric(network: str, primary: str, name: str) -> str:
    return f"val_{name}" if network == primary else f"val_{network}_{name}"


def learning_curves(run_dir: Path) -> list[dict[str, Any]]:
    """One row per (network, epoch) with an online k-NN value: the step after that epoch
    (``step + 1`` of the logged row), k-NN and linear-head top-1 [%] and the epoch's VICReg loss,
    each from whichever row logged it (the last one wins)."""
    run = Run.from_name(run_dir.name)
    primary = run.branches[0]
    steps: dict[int, int] = {}
    losses: dict[int, float] = {}
    values: dict[tuple[str, str, int], float] = {}  # (metric, network, epoch) -> value
    for row in pretrain_metrics(run_dir):
        if not row.get("epoch"):
            continue
        epoch = int(float(row["epoch"]))
        if row.get("train_vicreg_loss_epoch"):
            losses[epoch] = float(row["train_vicreg_loss_epoch"])
        for network in run.branches:
            for metric in ("knn_acc1", "acc1"):
                value = row.get(_metric(network, primary, metric))
                if value:
                    values[(metric, network, epoch)] = float(value)
                    steps[epoch] = int(float(row["step"])) + 1
    return [
        {
            "run": run_dir.name,
            "network": network,
            "epoch": epoch,
            "step": steps[epoch],
            "knn_top1": knn,
            "linear_top1": values.get(("acc1", network, epoch)),
            "vicreg_loss": losses.get(epoch),
        }
        for network in run.branches
        for (metric, n, epoch), knn in sorted(values.items(), key=lambda kv: kv[0][2])
        if metric == "knn_acc1" and n == network
    ]


def write_curves(runs_dir: Path, out: Path, title: str) -> bool:
    """``curves.csv`` and ``learning_curves.png`` in ``out`` from every run under ``runs_dir``
    that logged online k-NN; ``False`` (nothing written) if none did."""
    rows = [r for d in sorted(runs_dir.iterdir()) for r in learning_curves(d)]
    if not rows:
        return False
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot_curves(rows, out / "learning_curves.png", title)
    return True


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Online k-NN top-1 (left) and VICReg loss (right) against the step: one colour per run,
    the dense network solid and the gated one dashed; plain VICReg in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (knn_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    runs = list(dict.fromkeys(r["run"] for r in rows))
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(runs))
    for run_name in runs:
        run = Run.from_name(run_name)
        baseline = run.method == BASELINE
        style = {"color": "black" if baseline else next(colors)}
        style["linewidth"] = 2.2 if baseline else 1.2
        for network in run.branches:
            points = [r for r in rows if (r["run"], r["network"]) == (run_name, network)]
            label = run_name if baseline else f"{run_name} ({network})"
            steps = [r["step"] for r in points]
            dashes = "--" if network == "gated" else "-"
            knn_ax.plot(steps, [r["knn_top1"] for r in points], dashes, label=label, **style)
            loss = [(r["step"], r["vicreg_loss"]) for r in points if r["vicreg_loss"] is not None]
            if network == run.branches[0] and loss:
                loss_ax.plot(*zip(*loss), label=run_name, **style)
    knn_ax.set_xlabel("pre-training step")
    knn_ax.set_ylabel("online k-NN top-1 [%] (k = 20)")
    loss_ax.set_xlabel("pre-training step")
    loss_ax.set_ylabel("VICReg loss (epoch mean, training views)")
    knn_ax.legend(fontsize=6.5)
    loss_ax.legend(fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
