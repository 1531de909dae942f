"""Where a checkpoint is and what its run recorded, without importing torch.

:func:`find_checkpoint` and :func:`run_args` only look at paths and read ``args.json``, so every
command checks its ``--checkpoint`` here first: a missing or misspelled path is refused in one
line at once, before the seconds that importing torch takes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dualgate_solo.validation import UsageError

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint file for ``path``: the file itself, or the newest ``*.ckpt`` of a run dir."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise UsageError(
                f"--checkpoint={str(path)!r} is a directory without any *.ckpt file; allowed "
                "values: a checkpoint file or a solo-learn run directory"
            )
        return candidates[-1]
    if not path.is_file():
        raise UsageError(f"--checkpoint={str(path)!r} does not exist")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise UsageError(
            f"--checkpoint={str(path)!r} is invalid; allowed values: a file ending in "
            f"{', '.join(CHECKPOINT_SUFFIXES)}"
        )
    return path


def run_args(path: Path) -> dict[str, Any]:
    """The ``args.json`` beside checkpoint ``path`` (solo-learn writes it), ``{}`` when absent."""
    args_file = path.parent / "args.json"
    if not args_file.is_file():
        return {}
    try:
        return json.loads(args_file.read_text())
    except json.JSONDecodeError as error:
        raise UsageError(f"{str(args_file)!r} beside --checkpoint is not JSON ({error})") from None
