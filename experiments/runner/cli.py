"""Paper-table grid through solo-learn's unchanged scripts: pre-train, linear, k-NN, FLOPs R.

Runs VICReg (solo-learn's own), and every gated method of the registry at each ``t_d`` in each
budget variant (``paper``, ``tracked``) through solo-learn's ``main_pretrain.py``,
``main_linear.py`` (per branch) and ``main_knn.py`` (per branch, k = 1 and 20, Euclidean), then
costs every gated branch with ``dualgate-solo cost-report`` (deterministic gates, the evaluation
split). Each stage writes ``<out>/runs/<run>/<stage>.json`` (identity, result, wall-clock times),
so a second invocation reuses a finished stage only when its identity is unchanged (resolved
config, environment switches, the checkpoint it reads, the code: :mod:`~.stages`) and re-runs it
otherwise, or, with ``--refuse-stale``, stops in one line naming the stage and what changed.
``--pretrain-override`` lists name their runs ``<run>-o<hash>-<variant>``. Aggregates
``<out>/table.{csv,md}`` and ``<out>/accuracy_vs_flops.png``.

    SOLO_LEARN_SRC=/path/to/solo-learn python scripts/run_grid.py --protocol smoke \\
        --train /data/cifar10_jpg/train --val /data/cifar10_jpg/test --out results/grid_smoke

Protocols (config directories under ``configs/``; docs/reproducing.md gives their cost):

- ``smoke`` = ``cpu_quick``: minutes, a check of the machinery, not a result.
- ``cpu``: CIFAR-10 JPEGs on 2 CPU cores: width-16 ResNet-18, a 500-per-class training subset
  and a 200-per-class evaluation subset (symlinked under ``<out>/data``), 5 pre-training and
  3 linear epochs, no online validation; evaluation at 32 px through
  ``DUALGATE_CUSTOM_PIPELINE``.
- ``cpu_long``: ``cpu`` trained 8x longer (40 epochs, 1,560 steps) with online k-NN and linear
  head of every trained network after every epoch (``learning_curves.png``, ``curves.csv``) and a
  10-epoch linear probe.
- ``gpu``: the paper's recipe (``cifar10``: 500 epochs, torchvision CIFAR-10).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dualgate_solo.method_registry import METHODS
from dualgate_solo.validation import UsageError, check_interval, report_usage_errors
from experiments.runner.protocols import BASELINE, PROTOCOLS, VARIANTS, grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_grid.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument(
        "--train", type=Path, required=True, help="training ImageFolder (or dataset root for gpu)"
    )
    parser.add_argument("--val", type=Path, required=True, help="evaluation split")
    parser.add_argument(
        "--solo",
        type=Path,
        default=os.environ.get("SOLO_LEARN_SRC", "."),
        help="solo-learn checkout ($SOLO_LEARN_SRC)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--methods", nargs="+", choices=[*METHODS, BASELINE], default=[*METHODS, BASELINE]
    )
    parser.add_argument("--densities", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--baseline-widths",
        nargs="*",
        type=int,
        default=[],
        help=f"also train {BASELINE} directly at these backbone widths (the small network alone)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="run each run once per seed (solo-learn's `seed`, pre-training and linear probe); "
        "the table gives mean +- std over the seeds of a run, counting the run without a seed "
        "suffix (the config's seed, solo-learn's default 5) as one of them",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="data-loader workers (default: the protocol's)"
    )
    parser.add_argument(
        "--cost-data",
        type=Path,
        default=None,
        help="ImageFolder of the evaluation split for the cost report (default: --val)",
    )
    parser.add_argument(
        "--no-umap",
        action="store_true",
        help="skip the UMAP figure of two-branch runs (for machines without umap-learn)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="CPU-only machine: load the shim that maps main_knn.py's hard-coded CUDA to the CPU",
    )
    parser.add_argument(
        "--pretrain-override", nargs="*", default=[], help="extra Hydra overrides, main_pretrain.py"
    )
    parser.add_argument(
        "--linear-override", nargs="*", default=[], help="extra Hydra overrides, main_linear.py"
    )
    parser.add_argument(
        "--refuse-stale",
        action="store_true",
        help="stop (exit 2, one line) at a stage whose record was made with another config, "
        "environment, checkpoint or code, or a pre-training that would not resume its "
        "checkpoint, instead of re-running it",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="run no stage: publish (--publish) and tabulate the stage records that exist, e.g. "
        "of runs made on another machine",
    )
    parser.add_argument(
        "--publish",
        type=Path,
        default=None,
        help="copy the runs' records, reports and args.json (no checkpoints) here and "
        "rewrite its table from all runs it holds",
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    """``UsageError`` for the first invalid option; nothing has been written yet."""
    for script in ("main_pretrain.py", "main_linear.py", "main_knn.py"):
        if not (args.solo / script).is_file():
            raise UsageError(
                f"--solo={str(args.solo)!r} is invalid: no {script}; allowed: a solo-learn "
                "checkout (or set SOLO_LEARN_SRC)"
            )
    for t_d in args.densities:
        check_interval("--densities", t_d, 0.0, 1.0, low_inclusive=False)
    for width in args.baseline_widths:
        check_interval("--baseline-widths", width, 1, float("inf"))
    for seed in args.seeds or ():
        check_interval("--seeds", seed, 0, 2**32 - 1)
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds={args.seeds} is invalid; allowed values: distinct integers")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers={args.workers} is invalid; allowed values: an integer >= 0")
    if args.cost_data is not None and not args.cost_data.is_dir():
        raise UsageError(f"--cost-data={str(args.cost_data)!r} is invalid; allowed: a directory")
    protocol = PROTOCOLS[args.protocol]
    if protocol.dataset == "custom":
        from experiments.runner.data import check_image_folder

        check_image_folder(args.train, protocol.train_per_class, "--train")
        check_image_folder(args.val, protocol.val_per_class, "--val")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def checked_run() -> int:
        check_args(args)
        return run(args, list(sys.argv if argv is None else ["run_grid.py", *argv]))

    return report_usage_errors(checked_run, "run_grid.py")


def run(args: argparse.Namespace, command: list[str]) -> int:
    from tqdm import tqdm

    from dualgate_solo.provenance import provenance
    from experiments.runner.curves import write_curves
    from experiments.runner.data import subset_folder
    from experiments.runner.grid import GridRunner
    from experiments.runner.publish import publish_runs
    from experiments.runner.table import collect_rows, write_table

    protocol = PROTOCOLS[args.protocol]
    train, val = args.train, args.val
    if protocol.train_per_class and not args.tables_only:
        train = subset_folder(args.train, args.out / "data" / "train", protocol.train_per_class)
    if protocol.val_per_class and not args.tables_only:
        val = subset_folder(args.val, args.out / "data" / "val", protocol.val_per_class)
    runner = GridRunner(
        protocol_name=args.protocol,
        protocol=protocol,
        solo=args.solo.resolve(),
        train=train,
        val=val,
        out=args.out,
        workers=protocol.workers if args.workers is None else args.workers,
        cpu=args.cpu,
        draw_umap=protocol.umap and not args.no_umap,
        cost_data=args.cost_data,
        pretrain_overrides=tuple(args.pretrain_override),
        linear_overrides=tuple(args.linear_override),
        refuse_stale=args.refuse_stale,
    )
    seeds = tuple(args.seeds) if args.seeds else (None,)
    widths, extra = tuple(args.baseline_widths), tuple(args.pretrain_override)
    runs = grid(args.methods, args.densities, args.variants, widths, seeds, extra)
    for run in tqdm([] if args.tables_only else runs, desc="grid", unit="run"):
        runner.run(run)

    meta = {**provenance(), "command": command}
    meta["runs"] = [run.name for run in runs]
    targets = [args.out] + ([args.publish] if args.publish else [])
    if args.publish:
        made = [name for name in meta["runs"] if (args.out / "runs" / name).is_dir()]
        publish_runs(args.out, args.publish, made)
    for target in targets:
        rows, unfinished = collect_rows(target / "runs")
        title = f"protocol {args.protocol}; per-run records in runs/<run>/"
        write_table(rows, target, title, unfinished)
        write_curves(target / "runs", target, title)
        record = {**meta, "unfinished_runs": unfinished}
        (target / "provenance.json").write_text(json.dumps(record, indent=2))
    print((targets[-1] / "table.md").read_text())
    return 0
