"""``dualgate-solo branch-dir RUN_DIR``: per-branch checkpoint directories for main_knn / main_umap.

solo-learn's ``main_knn.py`` and ``main_umap.py`` rebuild the model from ``<dir>/args.json`` and take
no overrides (contract §4.5). For each requested branch this writes ``<out>/<branch>/`` holding a
symlink to the run's newest checkpoint and a copy of ``args.json`` whose
``backbone.kwargs.branch`` names the branch. Nothing in ``RUN_DIR`` is modified.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dualgate_solo.checkpoint import find_checkpoint
from dualgate_solo.solo.config import ALLOWED_BRANCHES
from dualgate_solo.validation import check_choice


def make_branch_dirs(
    run_dir: Path, branches: list[str] | None = None, out: Path | None = None
) -> dict[str, Path]:
    """Create one evaluation directory per branch; returns ``{branch: directory}``.

    Raises:
        ValueError: ``run_dir`` has no ``args.json`` or checkpoint, was not trained by a gated
            method, or a branch is not one the method trained.
    """
    run_dir = Path(run_dir)
    args_file = run_dir / "args.json"
    if not args_file.is_file():
        raise ValueError(
            f"run_dir={str(run_dir)!r} has no args.json; pass a solo-learn pre-training run directory"
        )
    checkpoint = find_checkpoint(run_dir)
    args = json.loads(args_file.read_text())
    method = check_choice("method (args.json)", args.get("method"), ALLOWED_BRANCHES)
    branches = branches or list(ALLOWED_BRANCHES[method])
    out = Path(out) if out is not None else run_dir
    made = {}
    for branch in branches:
        check_choice("branch", branch, ALLOWED_BRANCHES[method])
        target = out / f"eval-{branch}"
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("*.ckpt"):
            stale.unlink()
        (target / checkpoint.name).symlink_to(checkpoint.resolve())
        branch_args = json.loads(json.dumps(args))
        branch_args["backbone"].setdefault("kwargs", {})["branch"] = branch
        (target / "args.json").write_text(json.dumps(branch_args, indent=4))
        made[branch] = target
    return made


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, help="solo-learn pre-training run directory (args.json + *.ckpt)"
    )
    parser.add_argument(
        "--branch",
        action="append",
        default=None,
        help="dense or gated (repeatable; default: every trained branch)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="parent of the eval-<branch> directories (default: RUN_DIR)",
    )


def run(args: argparse.Namespace) -> None:
    for branch, directory in make_branch_dirs(args.run_dir, args.branch, args.out).items():
        print(f"{branch}: --pretrained_checkpoint_dir {directory}")
