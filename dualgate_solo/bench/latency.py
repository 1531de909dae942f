"""Wall-clock latency of the gated ResNet-18 (CIFAR, 32 px) and its exports, side by side, on CPU.

Turns the paper's analytic "FLOPs R." (Krishna et al., "Unifying Synergies between Self-supervised
Learning and Dynamic Computation", BMVC 2023) into measured speed-ups. Variants, each eager and
with ``torch.compile`` (a failure is caught and its error recorded):

* ``dense_branch``: the GatedResNet dense branch (the reference of every speed-up);
* ``dense_plain``: the same dense weights in the plain ``PrunedResNet`` at full width (framework
  overhead of the GatedResNet bookkeeping, i.e. a fair plain baseline);
* ``gated_masked``: the gated branch as trained (dense convs, then channel masks);
* ``static``: static prune export (always-off channels removed, no gate);
* ``hybrid``: always-off removed, always-on without gate, data-dependent ones gated (masked);
* ``dynamic``: batch-1 execution gathering the active channels' weights per input;
* ``onnxruntime``: the static export (and ``dense_plain``) in ONNX Runtime.

Batch 1 and 64; median of repeated timings after warm-up. MACs per image are measured with
``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2; only convolutions appear in these
networks). Writes ``latency.csv``, ``latency.json``, ``latency.png`` (and, when the static export
realises < 0.8x its theoretical speed-up at batch 64, ``profile_static_b64.txt`` plus a per-block
time breakdown in the JSON) to ``--out``.

Without ``--checkpoint`` the model is a randomly initialised dg_resnet18 whose gates (only) are
trained for ``--train-steps`` steps on the embedded synthetic images with the budget loss
(t_d = ``--target-density``, deterministic-ratio + Lagrange multiplier options) plus a cosine
distillation of the gated features to the dense ones; the JSON says which model was used.

Usage: ``python scripts/bench_latency.py [--quick] [--checkpoint RUN_OR_FILE]``. Set
``OMP_WAIT_POLICY=PASSIVE`` before torch is imported (the script does): idle OpenMP threads then
sleep instead of spinning, which on a small shared machine makes small-batch timings explode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dualgate_solo.bench import latency_report as report
from dualgate_solo.bench.latency_report import BATCHES, QUICK_REPEATS, REPEATS
from dualgate_solo.bench.timing import block_breakdown, count_macs, round_robin
from dualgate_solo.export import (
    DynamicGatedResNet,
    ExportPlan,
    copy_to_pruned,
    export_pruned,
    full_width_blocks,
    make_plan,
    onnx_export,
)
from dualgate_solo.gate_stats import GateStatistics, collect_gate_statistics
from dualgate_solo.models.gated_resnet import GatedResNet
from dualgate_solo.provenance import provenance
from dualgate_solo.synthetic import synthetic_shapes


class Branch(nn.Module):
    """``forward(x) = backbone.forward_branch(x, branch).feats`` ``[B, num_features]``."""

    def __init__(self, backbone: GatedResNet, branch: str):
        super().__init__()
        self.backbone, self.branch = backbone, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_branch(x, self.branch).feats


@dataclass(frozen=True)
class Settings:
    """How much work one benchmark does (``--quick`` or full)."""

    train_steps: int
    calib_size: int
    use_compile: bool
    #: batch -> (warm-up calls, timed rounds)
    repeats: dict[int, tuple[int, int]]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = args.quick
        return cls(
            train_steps=args.train_steps if args.train_steps is not None else (5 if quick else 60),
            calib_size=args.calib_size or (128 if quick else 1024),
            use_compile=not (quick or args.no_compile),
            repeats=QUICK_REPEATS if quick else REPEATS,
        )


def load_model(args: argparse.Namespace, steps: int) -> tuple[GatedResNet, str, list[dict]]:
    """The backbone to time, a sentence saying what it is, and the gate-training log."""
    if args.checkpoint:
        from dualgate_solo.checkpoint import load_backbone

        kwargs = {"stem": args.stem} if args.stem else None
        loaded = load_backbone(args.checkpoint, args.backbone, kwargs)
        return loaded.backbone, f"trained checkpoint {loaded.path} (method {loaded.method})", []
    from dualgate_solo.bench.gate_training import train_gates
    from dualgate_solo.models import create_backbone

    backbone = create_backbone("dg_resnet18", stem="cifar")
    log = train_gates(backbone, steps, args.target_density, batch_size=32)
    source = (
        "NOT a trained SSL checkpoint: random-init dg_resnet18 (CIFAR stem) whose gates and BN "
        f"statistics were trained for {steps} steps on synthetic images with the budget loss "
        f"(t_d = {args.target_density}, deterministic ratio, Lagrange multiplier) + cosine "
        "distillation to the dense branch; conv weights are random"
    )
    return backbone, source, log


def images(folder: Path | None, dataset: str, calib: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``calib`` calibration images and 64 fidelity inputs: random draws of ``folder`` or
    synthetic ones."""
    if folder is None:
        return synthetic_shapes(calib, seed=1)[0], synthetic_shapes(64, seed=2)[0]
    from dualgate_solo.reports.eval_data import image_folder_split

    split = image_folder_split(folder, dataset)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(1))
    drawn = torch.stack([split[i][0] for i in order[: calib + 64].tolist()])
    return drawn[:calib], drawn[calib:]


def build_variants(
    backbone: GatedResNet, stats: GateStatistics
) -> tuple[dict[str, ExportPlan], dict[str, nn.Module]]:
    """The static and hybrid plans, and every timed network by variant name (module docstring)."""
    plans = {p: make_plan(backbone, stats, p) for p in ("static", "hybrid")}
    modules = {
        "dense_branch": Branch(backbone, "dense"),
        "dense_plain": copy_to_pruned(backbone, full_width_blocks(backbone, gated=False), "dense"),
        "gated_masked": Branch(backbone, "gated"),
        "static": export_pruned(backbone, plans["static"]),
        "hybrid": export_pruned(backbone, plans["hybrid"]),
        "dynamic": DynamicGatedResNet(backbone),
    }
    return plans, modules


@torch.no_grad()
def fidelity(
    backbone: GatedResNet, modules: dict[str, nn.Module], x: torch.Tensor
) -> dict[str, float]:
    """Max abs differences of each network to the branch it reproduces, on ``x [N, 3, H, W]``."""
    ref = backbone.forward_branch(x, "gated").feats
    dense_ref = backbone.forward_branch(x, "dense").feats
    dynamic = modules["dynamic"]
    return {
        "dense_plain_vs_dense_branch": float((modules["dense_plain"](x) - dense_ref).abs().max()),
        "static_vs_gated": float((modules["static"](x) - ref).abs().max()),
        "hybrid_vs_gated": float((modules["hybrid"](x) - ref).abs().max()),
        "dynamic_vs_gated": max(
            float((dynamic(x[i : i + 1]) - ref[i : i + 1]).abs().max()) for i in range(16)
        ),
        "feature_scale_max_abs": float(ref.abs().max()),
    }


def onnx_sessions(modules: dict[str, nn.Module], x: torch.Tensor) -> tuple[dict, dict]:
    """ONNX Runtime sessions of ``dense_plain`` and ``static``, and what the export did (or the
    error that stopped it)."""
    sessions, info = {}, {}
    directory = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # no busy-waiting ORT threads after a run: they would steal the cores from the next
        # (interleaved) PyTorch call on a small machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for name in ("dense_plain", "static"):
            exporter = onnx_export(modules[name], x[:2], directory / f"{name}.onnx")
            sessions[name] = ort.InferenceSession(
                str(directory / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
            )
            got = sessions[name].run(None, {"images": x.numpy()})[0]
            with torch.no_grad():
                diff = float(abs(got - modules[name](x).numpy()).max())
            info[name] = {"exporter": exporter, "max_abs_diff_vs_pytorch": diff}
        info["onnxruntime"] = ort.__version__
    except Exception as error:  # noqa: BLE001 - record and go on
        info["error"] = f"{type(error).__name__}: {error}"
    return sessions, info


def compile_or_error(module: nn.Module, x: torch.Tensor) -> tuple[nn.Module | None, float, str]:
    """``torch.compile(module)`` run once on ``x``: (compiled, seconds, "") or (None, 0, error)."""
    try:
        start = time.time()
        compiled = torch.compile(module, dynamic=False)
        with torch.inference_mode():
            compiled(x)
        return compiled, time.time() - start, ""
    except Exception as error:  # noqa: BLE001 - record and go on
        return None, 0.0, f"{type(error).__name__}: {str(error)[:500]}"


def time_variants(
    modules: dict[str, nn.Module],
    sessions: dict,
    inputs: dict[int, torch.Tensor],
    settings: Settings,
    macs: dict[str, float],
) -> tuple[list[dict], dict[str, str], dict[str, float]]:
    """Timing rows of every variant and runtime per batch, plus compile errors and seconds.

    All callables of one batch size are timed round-robin (one call of each per round), so load
    from other processes hits every variant alike; the median over rounds is kept.
    """
    rows, errors, seconds = [], {}, {}
    dense_macs = macs["dense_branch"]
    for batch in BATCHES:
        x = inputs[batch]
        callables = []  # (variant, runtime, fn)
        for name, module in modules.items():
            if name == "dynamic" and batch != 1:
                continue
            callables.append((name, "eager", module))
            if settings.use_compile:
                compiled, took, error = compile_or_error(module, x)
                key = f"{name}@{batch}"
                if compiled is None:
                    errors[key] = error
                    rows.append(
                        report.row(name, "compile", batch, None, macs[name], dense_macs, error)
                    )
                else:
                    seconds[key] = took
                    callables.append((name, "compile", compiled))
                    print(f"  compiled {name} for batch {batch} in {took:.0f} s", flush=True)
        for name, session in sessions.items():
            feed = {"images": x.numpy()}
            callables.append((name, "onnxruntime", lambda _x, s=session, f=feed: s.run(None, f)))
        warmup, repeats = settings.repeats[batch]
        times = round_robin([fn for _, _, fn in callables], x, warmup, repeats)
        for (name, runtime, _), ms in zip(callables, times):
            rows.append(report.row(name, runtime, batch, ms, macs[name], dense_macs))
            print(
                f"  batch {batch:2d} {name:13s} {runtime:11s} {statistics.median(ms):9.2f} ms",
                flush=True,
            )
    return rows, errors, seconds


def static_breakdown(
    rows: list[dict],
    plan: ExportPlan,
    modules: dict[str, nn.Module],
    x: torch.Tensor,
    repeats: int,
    stats: GateStatistics,
    out: Path,
) -> list[dict] | None:
    """When the eager static export realises < 0.8x its theoretical speed-up at batch 64: a
    per-block time and MAC comparison with ``dense_plain``, and a torch.profiler table written
    to ``out/profile_static_b64.txt``; ``None`` otherwise."""
    static64 = next(
        r for r in rows if (r["variant"], r["runtime"], r["batch"]) == ("static", "eager", 64)
    )
    if static64["realized_over_theoretical"] >= 0.8:
        return None
    names = [b.name for b in plan.blocks]
    dense, static = modules["dense_plain"], modules["static"]
    dense_t = block_breakdown(dense, list(dense.blocks), names, x, repeats)
    static_t = block_breakdown(static, list(static.blocks), names, x, repeats)
    breakdown = []
    for i, name in enumerate([*names, "rest"]):
        bp = plan.blocks[i] if i < len(names) else None
        entry = {
            "block": name,
            "kept_widths": [len(k) for k in bp.kept] if bp else None,
            "full_widths": bp.group_sizes if bp else None,
            "dense_ms": dense_t[name],
            "static_ms": static_t[name],
            "dense_macs": bp.dense_macs if bp else stats.costs.stem_macs,
            "static_macs": bp.macs if bp else stats.costs.stem_macs,
        }
        entry["mac_speedup"] = entry["dense_macs"] / entry["static_macs"]
        entry["time_speedup"] = (
            entry["dense_ms"] / entry["static_ms"] if entry["static_ms"] > 0 else None
        )
        breakdown.append(entry)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        with torch.inference_mode():
            static(x)
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=30
    )
    (out / "profile_static_b64.txt").write_text(
        "torch.profiler, static export, batch 64, eager, one forward; ops grouped by input "
        f"shape\n\n{table}"
    )
    return breakdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_latency.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="trained gated checkpoint (run dir, .ckpt or .pt); default: gates trained here",
    )
    parser.add_argument("--backbone", default=None, help="backbone name for a plain state dict")
    parser.add_argument("--stem", default=None, choices=("cifar", "imagenet"))
    parser.add_argument(
        "--target-density", type=float, default=0.1, help="t_d of the gate training (no checkpoint)"
    )
    parser.add_argument(
        "--train-steps", type=int, default=None, help="gate training steps (default 60, --quick 5)"
    )
    parser.add_argument(
        "--calib-size",
        type=int,
        default=None,
        help="images for the gate statistics (default 1024, --quick 128)",
    )
    parser.add_argument(
        "--calib-data",
        type=Path,
        default=None,
        help="ImageFolder of real images for the gate statistics and fidelity inputs "
        "(default: synthetic)",
    )
    parser.add_argument(
        "--dataset",
        default="cifar_jpg",
        help="evaluation transform for --calib-data (dualgate_solo.reports.eval_data)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few steps and repeats, no torch.compile"
    )
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results/latency"))
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; writes the files under ``--out`` and returns the JSON record."""
    args = build_parser().parse_args(argv)
    settings = Settings.from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    torch.manual_seed(0)

    backbone, source, train_log = load_model(args, settings.train_steps)
    backbone.eval()
    calib_x, test_x = images(args.calib_data, args.dataset, settings.calib_size)
    calibration = f"images of {args.calib_data}" if args.calib_data else "synthetic images"
    source += f"; gate statistics on {settings.calib_size} {calibration}"
    stats = collect_gate_statistics(backbone, calib_x.split(128), progress=False)
    plans, modules = build_variants(backbone, stats)

    singles = [test_x[i : i + 1] for i in range(16)]
    per_input = ("dynamic", "gated_masked")  # data-dependent cost: mean over 16 images
    macs = {
        name: count_macs(m, singles if name in per_input else singles[:1])
        for name, m in modules.items()
    }
    sessions, onnx_info = onnx_sessions(modules, test_x)
    inputs = {b: test_x[:b].contiguous() for b in BATCHES}
    load_before = os.getloadavg()
    rows, compile_errors, compile_seconds = time_variants(modules, sessions, inputs, settings, macs)
    load_after = os.getloadavg()
    report.add_speedups(rows)
    breakdown = static_breakdown(
        rows, plans["static"], modules, inputs[64], settings.repeats[64][1], stats, args.out
    )

    command = "python scripts/bench_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        **provenance(),
        "platform": platform.platform(),
        "command": command.strip(),
        "model_source": source,
        "backbone": "dg_resnet18, CIFAR stem, 32x32 input",
        "torch_num_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "quick": args.quick,
        "load_average_1_5_15min": {"before_timing": load_before, "after_timing": load_after},
        "note": "shared machine: other processes may run concurrently; variants are timed "
        "round-robin so load affects all alike",
        "gate_statistics": {
            "calibration_images": stats.num_samples,
            "mean_kept_ratio_r": stats.mean_ratio,
            "flops_reduction": stats.flops_reduction,
            "paper_kept_macs": stats.mean_ratio * stats.costs.dense_macs,
            "layer_densities": stats.layer_densities,
        },
        "plans": {
            p: {
                "widths": plan.widths,
                "gated": [b.gated for b in plan.blocks],
                "predicted_macs": plan.predicted_macs,
            }
            for p, plan in plans.items()
        },
        "macs_per_image_flopcounter": macs,
        "fidelity_max_abs_diff": fidelity(backbone, modules, test_x),
        "onnx": onnx_info,
        "compile_seconds": compile_seconds,
        "compile_errors": compile_errors,
        "timing": {
            "warmup_repeats": {str(b): list(v) for b, v in settings.repeats.items()},
            "statistic": "median ms per forward call, variants interleaved round-robin per "
            "batch size",
        },
        "definitions": report.DEFINITIONS,
        "rows": rows,
        "static_b64_per_block_breakdown": breakdown,
        "gate_training_log_tail": train_log[-5:],
        "wall_seconds": time.time() - t_start,
    }
    (args.out / "latency.json").write_text(json.dumps(result, indent=2))
    report.write_csv(rows, args.out / "latency.csv")
    title = (
        f"{result['machine']}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{result['date']}\nmodel: {source[:110]}"
    )
    report.plot(rows, args.out / "latency.png", title)
    report.print_table(rows)
    print(
        f"model: {source}\nkept ratio r = {stats.mean_ratio:.3f} (FLOPs R. "
        f"{100 * stats.flops_reduction:.1f}%); wrote {args.out}/latency.csv, latency.json, "
        f"latency.png in {time.time() - t_start:.0f} s"
    )
    return result
