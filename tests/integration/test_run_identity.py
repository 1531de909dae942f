"""Run identity with solo-learn's unchanged main_pretrain.py: auto-resume never crosses runs.

solo-learn's ``AutoResumer`` resumes the newest checkpoint under ``checkpoint.dir/<method>`` whose
``args.json`` matches the new run in ``name``, ``backbone``, ``method`` and a few optimizer keys,
but not in ``method_kwargs``. The package appends a fingerprint of ``method_kwargs`` and the
backbone to every run name, so two runs that differ only in ``lambda_flops`` are two runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch
from conftest import REPO, run_script

RESUMED = "Resuming from previous checkpoint that matches specifications"


def _pretrain(solo_src: Path, workdir: Path, image_folders, *extra: str) -> str:
    """One cpu_quick Dual-Gating run with auto-resume on; returns its stdout."""
    train, val = image_folders
    args = [
        "--config-path",
        str(REPO / "configs" / "pretrain" / "cpu_quick"),
        "--config-name",
        "vicreg_dual_gating",
        f"data.train_path={train}",
        f"data.val_path={val}",
        "data.num_workers=0",
        "knn_eval.enabled=False",
        f"checkpoint.dir={workdir / 'trained_models'}",
        "auto_resume.enabled=True",
        *extra,
    ]
    result: subprocess.CompletedProcess = run_script(
        solo_src / "main_pretrain.py", args, cwd=workdir
    )
    return result.stdout


def _runs(workdir: Path) -> dict[str, tuple[dict, Path]]:
    """Run name -> (args.json content, checkpoint) of every finished run in ``workdir``."""
    found = {}
    for args_file in (workdir / "trained_models" / "vicreg_dual_gating").glob("*/args.json"):
        args = json.loads(args_file.read_text())
        found[args["name"]] = (args, next(args_file.parent.glob("*.ckpt")))
    return found


def test_runs_differing_only_in_lambda_flops_get_different_names_and_never_resume_each_other(
    solo_src, image_folders, tmp_path
) -> None:
    first = _pretrain(solo_src, tmp_path, image_folders, "method_kwargs.lambda_flops=5.0")
    second = _pretrain(solo_src, tmp_path, image_folders, "method_kwargs.lambda_flops=10.0")
    runs = _runs(tmp_path)
    assert len(runs) == 2 and all(
        name.startswith("vicreg_dual_gating-cpu_quick-td0.1-") for name in runs
    )
    assert sorted(args["method_kwargs"]["lambda_flops"] for args, _ in runs.values()) == [5, 10]
    assert RESUMED not in first and RESUMED not in second
    for name, (_, checkpoint) in runs.items():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        assert state["epoch"] == 1 and checkpoint.name.startswith(name)
        assert state["state_dict"]["backbone.trained_steps"].tolist() == [8, 8]  # its own 2 epochs

    # the control: the same options again do resume, so the two runs above were told apart by name
    again = _pretrain(solo_src, tmp_path, image_folders, "method_kwargs.lambda_flops=5")
    (resumable,) = [
        ckpt for args, ckpt in runs.values() if args["method_kwargs"]["lambda_flops"] == 5
    ]
    assert RESUMED in again and str(resumable) in again
