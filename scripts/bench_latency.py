#!/usr/bin/env python
"""Wall-clock latency of the gated ResNet-18 (CIFAR, 32 px) and its exports, side by side, on CPU.

Turns the paper's analytic "FLOPs R." (Krishna et al., "Unifying Synergies between Self-supervised
Learning and Dynamic Computation", BMVC 2023; spec §9 "Real speed-up") into measured speed-ups.
Variants, each eager and with ``torch.compile`` (a failure is caught and its error recorded):

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

Usage: ``python scripts/bench_latency.py [--quick] [--checkpoint RUN_OR_FILE]``
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a small shared machine, spinning threads of
# torch's and inductor's OpenMP pools (and of any other process) make small-batch timings explode.
# Set OMP_WAIT_POLICY yourself to override; the value used is recorded in the JSON.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import csv
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dualgate_solo.export import (
    DynamicGatedResNet,
    build_pruned_resnet,
    export_pruned,
    make_plan,
    onnx_export,
)
from dualgate_solo.gate_stats import collect_gate_statistics
from dualgate_solo.losses import BudgetConfig, BudgetMultiplier
from dualgate_solo.models import create_backbone
from dualgate_solo.objective import gated_budget
from dualgate_solo.provenance import provenance
from dualgate_solo.synthetic import augment, synthetic_shapes

BATCHES = (1, 64)


class Branch(nn.Module):
    """``forward(x) = backbone.forward_branch(x, branch).feats`` ``[B, num_features]``."""

    def __init__(self, backbone: nn.Module, branch: str):
        super().__init__()
        self.backbone, self.branch = backbone, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_branch(x, self.branch).feats


def train_gates(backbone, steps: int, target: float, batch_size: int, seed: int = 0) -> list[dict]:
    """Train only the gates (and BN statistics) toward kept-MAC ratio ``target`` on synthetic images.

    Loss: budget loss L_G (deterministic ratio, Lagrange multiplier, linear per-layer bound at
    p = 0.5) + ``1 - cos(gated feats, dense feats)`` with the dense features as a fixed teacher.
    """
    torch.manual_seed(seed)
    images, _ = synthetic_shapes(2048, seed=seed)
    config = BudgetConfig(
        target_density=target,
        ratio_source="deterministic",
        multiplier_lr=0.5,
        bound_target="linear",
    )
    multiplier = BudgetMultiplier()
    for name, p in backbone.named_parameters():
        p.requires_grad_(".gate." in name)
    optimizer = torch.optim.Adam([p for p in backbone.parameters() if p.requires_grad], lr=0.02)
    gen = torch.Generator().manual_seed(seed)
    backbone.train()
    log = []
    for step in range(steps):
        x = augment(images[torch.randint(0, len(images), (batch_size,), generator=gen)], gen)
        with torch.no_grad():
            teacher = backbone.forward_branch(x, "dense").feats
        out = backbone.forward_branch(x, "gated")
        terms = gated_budget(backbone, out, config, p=0.5, multiplier=multiplier.value)
        distill = 1 - F.cosine_similarity(out.feats, teacher, dim=1).mean()
        loss = terms.loss + distill
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        multiplier.update(terms.ratio, config)
        log.append(
            {
                "step": step,
                "ratio": terms.ratio.item(),
                "distill": distill.item(),
                "budget": terms.loss.item(),
            }
        )
        if step % 10 == 0 or step == steps - 1:
            print(
                f"  gate training step {step:4d}: deterministic ratio {terms.ratio.item():.3f}, distill {distill.item():.3f}",
                flush=True,
            )
    for p in backbone.parameters():
        p.requires_grad_(True)
    return log


def timed(fn, x, warmup: int, repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``fn(x)`` per call, ``repeats`` times after ``warmup`` calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(1e3 * (time.perf_counter() - start))
    return times


def count_macs(module: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Mean conv MACs per image over ``inputs`` (each ``[1, 3, H, W]``), from FlopCounterMode."""
    total = 0
    for x in inputs:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(x)
        total += counter.get_total_flops() // 2
    return total / len(inputs)


def block_breakdown(
    model: nn.Module, blocks: list[nn.Module], names: list[str], x: torch.Tensor, repeats: int
) -> dict[str, float]:
    """Median ms per block (forward hooks) plus ``rest`` (stem, pooling, bookkeeping) for one forward of ``x``."""
    stamps: dict[str, list[float]] = {n: [] for n in names}
    starts: dict[str, float] = {}
    handles = []
    for name, block in zip(names, blocks):
        handles.append(
            block.register_forward_pre_hook(
                lambda m, a, n=name: starts.__setitem__(n, time.perf_counter())
            )
        )
        handles.append(
            block.register_forward_hook(
                lambda m, a, o, n=name: stamps[n].append(1e3 * (time.perf_counter() - starts[n]))
            )
        )
    totals = timed(model, x, 1, repeats)
    for h in handles:
        h.remove()
    out = {n: statistics.median(v[-repeats:]) for n, v in stamps.items()}
    out["rest"] = statistics.median(totals) - sum(out.values())
    return out


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BATCHES), figsize=(13, 4.2))
    for ax, batch in zip(axes, BATCHES):
        sel = [r for r in rows if r["batch"] == batch and r["median_ms"] is not None]
        variants = list(dict.fromkeys(r["variant"] for r in sel))
        runtimes = ["eager", "compile", "onnxruntime"]
        width = 0.2
        labelled = set()
        for v_i, variant in enumerate(variants):
            theo = next(r["theoretical_speedup"] for r in sel if r["variant"] == variant)
            ax.bar(
                v_i - 1.5 * width,
                theo,
                width,
                color="lightgray",
                edgecolor="k",
                label=None if labelled else "theoretical (MACs)",
            )
            labelled.add("theoretical")
            for k, runtime in enumerate(runtimes):
                r = next(
                    (r for r in sel if r["variant"] == variant and r["runtime"] == runtime), None
                )
                if r is not None:
                    label = f"realized, {runtime}"
                    ax.bar(
                        v_i + (k - 0.5) * width,
                        r["realized_speedup"],
                        width,
                        color=f"C{k}",
                        label=None if label in labelled else label,
                    )
                    labelled.add(label)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(range(len(variants)), variants, rotation=25, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("speed-up vs dense branch (eager)")
        ax.set_title(f"batch {batch}")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h), labels.append(lab)
    axes[-1].legend(handles, labels, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _images(folder: Path | None, dataset: str, calib: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``calib`` calibration images and 64 fidelity inputs: random draws of ``folder`` or synthetic."""
    if folder is None:
        return synthetic_shapes(calib, seed=1)[0], synthetic_shapes(64, seed=2)[0]
    from dualgate_solo.reports.eval_data import image_folder_split

    split = image_folder_split(folder, dataset)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(1))[
        : calib + 64
    ].tolist()
    images = torch.stack([split[i][0] for i in order])
    return images[:calib], images[calib:]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="trained gated checkpoint (run dir, .ckpt or .pt); default: gates trained here",
    )
    parser.add_argument("--backbone", default=None, help="backbone name for a plain state dict")
    parser.add_argument("--stem", default=None, choices=("cifar", "imagenet"))
    parser.add_argument(
        "--target-density",
        type=float,
        default=0.1,
        help="t_d for the gate training (no checkpoint)",
    )
    parser.add_argument(
        "--train-steps", type=int, default=None, help="gate training steps (default 60, --quick 5)"
    )
    parser.add_argument(
        "--calib-size",
        type=int,
        default=None,
        help="synthetic images for the gate statistics (default 1024, --quick 128)",
    )
    parser.add_argument(
        "--calib-data",
        type=Path,
        default=None,
        help="ImageFolder of real images for the gate statistics and fidelity inputs (default: synthetic)",
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
    args = parser.parse_args(argv)
    quick = args.quick
    steps = args.train_steps if args.train_steps is not None else (5 if quick else 60)
    calib = args.calib_size or (128 if quick else 1024)
    use_compile = not (quick or args.no_compile)
    reps = {
        1: (3, 10) if quick else (10, 40),
        64: (1, 2) if quick else (2, 9),
    }  # (warm-up, repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    torch.manual_seed(0)

    # ---- model -------------------------------------------------------------------------------
    if args.checkpoint:
        from dualgate_solo.checkpoint import load_backbone

        kwargs = {"stem": args.stem} if args.stem else None
        loaded = load_backbone(args.checkpoint, args.backbone, kwargs)
        backbone = loaded.backbone
        source = f"trained checkpoint {loaded.path} (method {loaded.method})"
        train_log = []
    else:
        backbone = create_backbone("dg_resnet18", stem="cifar")
        print(
            f"no --checkpoint: training the gates of a random-init dg_resnet18 for {steps} steps toward t_d = {args.target_density}"
        )
        train_log = train_gates(backbone, steps, args.target_density, batch_size=32)
        source = (
            f"NOT a trained SSL checkpoint: random-init dg_resnet18 (CIFAR stem) whose gates and BN statistics were "
            f"trained for {steps} steps on synthetic images with the budget loss (t_d = {args.target_density}, deterministic ratio, "
            "Lagrange multiplier) + cosine distillation to the dense branch; conv weights are random"
        )
    backbone.eval()
    calib_x, test_x = _images(args.calib_data, args.dataset, calib)
    source += f"; gate statistics on {calib} {'images of ' + str(args.calib_data) if args.calib_data else 'synthetic images'}"
    stats = collect_gate_statistics(backbone, calib_x.split(128), progress=False)
    plans = {p: make_plan(backbone, stats, p) for p in ("static", "hybrid")}
    static, hybrid = (export_pruned(backbone, plans[p]) for p in ("static", "hybrid"))
    full_spec = {
        **plans["static"].spec(),
        "blocks": [
            {"name": b.name, "widths": b.group_sizes, "gated": [0] * len(b.group_sizes)}
            for b in plans["static"].blocks
        ],
    }
    dense_plain = build_pruned_resnet(full_spec)
    dense_plain = _load_dense_plain(backbone, dense_plain)
    dynamic = DynamicGatedResNet(backbone)
    modules = {
        "dense_branch": Branch(backbone, "dense"),
        "dense_plain": dense_plain,
        "gated_masked": Branch(backbone, "gated"),
        "static": static,
        "hybrid": hybrid,
        "dynamic": dynamic,
    }

    # ---- fidelity and MACs -------------------------------------------------------------------
    singles = [test_x[i : i + 1] for i in range(16)]
    with torch.no_grad():
        ref = backbone.forward_branch(test_x, "gated").feats
        dense_ref = backbone.forward_branch(test_x, "dense").feats
        fidelity = {
            "dense_plain_vs_dense_branch": float((dense_plain(test_x) - dense_ref).abs().max()),
            "static_vs_gated": float((static(test_x) - ref).abs().max()),
            "hybrid_vs_gated": float((hybrid(test_x) - ref).abs().max()),
            "dynamic_vs_gated": max(
                float((dynamic(x) - ref[i : i + 1]).abs().max()) for i, x in enumerate(singles)
            ),
            "feature_scale_max_abs": float(ref.abs().max()),
        }
    macs = {
        name: count_macs(m, singles if name in ("dynamic", "gated_masked") else singles[:1])
        for name, m in modules.items()
    }
    dense_macs = macs["dense_branch"]
    paper_kept_macs = stats.mean_ratio * stats.costs.dense_macs

    # ---- ONNX --------------------------------------------------------------------------------
    onnx_dir = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    onnx_sessions, onnx_info = {}, {}
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # no busy-waiting ORT threads after a run: they would steal the cores from the next
        # (interleaved) PyTorch call on this 2-core machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for name in ("dense_plain", "static"):
            exporter = onnx_export(modules[name], test_x[:2], onnx_dir / f"{name}.onnx")
            onnx_sessions[name] = ort.InferenceSession(
                str(onnx_dir / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
            )
            got = onnx_sessions[name].run(None, {"images": test_x.numpy()})[0]
            with torch.no_grad():
                onnx_info[name] = {
                    "exporter": exporter,
                    "max_abs_diff_vs_pytorch": float(
                        abs(got - modules[name](test_x).numpy()).max()
                    ),
                }
        onnx_info["onnxruntime"] = ort.__version__
    except Exception as error:  # noqa: BLE001 - record and go on
        onnx_info["error"] = f"{type(error).__name__}: {error}"

    # ---- timings -----------------------------------------------------------------------------
    # All callables of one batch size are timed round-robin (one call of each per round), so load
    # from other processes on the machine hits every variant alike; the median over rounds is kept.
    rows, compile_errors, compile_seconds = [], {}, {}
    inputs = {b: test_x[:b].contiguous() for b in BATCHES}
    load_before = os.getloadavg()
    for batch in BATCHES:
        warm, rep = reps[batch]
        x = inputs[batch]
        callables = []  # (variant, runtime, fn)
        for name, module in modules.items():
            if name == "dynamic" and batch != 1:
                continue
            callables.append((name, "eager", module))
            if use_compile:
                try:
                    t0 = time.time()
                    compiled = torch.compile(module, dynamic=False)
                    with torch.inference_mode():
                        compiled(x)
                    compile_seconds[f"{name}@{batch}"] = time.time() - t0
                    callables.append((name, "compile", compiled))
                    print(
                        f"  compiled {name} for batch {batch} in {compile_seconds[f'{name}@{batch}']:.0f} s",
                        flush=True,
                    )
                except Exception as error:  # noqa: BLE001 - record and go on
                    compile_errors[f"{name}@{batch}"] = (
                        f"{type(error).__name__}: {str(error)[:500]}"
                    )
                    rows.append(
                        _row(
                            name,
                            "compile",
                            batch,
                            None,
                            macs[name],
                            dense_macs,
                            error=compile_errors[f"{name}@{batch}"],
                        )
                    )
        for name, session in onnx_sessions.items():
            feed = {"images": x.numpy()}
            callables.append((name, "onnxruntime", lambda _x, s=session, f=feed: s.run(None, f)))
        times = {i: [] for i in range(len(callables))}
        with torch.inference_mode():
            for i, (_, _, fn) in enumerate(callables):
                for _ in range(warm):
                    fn(x)
            for _ in range(rep):
                for i, (_, _, fn) in enumerate(callables):
                    start = time.perf_counter()
                    fn(x)
                    times[i].append(1e3 * (time.perf_counter() - start))
        for i, (name, runtime, _) in enumerate(callables):
            rows.append(_row(name, runtime, batch, times[i], macs[name], dense_macs))
            print(
                f"  batch {batch:2d} {name:13s} {runtime:11s} {statistics.median(times[i]):9.2f} ms",
                flush=True,
            )
    load_after = os.getloadavg()

    # speed-ups: vs the eager dense branch, and vs the dense reference of the same runtime
    for r in rows:
        if r["median_ms"] is None:
            continue
        base = _median(rows, "dense_branch", "eager", r["batch"])
        same = _median(
            rows,
            "dense_plain" if r["runtime"] == "onnxruntime" else "dense_branch",
            r["runtime"],
            r["batch"],
        )
        r["realized_speedup"] = base / r["median_ms"]
        r["realized_speedup_same_runtime"] = same / r["median_ms"] if same else None
        r["realized_over_theoretical"] = (
            r["realized_speedup_same_runtime"] or r["realized_speedup"]
        ) / r["theoretical_speedup"]

    # ---- per-layer breakdown when the static export falls short ------------------------------
    breakdown = None
    static64 = next(
        r for r in rows if r["variant"] == "static" and r["runtime"] == "eager" and r["batch"] == 64
    )
    if static64["realized_over_theoretical"] < 0.8:
        names = [b.name for b in plans["static"].blocks]
        x64 = inputs[64]
        dense_t = block_breakdown(
            modules["dense_plain"], list(dense_plain.blocks), names, x64, reps[64][1]
        )
        static_t = block_breakdown(static, list(static.blocks), names, x64, reps[64][1])
        breakdown = []
        for i, name in enumerate(names + ["rest"]):
            bp = plans["static"].blocks[i] if i < len(names) else None
            row = {
                "block": name,
                "kept_widths": [len(k) for k in bp.kept] if bp else None,
                "full_widths": bp.group_sizes if bp else None,
                "dense_ms": dense_t[name],
                "static_ms": static_t[name],
                "dense_macs": bp.dense_macs if bp else stats.costs.stem_macs,
                "static_macs": bp.macs if bp else stats.costs.stem_macs,
            }
            row["mac_speedup"] = row["dense_macs"] / row["static_macs"]
            row["time_speedup"] = (
                row["dense_ms"] / row["static_ms"] if row["static_ms"] > 0 else None
            )
            breakdown.append(row)
        from torch.profiler import ProfilerActivity, profile

        with (
            profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof,
            torch.inference_mode(),
        ):
            static(x64)
        (args.out / "profile_static_b64.txt").write_text(
            "torch.profiler, static export, batch 64, eager, one forward; ops grouped by input shape\n\n"
            + prof.key_averages(group_by_input_shape=True).table(
                sort_by="self_cpu_time_total", row_limit=30
            )
        )

    # ---- write -------------------------------------------------------------------------------
    command = "python scripts/bench_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        **provenance(),
        "platform": __import__("platform").platform(),
        "command": command.strip(),
        "model_source": source,
        "backbone": "dg_resnet18, CIFAR stem, 32x32 input",
        "torch_num_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "quick": quick,
        "load_average_1_5_15min": {"before_timing": load_before, "after_timing": load_after},
        "note": "2-core shared machine: other processes may run concurrently; variants are timed round-robin so load affects all alike",
        "gate_statistics": {
            "calibration_images": stats.num_samples,
            "mean_kept_ratio_r": stats.mean_ratio,
            "flops_reduction": stats.flops_reduction,
            "paper_kept_macs": paper_kept_macs,
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
        "fidelity_max_abs_diff": fidelity,
        "onnx": onnx_info,
        "compile_seconds": compile_seconds,
        "compile_errors": compile_errors,
        "timing": {
            "warmup_repeats": {str(b): list(v) for b, v in reps.items()},
            "statistic": "median ms per forward call, variants interleaved round-robin per batch size",
        },
        "definitions": {
            "theoretical_speedup": "dense-branch MACs / variant MACs, both from FlopCounterMode (conv MACs per image; dynamic and gated_masked averaged over 16 images)",
            "realized_speedup": "median time of the eager dense branch at the same batch / median time of the row",
            "realized_speedup_same_runtime": "same, against the dense reference of the row's runtime (compiled dense branch for compile rows, dense_plain in ONNX Runtime for onnxruntime rows)",
            "realized_over_theoretical": "realized_speedup_same_runtime / theoretical_speedup",
        },
        "rows": rows,
        "static_b64_per_block_breakdown": breakdown,
        "gate_training_log_tail": train_log[-5:],
        "wall_seconds": time.time() - t_start,
    }
    (args.out / "latency.json").write_text(json.dumps(result, indent=2))
    fields = [
        "variant",
        "runtime",
        "batch",
        "median_ms",
        "p25_ms",
        "p75_ms",
        "repeats",
        "ms_per_image",
        "macs_per_image",
        "theoretical_speedup",
        "realized_speedup",
        "realized_speedup_same_runtime",
        "realized_over_theoretical",
        "error",
    ]
    with open(args.out / "latency.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(
        rows,
        args.out / "latency.png",
        f"{result['machine']}, {torch.get_num_threads()} threads, torch {torch.__version__}, {result['date']}\nmodel: {source[:110]}",
    )
    print_table(rows)
    print(
        f"model: {source}\nkept ratio r = {stats.mean_ratio:.3f} (FLOPs R. {100 * stats.flops_reduction:.1f}%); "
        f"wrote {args.out}/latency.csv, latency.json, latency.png in {time.time() - t_start:.0f} s"
    )
    return result


def _load_dense_plain(backbone, plain: nn.Module) -> nn.Module:
    """Fill a full-width plain ResNet with the *dense* branch's weights (dense BNs)."""
    from dualgate_solo.layers import DualBatchNorm

    def dense(norm):
        return norm.dense if isinstance(norm, DualBatchNorm) else norm

    with torch.no_grad():
        plain.conv1.load_state_dict(backbone.conv1.state_dict())
        plain.bn1.load_state_dict(dense(backbone.bn1).state_dict())
        for (_, src), dst in zip(backbone.named_blocks(), plain.blocks):
            for name in ("conv1", "conv2", "conv3"):
                if hasattr(src, name):
                    getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
            for name in ("bn1", "bn2", "bn3"):
                if hasattr(src, name):
                    getattr(dst, name).load_state_dict(dense(getattr(src, name)).state_dict())
            if src.downsample is not None:
                dst.downsample.conv.load_state_dict(src.downsample.conv.state_dict())
                dst.downsample.bn.load_state_dict(dense(src.downsample.bn).state_dict())
    return plain.eval()


def _row(variant, runtime, batch, ms, macs, dense_macs, error=None) -> dict:
    q = statistics.quantiles(ms, n=4) if ms and len(ms) > 1 else [None, None, None]
    med = statistics.median(ms) if ms else None
    return {
        "variant": variant,
        "runtime": runtime,
        "batch": batch,
        "median_ms": med,
        "p25_ms": q[0],
        "p75_ms": q[2],
        "repeats": len(ms) if ms else 0,
        "ms_per_image": med / batch if med else None,
        "macs_per_image": macs,
        "theoretical_speedup": dense_macs / macs,
        "realized_speedup": None,
        "realized_speedup_same_runtime": None,
        "realized_over_theoretical": None,
        "error": error,
    }


def _median(rows, variant, runtime, batch):
    return next(
        (
            r["median_ms"]
            for r in rows
            if (r["variant"], r["runtime"], r["batch"]) == (variant, runtime, batch)
        ),
        None,
    )


def print_table(rows) -> None:
    print(
        f"\n{'variant':13} {'runtime':11} {'batch':>5} {'median ms':>10} {'MACs/img':>12} {'theor.':>7} {'real.':>7} {'real.(rt)':>9} {'r/t':>6}"
    )
    for r in rows:
        if r["median_ms"] is None:
            print(
                f"{r['variant']:13} {r['runtime']:11} {r['batch']:>5} {'failed':>10}  {r['error'][:60]}"
            )
            continue
        print(
            f"{r['variant']:13} {r['runtime']:11} {r['batch']:>5} {r['median_ms']:10.2f} {r['macs_per_image']:12,.0f} "
            f"{r['theoretical_speedup']:7.2f} {r['realized_speedup']:7.2f} {r['realized_speedup_same_runtime'] or float('nan'):9.2f} "
            f"{r['realized_over_theoretical']:6.2f}"
        )


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
