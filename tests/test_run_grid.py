"""The grid runner's own logic (experiments.runner): runs, subsets, stage cache, k-NN records,
table, publishing and the command line.

Its solo-learn stages run in tests/integration/test_solo_scripts.py.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import os
from pathlib import Path

import pytest

import experiments
from dualgate_solo.method_registry import METHODS
from dualgate_solo.solo_adapter.custom_pipeline import ENV_VAR
from dualgate_solo.validation import UsageError
from experiments.runner import cli
from experiments.runner.cpu_shim import SHIM_DIR
from experiments.runner.curves import learning_curves, write_curves
from experiments.runner.data import check_image_folder, subset_folder
from experiments.runner.environment import stage_environment
from experiments.runner.knn_record import top1_by_k
from experiments.runner.protocols import PROTOCOLS, VARIANTS, Run, grid
from experiments.runner.publish import publish_runs
from experiments.runner.stages import StageIdentity, run_stage
from experiments.runner.table import collect_rows, mean_rows, write_table

TRACKED = [
    "method_kwargs.ratio_source=deterministic",
    "method_kwargs.lambda_flops=50",
    "method_kwargs.multiplier_lr=0.05",
]


def test_grid_runs_every_gated_method_at_every_budget_and_variant_then_the_baseline() -> None:
    runs = grid(
        ["vicreg", "vicreg_gating", "vicreg_dual_gating"], [0.1, 0.3, 0.5], ["paper", "tracked"]
    )
    names = [r.name for r in runs]
    assert len(names) == len(set(names)) == 2 * 3 * 2 + 1
    assert names[0] == "vicreg_dual_gating-td0.1-paper" and names[-1] == "vicreg-paper"
    assert "vicreg_gating-td0.5-tracked" in names
    assert Run("vicreg_gating", 0.3, "tracked").overrides() == [
        "method_kwargs.target_density=0.3",
        *TRACKED,
    ]
    assert runs[0].overrides() == ["method_kwargs.target_density=0.1"]
    assert runs[-1].overrides() == []
    assert [r.branches for r in runs[-2:]] == [METHODS["vicreg_gating"].branches, ("dense",)]
    assert [r.gated for r in runs[-2:]] == [True, False]
    family = grid([*METHODS, "vicreg"], [0.3], ["tracked"], baseline_widths=(8, 4))
    assert [r.name for r in family][2:] == [
        "slimclr_vicreg-paper",
        "slimclr_mocov3-paper",
        "sacl_xd-paper",
        "vicreg-paper",
        "vicreg-width8-paper",
        "vicreg-width4-paper",
    ]
    assert family[-1].overrides() == ["backbone.kwargs.width=4"]
    assert family[2].branches == ("w1", "w0.5", "w0.25") and not family[2].gated
    assert Run.from_name("vicreg-width8-paper") == Run("vicreg", None, "paper", 8)
    width_gated = Run("vicreg_dual_gating", 0.3, "tracked_width")
    assert width_gated.overrides() == [
        "+backbone.kwargs.gate_mode=width",
        *width_gated.overrides()[1:],
    ]
    assert width_gated.overrides()[2:] == TRACKED  # the tracked budget options
    assert width_gated.shared_overrides() == ["+backbone.kwargs.gate_mode=width"]  # probe too
    only_gating = grid(["vicreg_gating"], [0.1, 0.3, 0.5], ["tracked"])
    assert [r.name for r in only_gating] == [
        "vicreg_gating-td0.1-tracked",
        "vicreg_gating-td0.3-tracked",
        "vicreg_gating-td0.5-tracked",
    ]


def test_run_names_parse_back_and_bad_names_fail_in_one_line() -> None:
    for run in grid([*METHODS, "vicreg"], [0.1, 0.25], list(VARIANTS)):
        assert Run.from_name(run.name) == run
    for bad in ("vicreg_gating-t0.1-paper", "simclr-paper", "vicreg_gating-td0.1-fast", "x"):
        with pytest.raises(UsageError) as error:
            Run.from_name(bad)
        assert "\n" not in str(error.value)


def _image_folder(root: Path, per_class: int) -> Path:
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            (root / cls / f"{i:03d}.jpg").write_bytes(b"x")
    return root


def test_subset_folder_is_seeded_per_class_and_idempotent(tmp_path) -> None:
    source = _image_folder(tmp_path / "src", 10)
    first = subset_folder(source, tmp_path / "a", 4)
    again = subset_folder(source, tmp_path / "a", 4)
    other = subset_folder(source, tmp_path / "b", 4)

    def listing(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))

    assert listing(first) == listing(again) == listing(other)
    assert [len(list((first / c).iterdir())) for c in ("cat", "dog")] == [4, 4]
    assert all(p.is_symlink() and p.resolve().parent.parent == source for p in first.rglob("*.jpg"))
    check_image_folder(source, 10, "--train")
    with pytest.raises(UsageError, match=r"--train=.* cat/ has 10 images; the protocol draws 11"):
        check_image_folder(source, 11, "--train")
    with pytest.raises(UsageError, match=r"--val=.* allowed: an ImageFolder"):
        check_image_folder(tmp_path / "missing", None, "--val")


def _identity(**changes) -> StageIdentity:
    fields = {
        "protocol": "cpu",
        "run_overrides": ("method_kwargs.target_density=0.3", *TRACKED),
        "config": "pretrain/cpu/vicreg_gating",
        "overrides": ("data.train_path=/d/train", "checkpoint.dir=/o/ckpt"),
    }
    return StageIdentity(**{**fields, **changes})


def test_a_stage_is_recorded_with_its_identity_and_times_and_reused_only_when_identical(
    tmp_path,
) -> None:
    path = tmp_path / "pretrain.json"
    calls = []

    def work() -> dict:
        calls.append(1)
        return {"checkpoint": "x.ckpt"}

    assert run_stage(path, _identity(), work) == {"checkpoint": "x.ckpt"}
    record = json.loads(path.read_text())
    assert record["stage"] == "pretrain" and record["protocol"] == "cpu"
    assert record["run_overrides"][-1] == "method_kwargs.multiplier_lr=0.05"
    assert record["overrides"] == ["data.train_path=/d/train", "checkpoint.dir=/o/ckpt"]
    assert record["config"] == "pretrain/cpu/vicreg_gating"
    assert record["result"] == {"checkpoint": "x.ckpt"}
    assert record["started"] <= record["ended"] and record["seconds"] >= 0
    assert run_stage(path, _identity(), work) == {"checkpoint": "x.ckpt"}
    assert len(calls) == 1


def test_a_stale_stage_re_runs_or_with_refuse_stale_is_refused_in_one_line(
    tmp_path, capsys
) -> None:
    path = tmp_path / "linear-gated.json"
    run_stage(path, _identity(), lambda: {"linear_top1": 1.0})
    other = ("method_kwargs.target_density=0.3", "method_kwargs.lambda_flops=5")
    with pytest.raises(UsageError) as error:
        run_stage(path, _identity(run_overrides=other), dict, refuse_stale=True)
    message = str(error.value)
    assert "\n" not in message and f"stage {tmp_path.name}/linear-gated is stale" in message
    assert "run_overrides (only cached ['method_kwargs.lambda_flops=50'" in message
    assert "only requested ['method_kwargs.lambda_flops=5']" in message and str(path) in message
    with pytest.raises(UsageError, match="stale: protocol .cached 'cpu', requested 'gpu'"):
        run_stage(path, _identity(protocol="gpu"), dict, refuse_stale=True)
    inputs = {"checkpoint": {"name": "a.ckpt", "bytes": 4, "sha256": "1"}}
    run_stage(path, _identity(inputs=inputs), dict)
    changed = {"checkpoint": {"name": "a.ckpt", "bytes": 4, "sha256": "2"}}
    with pytest.raises(UsageError, match="stale: inputs checkpoint: .* -> .*'sha256': '2'"):
        run_stage(path, _identity(inputs=changed), dict, refuse_stale=True)
    # the default: re-run, say why, record the new identity
    assert run_stage(path, _identity(inputs=changed), lambda: {"linear_top1": 2.0}) == {
        "linear_top1": 2.0
    }
    assert "re-running stage" in capsys.readouterr().err
    assert json.loads(path.read_text())["inputs"] == changed
    path.write_text(json.dumps({"linear_top1": 30.0}))  # a record of the earlier runner
    with pytest.raises(UsageError, match="stale: recorded by an earlier runner"):
        run_stage(path, _identity(), dict, refuse_stale=True)


def test_knn_results_file_gives_top1_per_k(tmp_path) -> None:
    path = tmp_path / "knn.json"
    entry = {"T": None, "distance_fx": "euclidean", "acc5": 90.0}
    path.write_text(json.dumps([{**entry, "k": 1, "acc1": 30.5}, {**entry, "k": 20, "acc1": 35}]))
    assert top1_by_k(path) == {1: 30.5, 20: 35.0}


def test_knn_record_stores_what_solo_learns_classifier_computes(tmp_path) -> None:
    knn = pytest.importorskip("solo.utils.knn", reason="solo-learn is not importable")
    import torch

    from experiments.runner.knn_record import record_knn_results

    original = knn.WeightedKNNClassifier.compute
    path = tmp_path / "knn.json"
    try:
        record_knn_results(path)
        classifier = knn.WeightedKNNClassifier(k=1, distance_fx="euclidean")
        # nearest training points (labels): 0 (0), 1 (1), 1 (1), 0 (0) for test labels
        # 0, 0, 1, 1: right, wrong, right, wrong -> acc@1 = 50 (= acc@5: solo-learn's top-5 of
        # a k = 1 vote is its top-1)
        classifier(
            train_features=torch.tensor([[0.0, 0.0], [10.0, 0.0]]),
            train_targets=torch.tensor([0, 1]),
            test_features=torch.tensor([[1.0, 0.0], [9.0, 0.0], [11.0, 0.0], [-1.0, 0.0]]),
            test_targets=torch.tensor([0, 0, 1, 1]),
        )
        classifier.compute()
    finally:
        knn.WeightedKNNClassifier.compute = original
    assert json.loads(path.read_text()) == [
        {"k": 1, "T": 0.07, "distance_fx": "euclidean", "acc1": 50.0, "acc5": 50.0}
    ]


def test_stage_environment_puts_the_shim_solo_and_the_lab_first_and_sets_the_pipeline(
    tmp_path, monkeypatch
) -> None:
    lab = str(Path(experiments.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv(ENV_VAR, raising=False)
    env = stage_environment(tmp_path, cpu=True, custom_pipeline="cifar10")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SHIM_DIR), str(tmp_path), lab, "/elsewhere"]
    assert env[ENV_VAR] == "cifar10" and (SHIM_DIR / "sitecustomize.py").is_file()
    plain = stage_environment(tmp_path, cpu=False, custom_pipeline=None)
    assert plain["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), lab, "/elsewhere"]
    assert ENV_VAR not in plain


#: the commit and dirty flag a stage record carries
STAMP = {"commit": "0" * 40, "dirty": False}


def _record(result: dict) -> str:
    return json.dumps({**_identity().__dict__, "result": result, "source": STAMP}, default=list)


def _finished_runs(root: Path) -> None:
    """A published run of the earlier runner (bare results, no args.json), a new run with its
    solo-learn args.json, and an unfinished run."""
    legacy = root / "runs" / "vicreg_dual_gating-td0.1-paper"
    legacy.mkdir(parents=True)
    for name, result in {
        "pretrain": {"checkpoint": "/gone/x.ckpt", "run_dir": "/gone"},
        "cost": {"flops_ratio": 0.185, "flops_reduction": 0.815},
        "linear-dense": {"linear_top1": 44.0},
        "knn-dense": {"knn_top1_k1": 33.0, "knn_top1_k20": 38.0},
        "linear-gated": {"linear_top1": 41.0},
        "knn-gated": {"knn_top1_k1": 30.5, "knn_top1_k20": 35.25},
    }.items():
        (legacy / f"{name}.json").write_text(json.dumps(result))
    new = root / "runs" / "vicreg_gating-td0.3-tracked"
    (new / "pretrain" / "ckpts").mkdir(parents=True)
    (new / "pretrain" / "ckpts" / "args.json").write_text(
        '{"method": "vicreg_gating", "seed": 5, "accelerator": "cpu"}'
    )
    (new / "pretrain" / "ckpts" / "run.ckpt").write_bytes(b"ckpt")
    (new / "linear-gated" / "ckpts").mkdir(parents=True)
    (new / "linear-gated" / "ckpts" / "args.json").write_text('{"method": "linear"}')
    (new / "cost").mkdir()
    (new / "cost" / "channel_usage.png").write_bytes(b"png")
    # the same run at seeds 1 and 2 (linear 27.5/29.5/31.5, k-NN@1 20/22/24, k-NN@20 25/25/28)
    for run_dir, linear, knn1, knn20 in (
        (new, 27.5, 20.0, 25.0),
        (root / "runs" / "vicreg_gating-td0.3-seed1-tracked", 29.5, 22.0, 25.0),
        (root / "runs" / "vicreg_gating-td0.3-seed2-tracked", 31.5, 24.0, 28.0),
    ):
        run_dir.mkdir(exist_ok=True)
        for name, result in {
            "pretrain": {
                "checkpoint": "run.ckpt",
                "args_json": str(new / "pretrain/ckpts/args.json"),
            },
            "cost": {"flops_ratio": 0.3, "flops_reduction": 0.7},
            "linear-gated": {
                "linear_top1": linear,
                "args_json": str(new / "linear-gated/ckpts/args.json"),
            },
            "knn-gated": {"knn_top1_k1": knn1, "knn_top1_k20": knn20},
            "macs": {"macs_dense": 2_000_000},
        }.items():
            (run_dir / f"{name}.json").write_text(_record(result))
    slim = root / "runs" / "slimclr_vicreg-paper"
    slim.mkdir()
    slim_records = {
        "pretrain": {"checkpoint": "s.ckpt"},
        "macs": {"macs_w1": 4_000_000, "macs_w0.5": 1_000_000, "macs_w0.25": 250_000},
    }
    for n, width in enumerate(("w1", "w0.5", "w0.25")):
        slim_records[f"linear-{width}"] = {"linear_top1": 30.0 - n}
        slim_records[f"knn-{width}"] = {"knn_top1_k1": 20.0 - n, "knn_top1_k20": 25.0 - n}
    for name, result in slim_records.items():
        (slim / f"{name}.json").write_text(_record(result))
    small = root / "runs" / "vicreg-width8-paper"
    small.mkdir()
    for name, result in {
        "pretrain": {"checkpoint": "v.ckpt"},
        "macs": {"macs_dense": 1_500_000},
        "linear-dense": {"linear_top1": 26.0},
        "knn-dense": {"knn_top1_k1": 19.0, "knn_top1_k20": 24.0},
    }.items():
        (small / f"{name}.json").write_text(_record(result))
    unfinished = root / "runs" / "vicreg-paper"
    unfinished.mkdir()
    (unfinished / "pretrain.json").write_text(_record({"checkpoint": "y.ckpt"}))
    # a two-branch run whose gated branch was never probed: its dense row only
    partial = root / "runs" / "vicreg_dual_gating-td0.5-tracked"
    partial.mkdir()
    for name, result in {
        "pretrain": {"checkpoint": "p.ckpt"},
        "cost": {"flops_ratio": 0.5, "flops_reduction": 0.5},
        "linear-dense": {"linear_top1": 40.0},
        "knn-dense": {"knn_top1_k1": 30.0, "knn_top1_k20": 35.0},
    }.items():
        (partial / f"{name}.json").write_text(_record(result))


def test_table_plot_and_publish(tmp_path) -> None:
    out = tmp_path / "out"
    _finished_runs(out)
    rows, unfinished = collect_rows(out / "runs")
    assert unfinished == [
        "vicreg_dual_gating-td0.5-tracked (missing: linear-gated, knn-gated)",
        "vicreg-paper (missing: linear-dense, knn-dense)",
    ]
    write_table(rows, out, "title", unfinished)
    table = (out / "table.md").read_text()
    gating = (
        "| vicreg_gating | tracked | 0.3 | gated |  | 3 | cpu |  | 29.50 ± 2.00 | 22.00 ± 2.00 "
    )
    dual = "| vicreg_dual_gating | paper | 0.1 "
    slim = "| slimclr_vicreg | paper |  "
    assert [line for line in table.splitlines() if line.startswith(("| vicreg", "| slim"))] == [
        dual + "| dense |  | 1 |  |  | 44.00 | 33.00 | 38.00 | 0.00 |  | no |",
        dual + "| gated |  | 1 |  |  | 41.00 | 30.50 | 35.25 | 81.50 |  | no |",
        "| vicreg_dual_gating | tracked | 0.5 | dense |  | 1 |  |  | 40.00 | 30.00 | 35.00 | 0.00 "
        "|  | no |",
        gating + "| 26.00 ± 1.73 | 70.00 ± 0.00 | 0.60 ± 0.00 | yes |",
        slim + "| w1 |  | 1 |  |  | 30.00 | 20.00 | 25.00 | 0.00 | 4.00 | no |",
        slim + "| w0.5 |  | 1 |  |  | 29.00 | 19.00 | 24.00 | 75.00 | 1.00 | no |",
        slim + "| w0.25 |  | 1 |  |  | 28.00 | 18.00 | 23.00 | 93.75 | 0.25 | no |",
        "| vicreg (width 8) | paper |  | dense |  | 1 |  |  | 26.00 | 19.00 | 24.00 | 0.00 | 1.50 "
        "| no |",
    ]
    assert "args.json `no`" in table and "mean ± sample standard deviation" in table
    assert "rows absent: vicreg_dual_gating-td0.5-tracked (missing: linear-gated" in table
    table_rows = list(csv.DictReader((out / "table.csv").open()))
    assert [(r["method"], r["seed"], r["branch"], r["args_json"]) for r in table_rows] == [
        ("vicreg_dual_gating", "", "dense", "no"),
        ("vicreg_dual_gating", "", "gated", "no"),
        ("vicreg_dual_gating", "", "dense", "no"),
        ("vicreg_gating", "5", "gated", "yes"),
        ("vicreg_gating", "1", "gated", "yes"),
        ("vicreg_gating", "2", "gated", "yes"),
        ("slimclr_vicreg", "", "w1", "no"),
        ("slimclr_vicreg", "", "w0.5", "no"),
        ("slimclr_vicreg", "", "w0.25", "no"),
        ("vicreg", "", "dense", "no"),
    ]
    assert table_rows[-1]["width"] == "8" and table_rows[1]["linear_top1"] == "41.0"
    assert [r["accelerator"] for r in table_rows[3:6]] == ["cpu"] * 3 and not table_rows[0][
        "accelerator"
    ]
    means = list(csv.DictReader((out / "table_mean.csv").open()))
    assert (means[3]["seeds"], means[3]["linear_top1"], means[3]["linear_top1_std"]) == (
        "3",
        "29.5",
        "2.0",
    )
    assert means[0]["linear_top1_std"] == "" and means[0]["macs_m"] == ""
    assert (out / "accuracy_vs_flops.png").stat().st_size > 1000

    publish_runs(out, tmp_path / "pub", ["vicreg_gating-td0.3-tracked"])
    published = sorted(
        str(p.relative_to(tmp_path / "pub")) for p in (tmp_path / "pub").rglob("*") if p.is_file()
    )
    run = "runs/vicreg_gating-td0.3-tracked/"
    assert published == [
        run + name
        for name in (
            "args.json",
            "cost.json",
            "cost/channel_usage.png",
            "knn-gated.json",
            "linear-gated.args.json",
            "linear-gated.json",
            "macs.json",
            "pretrain.json",
            "sources.json",
        )
    ]
    assert json.loads((tmp_path / "pub" / run / "args.json").read_text()) == {
        "method": "vicreg_gating",
        "seed": 5,
        "accelerator": "cpu",
    }
    sources = json.loads((tmp_path / "pub" / run / "sources.json").read_text())["files"]
    assert {name: entry["written_by"] for name, entry in sources.items()} == {
        "args.json": "pretrain.json",
        "linear-gated.args.json": "linear-gated.json",
    }
    args_bytes = (tmp_path / "pub" / run / "args.json").read_bytes()
    assert sources["args.json"] == {
        "sha256": hashlib.sha256(args_bytes).hexdigest(),
        "written_by": "pretrain.json",
        "source": STAMP,
    }
    # a run whose records say no commit (made outside a git checkout) is not published
    unstamped = out / "runs" / "vicreg_gating-td0.3-tracked" / "linear-gated.json"
    unstamped.write_text(json.dumps({"result": {"linear_top1": 1.0}}))
    with pytest.raises(UsageError, match=r"--publish=.*\(linear-gated.json\); allowed: runs"):
        publish_runs(out, tmp_path / "pub2", ["vicreg_gating-td0.3-tracked"])
    assert not (tmp_path / "pub2").exists()


def _seed_run(root: Path, name: str, args: dict, torch: str, linear: float) -> None:
    """A finished VICReg run with its published args.json and the torch of its records."""
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "args.json").write_text(json.dumps(args))
    for stage, result in {
        "pretrain": {"checkpoint": "x.ckpt"},
        "linear-dense": {"linear_top1": linear},
        "knn-dense": {"knn_top1_k1": 20.0, "knn_top1_k20": 25.0},
    }.items():
        record = {**json.loads(_record(result)), "torch": torch, "gpu": None}
        (run_dir / f"{stage}.json").write_text(json.dumps(record))


def test_a_seed_group_whose_configs_differ_is_split_and_says_torch_and_accelerator(
    tmp_path,
) -> None:
    """Seeds 1 and 2 differ from seed 5 only in seed, accelerator and paths: one row; seed 3
    has another data pipeline and worker count: a row of its own, labelled with them."""
    base = {"seed": 5, "accelerator": "cpu", "data": {"train_path": "/a", "num_workers": 1}}
    base["optimizer"] = {"lr": 0.3}
    gpu = {**base, "accelerator": "gpu", "data": {"train_path": "/elsewhere", "num_workers": 1}}
    other = {**base, "data": {"train_path": "/a", "num_workers": 2, "custom_pipeline": "cifar10"}}
    _seed_run(tmp_path, "vicreg-paper", base, "2.14.1", 30.0)
    _seed_run(tmp_path, "vicreg-seed1-paper", {**gpu, "seed": 1}, "2.11.0", 32.0)
    _seed_run(tmp_path, "vicreg-seed2-paper", {**gpu, "seed": 2}, "2.11.0", 34.0)
    _seed_run(tmp_path, "vicreg-seed3-paper", {**other, "seed": 3}, "2.14.1", 50.0)
    rows, _ = collect_rows(tmp_path / "runs")
    assert [(r["torch"], r["accelerator"]) for r in rows] == [
        ("2.14.1", "cpu"),
        ("2.11.0", "gpu"),
        ("2.11.0", "gpu"),
        ("2.14.1", "cpu"),
    ]
    write_table(rows, tmp_path, "title")
    means = list(csv.DictReader((tmp_path / "table_mean.csv").open()))
    assert [(m["seeds"], m["linear_top1"], m["accelerator"], m["torch"]) for m in means] == [
        ("3", "32.0", "cpu+gpu", "2.14.1+2.11.0"),
        ("1", "50.0", "cpu", "2.14.1"),
    ]
    assert [m["config"] for m in means] == [
        "data.custom_pipeline=absent, data.num_workers=1",
        "data.custom_pipeline=cifar10, data.num_workers=2",
    ]
    table = (tmp_path / "table.md").read_text()
    assert (
        "| vicreg | paper |  | dense | data.custom_pipeline=cifar10, data.num_workers=2 | 1 "
        in (table)
    )
    assert "| 3 | cpu+gpu | 2.14.1+2.11.0 | 32.00 ± 2.00 |" in table
    assert "separate rows" in table
    # a different linear probe config splits too; a run without args.json is never averaged
    linear = tmp_path / "runs" / "vicreg-seed2-paper" / "linear-dense.args.json"
    linear.write_text(json.dumps({"max_epochs": 9}))
    (tmp_path / "runs" / "vicreg-seed1-paper" / "args.json").unlink()
    means = mean_rows(collect_rows(tmp_path / "runs")[0])
    assert [(m["seeds"], m["config"]) for m in means] == [
        (1, "data.custom_pipeline=absent, data.num_workers=1, linear.max_epochs=absent"),
        (1, "config unrecorded"),
        (1, "data.custom_pipeline=absent, data.num_workers=1, linear.max_epochs=9"),
        (1, "data.custom_pipeline=cifar10, data.num_workers=2, linear.max_epochs=absent"),
    ]


def test_command_line_refuses_a_missing_solo_checkout_in_one_line_and_writes_nothing(
    tmp_path, capsys
) -> None:
    data = _image_folder(tmp_path / "data", 2)
    out = tmp_path / "out"
    argv = ["--protocol", "smoke", "--train", str(data), "--val", str(data), "--out", str(out)]
    assert cli.main([*argv, "--solo", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"run_grid.py: error: --solo='{tmp_path}'")
    assert "no main_pretrain.py" in error and not out.exists()


def _metrics(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def test_learning_curves_merge_resumed_logs_per_network_and_publish_them(tmp_path) -> None:
    """A Dual-Gating run resumed after epoch 0 (two logger versions) and a VICReg run: one curve
    per trained network, steps after each epoch, the VICReg loss of the epoch."""
    dual = tmp_path / "runs" / "vicreg_dual_gating-td0.3-tracked"
    logs = dual / "pretrain" / "lightning_logs"
    _metrics(
        logs / "version_0" / "metrics.csv",
        [
            {"epoch": 0, "step": 38, "train_vicreg_loss_epoch": 40.0},
            {"epoch": 0, "step": 38, "val_knn_acc1": 20.0, "val_gated_knn_acc1": 18.0},
        ],
    )
    _metrics(
        logs / "version_10" / "metrics.csv",  # numeric order: version_10 comes after version_0
        [
            {"epoch": 1, "step": 77, "train_vicreg_loss_epoch": 30.0},
            {"epoch": 1, "step": 77, "val_knn_acc1": 25.0, "val_gated_knn_acc1": 21.0},
            {"epoch": 1, "step": 77, "val_acc1": 24.0, "val_gated_acc1": 19.5},
        ],
    )
    vicreg = tmp_path / "runs" / "vicreg-paper"
    _metrics(
        vicreg / "pretrain" / "lightning_logs" / "version_0" / "metrics.csv",
        [{"epoch": 0, "step": 38, "val_knn_acc1": 22.0, "train_vicreg_loss_epoch": 35.0}],
    )
    curves = learning_curves(dual)
    assert [(r["network"], r["epoch"], r["step"], r["knn_top1"]) for r in curves] == [
        ("dense", 0, 39, 20.0),
        ("dense", 1, 78, 25.0),
        ("gated", 0, 39, 18.0),
        ("gated", 1, 78, 21.0),
    ]
    assert [r["vicreg_loss"] for r in curves] == [40.0, 30.0, 40.0, 30.0]
    assert [r["linear_top1"] for r in curves] == [None, 24.0, None, 19.5]
    assert write_curves(tmp_path / "runs", tmp_path, "title")
    written = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert [(r["run"], r["network"], r["knn_top1"]) for r in written][0] == (
        "vicreg-paper",
        "dense",
        "22.0",
    )
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    # published: one merged file, from which the same curves come back
    (dual / "pretrain.json").write_text(_record({"checkpoint": "x.ckpt"}))
    publish_runs(tmp_path, tmp_path / "pub", [dual.name])
    assert learning_curves(tmp_path / "pub" / "runs" / dual.name) == curves
    empty = tmp_path / "none" / "runs" / "vicreg-paper"
    empty.mkdir(parents=True)
    assert not write_curves(empty.parent, tmp_path / "none", "t")


def test_cpu_long_is_the_cpu_protocol_eight_times_longer_with_online_knn(tmp_path) -> None:
    """Every cpu config composes with the cpu_long overrides into a 40-epoch run with online k-NN
    (gated methods' annealing stretched to it) and a 10-epoch linear probe."""
    pytest.importorskip("hydra", reason="hydra is not installed")
    from hydra import compose, initialize_config_dir

    from dualgate_solo.solo_adapter.paths import config_dir

    cpu, long = PROTOCOLS["cpu"], PROTOCOLS["cpu_long"]
    assert (long.configs, long.train_per_class, long.val_per_class) == ("cpu", 500, 200)
    assert long.online_val and not long.umap
    for method in ("vicreg", "vicreg_gating", "vicreg_dual_gating"):
        run = Run(method, None if method == "vicreg" else 0.3, "paper")
        with initialize_config_dir(str(config_dir() / "pretrain" / "cpu"), version_base="1.2"):
            base = compose(method)
            gated = long.pretrain_gated if run.gated else ()
            cfg = compose(method, overrides=[*long.pretrain, *gated, *run.overrides()])
        assert (base.max_epochs, cfg.max_epochs) == (5, 40)
        assert (cfg.knn_eval.enabled, cfg.knn_eval.k, cfg.knn_eval.distance_func) == (
            True,
            20,
            "euclidean",
        )
        if run.gated:
            assert (base.method_kwargs.anneal_alpha, cfg.method_kwargs.anneal_alpha) == (2.0, 0.25)
            # p = exp(-alpha * epoch) reaches the same value at the end of both schedules
            assert 2.0 * base.max_epochs == 0.25 * cfg.max_epochs
        with initialize_config_dir(str(config_dir() / "linear" / "cpu"), version_base="1.2"):
            linear = compose(method, overrides=["pretrained_feature_extractor=x", *long.linear])
        assert (linear.max_epochs, list(linear.scheduler.lr_decay_steps)) == (10, [6, 8])
    assert cpu.pretrain == cpu.linear == ()


def test_launcher_gives_a_trainer_without_logger_a_csv_logger(tmp_path, monkeypatch) -> None:
    pytest.importorskip("lightning", reason="lightning is not installed")
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    from experiments.runner.launch import log_to_csv

    original = Trainer.__init__
    monkeypatch.chdir(tmp_path)
    try:
        log_to_csv()
        # solo-learn keeps only the config keys this signature names
        assert inspect.signature(Trainer.__init__) == inspect.signature(original)
        trainer = Trainer(logger=None, max_epochs=1, enable_progress_bar=False)
        kept = Trainer(logger=False, max_epochs=1, enable_progress_bar=False)
    finally:
        Trainer.__init__ = original
    assert isinstance(trainer.logger, CSVLogger) and kept.logger is None
    assert Path(trainer.logger.log_dir) == tmp_path / "lightning_logs" / "version_0"


COMMITTED_GRIDS = sorted(
    p.parent for p in (Path(__file__).resolve().parents[1] / "results").rglob("table_mean.csv")
)


@pytest.mark.parametrize("grid_dir", COMMITTED_GRIDS, ids=lambda p: p.parent.name + "/" + p.name)
def test_committed_grid_tables_regenerate_byte_for_byte(grid_dir, tmp_path) -> None:
    """``table.csv``, ``table_mean.csv`` and ``table.md`` of every committed grid come out of its
    committed stage records unchanged (what ``run_grid.py --tables-only`` rewrites)."""
    rows, unfinished = collect_rows(grid_dir / "runs")
    command = json.loads((grid_dir / "provenance.json").read_text())["command"]
    protocol = command[command.index("--protocol") + 1]
    write_table(rows, tmp_path, f"protocol {protocol}; per-run records in runs/<run>/", unfinished)
    for name in ("table.csv", "table_mean.csv", "table.md"):
        assert (tmp_path / name).read_bytes() == (grid_dir / name).read_bytes(), name
