"""solo-learn's unchanged scripts on the slimmable family: SlimCLR (VICReg, MoCo v3) and SACL-XD.

``cpu_quick`` configs (2 epochs of 4 steps; SlimCLR's slow start is half of training, so the
narrower widths join at epoch 1), main_linear per width, main_knn/main_umap per width through
``make_branch_dirs`` (the CUDA->CPU shim and the real start-up hook), and a resume across the
slow-start switch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_script
from script_helpers import (
    checkpoint_of,
    eval_script_args,
    knn_accuracies,
    linear,
    metrics,
    pretrain,
)

from dualgate_solo.solo_adapter.branch_dir import make_branch_dirs

WIDTHS = ["w1", "w0.75", "w0.5", "w0.25"]


@pytest.fixture(scope="module")
def slim_runs(solo_src, image_folders, tmp_path_factory) -> dict[str, Path]:
    return {
        method: pretrain(solo_src, tmp_path_factory.mktemp(method), image_folders, method)
        for method in ("slimclr_vicreg", "slimclr_mocov3", "sacl_xd")
    }


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint_of(run), map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("method", ["slimclr_vicreg", "slimclr_mocov3"])
def test_slimclr_trains_the_full_width_first_then_every_width(slim_runs, method) -> None:
    run = slim_runs[method]
    args = json.loads((run / "args.json").read_text())
    assert args["method_kwargs"]["slow_start_epochs"] == 1  # -1 resolved: half of 2 epochs
    assert args["backbone"]["kwargs"]["width_mult_list"] == [1.0, 0.75, 0.5, 0.25]
    # 2 views x 4 steps per epoch: the full width both epochs, the others in epoch 1 only
    assert _state(run)["backbone.trained_steps"].tolist() == [16, 8, 8, 8]
    log = metrics(run.parents[2])
    epochs = log.dropna(subset=["subnetworks_on_epoch"]).set_index("epoch")
    assert epochs.subnetworks_on_epoch.to_dict() == {0: 0.0, 1: 1.0}
    assert epochs["train_w0.5_acc1_epoch"].isna().tolist() == [True, False]
    for key in ("val_acc1", "val_knn_acc1", *(f"val_{w}_acc1" for w in WIDTHS[1:])):
        assert log[key].notna().any(), key
    for key in ("val_w0.25_knn_acc1", "train_distill_w0.5_epoch", "train_loss_w0.25_epoch"):
        assert log[key].notna().any(), key


def test_sacl_xd_trains_host_and_slim_and_evaluates_the_slim_network(slim_runs) -> None:
    run = slim_runs["sacl_xd"]
    kwargs = json.loads((run / "args.json").read_text())["backbone"]["kwargs"]
    assert kwargs["width_mult_list"] == [1.0, 0.5] and kwargs["width_mult"] == 0.5
    assert _state(run)["backbone.trained_steps"].tolist() == [8, 8]  # one view each per step
    log = metrics(run.parents[2])
    for key in ("val_acc1", "val_w1_acc1", "train_sacl_loss_epoch", "train_xd_loss_epoch"):
        assert log[key].notna().any(), key


@pytest.mark.parametrize(
    ("method", "width"),
    [("slimclr_vicreg", 1.0), ("slimclr_vicreg", 0.25), ("slimclr_mocov3", 0.5), ("sacl_xd", 0.5)],
)
def test_main_linear_probes_one_width_with_its_pretrained_weights(
    solo_src, slim_runs, image_folders, tmp_path, method, width
) -> None:
    run = slim_runs[method]
    linear(solo_src, run, method, image_folders, tmp_path, f"backbone.kwargs.width_mult={width}")
    linear_dir = tmp_path / "trained_models" / "linear"
    probe = torch.load(next(linear_dir.rglob("*.ckpt")), map_location="cpu", weights_only=True)
    probe = probe["state_dict"]
    pre = _state(run)
    backbone_keys = [k for k in pre if k.startswith("backbone.") and "running" not in k]
    assert backbone_keys and all(torch.equal(probe[k], pre[k]) for k in backbone_keys)
    full = pre["backbone.layer4.1.conv2.weight"].shape[0]
    assert probe["classifier.weight"].shape[1] == round(full * width)
    args = json.loads(next(linear_dir.rglob("args.json")).read_text())
    assert args["backbone"]["kwargs"]["width_mult"] == width


def test_main_linear_refuses_another_width_list(solo_src, slim_runs, image_folders, tmp_path):
    result = linear(
        solo_src,
        slim_runs["slimclr_vicreg"],
        "slimclr_vicreg",
        image_folders,
        tmp_path,
        "backbone.kwargs.width_mult_list=[1.0,0.5]",
        "backbone.kwargs.width_mult=0.5",
        check=False,
    )
    assert result.returncode != 0
    assert "width_mult_list=[1.0, 0.5] does not match the checkpoint" in result.stderr
    assert not (tmp_path / "trained_models" / "linear").exists()


def test_main_knn_runs_on_each_width(
    solo_src, slim_runs, image_folders, hook_dir, tmp_path
) -> None:
    train, val = image_folders
    dirs = make_branch_dirs(slim_runs["slimclr_vicreg"], ["w1", "w0.25"], out=tmp_path)
    results = {}
    for width, directory in dirs.items():
        kwargs = json.loads((directory / "args.json").read_text())["backbone"]["kwargs"]
        assert kwargs["width_mult"] == {"w1": 1.0, "w0.25": 0.25}[width]
        args = [*eval_script_args(train, val, str(directory)), "--k", "1", "20"]
        args += ["--feature_type", "backbone", "--distance_function", "euclidean"]
        output = run_script(
            solo_src / "main_knn.py", args, cwd=tmp_path, shim=True, hook_dir=hook_dir
        ).stdout
        results[width] = knn_accuracies(output)
        assert len(results[width]) == 2 and all(0 <= a <= 100 for a in results[width])


@pytest.mark.slow
def test_main_umap_runs_on_each_width(
    solo_src, slim_runs, image_folders, hook_dir, tmp_path
) -> None:
    train, val = image_folders
    for width, directory in make_branch_dirs(slim_runs["sacl_xd"], out=tmp_path).items():
        args = eval_script_args(train, val, ".")
        run_script(solo_src / "main_umap.py", args, cwd=directory, shim=True, hook_dir=hook_dir)
        assert (directory / "im100_val_umap.pdf").stat().st_size > 0, width


def test_resume_switches_on_the_sub_networks_at_the_same_step(
    solo_src, slim_runs, image_folders, tmp_path
) -> None:
    """Epoch 0 alone, then a resume to 2 epochs: the same switch as the uninterrupted run."""
    switch = "method_kwargs.slow_start_epochs=1"
    first = pretrain(solo_src, tmp_path, image_folders, "slimclr_vicreg", switch, "max_epochs=1")
    assert _state(first)["backbone.trained_steps"].tolist() == [8, 0, 0, 0]
    resumed = pretrain(
        solo_src,
        tmp_path / "resume",
        image_folders,
        "slimclr_vicreg",
        switch,
        f"resume_from_checkpoint='{checkpoint_of(first)}'",
    )
    uninterrupted = _state(slim_runs["slimclr_vicreg"])["backbone.trained_steps"]
    assert _state(resumed)["backbone.trained_steps"].tolist() == uninterrupted.tolist()
    log = metrics(resumed.parents[2]).dropna(subset=["subnetworks_on_epoch"])
    assert log.set_index("epoch").subnetworks_on_epoch.to_dict() == {1: 1.0}


@pytest.mark.parametrize(("epoch", "expected"), [(0, [0.4, 0.1]), (1, [1.2, 0.1])])
def test_post_switch_lr_scale_applies_from_the_switch_to_non_classifier_groups(
    epoch, expected
) -> None:
    """``post_switch_lr_scale`` 3: the step sees 3x the scheduled lr once the sub-networks are
    on (not the online classifier's), and the scheduled lr is restored after it."""
    from dualgate_solo.slimmable.options import SlimCLROptions
    from dualgate_solo.slimmable.solo_methods import WidthMethod

    class Recorder:
        def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
            self.seen = [g["lr"] for g in optimizer.param_groups]

    class Method(WidthMethod, Recorder):
        current_epoch = epoch
        options = {SlimCLROptions: SlimCLROptions(slow_start_epochs=1, post_switch_lr_scale=3.0)}

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD(
        [{"name": "backbone", "params": params[:1]}, {"name": "classifier", "params": params[1:]}],
        lr=0.4,
    )
    optimizer.param_groups[1]["lr"] = 0.1
    method = Method()
    method.optimizer_step(epoch, 0, optimizer)
    assert method.seen == pytest.approx(expected)
    assert [g["lr"] for g in optimizer.param_groups] == [0.4, 0.1]
