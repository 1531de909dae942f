"""``dualgate-solo run SCRIPT [ARGS...]``: run a solo-learn script with the methods registered.

The fallback for environments without the start-up hook (``dualgate-solo install-hook``).
Single-process only: a DDP launch re-executes SCRIPT without this wrapper, where the Hydra
plugin takes over.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "script", metavar="SCRIPT", type=Path, help="e.g. /path/to/solo-learn/main_knn.py"
    )
    parser.add_argument(
        "script_args",
        metavar="ARGS",
        nargs=argparse.REMAINDER,
        help="arguments passed to SCRIPT unchanged",
    )


def run(args: argparse.Namespace) -> None:
    import runpy
    import sys

    from dualgate_solo.validation import UsageError

    if not args.script.is_file():
        raise UsageError(
            f"SCRIPT={str(args.script)!r} is not a file; allowed values: a Python file"
        )
    sys.path.insert(0, str(args.script.resolve().parent))
    try:
        import solo.methods  # noqa: F401  (must exist before register)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != "solo":
            raise
        raise UsageError(
            f"SCRIPT={str(args.script)!r} needs solo-learn, which is not importable here; allowed "
            "values: a solo-learn checkout's script, or install it (requirements-solo.txt)"
        ) from None

    from dualgate_solo.solo_adapter import register

    register()
    sys.argv = [str(args.script), *args.script_args]
    runpy.run_path(str(args.script), run_name="__main__")
