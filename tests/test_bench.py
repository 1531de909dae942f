"""The benchmarks' own arithmetic (experiments.bench): MAC counting, round-robin timing order,
timing rows and speed-ups, with hand-computed numbers, and the family benchmark's rows on a tiny
grid. Nothing here measures speed."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.bench.latency_report import CSV_FIELDS, add_speedups, row, write_csv
from experiments.bench.timing import count_macs, round_robin


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
    first = row("dense", "eager", 1, [1.0, 2.0, 3.0, 4.0], dense_macs, dense_macs)
    # statistics.quantiles(n=4), exclusive method: positions 1.25 and 3.75 of 4 sorted values
    assert (first["median_ms"], first["p25_ms"], first["p75_ms"]) == (2.5, 1.25, 3.75)
    rows = [
        first,
        row("static", "eager", 1, [1.25], 25.0, dense_macs),  # theoretical 4
        row("dense", "onnxruntime", 1, [2.0], dense_macs, dense_macs),
        row("static", "onnxruntime", 1, [0.5], 25.0, dense_macs),
        row("static", "compile", 1, None, 25.0, dense_macs, error="boom"),
        row("static", "compile_cl", 1, [1.0], 25.0, dense_macs),  # no dense compile_cl row
    ]
    add_speedups(rows, "dense")
    static, onnx, failed, lonely = rows[1], rows[3], rows[4], rows[5]
    assert static["theoretical_speedup"] == 4.0 and static["realized_speedup"] == 2.0
    assert static["realized_over_theoretical"] == 0.5
    # ONNX Runtime rows: against the eager dense network, and against dense in ORT
    assert onnx["realized_speedup"] == 5.0 and onnx["realized_speedup_same_runtime"] == 4.0
    assert onnx["realized_over_theoretical"] == 1.0
    assert failed["realized_speedup"] is None and failed["repeats"] == 0
    # without a dense row in its runtime, the ratio falls back to the eager dense reference
    assert lonely["realized_speedup_same_runtime"] is None
    assert lonely["realized_over_theoretical"] == 2.5 / 4


def test_count_macs_is_per_image_at_any_batch() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    inputs = [torch.zeros(4, 3, 8, 8), torch.zeros(1, 3, 8, 8)]
    assert count_macs(conv, inputs) == 8 * 3 * 9 * 64


def test_round_robin_cycles_a_list_of_inputs_and_syncs_around_each_call() -> None:
    seen, syncs = [], []
    fns = [lambda x, n=name: seen.append((n, int(x))) for name in "ab"]
    inputs = [torch.tensor(0), torch.tensor(1), torch.tensor(2)]
    round_robin(fns, inputs, warmup=1, repeats=4, sync=lambda: syncs.append(1))
    rounds = [(n, i) for i in (0, 1, 2, 0) for n in "ab"]
    assert seen == [("a", 0), ("b", 0)] + rounds
    assert len(syncs) == 2 * len(rounds)


def test_latency_csv_has_the_published_columns(tmp_path) -> None:
    rows = [row("dense_branch", "eager", 64, [3.0, 5.0], 10.0, 10.0)]
    write_csv(rows, tmp_path / "latency.csv")
    written = list(csv.DictReader((tmp_path / "latency.csv").open()))
    assert tuple(written[0]) == CSV_FIELDS
    assert written[0]["median_ms"] == "4.0" and written[0]["ms_per_image"] == "0.0625"
    published = Path(__file__).resolve().parents[1] / "results" / "latency_trained_td0.3-tracked"
    with open(published / "latency.csv") as f:
        assert tuple(next(csv.reader(f))) == CSV_FIELDS


@pytest.mark.parametrize("quick", [True, False])
def test_quick_settings(quick) -> None:
    from experiments.bench.latency import Settings, build_parser

    settings = Settings.from_args(build_parser().parse_args(["--quick"] if quick else []))
    compiled = {"compile", "compile_cl"}
    assert compiled.isdisjoint(settings.runtimes) is quick
    assert settings.train_steps == (5 if quick else 60)
    assert settings.batches == (1, 8, 64) and settings.block_batches == (1, 64)
    assert settings.repeats[8] == ((1, 3) if quick else (3, 20))
    assert settings.skipped_runtimes == {}  # the CPU plan names no CUDA-only runtime


def test_repeats_of_an_unlisted_batch_are_those_of_the_next_larger_one() -> None:
    from experiments.bench.latency_report import repeats_for

    table = {1: (10, 40), 8: (3, 20), 64: (2, 9)}
    assert [repeats_for(table, b) for b in (1, 2, 8, 9, 500)] == [
        (10, 40),
        (3, 20),
        (3, 20),
        (2, 9),
        (2, 9),
    ]


# ------------------------------------------------------------------ per-block report
def _small_gated(gate_mode: str):
    """A width-8 dg_resnet18 with BN statistics of random images and its gate statistics."""
    from dualgate_solo.gated.gate_stats import collect_gate_statistics
    from dualgate_solo.models import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("dg_resnet18", stem="cifar", width=8, gate_mode=gate_mode)
    x = torch.randn(16, 3, 32, 32)
    backbone.train()
    with torch.no_grad():
        backbone.forward_dual(x)
    backbone.eval()
    return backbone, collect_gate_statistics(backbone, [x], progress=False), x


@pytest.fixture(scope="module")
def small_gated():
    return _small_gated("channel")


@pytest.fixture(scope="module")
def small_width_gated():
    return _small_gated("width")


@pytest.mark.parametrize("variant", ["dense", "gated_masked", "static", "dynamic", "routed"])
def test_block_report_has_every_part_and_flop_counter_macs_per_part(request, variant) -> None:
    """Every variant's report has the backbone's parts under the backbone's names (the routed
    executor's on a width-gated backbone), with FlopCounterMode's MACs per part."""
    from torch.utils.flop_counter import FlopCounterMode

    from experiments.bench.block_report import block_report, network_parts
    from experiments.bench.variants import VARIANTS, BenchContext

    fixture = "small_width_gated" if variant == "routed" else "small_gated"
    backbone, stats, x = request.getfixturevalue(fixture)
    module = VARIANTS[variant].build(BenchContext(backbone, stats)).eval()
    inputs = [x[:1], x[1:2]] if variant == "dynamic" else [x[:4]]
    rows = block_report(variant, "eager", module, inputs, warmup=1, repeats=2)
    names = [name for name, _ in backbone.named_blocks()]
    shortcuts = [f"{n}.shortcut" for n, b in backbone.named_blocks() if b.downsample is not None]
    expected = {"stem", *names, *shortcuts, "other", "total"}
    if variant != "gated_masked":  # the GatedResNet pools without a module
        expected.add("head")
    by_part = {r["part"]: r for r in rows}
    assert set(by_part) == expected and len(rows) == len(expected)
    # the parts and ``other`` make up the total, in time and in MACs
    assert sum(r["share"] for r in rows if r["part"] != "total") == pytest.approx(1.0)
    total_macs = by_part["total"]["macs_per_image"]
    assert sum(r["macs_per_image"] for r in rows if r["part"] != "total") == pytest.approx(
        total_macs
    )
    # each block's MACs are FlopCounterMode's over that block alone (minus its shortcut), on the
    # input the block received in the network
    parts = {p.name: p for p in network_parts(module)}
    captured = {}
    handles = [
        parts[n].start.register_forward_pre_hook(
            lambda m, a, n=n: captured.setdefault(n, []).append(a)
        )
        for n in [*names, *shortcuts]
    ]
    with torch.no_grad():
        for inp in inputs:
            module(inp)
    for h in handles:
        h.remove()
    for name in [*names, *shortcuts]:
        flops = 0
        for args in captured[name]:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                parts[name].start(*args)
            flops += counter.get_total_flops()
        inner = parts[name].inner
        if inner:
            for args in captured[inner]:
                with FlopCounterMode(display=False) as counter, torch.no_grad():
                    parts[inner].start(*args)
                flops -= counter.get_total_flops()
        images = sum(inp.shape[0] for inp in inputs)
        assert by_part[name]["macs_per_image"] == flops / 2 / images, name
    assert by_part["layer1.0"]["macs_per_image"] > 0


# ------------------------------------------------------------------ gate training (no checkpoint)
@pytest.mark.parametrize("gate_mode", ["channel", "width"])
def test_gate_training_moves_only_the_gates_toward_the_target(gate_mode) -> None:
    """The stand-in model's gates (channel or width) learn the budget; conv weights stay."""
    from dualgate_solo.models import create_backbone
    from experiments.bench.gate_training import train_gates

    torch.manual_seed(0)
    backbone = create_backbone("dg_resnet18", width=8, gate_mode=gate_mode)
    before = {k: v.clone() for k, v in backbone.named_parameters()}
    log = train_gates(backbone, steps=30, target_density=0.3, batch_size=8)
    moved = {k for k, v in backbone.named_parameters() if not torch.equal(v, before[k])}
    assert moved and all(".gate." in k for k in moved)
    assert all(p.requires_grad for p in backbone.parameters())
    first, last = log[0]["ratio"], log[-1]["ratio"]
    assert abs(last - 0.3) < abs(first - 0.3) / 2, (first, last)


# ------------------------------------------------------------------ the whole benchmark, tiny
TINY = ["--quick", "--width", "4", "--train-steps", "1", "--calib-size", "8", "--threads", "1"]


def test_latency_benchmark_runs_end_to_end_and_writes_its_files(tmp_path) -> None:
    from experiments.bench.latency import main
    from experiments.bench.variants import VARIANTS

    out = tmp_path / "bench"
    record = main([*TINY, "--batches", "1", "2", "--block-batches", "2", "--out", str(out)])
    for name in ("latency.csv", "latency.json", "latency.png", "blocks.csv", "blocks.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "blocks.png").stat().st_size > 0 and (out / "args.json").stat().st_size > 0
    stamp = json.loads((out / "args.json").read_text())
    assert stamp["command"].startswith("python scripts/bench_latency.py --quick")
    assert {"machine", "date", "source"} <= set(stamp) and stamp["args"]["width"] == 4
    measured = {(r["variant"], r["runtime"], r["batch"]) for r in record["rows"]}
    channel = [n for n, v in VARIANTS.items() if "channel" in v.gate_modes]
    for name in channel:
        assert (name, "eager", 1) in measured
        assert ((name, "eager", 2) in measured) is not VARIANTS[name].batch1_only
        assert ((name, "onnxruntime", 2) in measured) is VARIANTS[name].onnx
        assert ((name, "eager_cl", 2) in measured) is (
            VARIANTS[name].channels_last and not VARIANTS[name].batch1_only
        )
    assert ("routed", "eager", 1) not in measured  # a channel-mode backbone
    skipped = {(s["variant"], s.get("runtime"), s["batch"]) for s in record["skipped"]}
    assert ("dynamic", None, 2) in skipped and ("gated_masked", "onnxruntime", 1) in skipped
    settings = record["onnx"]["session_settings"]
    assert settings["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert settings["intra_op_num_threads"] == record["torch_num_threads"] == 1
    for r in record["rows"]:  # the reference and theoretical speed-ups, per batch
        dense = next(
            d
            for d in record["rows"]
            if (d["variant"], d["runtime"], d["batch"]) == ("dense", r["runtime"], r["batch"])
        )
        assert r["theoretical_speedup"] == dense["macs_per_image"] / r["macs_per_image"]
        assert r["realized_speedup_same_runtime"] == dense["median_ms"] / r["median_ms"]
    assert record["gate_training"]["steps"] == 1 and record["gate_training"]["batch_size"] == 32
    assert record["fidelity_max_abs_diff"]["dynamic_vs_gated_branch"] < 1e-4
    assert record["fidelity_max_abs_diff"]["dense_vs_dense_branch"] < 1e-4
    with open(out / "blocks.csv") as f:
        blocks = list(csv.DictReader(f))
    assert {b["variant"] for b in blocks} == {n for n in channel if not VARIANTS[n].batch1_only}
    assert {b["batch"] for b in blocks} == {"2"}


def test_width_mode_benchmark_times_the_routed_executor_with_its_block_report(tmp_path) -> None:
    from experiments.bench.latency import main
    from experiments.bench.variants import VARIANTS

    out = tmp_path / "bench"
    args = [*TINY, "--gate-mode", "width", "--batches", "1", "2", "--block-batches", "2"]
    record = main([*args, "--out", str(out)])
    stamp = json.loads((out / "args.json").read_text())
    assert stamp["args"]["gate_mode"] == "width"
    assert record["gate_training"]["backbone"]["gate_mode"] == "width"
    measured = {(r["variant"], r["runtime"], r["batch"]) for r in record["rows"]}
    assert {("routed", "eager", 1), ("routed", "eager", 2)} <= measured
    assert {("routed", "onnxruntime", 1), ("routed", "onnxruntime", 2)} <= measured
    routed_onnx = record["onnx"]["routed"]  # its own If graph, specialized for ONNX Runtime
    assert routed_onnx["exporter"] == "dualgate_solo.export.routed_onnx"
    assert routed_onnx["settings"]["routed_branches_specialized"]
    assert routed_onnx["max_abs_diff_vs_pytorch"] < 1e-4
    width = {n for n, v in VARIANTS.items() if "width" in v.gate_modes}
    assert {v for v, _, _ in measured} == width and "static" not in width
    with open(out / "blocks.csv") as f:
        routed = [b["part"] for b in csv.DictReader(f) if b["variant"] == "routed"]
    dense = ["stem", "layer1.0", "layer1.1", "layer2.0", "layer2.0.shortcut", "layer2.1"]
    assert routed[:6] == dense and routed[-3:] == ["head", "other", "total"]


def test_latency_benchmark_fails_on_an_output_mismatch_and_writes_nothing(
    tmp_path, monkeypatch
) -> None:
    """The routed ONNX session whose specialization flips width choices stops the benchmark in
    one line (exit 2 through the script's error report) before any file is written."""
    from model_utils import flip_specialized_choices

    from dualgate_solo.export.verify import ExportMismatch
    from experiments.bench.latency import main

    flip_specialized_choices(monkeypatch)
    out = tmp_path / "bench"
    args = [*TINY, "--gate-mode", "width", "--batches", "1", "--block-batches"]
    with pytest.raises(ExportMismatch) as raised:
        main([*args, "--runtimes", "eager", "onnxruntime", "--out", str(out)])
    message = str(raised.value)
    assert message.startswith(
        "export verification failed: routed in ONNX Runtime (latency benchmark) differs from "
        "routed in PyTorch on 16 inputs: largest feature difference "
    )
    assert "\n" not in message and message.endswith("; nothing written")
    assert not out.exists()


def test_cuda_plan_dry_run_on_the_cpu_skips_the_cuda_only_runtimes(tmp_path) -> None:
    from experiments.bench.latency import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the dry run is for machines without one")
    args = [*TINY, "--device", "cuda", "--dry-run", "--batches", "1", "--block-batches"]
    args += ["--runtimes", "eager", "cudagraphs", "compile_cudagraphs", "--out", str(tmp_path)]
    record = main(args)
    assert record["device"] == "cpu" and record["dry_run"] and record["runtimes"] == ["eager"]
    # (--quick drops the compiled runtimes before the device is considered)
    assert record["skipped_runtimes"] == {"cudagraphs": "needs a CUDA device (dry run on the CPU)"}
    assert {r["runtime"] for r in record["rows"]} == {"eager"}
    assert not (tmp_path / "blocks.csv").exists()  # --block-batches without values: no report


def test_cuda_without_a_gpu_and_without_dry_run_is_a_usage_error(tmp_path) -> None:
    from dualgate_solo.validation import UsageError
    from experiments.bench.latency import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(UsageError, match="--device='cuda' is invalid here"):
        main(["--device", "cuda", "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------ family benchmark (bench_family)
def _write_run(root: Path, run: str, backbone, args: dict, accuracy: dict, ckpt: bool) -> None:
    """A finished grid run: checkpoint + args.json (when ``ckpt``) and its stage records, written
    by the runner's own ``run_stage``; ``accuracy``: network -> (linear, k-NN@1, k-NN@20)."""
    from experiments.runner.protocols import Run
    from experiments.runner.stages import StageIdentity, run_stage

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
    from dualgate_solo.models import create_backbone
    from experiments.bench.family import CSV_FIELDS, main

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
    width_kwargs = {"stem": "cifar", "width": 8, "gate_mode": "width"}
    width_gated = create_backbone("dg_resnet18", **width_kwargs)
    width_gated.trained_steps.fill_(1)
    _write_run(
        grid,
        "vicreg_dual_gating-td0.3-tracked_width",
        width_gated,
        {
            "method": "vicreg_dual_gating",
            "backbone": {"name": "dg_resnet18", "kwargs": width_kwargs},
        },
        {"gated": (33.0, 27.0, 36.0), "dense": (34.0, 28.0, 37.0)},
        ckpt=True,
    )
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
        ("vicreg_dual_gating-td0.3-tracked_width", "gated", "routed"),  # no static export
        ("vicreg_dual_gating-td0.3-tracked_width", "dense", "dense_plain"),
    }
    routed = found[("vicreg_dual_gating-td0.3-tracked_width", "gated", "routed")]
    assert routed["family"] == "Dual-Gating width-gated (routed)"
    assert float(routed["max_abs_diff_vs_source"]) < 1e-4 and float(routed["linear_top1"]) == 33.0
    assert float(routed["macs_per_image"]) < width_gated.cost_table((32, 32)).dense_macs
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
    assert len(record["rows"]) == 8 and record["torch_num_threads"] == 1 and record["quick"]
    assert record["command"].startswith("python scripts/bench_family.py --grid")
    (skipped,) = record["skipped"]
    assert skipped["run"] == "vicreg-paper" and skipped["reason"].endswith("does not exist")
    assert (out / "accuracy_vs_cost.png").stat().st_size > 0


def test_benchmark_script_reports_a_bad_checkpoint_in_one_line_and_writes_nothing(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_latency.py"
    out = tmp_path / "bench"
    argv = [sys.executable, str(script), "--checkpoint", str(tmp_path / "missing.ckpt")]
    done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and not out.exists()
    assert done.stderr.strip() == (
        f"bench_latency.py: error: --checkpoint='{tmp_path / 'missing.ckpt'}' does not exist"
    )
