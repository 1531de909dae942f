"""scripts/gpu_short.py: calibration arithmetic, epoch choice, result tables, Hydra overrides, and
its whole pipeline on the CPU (``--dry-run``, needs ``SOLO_LEARN_SRC``)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from model_utils import write_shape_folders
from script_loader import load_script

REPO = Path(__file__).resolve().parents[1]

gpu_short = load_script("gpu_short")

TIMING = {
    "launch_time": 100.0,
    "train_start": 120.0,
    "train_end": 157.0,
    "exit_time": 158.0,
    "epochs": [
        {"epoch": 0, "start": 120.0, "end": 150.0, "val_start": 145.0, "val_end": 149.0, "lr": 0.3},
        {
            "epoch": 1,
            "start": 150.0,
            "step_ends": [152.0, 152.5, 153.0, 153.5, 154.0],
            "val_start": 154.5,
            "val_end": 156.5,
            "end": 157.0,
            "lr": 0.1,
        },
    ],
}


def test_calibration_takes_the_steady_state_from_the_second_epoch() -> None:
    c = gpu_short.calibrate(TIMING, workers=2)
    assert c.startup_s == 20.0  # launch -> first training hook
    assert c.one_off_s == 23.0  # 30 s first epoch - 7 s second
    assert c.teardown_s == 1.0
    assert c.first_step_s == 2.0
    assert c.step_s == 0.5  # (154 - 152.5) / 3: from the end of the first round of 2 workers
    assert c.val_s == 2.0
    assert c.epoch_s(10) == 2.0 + 9 * 0.5 + 2.0
    assert c.fixed_s == 44.0


def test_choose_epochs_fits_both_runs_into_the_budget_with_the_safety_margin() -> None:
    slow = gpu_short.Calibration(20.0, 23.0, 1.0, 2.0, 0.5, 2.0)  # fixed 44 s, 8.5 s/epoch
    fast = gpu_short.Calibration(9.0, 0.0, 1.0, 1.0, 0.25, 1.75)  # fixed 10 s, 5 s/epoch
    # (480 - 54) / (1.1 * 13.5) = 28.69
    assert gpu_short.choose_epochs([slow, fast], 10, 480.0, cap=200) == 28
    assert gpu_short.choose_epochs([slow, fast], 10, 480.0, cap=20) == 20
    assert gpu_short.choose_epochs([slow, fast], 10, 50.0, cap=200) == 1


def test_epoch_table_keeps_epoch_means_and_validation_and_drops_step_values() -> None:
    rows = [  # as Lightning's CSVLogger writes them: a step row, then validation, then epoch means
        {"epoch": "0", "step": "4", "train_vicreg_loss_step": "9.0", "val_acc1": ""},
        {"epoch": "0", "step": "9", "val_acc1": "31.5", "val_knn_acc1": "28.0"},
        {"epoch": "0", "step": "9", "train_vicreg_loss_epoch": "7.5", "train_acc1_epoch": "12.0"},
        {"epoch": "1", "step": "19", "val_acc1": "40.0"},
    ]
    timing = {**TIMING, "epochs": [TIMING["epochs"][0], {"epoch": 1, "start": 150.0}]}
    table = gpu_short.epoch_table(rows, timing)
    assert table == [  # epoch 1 has not finished: no row
        {
            "epoch": 0,
            "epoch_s": 30.0,
            "train_s": 26.0,
            "val_s": 4.0,
            "lr": 0.3,
            "val_acc1": 31.5,
            "val_knn_acc1": 28.0,
            "train_vicreg_loss": 7.5,
            "train_acc1": 12.0,
        }
    ]
    summary = gpu_short.run_summary(table, TIMING, "ok", 2)
    assert summary["epochs_done"] == 1 and summary["wall_s"] == 58.0
    assert summary["final"] == {"val_acc1": 31.5, "val_knn_acc1": 28.0, "train_vicreg_loss": 7.5}
    diverged = gpu_short.run_summary(table, {**TIMING, "diverged_at_step": 42}, "ok", 2)
    assert diverged["status"] == "diverged: non-finite loss at step 42, stopped"


def test_warmup_is_the_papers_ten_epochs_at_most_half_the_run() -> None:
    assert [gpu_short.warmup_epochs(e) for e in (1, 2, 3, 15, 19, 20, 21, 500)] == [
        1,
        1,
        1,
        7,
        9,
        10,
        10,
        10,
    ]


def _composed(spec_, epochs: int, settings=gpu_short.GPU):
    """The config main_pretrain.py would see for ``spec_`` (Hydra's compose API, no solo-learn)."""
    hydra = pytest.importorskip("hydra")
    args = gpu_short.hydra_overrides(spec_, settings, Path("/d/train"), Path("/d/test"), epochs)
    assert args[:4] == ["--config-path", str(gpu_short.CONFIGS), "--config-name", spec_.config]
    with hydra.initialize_config_dir(config_dir=args[1], version_base="1.2"):
        return hydra.compose(args[3], overrides=args[4:])


def test_overrides_give_the_dual_gating_run_the_tracked_budget_and_a_scaled_schedule() -> None:
    dual, paper, _ = gpu_short.runs(width=64)
    cfg = _composed(dual, epochs=25)
    assert cfg.method == "vicreg_dual_gating"
    assert dict(cfg.backbone.kwargs) == {
        "stem": "cifar",
        "width": 64,
        "dual_bn_scope": "block",
        "branch": "dense",
    }
    kwargs = cfg.method_kwargs
    assert (kwargs.target_density, kwargs.ratio_source) == (0.3, "deterministic")
    assert (kwargs.lambda_flops, kwargs.multiplier_lr) == (50, 0.05)
    assert kwargs.anneal_alpha == 0.4  # 10 / 25: p decays as over the paper's 500 epochs
    assert (cfg.max_epochs, cfg.scheduler.warmup_epochs, cfg.scheduler.interval) == (25, 10, "step")
    assert (cfg.data.dataset, cfg.data.train_path, cfg.data.val_path) == (
        "custom",
        "/d/train",
        "/d/test",
    )
    assert [list(a.mean) for a in cfg.augmentations] == [list(gpu_short.CIFAR10_MEAN)] * 2
    assert [list(a.std) for a in cfg.augmentations] == [list(gpu_short.CIFAR10_STD)] * 2
    assert cfg.knn_eval.enabled and cfg.knn_eval.k == 20
    assert (cfg.optimizer.batch_size, cfg.precision, list(cfg.devices)) == (512, "bf16-mixed", [0])
    assert not cfg.checkpoint.enabled and not cfg.auto_resume.enabled
    assert cfg.performance.disable_channel_last is False and cfg.enable_progress_bar is False
    budget = _composed(paper, epochs=25).method_kwargs  # the paper's budget loss
    assert (budget.ratio_source, budget.lambda_flops, budget.multiplier_lr) == ("sampled", 5, 0)


def test_overrides_run_vicreg_on_the_same_network_dense_with_one_bn_set() -> None:
    *_, vicreg = gpu_short.runs(width=64)
    cfg = _composed(vicreg, epochs=60)
    assert (cfg.method, cfg.backbone.name) == ("vicreg", "dg_resnet18")
    assert dict(cfg.backbone.kwargs) == {
        "stem": "cifar",
        "width": 64,
        "dual_bn_scope": "none",
        "branch": "dense",
    }
    assert "anneal_alpha" not in cfg.method_kwargs
    assert (cfg.max_epochs, cfg.scheduler.warmup_epochs) == (60, 10)
    assert cfg.method_kwargs.proj_output_dim == 2048
    assert cfg.optimizer.lr == 0.3  # the recipe's, unless --lr
    lower = _composed(vicreg, epochs=60, settings=replace(gpu_short.GPU, lr=0.05))
    assert lower.optimizer.lr == 0.05


def test_paper_schedule_warms_up_per_epoch_from_the_papers_start_lr() -> None:
    *_, vicreg = gpu_short.runs(width=64)
    per_step = _composed(vicreg, epochs=12).scheduler
    assert (per_step.interval, per_step.warmup_epochs) == ("step", 6)
    paper = _composed(vicreg, epochs=12, settings=replace(gpu_short.GPU, schedule="paper"))
    scheduler = paper.scheduler
    assert (scheduler.interval, scheduler.warmup_start_lr, scheduler.warmup_epochs) == (
        "epoch",
        0.003,
        6,
    )


def test_a_failed_calibration_calibrates_every_run_again_with_the_fallback_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = argparse.Namespace(work=tmp_path / "w", out=tmp_path / "o", dry_run=False)
    session = gpu_short.Session(args, gpu_short.GPU)
    launched = []

    def launch(spec, run_dir, overrides, timeout_s):  # the dual run fails in bf16
        launched.append(
            (spec.name, [o for o in overrides if o.startswith(("precision", "data.n"))])
        )
        if spec.anneals and session.settings.precision == "bf16-mixed":
            return "failed (exit code 1)"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "timing.json").write_text(json.dumps({**TIMING, "environment": {}}))
        return "ok"

    monkeypatch.setattr(session, "launch", launch)
    dual, _, vicreg = specs = gpu_short.runs(width=64)
    dual, vicreg = dual.name, vicreg.name
    calibrations = session.calibrate_all([specs[0], specs[2]], Path("/t"), Path("/v"))
    first, second = (
        ["data.num_workers=12", "precision=bf16-mixed"],
        ["data.num_workers=8", "precision=32-true"],
    )
    assert launched == [(dual, first), (vicreg, first), (dual, second), (vicreg, second)]
    assert set(calibrations) == {dual, vicreg} and session.summary["runs"] == {}
    assert session.summary["fallback_settings"]["precision"] == "32-true"


# ----------------------------------------------------------------------------- dry run
def _tiny_tarball(path: Path) -> Path:
    """``cifar10_jpg/{train,test}/<class>/`` of 6 classes of shapes, 16 + 8 JPEGs each."""
    root = write_shape_folders(path / "cifar10_jpg", "test", ".jpg")
    tarball = path / "tiny.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname="cifar10_jpg")
    return tarball


@pytest.mark.slow
def test_dry_run_trains_both_runs_through_solo_learn_and_writes_the_result_files(
    tmp_path: Path,
) -> None:
    solo = os.environ.get("SOLO_LEARN_SRC")
    if not solo or not (Path(solo) / "main_pretrain.py").is_file():
        pytest.skip("needs a solo-learn 1.0.6 checkout: set SOLO_LEARN_SRC=<checkout>")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "gpu_short.py"), "--dry-run", "--solo", solo]
    cmd += [
        "--data",
        str(_tiny_tarball(tmp_path)),
        "--out",
        str(out),
        "--work",
        str(tmp_path / "w"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    runs = list(gpu_short.DEFAULT_RUNS)
    expected = ["summary.json"] + [f"{r}/{f}" for r in runs for f in gpu_short.RESULT_FILES]
    assert files == sorted(expected)  # + the command's log: 8 files, what the device returns
    assert all(re.fullmatch(r"[A-Za-z0-9._/-]+", f) and f.count("/") <= 2 for f in files)

    summary = json.loads((out / "summary.json").read_text())
    epochs = summary["epochs"]
    assert 1 <= epochs <= gpu_short.DRY_RUN.max_epochs
    assert set(summary["calibration"]) == set(runs)
    for name in runs:
        run = summary["runs"][name]
        assert (run["status"], run["epochs_done"]) == ("ok", epochs)
        table = list(csv.DictReader((out / name / "epochs.csv").open()))
        assert [int(r["epoch"]) for r in table] == list(range(epochs))
        assert all(r["val_acc1"] and r["val_knn_acc1"] for r in table)
        args = json.loads((out / name / "args.json").read_text())
        assert (args["max_epochs"], args["backbone"]["name"]) == (epochs, "dg_resnet18")
    dual, vicreg = (summary["runs"][name]["final"] for name in runs)
    assert 0.0 <= dual["val_flops_ratio"] <= 1.0 and "val_gated_knn_acc1" in dual
    assert "val_gated_knn_acc1" not in vicreg
    assert summary["environment"]["lightning"].startswith("2.")
