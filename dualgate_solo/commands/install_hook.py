"""``dualgate-solo install-hook``: write (or remove) the start-up ``.pth`` of the import hook.

With it, solo-learn's argparse scripts (``main_knn.py``, ``main_umap.py``), which the Hydra plugin
never reaches, find this package's methods. A wheel install ships the file; an editable install
(``pip install -e``) does not, so editable users run this once per environment. ``--target``
writes into another directory (tests use it with ``site.addsitedir``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=Path,
        default=None,
        help="directory to write to (default: this interpreter's site-packages)",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the hook instead")


def run(args: argparse.Namespace) -> None:
    from dualgate_solo.solo_adapter.startup_hook_files import (
        install_hook,
        site_packages,
        uninstall_hook,
    )
    from dualgate_solo.validation import UsageError

    target = args.target or site_packages()
    if target.exists() and not target.is_dir():
        raise UsageError(f"--target={str(target)!r} is a file; allowed values: a directory")
    if args.uninstall:
        uninstall_hook(target)
        print(f"removed the start-up hook from {target}")
    else:
        path = install_hook(target)
        print(f"wrote {path}: main_knn.py / main_umap.py now find this package's methods")
