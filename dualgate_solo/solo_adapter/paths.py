"""Where the package's solo-learn-style YAML configs are (``configs/`` of a checkout or wheel)."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """The configs directory: ``dualgate_solo/configs`` (installed) or the repo's ``configs/``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "configs", package.parent / "configs"):
        if (candidate / "pretrain").is_dir():
            return candidate
    raise FileNotFoundError(f"no configs directory next to {package}; reinstall dualgate-solo")
