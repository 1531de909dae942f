"""Machine and date stamps written next to every measured number (results files, benchmarks)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or ``platform.processor()`` elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


PACKAGE = Path(__file__).resolve().parent
#: git pathspec of what counts as code for ``source_revision``'s ``dirty``: all but ``results/``
CODE_PATHS = ("--", ".", ":(exclude)results")


def _load_average() -> list[float] | None:
    try:
        return [round(load, 2) for load in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def source_revision(package: Path = PACKAGE) -> dict[str, object] | None:
    """``{"commit", "dirty"}`` of the git checkout whose top folder holds ``package`` (by default
    the folder this package is imported from), else ``None`` (an installed copy).

    ``dirty`` is true when tracked files other than published results differ from the commit
    (untracked files are ignored), so a results file can show that it was produced by committed
    code, also when it overwrites an earlier committed result.
    """
    package = package.resolve()

    def git(*words: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(package), *words], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != package.parent:
            return None  # an installed copy inside some other repository
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", *CODE_PATHS)),
        }
    except (OSError, subprocess.CalledProcessError):
        return None


def source_record(package: Path = PACKAGE) -> dict[str, object]:
    """:func:`source_revision`, always with the keys ``commit`` and ``dirty``: both ``None`` (and a
    ``note``) where the code is not a git checkout, so a results file never silently lacks them."""
    revision = source_revision(package)
    if revision is not None:
        return revision
    return {"commit": None, "dirty": None, "note": "not run from a git checkout of dualgate-solo"}


def provenance() -> dict[str, object]:
    """``{"date", "machine", "cpu", "cpu_count", "load_average", "torch_threads", "torch", "gpu",
    "source"}`` for a results file.

    ``load_average``: the system's 1/5/15-minute load averages when it is written (``None`` where
    the platform has none), which tells whether timings ran on a busy machine; ``source``:
    :func:`source_record` (``{"commit", "dirty"}``, never absent).
    """
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cpu = cpu_model()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores",
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": _load_average(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": gpu,
        "source": source_record(),
    }
