"""Accuracy against measured cost of every deployable network of a grid: the decision figure.

For every finished run of a grid (``<grid>/runs/<run>/``, :mod:`experiments.runner`) whose
pre-training checkpoint exists, each evaluated network becomes the network one would deploy:

* a slimmable width (SlimCLR-VICReg, SlimCLR-MoCo v3, SACL-XD's slim ``w0.5`` and host ``w1``):
  :func:`~dualgate_solo.slimmable.export.export_width`, a plain ResNet of that width
  (``width_export``);
* a dense network (VICReg at any width, the Dual-Gating dense branch): the dense weights in the
  plain ``PrunedResNet`` at full width (``dense_plain``, as in :mod:`~.latency`);
* a gated branch (Dual-Gating, VICReg-Gating): the branch as trained (``gated_masked``: dense
  convolutions, then channel masks) AND its static export (``static_export``: always-off channels
  removed, from gate statistics on ``--calib-size`` calibration images, as in :mod:`~.latency`);
  a width-gated branch (``gate_mode: width``) instead as its routed executor (``routed``:
  :class:`~dualgate_solo.export.RoutedResNet`, each input at its chosen widths).

Every network is timed in this one process: eager, ``torch.set_num_threads(--threads)``, batch 1
and 64, all networks of a batch size interleaved round-robin (:func:`~.timing.round_robin`), the
median ms per call kept. MACs per image: FlopCounterMode (FLOPs / 2, convolutions;
:func:`~.timing.count_macs`) of each network, except ``gated_masked``, whose dense convolutions
FlopCounterMode counts in full: its row holds the *expected* MACs of the gate accounting (mean
kept-MAC ratio r on the calibration images x the dense MACs; ``macs_source`` says which).
Accuracy: linear top-1 and k-NN top-1 (k = 20) per run and network from the grid's stage records
(:func:`experiments.runner.table.collect_rows`), completed by a published ``table.csv``
(``--table``) for the runs the grid has not finished. A static export carries its gated branch's
accuracy: it runs every channel the gates ever open, so its features approximate the branch's
(``max_abs_diff_vs_source``).

Writes ``family.csv``, ``family.json`` (machine, date, command, torch, threads, rows, skipped
runs with the reason) and ``accuracy_vs_cost.png`` to ``--out``. Set ``OMP_WAIT_POLICY=PASSIVE``
before torch is imported (``scripts/bench_family.py`` does; see :mod:`~.latency`).

    python scripts/bench_family.py --grid runs/grid_cpu --table results/grid_cpu \\
        --calib-data /data/cifar10_jpg/test --out results/family_cpu
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dualgate_solo.choices import EXECUTORS
from dualgate_solo.gated.layers import gate_mode_of
from dualgate_solo.method_registry import METHODS, label_width
from dualgate_solo.validation import UsageError
from experiments.bench.latency import images
from experiments.bench.latency_report import BATCHES, QUICK_REPEATS, REPEATS
from experiments.bench.timing import count_macs, round_robin
from experiments.bench.variants import Branch
from experiments.runner.protocols import BASELINE, Run
from experiments.runner.stages import stage_result

#: what a row's network is, as deployed
KINDS = {
    "width_export": "export_width(backbone, w): plain ResNet of the width, BN folded",
    "dense_plain": "dense weights in the plain PrunedResNet at full width, BN folded",
    "gated_masked": "the gated branch as trained (dense convolutions, then channel masks)",
    "static_export": EXECUTORS["static"].description,
    "routed": EXECUTORS["routed"].description,
}
#: the marker of each kind of network (the colour is the method's)
KIND_MARKERS = {
    "width_export": "v",
    "dense_plain": "s",
    "gated_masked": "D",
    "static_export": "^",
    "routed": "*",
}
#: the baseline's families: trained at the full width, and directly at smaller widths
BASELINE_FAMILIES = ("VICReg", "VICReg, small width")


def family_label(method: str, kind: str, width: int | None = None) -> str:
    """The family a network is drawn and tabled in: the method's registry ``display`` name and
    what was deployed (``Dual-Gating gated (static export)``, ``SlimCLR-VICReg``); the baseline
    trained at a smaller ``width`` is its own family."""
    if method == BASELINE:
        return BASELINE_FAMILIES[width is not None]
    spec = METHODS[method]
    branch = " gated" if len(spec.branches) > 1 else ""
    suffix = {
        "width_export": "",
        "dense_plain": " dense",
        "gated_masked": f"{branch} (masked)",
        "static_export": f"{branch} (static export)",
        "routed": " width-gated (routed)",
    }[kind]
    return spec.display + suffix


def family_style(method: str, kind: str, width: int | None = None) -> tuple[str, str, bool]:
    """``(colour, marker, joined)`` of a family: one colour per method (registry order), one
    marker per kind; the points of a network family at several widths are joined by a line."""
    if method == BASELINE:
        return ("black", "o", False) if width is None else ("grey", "o", True)
    return f"C{list(METHODS).index(method)}", KIND_MARKERS[kind], kind == "width_export"


CSV_FIELDS = (
    "family",
    "method",
    "run",
    "network",
    "kind",
    "macs_per_image",
    "macs_source",
    "latency_b1_ms",
    "latency_b64_ms",
    "linear_top1",
    "knn_top1_k20",
    "max_abs_diff_vs_source",
    "checkpoint",
)


@dataclass
class Deployable:
    """One network to time: where it comes from, the module, and its MACs per image."""

    run: Run
    network: str
    kind: str
    module: nn.Module
    macs: float
    macs_source: str
    max_abs_diff_vs_source: float | None
    checkpoint: str

    @property
    def family(self) -> str:
        return family_label(self.run.method, self.kind, self.run.width)


# ---------------------------------------------------------------------- inputs
def accuracy_rows(grid: Path, table: Path | None) -> tuple[dict[tuple[str, str], dict], list]:
    """``(run name, network) -> {linear_top1, knn_top1_k20}`` and the grid's unfinished runs.

    The rows of the grid's stage records, then those of ``<table>/table.csv`` (or ``table``
    itself when it is a CSV file) for any run and network the grid has not finished. Keyed by
    the run directory's full name (``run`` column), so each seed of a run keeps its own
    accuracy.
    """
    from experiments.runner.table import collect_rows

    rows, unfinished = collect_rows(grid / "runs")
    if table is not None:
        with open(table / "table.csv" if table.is_dir() else table, newline="") as f:
            rows += list(csv.DictReader(f))
    accuracy = {}
    for r in rows:
        accuracy.setdefault(
            (Run.from_name(r["run"]).name, r["branch"]),
            {
                "linear_top1": float(r["linear_top1"]),
                "knn_top1_k20": float(r["knn_top1_k20"]),
            },
        )
    return accuracy, unfinished


def find_checkpoint(run: str, record_dirs: list[Path]) -> tuple[Path, Path] | str:
    """``(checkpoint, args.json)`` of ``run`` from the first ``<dir>/runs/<run>/pretrain.json``
    that exists, or the reason there is none."""
    records = [d / "runs" / run / "pretrain.json" for d in record_dirs]
    found = [p for p in records if p.is_file()]
    if not found:
        return f"no pre-training record ({' or '.join(map(str, records))})"
    result = stage_result(json.loads(found[0].read_text()))
    checkpoint = Path(result["checkpoint"])
    # records of the earlier runner name no args.json: solo-learn writes it beside the checkpoint
    args_json = Path(result.get("args_json") or checkpoint.parent / "args.json")
    if not checkpoint.is_file():
        return f"checkpoint {checkpoint} (named by {found[0]}) does not exist"
    if not args_json.is_file():
        return f"args.json {args_json} (named by {found[0]}) does not exist"
    return checkpoint, args_json


def load_network(checkpoint: Path, args_json: Path) -> nn.Module:
    """The pre-trained backbone (gated or slimmable ResNet) of a run, in eval mode."""
    from dualgate_solo.checkpoint import load_backbone, read_state_dict
    from dualgate_solo.choices import SLIM_BACKBONE_DEPTHS
    from dualgate_solo.models import create_backbone

    recorded = json.loads(args_json.read_text())["backbone"]
    if recorded["name"] not in SLIM_BACKBONE_DEPTHS:
        return load_backbone(checkpoint, require_gates=False).backbone
    backbone = create_backbone(recorded["name"], **recorded.get("kwargs", {}))
    backbone.load_state_dict(read_state_dict(checkpoint), strict=True)
    return backbone.eval()


# ---------------------------------------------------------------------- networks
@torch.no_grad()
def _diff(module: nn.Module, reference: torch.Tensor, x: torch.Tensor) -> float:
    return float((module(x) - reference).abs().max())


@torch.no_grad()
def deployables(
    run: Run,
    networks: list[str],
    backbone: nn.Module,
    checkpoint: Path,
    calib_x: torch.Tensor,
    test_x: torch.Tensor,
) -> list[Deployable]:
    """The deployable networks of ``networks`` of one run (module docstring), with MACs and the
    max abs feature difference to the trained network on ``test_x``."""
    from dualgate_solo.export import (
        RoutedResNet,
        copy_to_pruned,
        export_pruned,
        fold_network,
        full_width_blocks,
        make_plan,
    )
    from dualgate_solo.gated.gate_stats import collect_gate_statistics
    from dualgate_solo.slimmable.export import export_width

    one = [test_x[:1]]
    out = []

    def add(network: str, kind: str, module: nn.Module, reference, macs=None, source=None):
        diff = None if reference is None else _diff(module, reference, test_x)
        measured = count_macs(module, one) if macs is None else macs
        source = source or "FlopCounterMode (FLOPs / 2), one image"
        out.append(Deployable(run, network, kind, module, measured, source, diff, str(checkpoint)))

    if run.method in METHODS and METHODS[run.method].slimmable:
        for network in networks:
            width = label_width(network)
            reference = backbone.forward_width(test_x, width).feats
            plain = fold_network(export_width(backbone, width))
            add(network, "width_export", plain, reference)
        return out
    for network in networks:
        if network == "dense":
            plain = fold_network(
                copy_to_pruned(backbone, full_width_blocks(backbone, gated=False), "dense")
            )
            add(network, "dense_plain", plain, backbone.forward_branch(test_x, "dense").feats)
            continue
        reference = backbone.forward_branch(test_x, "gated").feats
        if gate_mode_of(backbone).routed:
            routed = RoutedResNet(backbone)
            batches = list(calib_x.split(128))
            source = "FlopCounterMode over the routed run on the calibration images, per image"
            add(network, "routed", routed, reference, count_macs(routed, batches), source)
            continue
        stats = collect_gate_statistics(backbone, calib_x.split(128), progress=False)
        expected = stats.mean_ratio * stats.costs.dense_macs
        source = (
            f"expected MACs of the gate accounting: mean kept-MAC ratio r = "
            f"{stats.mean_ratio:.4f} on {stats.num_samples} calibration images x dense MACs"
        )
        add(network, "gated_masked", Branch(backbone, "gated"), None, expected, source)
        static = fold_network(export_pruned(backbone, make_plan(backbone, stats, "static")))
        add(network, "static_export", static, reference)
    return out


def time_all(
    networks: list[Deployable], inputs: dict[int, torch.Tensor], repeats: dict
) -> dict[int, list[float]]:
    """``batch -> median ms per call`` of each network, all timed round-robin per batch size."""
    medians = {}
    for batch in BATCHES:
        warmup, rounds = repeats[batch]
        times = round_robin([n.module for n in networks], inputs[batch], warmup, rounds)
        medians[batch] = [statistics.median(t) for t in times]
    return medians


# ---------------------------------------------------------------------- report
def _point_label(row: dict) -> str:
    """A point's tag: the width of a width export, else what names the run beyond its method
    (``td0.1-tracked``, ``width8-paper``)."""
    return row["network"] if row["kind"] == "width_export" else row["run"].split("-", 1)[1]


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Linear top-1 (top row) and k-NN@20 (bottom row) against latency at batch 1, at batch 64,
    and MACs (log x); one colour and marker per family, widths of one network joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = (
        ("latency_b1_ms", "latency, batch 1 [ms]"),
        ("latency_b64_ms", "latency, batch 64 [ms]"),
        ("macs_per_image", "MACs per image"),
    )
    metrics = (("linear_top1", "linear top-1 [%]"), ("knn_top1_k20", "k-NN top-1, k=20 [%]"))
    style = {}
    for r in rows:
        run = Run.from_name(r["run"])
        style[r["family"]] = family_style(run.method, r["kind"], run.width)
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), squeeze=False)
    for (metric, ylabel), ax_row in zip(metrics, axes):
        for (cost, xlabel), ax in zip(costs, ax_row):
            for family in dict.fromkeys(r["family"] for r in rows):
                points = [r for r in rows if r["family"] == family and r[metric] is not None]
                groups = (
                    [points]
                    if family == BASELINE_FAMILIES[1]
                    else [
                        [p for p in points if p["run"] == run]
                        for run in dict.fromkeys(p["run"] for p in points)
                    ]
                )
                colour, marker, joined = style[family]
                for i, group in enumerate(groups):
                    group = sorted(group, key=lambda r: r[cost])
                    ax.plot(
                        [r[cost] for r in group],
                        [r[metric] for r in group],
                        color=colour,
                        marker=marker,
                        linestyle="-" if joined else "none",
                        label=family if i == 0 else None,
                    )
                    for r in group:
                        ax.annotate(_point_label(r), (r[cost], r[metric]), fontsize=6, alpha=0.7)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xscale("log")
            ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------- driver
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_family.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--grid", type=Path, required=True, help="grid out dir (runs/<run>/)")
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="published records dir with table.csv (or the CSV): accuracies of the runs the grid "
        "has not finished; its runs/<run>/pretrain.json are a second place to find checkpoints",
    )
    parser.add_argument(
        "--calib-data",
        type=Path,
        default=None,
        help="ImageFolder of evaluation images for the gate statistics and inputs "
        "(default: synthetic images)",
    )
    parser.add_argument("--dataset", default="cifar_jpg", help="evaluation transform")
    parser.add_argument(
        "--calib-size", type=int, default=None, help="calibration images (default 512, --quick 64)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="few timing repeats (a smoke)")
    parser.add_argument("--out", type=Path, default=Path("results/family"))
    return parser


def _check(args: argparse.Namespace) -> None:
    """UsageError for a missing input (before anything is written)."""
    if not (args.grid / "runs").is_dir():
        raise UsageError(
            f"--grid={str(args.grid)!r} has no runs/ directory; allowed: a grid out dir"
        )
    if args.table is not None:
        table = args.table / "table.csv" if args.table.is_dir() else args.table
        if not table.is_file():
            raise UsageError(f"--table={str(args.table)!r}: {table} does not exist")
    if args.calib_data is not None and not args.calib_data.is_dir():
        raise UsageError(f"--calib-data={str(args.calib_data)!r} is not a directory")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; writes the files under ``--out`` and returns the JSON record."""
    args = build_parser().parse_args(argv)
    _check(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t_start = time.time()
    calib_size = args.calib_size or (64 if args.quick else 512)
    repeats = QUICK_REPEATS if args.quick else REPEATS

    accuracy, unfinished = accuracy_rows(args.grid, args.table)
    measured_runs = {run for run, _ in accuracy}
    skipped = [
        {"run": run, "reason": "unfinished: stage records missing"}
        for run in unfinished
        if run not in measured_runs
    ]
    calib_x, test_x = images(args.calib_data, args.dataset, calib_size)
    record_dirs = [args.grid, *([args.table] if args.table and args.table.is_dir() else [])]
    networks: list[Deployable] = []
    for run_name in dict.fromkeys(run for run, _ in accuracy):
        found = find_checkpoint(run_name, record_dirs)
        if isinstance(found, str):
            skipped.append({"run": run_name, "reason": found})
            print(f"  skip {run_name}: {found}", flush=True)
            continue
        run = Run.from_name(run_name)
        evaluated = [network for run_, network in accuracy if run_ == run_name]
        backbone = load_network(*found)
        networks += deployables(run, evaluated, backbone, found[0], calib_x, test_x)
        print(f"  built {run_name}: {', '.join(evaluated)}", flush=True)
    if not networks:
        raise UsageError(f"--grid={str(args.grid)!r}: no run has a checkpoint; see {skipped}")

    inputs = {b: test_x[:b].contiguous() for b in BATCHES}
    load_before = os.getloadavg()
    medians = time_all(networks, inputs, repeats)
    load_after = os.getloadavg()
    rows = [
        {
            "family": n.family,
            "method": n.run.method,
            "run": n.run.name,
            "network": n.network,
            "kind": n.kind,
            "macs_per_image": n.macs,
            "macs_source": n.macs_source,
            "latency_b1_ms": medians[1][i],
            "latency_b64_ms": medians[64][i],
            **accuracy[(n.run.name, n.network)],
            "max_abs_diff_vs_source": n.max_abs_diff_vs_source,
            "checkpoint": n.checkpoint,
        }
        for i, n in enumerate(networks)
    ]

    from dualgate_solo.provenance import provenance

    command = "python scripts/bench_family.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        **provenance(),
        "platform": platform.platform(),
        "command": command.strip(),
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "quick": args.quick,
        "load_average_1_5_15min": {"before_timing": load_before, "after_timing": load_after},
        "inputs": f"{calib_size} calibration and 64 timing images of "
        + (str(args.calib_data) if args.calib_data else "synthetic shapes"),
        "timing": {
            "runtime": "eager PyTorch, torch.inference_mode",
            "warmup_rounds": {str(b): list(v) for b, v in repeats.items()},
            "statistic": "median ms per forward call; all networks interleaved round-robin per "
            "batch size",
        },
        "accuracy_source": f"stage records under {args.grid}/runs"
        + (f", then {args.table} for runs the grid has not finished" if args.table else ""),
        "kinds": KINDS,
        "rows": rows,
        "skipped": skipped,
        "wall_seconds": time.time() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "family.json").write_text(json.dumps(result, indent=2))
    write_csv(rows, args.out / "family.csv")
    title = (
        f"{result['machine']}, {torch.get_num_threads()} threads, eager, "
        f"torch {torch.__version__}, {result['date']}{', QUICK' if args.quick else ''}"
    )
    plot(rows, args.out / "accuracy_vs_cost.png", title)
    for r in rows:
        print(
            f"{r['run']:34s} {r['network']:6s} {r['kind']:13s} {r['macs_per_image'] / 1e6:9.2f} M "
            f"{r['latency_b1_ms']:8.2f} ms {r['latency_b64_ms']:9.2f} ms "
            f"lin {r['linear_top1']:5.2f} knn {r['knn_top1_k20']:5.2f}"
        )
    print(f"wrote {args.out}/family.csv, family.json, accuracy_vs_cost.png")
    return result
