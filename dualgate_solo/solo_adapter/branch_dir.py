"""Per-network checkpoint directories for solo-learn's ``main_knn.py`` / ``main_umap.py``.

solo-learn's ``main_knn.py`` and ``main_umap.py`` rebuild the model from ``<dir>/args.json`` and
take no overrides. For each requested network (a gated method's branch, a slimmable method's
width such as ``w0.5``) :func:`make_branch_dirs` writes ``<out>/eval-<network>/`` holding a
symlink to the run's newest checkpoint and a copy of ``args.json`` whose ``backbone.kwargs``
selects the network (``branch``, or ``width_mult``). Nothing in the run directory is
modified. Command line: ``dualgate-solo branch-dir`` (:mod:`dualgate_solo.commands.branch_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path

from dualgate_solo.checkpoint import find_checkpoint, run_args
from dualgate_solo.method_registry import METHODS, trained_branches
from dualgate_solo.validation import UsageError, check_choice


def make_branch_dirs(
    run_dir: Path, branches: list[str] | None = None, out: Path | None = None
) -> dict[str, Path]:
    """Create one evaluation directory per branch; returns ``{branch: directory}``.

    Everything is checked before the first file is written.

    Raises:
        UsageError: ``run_dir`` has no ``args.json`` or checkpoint, was not trained by one of
            this package's methods, or a branch is not one the method trained.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "args.json").is_file():
        raise UsageError(
            f"RUN_DIR={str(run_dir)!r} has no args.json; allowed values: a solo-learn "
            "pre-training run directory"
        )
    checkpoint = find_checkpoint(run_dir)
    args = run_args(checkpoint)
    method = check_choice("method (args.json)", args.get("method"), METHODS)
    spec = METHODS[method]
    allowed = trained_branches(method, args["backbone"].get("kwargs"))
    branches = [check_choice("--branch", b, allowed) for b in branches or allowed]
    out = Path(out) if out is not None else run_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out={str(out)!r} is a file; allowed values: a directory")
    made = {}
    for branch in branches:
        target = out / f"eval-{branch}"
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("*.ckpt"):
            stale.unlink()
        (target / checkpoint.name).symlink_to(checkpoint.resolve())
        branch_args = json.loads(json.dumps(args))
        kwargs = branch_args["backbone"].setdefault("kwargs", {})
        kwargs[spec.selector] = spec.selector_value(branch)
        (target / "args.json").write_text(json.dumps(branch_args, indent=4))
        made[branch] = target
    return made
