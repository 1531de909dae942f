"""scripts/gpu_grid.sh end to end on the CPU: carried data and solo-learn, two runner processes
against one deadline, one tarball of records per protocol (slow; needs ``SOLO_LEARN_SRC``)."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from model_utils import write_shape_folders

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_grid_runs_two_specs_in_parallel_and_packs_their_records(tmp_path) -> None:
    solo = os.environ.get("SOLO_LEARN_SRC")
    if not solo:
        pytest.skip("needs a solo-learn 1.0.6 checkout: set SOLO_LEARN_SRC=<checkout>")
    job = tmp_path / "job"
    (job / "data").mkdir(parents=True)
    write_shape_folders(tmp_path / "src" / "cifar10_jpg", "test", ".jpg")
    with tarfile.open(job / "data" / "cifar10_jpg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10_jpg", arcname="cifar10_jpg")
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {
        **os.environ,
        "DATA_ROOT": str(tmp_path / "data"),
        "SOLO_ROOT": solo,
        "RUNS_ROOT": str(runs),
        "OMP_NUM_THREADS": "1",
    }
    specs = ["smoke:vicreg_dual_gating:tracked:1", "smoke:vicreg:paper:-"]
    # no GPU here: the runners' accelerator back to the configs' cpu
    runner = ["--cpu", "--pretrain-override", "accelerator=cpu"]
    runner += ["--linear-override", "accelerator=cpu"]
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_grid.sh"), str(job), str(out), "900", *specs]
        + ["--", *runner],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "environment.json",
        "grid_smoke.tar.gz",
        "runners.log",
    ]
    assert json.loads((out / "environment.json").read_text())["cpu_count"] >= 1
    with tarfile.open(out / "grid_smoke.tar.gz") as tar:
        names = {Path(n).relative_to(runs.relative_to("/")).as_posix() for n in tar.getnames()}
    dual, vicreg = (
        "grid_smoke/runs/vicreg_dual_gating-td0.3-seed1-tracked",
        "grid_smoke/runs/vicreg-paper",
    )
    for stage in ("pretrain", "cost", "linear-dense", "knn-dense", "linear-gated", "knn-gated"):
        assert f"{dual}/{stage}.json" in names
    assert {f"{vicreg}/linear-dense.json", f"{vicreg}/knn-dense.json"} <= names
    assert not any(n.endswith(".ckpt") for n in names)  # records and logs only
    assert "runners done" in (out / "runners.log").read_text()
