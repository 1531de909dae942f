"""Environments and logs of the grid's subprocesses (solo-learn scripts, ``dualgate-solo``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dualgate_solo.solo_adapter.custom_pipeline import ENV_VAR as PIPELINE_VAR
from experiments import python_path
from experiments.runner.cpu_shim import SHIM_DIR

#: the environment variables that change what a stage computes (part of its identity):
#: ``$DUALGATE_CUSTOM_PIPELINE`` picks the custom-data transforms
IDENTITY_VARS = (PIPELINE_VAR,)


def identity_switches(env: dict[str, str]) -> dict[str, str | None]:
    """``{name: value or None}`` of :data:`IDENTITY_VARS` in the environment ``env``."""
    return {name: env.get(name) for name in IDENTITY_VARS}


def stage_environment(solo: Path, cpu: bool, custom_pipeline: str | None) -> dict[str, str]:
    """This process's environment with solo-learn (and, for ``cpu``, the CUDA->CPU shim) first on
    ``PYTHONPATH``, then the lab (:func:`experiments.python_path`), and
    ``$DUALGATE_CUSTOM_PIPELINE`` set to ``custom_pipeline`` when given."""
    shim = [str(SHIM_DIR)] if cpu else []
    env = {**os.environ, "PYTHONPATH": python_path(*shim, str(solo))}
    if custom_pipeline:
        env[PIPELINE_VAR] = custom_pipeline
    return env


def call(cmd: list[str], cwd: Path, log: Path, env: dict[str, str]) -> None:
    """Run ``cmd`` in ``cwd`` with its output streamed to ``log`` (``tail -f`` shows its bar).

    Raises:
        RuntimeError: the command failed; the message names the log.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        returncode = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT
        ).returncode
    if returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (rc={returncode}); see {log}")
