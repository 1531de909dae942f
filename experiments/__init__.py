"""The lab beside the library: the evaluation grid (:mod:`~.runner`) and the benchmarks
(:mod:`~.bench`), with their entry points in ``scripts/`` and their outputs in ``results/``.

Not part of the installed package (the wheel ships ``dualgate_solo`` only): it imports
``dualgate_solo`` like any user would and is importable from the repository root (the scripts put
that root on ``sys.path``; pytest's ``pythonpath`` does the same for the tests).
"""

from __future__ import annotations

import os
from pathlib import Path

#: the repository root, the folder that holds this package
ROOT = Path(__file__).resolve().parent.parent


def python_path(*first: str) -> str:
    """A ``PYTHONPATH`` value for a child process: ``first``, then :data:`ROOT` (so ``python -m
    experiments...`` works from any directory), then this process's ``PYTHONPATH``."""
    paths = [*first, str(ROOT), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in paths if p)
