"""The benchmarks' own arithmetic (dualgate_solo.bench): MAC counting, round-robin timing order,
timing rows and speed-ups, with hand-computed numbers, and the family benchmark's rows on a tiny
grid. Nothing here measures speed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dualgate_solo.bench.latency_report import CSV_FIELDS, add_speedups, row, write_csv
from dualgate_solo.bench.timing import count_macs, round_robin


def test_count_macs_is_the_convolutions_multiply_accumulates() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 8 output channels x 3 input channels x 3 x 3 taps x 8 x 8 output positions
    assert count_macs(conv, [torch.zeros(1, 3, 8, 8)] * 2) == 8 * 3 * 9 * 64


def test_round_robin_warms_each_callable_then_times_one_call_of_each_per_round() -> None:
    calls = []
    fns = [lambda x, n=name: calls.append(n) for name in "ab"]
    times = round_robin(fns, torch.zeros(1), warmup=2, repeats=3)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert [len(t) for t in times] == [3, 3] and all(ms >= 0 for t in times for ms in t)


def test_row_statistics_and_speedups_by_hand() -> None:
    dense_macs = 100.0
    first = row("dense_branch", "eager", 1, [1.0, 2.0, 3.0, 4.0], dense_macs, dense_macs)
    # statistics.quantiles(n=4), exclusive method: positions 1.25 and 3.75 of 4 sorted values
    assert (first["median_ms"], first["p25_ms"], first["p75_ms"]) == (2.5, 1.25, 3.75)
    rows = [
        first,
        row("static", "eager", 1, [1.25], 25.0, dense_macs),  # theoretical 4
        row("dense_plain", "onnxruntime", 1, [2.0], dense_macs, dense_macs),
        row("static", "onnxruntime", 1, [0.5], 25.0, dense_macs),
        row("static", "compile", 1, None, 25.0, dense_macs, error="boom"),
    ]
    add_speedups(rows)
    static, onnx, failed = rows[1], rows[3], rows[4]
    assert static["theoretical_speedup"] == 4.0 and static["realized_speedup"] == 2.0
    assert static["realized_over_theoretical"] == 0.5
    # ONNX Runtime rows: against the eager dense branch, and against dense_plain in ORT
    assert onnx["realized_speedup"] == 5.0 and onnx["realized_speedup_same_runtime"] == 4.0
    assert onnx["realized_over_theoretical"] == 1.0
    assert failed["realized_speedup"] is None and failed["repeats"] == 0


def test_latency_csv_has_the_published_columns(tmp_path) -> None:
    rows = [row("dense_branch", "eager", 64, [3.0, 5.0], 10.0, 10.0)]
    write_csv(rows, tmp_path / "latency.csv")
    written = list(csv.DictReader((tmp_path / "latency.csv").open()))
    assert tuple(written[0]) == CSV_FIELDS
    assert written[0]["median_ms"] == "4.0" and written[0]["ms_per_image"] == "0.0625"
    published = Path(__file__).resolve().parents[1] / "results" / "latency_trained_w16"
    with open(published / "latency.csv") as f:
        assert tuple(next(csv.reader(f))) == CSV_FIELDS


@pytest.mark.parametrize("quick, repeats", [(True, {1: (3, 10), 64: (1, 2)}), (False, None)])
def test_quick_settings(quick, repeats) -> None:
    from dualgate_solo.bench.latency import Settings, build_parser

    settings = Settings.from_args(build_parser().parse_args(["--quick"] if quick else []))
    assert settings.use_compile is not quick
    assert settings.train_steps == (5 if quick else 60)
    assert settings.repeats == (repeats or {1: (10, 40), 64: (2, 9)})


# ------------------------------------------------------------------ family benchmark (bench_family)
def _write_run(root: Path, run: str, backbone, args: dict, accuracy: dict, ckpt: bool) -> None:
    """A finished grid run: checkpoint + args.json (when ``ckpt``) and its stage records, written
    by the runner's own ``run_stage``; ``accuracy``: network -> (linear, k-NN@1, k-NN@20)."""
    from dualgate_solo.runner.protocols import Run
    from dualgate_solo.runner.stages import StageIdentity, run_stage

    run_dir = root / "runs" / run
    model_dir = run_dir / "pretrain" / "trained_models" / "0"
    model_dir.mkdir(parents=True)
    checkpoint = model_dir / f"{run}-ep=0.ckpt"
    if ckpt:
        state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
        torch.save({"state_dict": state, "epoch": 0}, checkpoint)
        (model_dir / "args.json").write_text(json.dumps(args))
    identity = StageIdentity("cpu", (), f"pretrain/cpu/{args['method']}", ())
    records = {
        "pretrain": {
            "checkpoint": str(checkpoint),
            "run_dir": str(model_dir),
            "args_json": str(model_dir / "args.json"),
            "resumed_from": None,
        }
    }
    if Run.from_name(run).gated:
        records["cost"] = {"flops_ratio": 0.25, "flops_reduction": 0.75}
    for network, (linear, k1, k20) in accuracy.items():
        records[f"linear-{network}"] = {"linear_top1": linear, "args_json": None}
        records[f"knn-{network}"] = {"knn_top1_k1": k1, "knn_top1_k20": k20}
    for stage, result in records.items():
        run_stage(run_dir / f"{stage}.json", identity, lambda r=result: r)


def test_family_benchmark_rows_from_a_tiny_grid(tmp_path) -> None:
    from dualgate_solo.bench.family import CSV_FIELDS, main
    from dualgate_solo.models import create_backbone

    grid = tmp_path / "grid"
    slim_kwargs = {"stem": "cifar", "width": 4, "width_mult_list": [1.0, 0.5, 0.25]}
    slim = create_backbone("slim_resnet18", **slim_kwargs)
    slim.trained_steps.fill_(1)
    gated_kwargs = {"stem": "cifar", "width": 4, "dual_bn_scope": "none", "branch": "gated"}
    gated = create_backbone("dg_resnet18", **gated_kwargs)
    gated.trained_steps.fill_(1)
    dense_kwargs = {**gated_kwargs, "branch": "dense"}
    dense = create_backbone("dg_resnet18", **dense_kwargs)
    dense.trained_steps.fill_(1)
    slim_accuracy = {"w1": (40.0, 30.0, 35.0), "w0.5": (38.0, 29.0, 33.5), "w0.25": (30, 20, 25)}
    _write_run(
        grid,
        "slimclr_vicreg-paper",
        slim,
        {"method": "slimclr_vicreg", "backbone": {"name": "slim_resnet18", "kwargs": slim_kwargs}},
        slim_accuracy,
        ckpt=True,
    )
    _write_run(
        grid,
        "vicreg_gating-td0.1-paper",
        gated,
        {"method": "vicreg_gating", "backbone": {"name": "dg_resnet18", "kwargs": gated_kwargs}},
        {"gated": (23.0, 20.0, 24.0)},
        ckpt=True,
    )
    _write_run(
        grid,
        "vicreg-width4-paper",
        dense,
        {"method": "vicreg", "backbone": {"name": "dg_resnet18", "kwargs": dense_kwargs}},
        {"dense": (36.0, 28.0, 31.0)},
        ckpt=True,
    )
    _write_run(grid, "vicreg-paper", dense, {"method": "vicreg"}, {"dense": (1, 1, 1)}, ckpt=False)
    out = tmp_path / "out"
    args = ["--grid", str(grid), "--quick", "--threads", "1", "--calib-size", "16"]
    main([*args, "--out", str(out)])

    with open(out / "family.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_FIELDS
    found = {(r["run"], r["network"], r["kind"]): r for r in rows}
    assert set(found) == {
        ("slimclr_vicreg-paper", "w1", "width_export"),
        ("slimclr_vicreg-paper", "w0.5", "width_export"),
        ("slimclr_vicreg-paper", "w0.25", "width_export"),
        ("vicreg_gating-td0.1-paper", "gated", "gated_masked"),
        ("vicreg_gating-td0.1-paper", "gated", "static_export"),
        ("vicreg-width4-paper", "dense", "dense_plain"),
    }
    for network, (linear, _, k20) in slim_accuracy.items():
        row = found[("slimclr_vicreg-paper", network, "width_export")]
        assert (float(row["linear_top1"]), float(row["knn_top1_k20"])) == (linear, k20)
        # the plain export runs exactly the width's sub-network and its MACs
        assert float(row["macs_per_image"]) == slim.macs_at(float(network[1:]), (32, 32))
        assert float(row["max_abs_diff_vs_source"]) < 1e-4
        assert row["family"] == "SlimCLR-VICReg"
    plain = found[("vicreg-width4-paper", "dense", "dense_plain")]
    assert float(plain["macs_per_image"]) == dense.cost_table((32, 32)).dense_macs
    assert (
        float(plain["max_abs_diff_vs_source"]) < 1e-4 and plain["family"] == "VICReg, small width"
    )
    masked = found[("vicreg_gating-td0.1-paper", "gated", "gated_masked")]
    assert masked["macs_source"].startswith("expected MACs of the gate accounting")
    assert float(masked["linear_top1"]) == 23.0 and float(masked["knn_top1_k20"]) == 24.0
    assert all(float(r["latency_b1_ms"]) > 0 and float(r["latency_b64_ms"]) > 0 for r in rows)

    record = json.loads((out / "family.json").read_text())
    assert len(record["rows"]) == 6 and record["torch_num_threads"] == 1 and record["quick"]
    assert record["command"].startswith("python scripts/bench_family.py --grid")
    (skipped,) = record["skipped"]
    assert skipped["run"] == "vicreg-paper" and skipped["reason"].endswith("does not exist")
    assert (out / "accuracy_vs_cost.png").stat().st_size > 0
