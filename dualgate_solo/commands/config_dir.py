"""``dualgate-solo config-dir``: print the directory of the YAML configs (for ``--config-path``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> None:
    from dualgate_solo.solo_adapter.paths import config_dir

    print(config_dir())
