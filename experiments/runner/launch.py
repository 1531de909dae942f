"""``python -m experiments.runner.launch SCRIPT [ARGS...]``: a solo-learn script logging to CSV.

solo-learn hands its ``Trainer`` ``logger=None`` when wandb is off, and Lightning's default logger
is then TensorBoard where ``tensorboard`` is installed and CSV elsewhere. The runner reads every
stage's metrics from ``lightning_logs/version_*/metrics.csv``, so this launcher gives each such
``Trainer`` a ``CSVLogger`` writing exactly there on every machine, then runs ``SCRIPT`` through
``dualgate-solo run`` (the methods registered, with or without the start-up hook). solo-learn's
files are untouched; a ``Trainer`` given a logger keeps it.
"""

from __future__ import annotations

import functools
import os
import sys


def log_to_csv() -> None:
    """Make every ``Trainer`` of this process without a logger log to
    ``<default_root_dir or cwd>/lightning_logs/version_<n>/metrics.csv``."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    original = Trainer.__init__

    @functools.wraps(original)  # solo-learn filters its Trainer kwargs by this signature
    def init(self, *args, **kwargs):  # noqa: ANN001, ANN202
        if kwargs.get("logger") is None:
            root = kwargs.get("default_root_dir") or os.getcwd()
            kwargs["logger"] = CSVLogger(save_dir=root, name="lightning_logs")
        original(self, *args, **kwargs)

    Trainer.__init__ = init


def main(argv: list[str] | None = None) -> int:
    script_and_args = sys.argv[1:] if argv is None else argv
    log_to_csv()
    from dualgate_solo.cli import main as dualgate_solo

    return dualgate_solo(["run", *script_and_args])


if __name__ == "__main__":
    sys.exit(main())
