"""Downstream safety with solo-learn's unchanged main_linear.py / main_knn.py (CPU).

A Dual-Gating checkpoint given to solo-learn's own ``resnet18`` would otherwise load a handful of
tensors non-strictly and train a probe on a mostly random network with exit code 0; a width
mismatch would end in torch's list of every differing tensor. Both must stop before training with
one line. Linear runs are named per branch, and the custom-data pipeline a run used travels in
its ``args.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_script
from script_helpers import checkpoint_of, linear, pretrain

from dualgate_solo.solo_adapter.custom_pipeline import ENV_VAR
from dualgate_solo.solo_adapter.startup_hook_files import install_hook


@pytest.fixture(scope="module")
def dual_run(solo_src, image_folders, tmp_path_factory) -> Path:
    """A cpu_quick Dual-Gating run (width 8, cifar stem, both branches trained)."""
    workdir = tmp_path_factory.mktemp("dual")
    return pretrain(
        solo_src, workdir, image_folders, "vicreg_dual_gating", "knn_eval.enabled=False"
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dualgate_solo.validation.")]


def _refused_probe(solo_src, run, image_folders, workdir, *extra) -> list[str]:
    """main_linear.py (vicreg_dual_gating probe config) that must fail before training: its
    error lines."""
    result = linear(
        solo_src,
        run,
        "vicreg_dual_gating",
        image_folders,
        workdir,
        *extra,
        check=False,
    )
    assert result.returncode != 0 and "size mismatch" not in result.stderr
    assert not (workdir / "trained_models").exists()  # stopped before the first epoch
    return _error_lines(result.stderr)


def test_gated_checkpoint_given_to_solo_learns_plain_resnet18_fails_before_training(
    solo_src, dual_run, image_folders, tmp_path
) -> None:
    """The package's own ``linear/cpu_quick/vicreg.yaml`` builds solo-learn's ``resnet18``."""
    result = linear(solo_src, dual_run, "vicreg", image_folders, tmp_path, check=False)
    assert result.returncode != 0
    (line,) = _error_lines(result.stderr)
    assert line.startswith(
        "dualgate_solo.validation.UsageError: checkpoint is a dg_resnet18 (stem='cifar', "
        "width=8, dual_bn_scope='block') checkpoint (trained branches: dense, gated, as "
        "vicreg_dual_gating trains); backbone.name=resnet18 would load "
    )
    assert line.endswith(
        "use backbone.name=dg_resnet18 backbone.kwargs.stem=cifar backbone.kwargs.width=8 "
        "backbone.kwargs.dual_bn_scope=block backbone.kwargs.branch=<dense|gated>"
    )
    assert "size mismatch" not in result.stderr
    assert not (tmp_path / "trained_models").exists()  # stopped before the first epoch


def test_width_mismatch_is_one_line_naming_the_kwarg(
    solo_src, dual_run, image_folders, tmp_path
) -> None:
    (line,) = _refused_probe(
        solo_src, dual_run, image_folders, tmp_path, "backbone.kwargs.width=16"
    )
    assert line.endswith("; set backbone.kwargs.width=8")


def test_a_bad_backbone_kwarg_is_named_by_its_full_key_path(
    solo_src, dual_run, image_folders, tmp_path
) -> None:
    bad = "+backbone.kwargs.gate_mode=foo"
    assert _refused_probe(solo_src, dual_run, image_folders, tmp_path, bad) == [
        "dualgate_solo.validation.UsageError: backbone.kwargs.gate_mode='foo' is invalid; "
        "allowed values: 'channel', 'width'"
    ]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_truncated_feature_extractor_is_one_line(
    solo_src, dual_run, image_folders, tmp_path, damage
) -> None:
    """The linear recipes' Hydra callback checks the file before solo-learn's ``torch.load``."""
    checkpoint = tmp_path / "copy.ckpt"
    if damage == "truncated":
        whole = checkpoint_of(dual_run).read_bytes()
        checkpoint.write_bytes(whole[: len(whole) // 2])
    result = linear(
        solo_src,
        dual_run,
        "vicreg_dual_gating",
        image_folders,
        tmp_path,
        check=False,
        checkpoint=checkpoint,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    where = f"main_linear.py: error: pretrained_feature_extractor='{checkpoint}' "
    reason = "does not exist" if damage == "missing" else "is not a whole torch checkpoint ("
    assert line.startswith(where + reason)
    assert not (tmp_path / "trained_models").exists()


def test_linear_run_is_named_per_branch_and_inherits_the_custom_pipeline(
    solo_src, dual_run, image_folders, tmp_path
) -> None:
    pretrain_args = json.loads((dual_run / "args.json").read_text())
    assert pretrain_args["data"]["custom_pipeline"] == "cifar10"  # recorded (cifar_jpg config)
    # the linear config's own data.custom_pipeline is removed: the pre-training run's is restored
    overrides = ("backbone.kwargs.branch=gated", "~data.custom_pipeline")
    linear(solo_src, dual_run, "vicreg_dual_gating", image_folders, tmp_path, *overrides)
    (args_file,) = (tmp_path / "trained_models" / "linear").rglob("args.json")
    args = json.loads(args_file.read_text())
    assert args["name"] == "vicreg_dual_gating-cpu_quick-linear-gated"
    assert args["data"]["custom_pipeline"] == "cifar10"


def test_main_knn_refuses_a_pipeline_that_contradicts_the_recorded_one(
    solo_src, dual_run, image_folders, tmp_path, monkeypatch
) -> None:
    train, val = image_folders
    monkeypatch.setenv(ENV_VAR, "imagenet")
    options = {"dataset": "custom", "train_data_path": train, "val_data_path": val}
    options |= {"num_workers": 0, "pretrained_checkpoint_dir": dual_run}
    args = [part for key, value in options.items() for part in (f"--{key}", str(value))]
    hook_dir = install_hook(tmp_path / "site").parent
    result = run_script(
        solo_src / "main_knn.py", args, cwd=tmp_path, shim=True, hook_dir=hook_dir, check=False
    )
    assert result.returncode != 0
    (line,) = _error_lines(result.stderr)
    assert line == (
        "dualgate_solo.validation.UsageError: the custom-data pipeline is asked for "
        f"inconsistently: data.custom_pipeline='cifar10', ${ENV_VAR}='imagenet'; allowed "
        f"values: one of custom, cifar10, cifar100, stl10, imagenet100, imagenet from all of "
        f"them (unset ${ENV_VAR} to use the recorded one)"
    )
