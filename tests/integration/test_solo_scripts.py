"""solo-learn's unchanged main_pretrain / main_linear / main_knn / main_umap, both methods (CPU).

Every run uses the package's ``cpu_quick`` configs (width-8 ResNet-18, 2 epochs of 4 steps) on
small generated ImageFolders. main_knn/main_umap hard-code CUDA: they run with the package's shim
(``experiments/runner/cpu_shim/sitecustomize.py``) and its real start-up ``.pth`` hook.
"""

from __future__ import annotations

import json
import math
import re
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

from dualgate_solo.checkpoint import load_backbone
from dualgate_solo.solo_adapter.branch_dir import make_branch_dirs


@pytest.fixture(scope="module")
def dual_run(solo_src, image_folders, tmp_path_factory) -> Path:
    return pretrain(solo_src, tmp_path_factory.mktemp("dual"), image_folders, "vicreg_dual_gating")


@pytest.fixture(scope="module")
def gating_run(solo_src, image_folders, tmp_path_factory) -> Path:
    return pretrain(solo_src, tmp_path_factory.mktemp("gating"), image_folders, "vicreg_gating")


def test_dual_gating_pretrain_logs_both_branches_and_saves_safecheckpoint_of(dual_run) -> None:
    args = json.loads((dual_run / "args.json").read_text())
    assert re.fullmatch(r"vicreg_dual_gating-cpu_quick-td0\.1-[0-9a-f]{8}", args["name"])
    assert args["backbone"]["kwargs"] == {
        "stem": "cifar",
        "width": 8,
        "dual_bn_scope": "block",
        "branch": "dense",
    }
    state = torch.load(checkpoint_of(dual_run), map_location="cpu", weights_only=True)
    assert state["epoch"] == 1
    assert state["state_dict"]["backbone.trained_steps"].tolist() == [8, 8]  # 2 epochs x 4 steps
    log = metrics(dual_run.parents[2])
    for key in (
        "val_acc1",
        "val_gated_acc1",
        "val_knn_acc1",
        "val_gated_knn_acc1",
        "val_flops_ratio",
        "val_flops_reduction",
        "val_density/layer1.0",
        "train_flops_ratio_epoch",
        "p_epoch",
    ):
        assert log[key].notna().any(), key
    val = log.dropna(subset=["val_flops_ratio"])
    assert ((val.val_flops_ratio + val.val_flops_reduction - 1).abs() < 1e-6).all()
    assert sorted(log.dropna(subset=["p_epoch"]).p_epoch.round(6)) == [
        round(math.exp(-0.02), 6),
        1.0,
    ]
    loaded = load_backbone(dual_run)
    assert loaded.method == "vicreg_dual_gating"


def test_gating_pretrain_trains_only_the_gated_branch(gating_run) -> None:
    state = torch.load(checkpoint_of(gating_run), map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    assert state["backbone.trained_steps"].tolist() == [0, 16]  # two gated views per step
    assert not any(".dense." in key for key in state)
    log = metrics(gating_run.parents[2])
    assert log["val_acc1"].notna().any() and log["val_flops_ratio"].notna().any()
    assert "val_gated_acc1" not in log


@pytest.mark.parametrize("branch", ["dense", "gated"])
def test_main_linear_probes_each_branch_with_the_pretrained_weights(
    solo_src, dual_run, image_folders, tmp_path, branch
) -> None:
    linear(
        solo_src,
        dual_run,
        "vicreg_dual_gating",
        image_folders,
        tmp_path,
        f"backbone.kwargs.branch={branch}",
    )
    linear_ckpt = next((tmp_path / "trained_models" / "linear").rglob("*.ckpt"))
    probe = torch.load(linear_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    pre = torch.load(checkpoint_of(dual_run), map_location="cpu", weights_only=True)["state_dict"]
    backbone_keys = [
        k
        for k in pre
        if k.startswith("backbone.") and "running" not in k and "num_batches" not in k
    ]
    assert backbone_keys and all(torch.equal(probe[k], pre[k]) for k in backbone_keys)
    assert (
        json.loads(next((tmp_path / "trained_models" / "linear").rglob("args.json")).read_text())[
            "backbone"
        ]["kwargs"]["branch"]
        == branch
    )


def test_main_linear_probes_the_gating_baseline(
    solo_src, gating_run, image_folders, tmp_path
) -> None:
    linear(solo_src, gating_run, "vicreg_gating", image_folders, tmp_path)
    assert list((tmp_path / "trained_models" / "linear").rglob("*.ckpt"))


def test_main_linear_refuses_wrong_architecture_and_untrained_branch(
    solo_src, dual_run, gating_run, image_folders, tmp_path
) -> None:
    wrong_scope = linear(
        solo_src, dual_run, "vicreg_gating", image_folders, tmp_path / "a", check=False
    )
    assert (
        wrong_scope.returncode != 0
        and "checkpoint does not match the backbone" in wrong_scope.stderr
    )
    wrong_branch = linear(
        solo_src,
        gating_run,
        "vicreg_gating",
        image_folders,
        tmp_path / "b",
        "backbone.kwargs.branch=dense",
        check=False,
    )
    assert (
        wrong_branch.returncode != 0 and "branch='dense' was never trained" in wrong_branch.stderr
    )
    assert not (tmp_path / "a" / "trained_models" / "linear").exists()


def test_main_knn_runs_on_each_branch(
    solo_src, dual_run, image_folders, hook_dir, tmp_path
) -> None:
    train, val = image_folders
    results = {}
    for branch, directory in make_branch_dirs(dual_run, out=tmp_path).items():
        args = [
            *eval_script_args(train, val, str(directory)),
            "--k",
            "1",
            "20",
            "--feature_type",
            "backbone",
            "--distance_function",
            "euclidean",
        ]
        output = run_script(
            solo_src / "main_knn.py", args, cwd=tmp_path, shim=True, hook_dir=hook_dir
        ).stdout
        results[branch] = knn_accuracies(output)
        assert len(results[branch]) == 2 and all(0 <= a <= 100 for a in results[branch])
    assert set(results) == {"dense", "gated"}


def test_main_knn_without_the_hook_does_not_know_the_method(
    solo_src, dual_run, image_folders, tmp_path
) -> None:
    """Documents why the start-up hook exists: argparse scripts never run the Hydra plugin."""
    from dualgate_solo.solo_adapter.startup_hook import PTH_NAME
    from dualgate_solo.solo_adapter.startup_hook_files import site_packages

    if (site_packages() / PTH_NAME).exists():
        pytest.skip("the start-up hook is installed in this environment")
    train, val = image_folders
    args = [
        "--dataset",
        "custom",
        "--train_data_path",
        str(train),
        "--val_data_path",
        str(val),
        "--pretrained_checkpoint_dir",
        str(dual_run),
    ]
    result = run_script(solo_src / "main_knn.py", args, cwd=tmp_path, shim=True, check=False)
    assert result.returncode != 0 and "KeyError: 'vicreg_dual_gating'" in result.stderr


def test_main_umap_runs_on_each_branch(
    solo_src, dual_run, image_folders, hook_dir, tmp_path
) -> None:
    train, val = image_folders
    for branch, directory in make_branch_dirs(dual_run, out=tmp_path).items():
        args = eval_script_args(train, val, ".")
        run_script(solo_src / "main_umap.py", args, cwd=directory, shim=True, hook_dir=hook_dir)
        assert (directory / "im100_val_umap.pdf").stat().st_size > 0, branch


def test_resume_continues_annealing_budget_state_and_step_counts(
    solo_src, image_folders, tmp_path
) -> None:
    first = pretrain(
        solo_src, tmp_path, image_folders, "vicreg_dual_gating", "method_kwargs.multiplier_lr=0.5"
    )
    saved = torch.load(checkpoint_of(first), map_location="cpu", weights_only=True)["state_dict"]
    assert saved["budget_multiplier.value"].item() != 0.0
    resumed = pretrain(
        solo_src,
        tmp_path / "resume",
        image_folders,
        "vicreg_dual_gating",
        "method_kwargs.multiplier_lr=0.5",
        "max_epochs=3",
        f"resume_from_checkpoint='{checkpoint_of(first)}'",
    )
    final = torch.load(checkpoint_of(resumed), map_location="cpu", weights_only=True)
    assert final["epoch"] == 2
    assert final["state_dict"]["backbone.trained_steps"].tolist() == [12, 12]  # 8 before + 4 after
    assert final["state_dict"]["anneal_p"].item() == pytest.approx(math.exp(-0.02 * 2))
    # the multiplier moved on from the saved value (4 updates of size <= 0.5), not from 0
    assert (
        abs(
            final["state_dict"]["budget_multiplier.value"].item()
            - saved["budget_multiplier.value"].item()
        )
        <= 2.0 + 1e-6
    )
    p = metrics(tmp_path / "resume").dropna(subset=["p_epoch"]).p_epoch.tolist()
    assert p == pytest.approx([math.exp(-0.04)])


@pytest.mark.slow
def test_two_process_cpu_ddp_pretrain(solo_src, image_folders, tmp_path) -> None:
    run = pretrain(
        solo_src, tmp_path, image_folders, "vicreg_dual_gating", "strategy=ddp", "devices='2'"
    )
    state = torch.load(checkpoint_of(run), map_location="cpu", weights_only=True)["state_dict"]
    assert state["backbone.trained_steps"].tolist() == [
        6,
        6,
    ]  # 48 images per rank / batch 16 = 3 steps x 2 epochs


@pytest.mark.slow
def test_solo_learns_own_tests_still_pass_with_the_package_registered(solo_src, hook_dir) -> None:
    import os
    import subprocess
    import sys

    from conftest import SHIM_DIR

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(solo_src)]),
        "DUALGATE_HOOK_DIR": str(hook_dir),
    }
    tests = ["tests/methods/test_vicreg.py", "tests/utils/test_auto_umap.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=solo_src,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout
