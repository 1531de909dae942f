"""What a grid stage's result depends on, as hashable values: config, files, code.

- **Resolved config**: the Hydra config a solo-learn script composes from the package's YAML
  files and the stage's overrides (:func:`compose`), as YAML text with sorted keys; its SHA-256
  changes with any value of any YAML file it includes, whatever the file's name.
- **Input files** (checkpoints, ``args.json``): identified by content, :func:`file_identity`
  (name, size and SHA-256 of the bytes; the hash is memoised per process by path, size and
  modification time, so a checkpoint read by several stages is hashed once).
- **Code** (:func:`code_identity`): the package version and the SHA-256 of every ``.py`` file of
  the package (and of its Hydra search-path plugin), plus that of the solo-learn checkout's
  scripts and ``solo/`` package. Code is identified by its content, not by the git commit: an
  uncommitted edit of the package changes the hash exactly like a committed one (a dirty tree is
  never mistaken for its commit), while a commit that touches only documentation, tests or
  results leaves finished stages valid. The commit and dirty flag are still recorded with every
  stage (``source``, :func:`dualgate_solo.provenance.provenance`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dualgate_solo.validation import UsageError

PACKAGE = Path(__file__).resolve().parents[1]
#: the config key (so ``args.json`` key) the runner adds to every pre-training: the hash of the
#: run's resolved config and environment switches, which ties a checkpoint to its run
RESUME_KEY = "dualgate_config_sha256"
#: the Hydra search-path plugin that makes ``/dualgate/...`` defaults composable
PLUGIN = PACKAGE.parent / "hydra_plugins"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_sha256(value: Any) -> str:
    """SHA-256 of ``value`` as JSON with sorted keys (tuples as lists)."""
    return sha256_text(json.dumps(value, sort_keys=True, default=list))


@functools.cache
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: Path | str) -> dict[str, Any]:
    """``{"name", "bytes", "sha256"}`` of the file at ``path`` (its content, not its path)."""
    path = Path(path)
    stat = path.stat()
    return {
        "name": path.name,
        "bytes": stat.st_size,
        "sha256": _content_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns),
    }


def tree_sha256(files: Iterable[Path], root: Path) -> str:
    """SHA-256 over the relative names and contents of ``files`` (sorted)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def code_identity(solo: Path | None = None) -> dict[str, str | None]:
    """``{"dualgate_solo", "source_sha256", "solo_learn_sha256"}``: the package version, the hash
    of its Python sources and plugin, and the hash of the solo-learn checkout ``solo``'s
    ``main_*.py`` and ``solo/**/*.py`` (``None`` without a checkout)."""
    from dualgate_solo import __version__

    ours = [*PACKAGE.rglob("*.py"), *PLUGIN.rglob("*.py")]
    theirs = [*solo.glob("main_*.py"), *solo.glob("solo/**/*.py")] if solo else []
    return {
        "dualgate_solo": __version__,
        "source_sha256": tree_sha256(ours, PACKAGE.parent),
        "solo_learn_sha256": tree_sha256(theirs, solo) if solo else None,
    }


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": leaf}`` of a nested dict (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) and value else {name: value})
    return flat


def differing_keys(a: dict[str, Any], b: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """The keys of two flat configs whose values differ (absent counts as a value), sorted,
    except those in ``ignore``."""
    skipped = set(ignore)
    missing = object()
    return sorted(
        k for k in set(a) | set(b) if k not in skipped and a.get(k, missing) != b.get(k, missing)
    )


def describe_differences(
    keys: list[str], before: dict[str, Any], after: dict[str, Any], limit: int = 3
) -> str:
    """``"k: X -> Y, ..."`` of the first ``limit`` of ``keys`` (``absent`` where a side lacks
    one), then ``+N more``."""
    shown = [
        f"{k}: {before.get(k, 'absent')!r} -> {after.get(k, 'absent')!r}" for k in keys[:limit]
    ]
    more = f", +{len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown) + more


def compose(directory: Path, name: str, overrides: list[str], option: str) -> tuple[str, dict]:
    """The config ``name`` of ``directory`` composed with ``overrides`` by Hydra, as solo-learn's
    scripts compose it: ``(YAML text with sorted keys, flat dict)``, interpolations unresolved.

    Raises:
        UsageError: Hydra refuses an override (the message names ``option`` and Hydra's reason).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(directory), version_base="1.2"):
            cfg = hydra_compose(name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        reason = str(error).strip().splitlines()[0]
        raise UsageError(
            f"{option}: the config {directory.name}/{name} does not compose with the overrides "
            f"{overrides}: {reason}"
        ) from None
    tree = OmegaConf.to_container(cfg, resolve=False)
    return OmegaConf.to_yaml(cfg, sort_keys=True), flatten(tree)
