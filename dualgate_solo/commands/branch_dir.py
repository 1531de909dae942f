"""``dualgate-solo branch-dir RUN_DIR``: per-branch checkpoint directories for main_knn / main_umap.

solo-learn's ``main_knn.py`` and ``main_umap.py`` read every setting from ``<dir>/args.json``;
:func:`dualgate_solo.solo_adapter.branch_dir.make_branch_dirs` writes one directory per branch whose
``args.json`` names that branch. Prints the ``--pretrained_checkpoint_dir`` of each.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        type=Path,
        help="solo-learn pre-training run directory (args.json + *.ckpt)",
    )
    parser.add_argument(
        "--branch",
        action="append",
        default=None,
        help=(
            "a network the run trained: dense or gated, or a width such as w0.5 (repeatable; "
            "default: every trained network)"
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="parent of the eval-<branch> directories (default: RUN_DIR)",
    )


def run(args: argparse.Namespace) -> None:
    from dualgate_solo.solo_adapter.branch_dir import make_branch_dirs

    for branch, directory in make_branch_dirs(args.run_dir, args.branch, args.out).items():
        print(f"{branch}: --pretrained_checkpoint_dir {directory}")
