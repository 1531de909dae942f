"""The stage cache: ``<run_dir>/<stage>.json``, reused only when the stage's identity hash matches.

A stage record holds the stage's identity (:class:`StageIdentity`: protocol, the run's training
overrides, the config or script it ran with its complete override/argument list, the SHA-256 of
the resolved config, the environment switches it reads, the content identity of its input files
and the code identity, :mod:`~experiments.runner.identity`) and ``identity_sha256`` over all of
them, its result, its wall-clock start, end and seconds, and the machine and git source
(:func:`~dualgate_solo.provenance.provenance`). A second invocation reuses a record only when the
requested identity hashes to the recorded ``identity_sha256``. Otherwise the stage is stale: it
re-runs (saying in one line on stderr what changed), or, with ``refuse_stale``, the invocation
stops with a :class:`~dualgate_solo.validation.UsageError` naming the stage and what changed.
Records of earlier runners (no ``identity_sha256``) are always stale.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dualgate_solo.validation import UsageError
from experiments.runner.identity import canonical_sha256, describe_differences, differing_keys


@dataclass(frozen=True)
class StageIdentity:
    """What a stage's result depends on.

    Attributes:
        protocol: the grid protocol (``smoke``, ``cpu``, ``gpu``).
        run_overrides: the Hydra overrides that define the run's pre-training (budget, variant,
            the user's ``--pretrain-override``); every stage of the run carries them.
        config: what the stage runs, e.g. ``pretrain/cpu/vicreg_gating`` or ``main_knn.py``.
        overrides: the stage's complete Hydra overrides or command-line arguments.
        config_sha256: SHA-256 of the resolved config's YAML text (Hydra stages; else ``None``).
        environment: the environment switches the stage reads, ``{name: value or None}``.
        inputs: ``{role: file identity}`` of the files it reads (e.g. the pre-training
            checkpoint and its ``args.json``), by content.
        code: :func:`~experiments.runner.identity.code_identity`.
        resolved_config: the resolved config as a flat dict; recorded to name the keys that
            changed, not hashed (``config_sha256`` stands for it).
    """

    protocol: str
    run_overrides: tuple[str, ...]
    config: str
    overrides: tuple[str, ...]
    config_sha256: str | None = None
    environment: dict[str, str | None] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    resolved_config: dict[str, Any] = field(default_factory=dict)

    def hashed(self) -> dict[str, Any]:
        """The fields the identity hash covers (all but ``resolved_config``), JSON-normalised."""
        fields = {k: v for k, v in asdict(self).items() if k != "resolved_config"}
        return json.loads(json.dumps(fields, default=list))

    def sha256(self) -> str:
        return canonical_sha256(self.hashed())


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stage_result(record: dict[str, Any]) -> dict[str, Any]:
    """The result of a stage record; records of the earlier runner (commit 75ed930) are the
    bare result."""
    return record["result"] if "result" in record else record


def what_changed(record: dict[str, Any], identity: StageIdentity) -> str | None:
    """``None`` when ``record`` was made with ``identity``; else what differs, in a few words:
    the first differing field and, within it, the differing entries or config keys."""
    if record.get("identity_sha256") == identity.sha256():
        return None
    if "identity_sha256" not in record:
        return "recorded by an earlier runner without an identity hash"
    for key, requested in identity.hashed().items():
        cached = record.get(key)
        if cached == requested:
            continue
        if key == "config_sha256":
            before, after = record.get("resolved_config", {}), identity.resolved_config
            keys = differing_keys(before, after)
            return "resolved config " + (describe_differences(keys, before, after) or "text")
        if isinstance(cached, dict) and isinstance(requested, dict):
            keys = differing_keys(cached, requested)
            return f"{key} {describe_differences(keys, cached, requested)}"
        if isinstance(cached, list) and isinstance(requested, list):
            return (
                f"{key} (only cached {sorted(set(cached) - set(requested))}, "
                f"only requested {sorted(set(requested) - set(cached))})"
            )
        return f"{key} (cached {cached!r}, requested {requested!r})"
    return "identity hash"


def cached_result(
    path: Path, identity: StageIdentity, refuse_stale: bool = False
) -> tuple[dict[str, Any] | None, str | None]:
    """``(result, None)`` of a valid record at ``path``; ``(None, None)`` without a record;
    ``(None, what changed)`` for a stale one, which re-runs.

    Raises:
        UsageError: the record is stale and ``refuse_stale`` is set (one line: the stage, what
            changed, how to proceed).
    """
    if not path.is_file():
        return None, None
    record = json.loads(path.read_text())
    changed = what_changed(record, identity)
    if changed is None:
        return stage_result(record), None
    stage = f"{path.parent.name}/{path.stem}"
    if refuse_stale:
        raise UsageError(
            f"stage {stage} is stale: {changed}; drop --refuse-stale to re-run it "
            f"(or delete {path})"
        )
    return None, changed


def run_stage(
    path: Path,
    identity: StageIdentity,
    work: Callable[[], dict[str, Any]],
    refuse_stale: bool = False,
) -> dict[str, Any]:
    """The result of the stage recorded at ``path``: cached when valid, else ``work()`` run and
    recorded (:func:`cached_result` decides; a stale stage says on stderr why it re-runs)."""
    cached, changed = cached_result(path, identity, refuse_stale)
    if cached is not None:
        return cached
    if changed is not None:
        print(f"re-running stage {path.parent.name}/{path.stem}: {changed}", file=sys.stderr)
    from dualgate_solo.provenance import provenance

    started, clock = _utc_now(), time.monotonic()
    result = work()
    record = {
        "stage": path.stem,
        **asdict(identity),
        "identity_sha256": identity.sha256(),
        "result": result,
        "started": started,
        "ended": _utc_now(),
        "seconds": round(time.monotonic() - clock, 1),
        **provenance(),
    }
    path.write_text(json.dumps(record, indent=2, default=list))
    return result
