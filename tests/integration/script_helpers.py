"""Running solo-learn's unchanged scripts on the package's ``cpu_quick`` configs (CPU)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from conftest import REPO, run_script

CONFIGS = REPO / "configs"


def data_overrides(image_folders) -> list[str]:
    train, val = image_folders
    return [f"data.train_path={train}", f"data.val_path={val}", "data.num_workers=0"]


def pretrain(solo_src: Path, workdir: Path, image_folders, method: str, *extra: str) -> Path:
    """Run main_pretrain.py on the cpu_quick config; returns the run directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        "--config-path",
        str(CONFIGS / "pretrain" / "cpu_quick"),
        "--config-name",
        method,
        *data_overrides(image_folders),
        f"checkpoint.dir={workdir / 'trained_models'}",
        *extra,
    ]
    run_script(solo_src / "main_pretrain.py", args, cwd=workdir)
    runs = sorted((workdir / "trained_models" / method).iterdir())
    return runs[-1]


def metrics(workdir: Path) -> pd.DataFrame:
    files = sorted(workdir.glob("lightning_logs/version_*/metrics.csv"))
    return pd.read_csv(files[-1])


def checkpoint_of(run: Path) -> Path:
    return sorted(run.glob("*.ckpt"))[-1]


def linear(
    solo_src: Path,
    run: Path,
    config: str,
    image_folders,
    workdir: Path,
    *extra: str,
    check: bool = True,
    checkpoint: Path | None = None,
):
    """main_linear.py on a cpu_quick linear config; ``checkpoint`` (default: the run's newest)
    is the ``pretrained_feature_extractor``."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        "--config-path",
        str(CONFIGS / "linear" / "cpu_quick"),
        "--config-name",
        config,
        *data_overrides(image_folders),
        f"checkpoint.dir={workdir / 'trained_models'}",
        f"pretrained_feature_extractor='{checkpoint or checkpoint_of(run)}'",
        *extra,
    ]
    return run_script(solo_src / "main_linear.py", args, cwd=workdir, check=check)


def knn_accuracies(output: str) -> list[float]:
    return [float(x) for x in re.findall(r"Result: acc@1=([\d.]+)", output)]


def eval_script_args(train: Path, val: Path, checkpoint_dir: str) -> list[str]:
    """The arguments ``main_knn.py`` and ``main_umap.py`` share: data, loader, checkpoint dir."""
    return [
        "--dataset",
        "custom",
        "--train_data_path",
        str(train),
        "--val_data_path",
        str(val),
        "--batch_size",
        "16",
        "--num_workers",
        "0",
        "--pretrained_checkpoint_dir",
        checkpoint_dir,
    ]
