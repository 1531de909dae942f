"""Check ``main_linear.py``'s ``pretrained_feature_extractor`` before solo-learn loads it.

solo-learn's ``main_linear.py`` hands the path straight to ``torch.load``: a missing file ends in
``FileNotFoundError``, a truncated one (an interrupted copy or save) in torch's
``PytorchStreamReader failed reading zip archive`` ``RuntimeError``, each under a traceback.
:class:`CheckFeatureExtractor` is a Hydra callback (the package's linear recipes list it under
``hydra.callbacks``) that runs before the script's ``main`` and refuses such a file in one line
naming the key, the path and the reason (:func:`check_checkpoint_file`), exit status 2.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dualgate_solo.checkpoint import NOT_A_CHECKPOINT
from dualgate_solo.checkpoint_path import CHECKPOINT_SUFFIXES
from dualgate_solo.validation import UsageError

KEY = "pretrained_feature_extractor"
#: the first byte of a pickle (protocol >= 2): torch.save's legacy, non-zip format
PICKLE_START = b"\x80"


def check_checkpoint_file(option: str, path: str | Path) -> Path:
    """``path`` if it is a whole checkpoint file, else :class:`UsageError` naming ``option``.

    Whole means: it exists, is a readable file ending in ``.ckpt``/``.pt``/``.pth``, and is
    either a zip archive with its end record (``torch.save``'s format since torch 1.6; a
    truncated file loses the record, which sits at the end) or a legacy pickle.
    """
    path = Path(path)
    where = f"{option}={str(path)!r}"
    if not path.exists():
        raise UsageError(f"{where} does not exist")
    if not path.is_file() or path.suffix not in CHECKPOINT_SUFFIXES:
        raise UsageError(
            f"{where} is invalid; allowed values: a file ending in {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    try:
        with path.open("rb") as file:
            start = file.read(1)
    except OSError as error:
        raise UsageError(f"{where} cannot be read ({error.strerror})") from None
    if not zipfile.is_zipfile(path) and start != PICKLE_START:
        raise UsageError(
            f"{where} is not a whole torch checkpoint ({path.stat().st_size} bytes, no zip end "
            f"record: truncated, or not written by torch.save); {NOT_A_CHECKPOINT}"
        )
    return path


class CheckFeatureExtractor(Callback):
    """Hydra callback: :func:`check_checkpoint_file` on ``pretrained_feature_extractor``."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse a missing, unreadable or truncated checkpoint before the job's ``main``: one
        line ``<script>: error: ...`` on stderr, exit 2 (a ``SystemExit``, which Hydra does not
        catch); a value still ``???`` is left to solo-learn's own error."""
        path = OmegaConf.select(config, KEY, default=None, throw_on_missing=False)
        if path is None:
            return
        try:
            check_checkpoint_file(KEY, path)
        except UsageError as error:  # Hydra turns a callback's exceptions into warnings
            print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
