"""``dualgate-solo run SCRIPT [ARGS...]``: run a solo-learn script with the methods registered.

The fallback of contract §5 (c) for environments without the start-up hook. Single-process only:
a DDP launch re-executes SCRIPT without this wrapper, where the Hydra plugin takes over.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", type=Path, help="e.g. /path/to/solo-learn/main_knn.py")
    parser.add_argument(
        "script_args", nargs=argparse.REMAINDER, help="arguments passed to SCRIPT unchanged"
    )


def run(args: argparse.Namespace) -> None:
    from dualgate_solo.solo import register

    if not args.script.is_file():
        raise ValueError(f"script={str(args.script)!r} is not a file")
    sys.path.insert(0, str(args.script.resolve().parent))
    import solo.methods  # noqa: F401  (must exist before register)

    register()
    sys.argv = [str(args.script), *args.script_args]
    runpy.run_path(str(args.script), run_name="__main__")
