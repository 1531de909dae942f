"""Seeded per-class subsets of an ImageFolder, as symlinks (the ``cpu`` protocol's data)."""

from __future__ import annotations

import random
from pathlib import Path

from dualgate_solo.validation import UsageError


def check_image_folder(source: Path, per_class: int | None, option: str) -> None:
    """``UsageError`` unless ``source`` has class sub-folders with at least ``per_class`` images."""
    classes = sorted(d for d in source.iterdir() if d.is_dir()) if source.is_dir() else []
    if not classes:
        raise UsageError(
            f"{option}={str(source)!r} is invalid; allowed: an ImageFolder (class/img)"
        )
    for cls in classes if per_class else []:
        count = sum(1 for f in cls.iterdir() if f.is_file())
        if count < per_class:
            raise UsageError(
                f"{option}={str(source)!r} is invalid: {cls.name}/ has {count} images; "
                f"the protocol draws {per_class} per class"
            )


def subset_folder(source: Path, target: Path, per_class: int, seed: int = 0) -> Path:
    """``target/<class>/`` symlinks to ``per_class`` images drawn (seeded) from each class.

    Deterministic and idempotent: the same source, count and seed give the same subset. Call
    :func:`check_image_folder` first; this assumes every class has enough images.
    """
    rng = random.Random(seed)
    for cls in sorted(d for d in source.iterdir() if d.is_dir()):
        files = sorted(f for f in cls.iterdir() if f.is_file())
        (target / cls.name).mkdir(parents=True, exist_ok=True)
        for f in rng.sample(files, per_class):
            link = target / cls.name / f.name
            if not link.is_symlink():
                link.symlink_to(f.resolve())
    return target
