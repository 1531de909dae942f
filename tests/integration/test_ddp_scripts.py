"""Every registered method under Lightning's plain ``strategy=ddp``: 2 CPU processes (gloo)
through solo-learn's unchanged ``main_pretrain.py``, and a resume under DDP.

SlimCLR's slow start leaves the narrower widths' parameters out of the loss; with
``find_unused_parameters=False`` (what ``strategy=ddp`` means) DDP stops at the second step, so
each run takes 2 steps. ``devices='2'`` is a string on purpose: solo-learn scales the lr by
``len(cfg.devices)``, which an int has not, and Lightning's CPU accelerator accepts no list.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from script_helpers import checkpoint_of, metrics, pretrain

from dualgate_solo.method_registry import METHODS

DDP = ("devices='2'", "strategy=ddp", "limit_train_batches=2")


def _ddp_pretrain(
    solo_src, workdir: Path, image_folders, method: str, *extra: str, epochs: int = 1
) -> Path:
    """``epochs`` of 2 steps on 2 processes; SlimCLR's slow start is epoch 0 (only the full
    width trains)."""
    slow_start = ("method_kwargs.slow_start_epochs=1",) if method.startswith("slimclr") else ()
    args = (*DDP, f"max_epochs={epochs}", *slow_start, *extra)
    return pretrain(solo_src, workdir, image_folders, method, *args)


def _trained_steps(run: Path) -> list[int]:
    state = torch.load(checkpoint_of(run), map_location="cpu", weights_only=True)["state_dict"]
    return state["backbone.trained_steps"].tolist()


@pytest.fixture(scope="module")
def slimclr_run(solo_src, image_folders, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("slimclr_ddp")
    return _ddp_pretrain(solo_src, workdir, image_folders, "slimclr_vicreg")


def test_slimclr_slow_start_runs_under_plain_ddp(slimclr_run) -> None:
    """The fast case: two slow-start steps on each of 2 processes, then validation."""
    args = json.loads((slimclr_run / "args.json").read_text())
    assert args["strategy"] == "ddp_find_unused_parameters_true"  # selected by the method
    assert _trained_steps(slimclr_run) == [4, 0, 0, 0]  # rank 0: 2 views x 2 steps, full width
    log = metrics(slimclr_run.parents[2])
    assert log["val_acc1"].notna().any() and log["val_knn_acc1"].notna().any()
    # the narrower widths have not trained: nothing logged for them (no -1 k-NN placeholder)
    assert not [key for key in log if key.startswith(("val_w0", "train_w0"))]


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in METHODS if m != "slimclr_vicreg"])
def test_every_other_method_pretrains_under_plain_ddp(
    solo_src, image_folders, tmp_path, method
) -> None:
    run = _ddp_pretrain(solo_src, tmp_path, image_folders, method)
    args = json.loads((run / "args.json").read_text())
    expected = "ddp_find_unused_parameters_true" if method.startswith("slimclr") else "ddp"
    assert args["strategy"] == expected
    assert sum(_trained_steps(run)) > 0


@pytest.mark.slow
def test_resume_under_ddp_switches_on_the_narrower_widths(
    solo_src, slimclr_run, image_folders, tmp_path
) -> None:
    """Epoch 0 (slow start) under DDP, then a DDP resume to 2 epochs: epoch 1 trains and
    validates every width."""
    resumed = _ddp_pretrain(
        solo_src,
        tmp_path,
        image_folders,
        "slimclr_vicreg",
        f"resume_from_checkpoint='{checkpoint_of(slimclr_run)}'",
        epochs=2,
    )
    assert _trained_steps(resumed) == [8, 4, 4, 4]
    log = metrics(tmp_path).dropna(subset=["val_w0.25_knn_acc1"])
    assert log.epoch.tolist() == [1]
    assert (log["val_w0.25_knn_acc1"] >= 0).all()
