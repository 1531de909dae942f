"""``dualgate-solo install-hook``: write (or remove) the start-up ``.pth`` of :mod:`import_hook`.

A wheel install ships the file; an editable install (``pip install -e``) does not (contract §5.4),
so editable users run this once per environment. ``--target`` writes into another directory
(tests use it with ``site.addsitedir``).
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path

from dualgate_solo.solo.import_hook import PTH_LINE, PTH_NAME


def site_packages() -> Path:
    """The running interpreter's ``purelib`` (site-packages) directory."""
    return Path(sysconfig.get_paths()["purelib"])


def install_hook(target: Path | None = None) -> Path:
    """Write the ``.pth`` into ``target`` (default: site-packages); returns its path. Idempotent."""
    path = (target or site_packages()) / PTH_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PTH_LINE)
    return path


def uninstall_hook(target: Path | None = None) -> Path:
    """Remove the ``.pth`` if present; returns its path."""
    path = (target or site_packages()) / PTH_NAME
    path.unlink(missing_ok=True)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=Path,
        default=None,
        help="directory to write to (default: this interpreter's site-packages)",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the hook instead")


def run(args: argparse.Namespace) -> None:
    if args.uninstall:
        print(f"removed {uninstall_hook(args.target)}")
    else:
        print(
            f"wrote {install_hook(args.target)}: main_knn.py / main_umap.py now find vicreg_dual_gating"
        )
