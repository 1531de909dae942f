"""Write or remove the start-up hook of :mod:`dualgate_solo.solo_adapter.startup_hook` in a site
directory.

The hook is three files: ``dualgate_solo_hook.pth`` (one import line), ``dualgate_solo_hook.py`` (a
copy of :mod:`~dualgate_solo.solo_adapter.startup_hook`) and its bytecode. A wheel ships and
records them, so ``pip uninstall dualgate-solo`` removes them. An editable install (``pip install
-e``) cannot ship them: :func:`install_hook` writes them and, when the directory holds the installed
``dualgate-solo`` distribution, lists them in its ``RECORD``, so ``pip uninstall dualgate-solo``
removes them as well. Re-installing the package removes the old copy, hook included: run
``install-hook`` again afterwards.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import py_compile
import sysconfig
from pathlib import Path

from dualgate_solo.solo_adapter import startup_hook
from dualgate_solo.solo_adapter.startup_hook import MODULE_NAME, PTH_LINE, PTH_NAME

#: the installed distribution's metadata directory (PEP 376 / 627), whatever the version
DIST_INFO_GLOB = "dualgate_solo-*.dist-info"


def site_packages() -> Path:
    """The running interpreter's ``purelib`` (site-packages) directory."""
    return Path(sysconfig.get_paths()["purelib"])


def hook_files(target: Path) -> list[Path]:
    """The hook's files in ``target``: the ``.pth``, the module and the module's bytecode."""
    module = target / f"{MODULE_NAME}.py"
    return [target / PTH_NAME, module, Path(importlib.util.cache_from_source(str(module)))]


def install_hook(target: Path | None = None) -> Path:
    """Write the hook into ``target`` (default: site-packages); returns the ``.pth``. Idempotent."""
    target = target or site_packages()
    pth, module, bytecode = hook_files(target)
    target.mkdir(parents=True, exist_ok=True)
    module.write_bytes(Path(startup_hook.__file__).read_bytes())
    py_compile.compile(str(module), cfile=str(bytecode), doraise=True)
    pth.write_text(PTH_LINE)
    _record(target, [pth, module, bytecode])
    return pth


def uninstall_hook(target: Path | None = None) -> list[Path]:
    """Remove the hook's files from ``target`` (default: site-packages); returns those removed."""
    target = target or site_packages()
    removed = [path for path in hook_files(target) if path.exists()]
    for path in removed:
        path.unlink()
    _record(target, [])
    return removed


def _record(target: Path, files: list[Path]) -> None:
    """Make the hook's rows of every ``RECORD`` in ``target`` list exactly ``files``."""
    hook_rows = {path.relative_to(target).as_posix() for path in hook_files(target)}
    for record in target.glob(f"{DIST_INFO_GLOB}/RECORD"):
        with record.open(newline="") as handle:
            rows = [row for row in csv.reader(handle) if row and row[0] not in hook_rows]
        rows += [[path.relative_to(target).as_posix(), *_hash_and_size(path)] for path in files]
        with record.open("w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)


def _hash_and_size(path: Path) -> tuple[str, str]:
    """``RECORD``'s ``sha256=<urlsafe base64, unpadded>`` digest and the size in bytes."""
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}", str(len(data))
