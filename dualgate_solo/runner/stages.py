"""The stage cache: ``<run_dir>/<stage>.json``, keyed by the stage's full override set.

A stage record holds what identifies the stage (protocol, the run's training overrides, the
config it ran and its complete override/argument list), its result, its wall-clock start, end
and seconds, the code version when it started, and the machine. A second invocation reuses a
record only when the requested identity is the recorded one; otherwise it refuses with one line
(never silently reuses it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dualgate_solo.validation import UsageError


@dataclass(frozen=True)
class StageIdentity:
    """What a stage's result depends on.

    Attributes:
        protocol: the grid protocol (``smoke``, ``cpu``, ``gpu``).
        run_overrides: the Hydra overrides that define the run's pre-training (budget, variant,
            the user's ``--pretrain-override``); every stage of the run carries them.
        config: what the stage runs, e.g. ``pretrain/cpu/vicreg_gating`` or ``main_knn.py``.
        overrides: the stage's complete Hydra overrides or command-line arguments.
    """

    protocol: str
    run_overrides: tuple[str, ...]
    config: str
    overrides: tuple[str, ...]


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stage_result(record: dict[str, Any]) -> dict[str, Any]:
    """The result of a stage record; records of the earlier runner (commit 75ed930) are the
    bare result."""
    return record["result"] if "result" in record else record


def check_cached(path: Path, identity: StageIdentity) -> dict[str, Any] | None:
    """The cached record at ``path`` if its identity is ``identity``; ``None`` if absent.

    Raises:
        UsageError: the record exists but was made with another identity (the message names
            the first differing key and what only the cache / only the request has).
    """
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    for key, requested in asdict(identity).items():
        cached = record.get(key)
        cached = tuple(cached) if isinstance(cached, list) else cached
        if cached != requested:
            if isinstance(requested, tuple) and isinstance(cached, tuple):
                detail = (
                    f"only cached {sorted(set(cached) - set(requested))}, "
                    f"only requested {sorted(set(requested) - set(cached))}"
                )
            else:
                detail = f"cached {cached!r}, requested {requested!r}"
            raise UsageError(
                f"cached stage {path} differs in {key} ({detail}); "
                "delete it or use another --out to rerun"
            )
    return record


def run_stage(
    path: Path, identity: StageIdentity, work: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The result of the stage recorded at ``path``: cached, or ``work()`` run and recorded."""
    cached = check_cached(path, identity)
    if cached is not None:
        return stage_result(cached)
    from dualgate_solo.provenance import provenance, source_revision

    started, clock, code = _utc_now(), time.monotonic(), source_revision()
    result = work()
    record = {
        "stage": path.stem,
        **asdict(identity),
        "result": result,
        "started": started,
        "ended": _utc_now(),
        "seconds": round(time.monotonic() - clock, 1),
        "code": code,
        **provenance(),
    }
    path.write_text(json.dumps(record, indent=2))
    return result
