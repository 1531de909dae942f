"""Wall-clock latency of a gated ResNet and its exports, side by side in one run (CPU or CUDA).

Turns the paper's analytic "FLOPs R." (Krishna et al., "Unifying Synergies between Self-supervised
Learning and Dynamic Computation", BMVC 2023) into measured speed-ups. The variants are the
entries of :data:`experiments.bench.variants.VARIANTS` that apply to the backbone's gate mode
(channel mode: ``dense`` (the reference), ``dense_branch``, ``gated_masked``, ``static``,
``hybrid``, ``dynamic``, ``dynamic_cached``; width mode: ``dense``, ``dense_branch``,
``gated_masked``, ``routed`` and ``mean_width``); every exported network is BN-folded. Runtimes:

* CPU: ``eager``, ``eager_cl`` (channels-last memory format), ``compile`` and ``compile_cl``
  (``torch.compile``), ``onnxruntime`` (variants that export to ONNX; all graph optimisations,
  intra-op threads = the benchmark's threads, settings recorded in the JSON; ``routed`` runs its
  own ``If`` graph, :mod:`dualgate_solo.export.routed_onnx`);
* ``--device cuda``: ``eager``, ``eager_cl``, ``compile``, ``compile_cudagraphs``
  (``torch.compile(mode="reduce-overhead")``) and ``cudagraphs`` (the eager network captured once
  per batch size with ``torch.cuda.CUDAGraph`` and replayed), at batch 1, 64 and 256.
  ``--dry-run`` runs that plan on the CPU where no GPU exists: the CUDA-only runtimes are skipped,
  each with its reason in the JSON.

Batch 1, 8 and 64 on a CPU; batch-1 rounds cycle through 16 different images. Every speed-up is
taken in the same runtime and batch: realized = dense time / variant time; theoretical = dense
MACs / the variant's executed MACs, counted by FlopCounterMode over the variant's own runs on the
timed inputs. Variants of one batch size are timed round-robin (median of the rounds after warm-up),
so load from other processes hits all alike. A compile failure is recorded, not fatal. The
per-block report (:mod:`~experiments.bench.block_report`) times each part (stem, residual
blocks, shortcuts, head) of every eager variant at ``--block-batches``.

Writes to ``--out``: ``latency.csv``, ``latency.json`` (rows, settings, provenance),
``latency.png``, ``blocks.csv``, ``blocks.json``, ``blocks.png`` and ``args.json`` (command,
options, machine, date, commit).

Without ``--checkpoint`` the model is a randomly initialised ``--backbone`` (default dg_resnet18,
CIFAR stem, width 64: the paper's network) whose gates (only) are trained for ``--train-steps``
steps on the embedded synthetic images with the budget loss (t_d = ``--target-density``) plus a
cosine distillation of the gated features to the dense ones
(:func:`~experiments.bench.gate_training.train_gates`); the JSON records exactly how.

Usage: ``python scripts/bench_latency.py [--quick] [--checkpoint RUN_OR_FILE]``. Set
``OMP_WAIT_POLICY=PASSIVE`` before torch is imported (the script does): idle OpenMP threads then
sleep instead of spinning, which on a small shared machine makes small-batch timings explode.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dualgate_solo.choices import GATE_MODES
from dualgate_solo.commands.options import add_architecture_options, integer
from dualgate_solo.export import onnx_export, onnx_session
from dualgate_solo.export.verify import Comparison
from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.gated.gate_stats import collect_gate_statistics
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.provenance import provenance
from dualgate_solo.synthetic import synthetic_shapes
from dualgate_solo.validation import UsageError
from experiments.bench import latency_report as report
from experiments.bench.block_report import BLOCK_FIELDS, block_report, plot_blocks
from experiments.bench.latency_report import (
    CUDA_BATCHES,
    LATENCY_BATCHES,
    QUICK_REPEATS,
    REPEATS,
    repeats_for,
)
from experiments.bench.timing import count_macs, round_robin
from experiments.bench.variants import REFERENCE, VARIANTS, BenchContext, Variant

CPU_RUNTIMES = ("eager", "eager_cl", "compile", "compile_cl", "onnxruntime")
CUDA_RUNTIMES = ("eager", "eager_cl", "compile", "compile_cudagraphs", "cudagraphs")
#: runtimes that need a CUDA device
CUDA_ONLY = ("compile_cudagraphs", "cudagraphs")
#: single images a batch-1 measurement cycles through
SINGLES = 16
#: the gate-training batch size of a model without checkpoint
GATE_TRAINING_BATCH = 32


@dataclass(frozen=True)
class Settings:
    """How much work one benchmark does (``--quick`` or full) and where it runs."""

    train_steps: int
    calib_size: int
    device: torch.device
    batches: tuple[int, ...]
    runtimes: tuple[str, ...]
    #: runtime -> why it is not measured (no CUDA device in a dry run, ...)
    skipped_runtimes: dict[str, str]
    #: batch -> (warm-up calls, timed rounds)
    repeats: dict[int, tuple[int, int]]
    block_batches: tuple[int, ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Settings of the parsed options; ``UsageError`` for a device this machine lacks."""
        quick = args.quick
        cuda = args.device == "cuda"
        if cuda and not torch.cuda.is_available() and not args.dry_run:
            raise UsageError(
                "--device='cuda' is invalid here (no CUDA device); allowed values: cpu, or cuda "
                "with --dry-run (runs the CUDA plan on the CPU, CUDA-only runtimes skipped)"
            )
        device = torch.device("cuda" if cuda and torch.cuda.is_available() else "cpu")
        runtimes = tuple(args.runtimes or (CUDA_RUNTIMES if cuda else CPU_RUNTIMES))
        if quick or args.no_compile:
            runtimes = tuple(r for r in runtimes if not r.startswith("compile"))
        skipped = {}
        if device.type != "cuda":
            skipped = {r: "needs a CUDA device (dry run on the CPU)" for r in CUDA_ONLY}
        elif "onnxruntime" in runtimes:
            skipped["onnxruntime"] = "the benchmark runs ONNX Runtime on the CPU only"
        batches = tuple(args.batches or (CUDA_BATCHES if cuda else LATENCY_BATCHES))
        return cls(
            train_steps=args.train_steps if args.train_steps is not None else (5 if quick else 60),
            calib_size=args.calib_size or (128 if quick else 1024),
            device=device,
            batches=batches,
            runtimes=tuple(r for r in runtimes if r not in skipped),
            skipped_runtimes={r: why for r, why in skipped.items() if r in runtimes},
            repeats=QUICK_REPEATS if quick else REPEATS,
            block_batches=tuple(
                b
                for b in (args.block_batches if args.block_batches is not None else (1, 64))
                if b in batches
            ),
        )

    def sync(self) -> Callable[[], None]:
        """What to call before reading the clock: ``torch.cuda.synchronize`` on a GPU."""
        return torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)


def load_model(args: argparse.Namespace, steps: int) -> tuple[GatedResNet, str, dict | None]:
    """The backbone to time, a sentence saying what it is, and how its gates were trained
    (``None`` for a checkpoint)."""
    if args.checkpoint:
        from dualgate_solo.checkpoint import load_backbone

        given = {k: getattr(args, k) for k in ("stem", "width") if getattr(args, k) is not None}
        loaded = load_backbone(args.checkpoint, args.backbone, given)
        return loaded.backbone, f"trained checkpoint {loaded.path} (method {loaded.method})", None
    from dualgate_solo.models import create_backbone
    from experiments.bench.gate_training import train_gates

    name, stem, width = args.backbone or "dg_resnet18", args.stem or "cifar", args.width or 64
    backbone = create_backbone(name, stem=stem, width=width, gate_mode=args.gate_mode)
    log = train_gates(backbone, steps, args.target_density, batch_size=GATE_TRAINING_BATCH)
    source = (
        f"NOT a trained SSL checkpoint: random-init {name} (stem {stem}, width {width}, "
        f"gate_mode {args.gate_mode}) whose "
        f"gates and BN statistics were trained for {steps} steps on synthetic images with the "
        f"budget loss (t_d = {args.target_density}, deterministic ratio, Lagrange multiplier) + "
        "cosine distillation to the dense branch; conv weights are random"
    )
    training = {
        "function": "experiments.bench.gate_training.train_gates",
        "backbone": {"name": name, "stem": stem, "width": width, "gate_mode": args.gate_mode},
        "steps": steps,
        "batch_size": GATE_TRAINING_BATCH,
        "target_density": args.target_density,
        "data": "synthetic_shapes(2048, seed=0), augmented",
        "trained_parameters": "gates only (names containing '.gate.'), BN statistics updated",
        "loss": "budget loss L_G (deterministic ratio, Lagrange multiplier lr 0.5, linear bound "
        "at p = 0.5) + 1 - cos(gated feats, dense feats)",
        "optimizer": "Adam, lr 0.02",
        "log_tail": log[-5:],
    }
    return backbone, source, training


def images(
    folder: Path | None, dataset: str, calib: int, test: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``calib`` calibration images and ``test`` timing/fidelity inputs: random draws of
    ``folder`` or synthetic ones."""
    if folder is None:
        return synthetic_shapes(calib, seed=1)[0], synthetic_shapes(test, seed=2)[0]
    from dualgate_solo.reports.eval_data import image_folder_split

    split = image_folder_split(folder, dataset)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(1))
    drawn = torch.stack([split[i][0] for i in order[: calib + test].tolist()])
    return drawn[:calib], drawn[calib:]


def build_variants(context: BenchContext, calib_x: torch.Tensor) -> dict[str, nn.Module]:
    """Every variant that applies to the backbone, built and in eval mode; a per-input cache
    (``dynamic_cached``) is warmed on the calibration images, one at a time, and the routed
    network counts its width choices on them."""
    modules = {}
    for name, variant in VARIANTS.items():
        if not variant.applies_to(context):
            continue
        module = variant.build(context).eval()
        if hasattr(module, "cache_stats"):
            with torch.inference_mode():
                for x in calib_x.split(1):
                    module(x)
        if hasattr(module, "count_choices"):  # the routed ONNX graph tests frequent widths first
            module.count_choices(calib_x)
        modules[name] = module
    return modules


#: variants that reproduce their branch on any input (a difference above tolerance stops the
#: benchmark); the others (``static``, ``hybrid`` off the calibration images, ``mean_width``)
#: approximate it and their difference is recorded
EXACT_VARIANTS = ("dense", "dense_branch", "gated_masked", "dynamic", "dynamic_cached", "routed")


def check_output(name: str, what: str, expected: torch.Tensor, got: torch.Tensor) -> float:
    """Max abs difference of ``got`` to ``expected`` (``[N, F]`` features); raises
    :class:`~dualgate_solo.export.verify.ExportMismatch` naming ``name`` above the export
    tolerance (:data:`~dualgate_solo.export.verify.FEATURE_TOLERANCE` x max(1, |expected|))."""
    comparison = Comparison(name, "latency benchmark")
    comparison.add((expected, None), (got, None))
    comparison.check(what)
    return comparison.max_abs_diff


@torch.no_grad()
def fidelity(
    backbone: GatedResNet, modules: dict[str, nn.Module], x: torch.Tensor
) -> dict[str, float]:
    """Max abs difference of each variant to the branch it reproduces (``dense`` and
    ``dense_branch``: the dense branch; every other: the gated branch), on ``x [N, 3, H, W]``
    (batch-1-only variants: its first 16 images one at a time); a variant of
    :data:`EXACT_VARIANTS` above tolerance raises ``ExportMismatch``."""
    out = {}
    for name, module in modules.items():
        branch = "dense" if name in ("dense", "dense_branch") else "gated"
        if VARIANTS[name].batch1_only:
            got = torch.cat([module(x[i : i + 1]) for i in range(min(SINGLES, len(x)))])
        else:
            got = module(x)
        ref = backbone.forward_branch(x[: len(got)], branch).feats
        if name in EXACT_VARIANTS:
            check_output(name, f"the {branch} branch", ref, got)
        out[f"{name}_vs_{branch}_branch"] = float((got - ref).abs().max())
    out["feature_scale_max_abs"] = float(backbone.forward_branch(x, "gated").feats.abs().max())
    return out


def onnx_sessions(
    modules: dict[str, nn.Module], x: torch.Tensor, threads: int
) -> tuple[dict, dict]:
    """ONNX Runtime sessions (:func:`~dualgate_solo.export.onnx_session`) of every variant that
    exports, and what the export did (or the error that stopped it) plus the session settings;
    a session whose output differs from the variant in PyTorch above the export tolerance
    raises ``ExportMismatch``."""
    sessions, info = {}, {}
    directory = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    for name, module in modules.items():
        if not VARIANTS[name].onnx:
            continue
        path = directory / f"{name}.onnx"
        try:
            if VARIANTS[name].onnx_session is not None:
                session, facts = VARIANTS[name].onnx_session(module, path, threads)
            else:
                facts = {"exporter": onnx_export(module, x[:2], path)}
                session, info["session_settings"] = onnx_session(path, threads)
            got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
            sessions[name] = session
            info[name] = facts
        except Exception as error:  # noqa: BLE001 - an export that fails: record and go on
            info[name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
            continue
        with torch.no_grad():
            diff = check_output(f"{name} in ONNX Runtime", f"{name} in PyTorch", module(x), got)
        info[name]["max_abs_diff_vs_pytorch"] = diff
    return sessions, info


def compile_or_error(
    module: nn.Module, x: torch.Tensor, mode: str | None = None
) -> tuple[nn.Module | None, float, str]:
    """``torch.compile(module, mode=mode)`` run once on ``x``: (compiled, seconds, "") or
    (None, 0, error)."""
    try:
        start = time.time()
        compiled = torch.compile(module, dynamic=False, mode=mode)
        with torch.inference_mode():
            compiled(x)
        return compiled, time.time() - start, ""
    except Exception as error:  # noqa: BLE001 - record and go on
        return None, 0.0, f"{type(error).__name__}: {str(error)[:500]}"


def cuda_graph(module: nn.Module, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` captured once on inputs shaped like ``x`` in a ``torch.cuda.CUDAGraph``; the
    returned callable copies its input into the static input and replays the graph."""
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(stream):
        for _ in range(3):
            module(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        static_out = module(static_x)

    def replay(inp: torch.Tensor) -> torch.Tensor:
        static_x.copy_(inp)
        graph.replay()
        return static_out

    return replay


def channels_last(module: nn.Module) -> tuple[nn.Module, Callable]:
    """A channels-last copy of ``module`` and the callable that feeds it channels-last input."""
    copied = copy.deepcopy(module).to(memory_format=torch.channels_last)
    return copied, lambda x, m=copied: m(x.contiguous(memory_format=torch.channels_last))


def runtime_callable(
    variant: Variant, module: nn.Module, runtime: str, x: torch.Tensor, sessions: dict
) -> tuple[Callable | None, str, float]:
    """``(fn, "", compile seconds)`` running ``module`` in ``runtime`` on inputs shaped like ``x``,
    or ``(None, reason, 0)`` when the variant does not support it or building it failed."""
    if runtime == "onnxruntime":
        if variant.name not in sessions:
            return None, "does not export to ONNX" if not variant.onnx else "ONNX export failed", 0
        session = sessions[variant.name]
        return lambda inp, s=session: s.run(None, {"images": inp.numpy()}), "", 0.0
    if runtime.endswith("_cl") and not variant.channels_last:
        return None, "no channels-last path (per-input weight gathers)", 0.0
    if runtime.startswith("compile") and not variant.compile:
        return None, "not compiled (data-dependent shapes: recompiles per active set)", 0.0
    if "cudagraphs" in runtime and not variant.cuda_graphs:
        return None, "not capturable in a CUDA graph (data-dependent control flow)", 0.0
    fn: Callable = module
    if runtime.endswith("_cl"):
        module, fn = channels_last(module)
    if runtime.startswith("compile"):
        mode = "reduce-overhead" if runtime == "compile_cudagraphs" else None
        compiled, seconds, error = compile_or_error(module, x, mode)
        if compiled is None:
            return None, error, 0.0
        fn = compiled if not runtime.endswith("_cl") else channels_last(compiled)[1]
        return fn, "", seconds
    if runtime == "cudagraphs":
        try:
            return cuda_graph(module, x), "", 0.0
        except Exception as error:  # noqa: BLE001 - record and go on
            return None, f"{type(error).__name__}: {str(error)[:500]}", 0.0
    return fn, "", 0.0


def time_variants(
    modules: dict[str, nn.Module], sessions: dict, test_x: torch.Tensor, settings: Settings
) -> tuple[list[dict], list[dict], dict[str, float]]:
    """Timing rows of every variant and runtime per batch size, the combinations not measured
    (with the reason) and the compile seconds."""
    rows, skipped, seconds = [], [], {}
    for batch in settings.batches:
        if batch == 1:
            inputs = [test_x[i : i + 1] for i in range(min(SINGLES, len(test_x)))]
        else:
            inputs = [test_x[:batch].contiguous()]
        macs = {
            name: count_macs(m, inputs)
            for name, m in modules.items()
            if batch == 1 or not VARIANTS[name].batch1_only
        }
        callables = []  # (variant, runtime, fn)
        for name, module in modules.items():
            variant = VARIANTS[name]
            if batch != 1 and variant.batch1_only:
                skipped.append({"variant": name, "batch": batch, "reason": "batch 1 only"})
                continue
            for runtime in settings.runtimes:
                fn, reason, took = runtime_callable(variant, module, runtime, inputs[0], sessions)
                if fn is None:
                    if runtime.startswith("compile") and variant.compile:  # a compile failure
                        rows.append(
                            report.row(
                                name, runtime, batch, None, macs[name], macs[REFERENCE], reason
                            )
                        )
                    else:
                        skipped.append(
                            {"variant": name, "runtime": runtime, "batch": batch, "reason": reason}
                        )
                    continue
                if took:
                    seconds[f"{name}@{runtime}@{batch}"] = took
                    print(f"  compiled {name} ({runtime}) for batch {batch} in {took:.0f} s")
                callables.append((name, runtime, fn))
        warmup, repeats = repeats_for(settings.repeats, batch)
        times = round_robin(
            [fn for _, _, fn in callables], inputs, warmup, repeats, settings.sync()
        )
        for (name, runtime, _), ms in zip(callables, times):
            rows.append(report.row(name, runtime, batch, ms, macs[name], macs[REFERENCE]))
            print(
                f"  batch {batch:3d} {name:14s} {runtime:18s} {statistics.median(ms):9.2f} ms",
                flush=True,
            )
    return rows, skipped, seconds


def block_reports(
    modules: dict[str, nn.Module], test_x: torch.Tensor, settings: Settings
) -> list[dict]:
    """Per-part rows (:mod:`~experiments.bench.block_report`) of every eager variant at each
    of ``settings.block_batches``."""
    rows = []
    for batch in settings.block_batches:
        if batch == 1:
            inputs = [test_x[i : i + 1] for i in range(min(SINGLES, len(test_x)))]
        else:
            inputs = [test_x[:batch].contiguous()]
        warmup, repeats = repeats_for(settings.repeats, batch)
        for name, module in modules.items():
            if batch != 1 and VARIANTS[name].batch1_only:
                continue
            rows += block_report(name, "eager", module, inputs, warmup, repeats, settings.sync())
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_latency.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="trained gated checkpoint (run dir, .ckpt or .pt); default: a fresh --backbone "
        "(dg_resnet18, cifar stem, width 64 when not given) whose gates are trained here",
    )
    add_architecture_options(parser, from_checkpoint=True)
    parser.add_argument(
        "--gate-mode",
        choices=GATE_MODES,
        default="channel",
        help="gate mode of the stand-in model (no checkpoint); width adds the routed executor",
    )
    parser.add_argument(
        "--target-density",
        type=float,
        default=BudgetOptions.target_density,
        help="t_d of the gate training (no checkpoint)",
    )
    parser.add_argument(
        "--train-steps",
        type=integer(0),
        default=None,
        help="gate training steps (default 60, --quick 5)",
    )
    parser.add_argument(
        "--calib-size",
        type=integer(1),
        default=None,
        help="images for the gate statistics (default 1024, --quick 128)",
    )
    parser.add_argument(
        "--calib-data",
        type=Path,
        default=None,
        help="ImageFolder of real images for the gate statistics and timing inputs "
        "(default: synthetic)",
    )
    parser.add_argument(
        "--dataset",
        default="cifar_jpg",
        help="evaluation transform for --calib-data (dualgate_solo.reports.eval_data)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: batches 1/64/256 with torch.compile and CUDA graphs",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --device cuda on a machine without GPU: run the CUDA plan on the CPU",
    )
    parser.add_argument(
        "--batches",
        type=integer(1),
        nargs="+",
        default=None,
        help="batch sizes (default: 1 8 64 on a CPU, 1 64 256 with --device cuda)",
    )
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=tuple(dict.fromkeys(CPU_RUNTIMES + CUDA_RUNTIMES)),
        default=None,
        help=f"runtimes (default: {' '.join(CPU_RUNTIMES)} on a CPU, {' '.join(CUDA_RUNTIMES)} "
        "with --device cuda)",
    )
    parser.add_argument(
        "--block-batches",
        type=integer(1),
        nargs="*",
        default=None,
        help="batch sizes of the per-block report (default: 1 64; none: no report)",
    )
    parser.add_argument(
        "--threads",
        type=integer(1),
        default=None,
        help="PyTorch and ONNX Runtime intra-op threads (default: torch's default)",
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
    from dualgate_solo.commands.options import check_output

    check_output(args.out, directory=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    torch.manual_seed(0)
    backbone, source, gate_training = load_model(args, settings.train_steps)
    backbone.eval()
    n_test = max(max(settings.batches), SINGLES)
    calib_x, test_x = images(args.calib_data, args.dataset, settings.calib_size, n_test)
    calibration = f"images of {args.calib_data}" if args.calib_data else "synthetic images"
    source += f"; gate statistics on {settings.calib_size} {calibration}"
    stats = collect_gate_statistics(backbone, calib_x.split(128), progress=False)
    context = BenchContext(backbone, stats)
    modules = build_variants(context, calib_x)
    fidelity_diffs = fidelity(backbone, modules, test_x[:64])
    sessions, onnx_info = {}, {}
    if "onnxruntime" in settings.runtimes:
        sessions, onnx_info = onnx_sessions(modules, test_x[:64], torch.get_num_threads())
    # model, images and outputs are checked: from here on nothing is a usage error
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/bench_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stamp = {**provenance(), "platform": platform.platform(), "command": command.strip()}
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    (args.out / "args.json").write_text(json.dumps({**stamp, "args": options}, indent=2))
    cache_on_new_images = {}
    for name, module in modules.items():
        if hasattr(module, "cache_stats"):  # fidelity ran 16 images not seen by the warm-up
            cache_on_new_images[name] = module.cache_stats()
            for block in module.blocks:
                block.hits = block.misses = 0
    backbone.to(settings.device)
    modules = {name: m.to(settings.device) for name, m in modules.items()}
    test_x = test_x.to(settings.device)
    load_before = os.getloadavg()
    rows, skipped, compile_seconds = time_variants(modules, sessions, test_x, settings)
    load_after = os.getloadavg()
    report.add_speedups(rows, REFERENCE)
    variant_info = {
        name: {
            "description": VARIANTS[name].description,
            **(VARIANTS[name].info(m) if VARIANTS[name].info else {}),
        }
        for name, m in modules.items()
    }
    for name, stats_new in cache_on_new_images.items():
        variant_info[name] = {
            **variant_info[name],
            "cache_on_16_new_images": stats_new,
            "note": "hits/misses above: warm-up and timed calls, which cycle through the same 16 "
            "images (hits after their first call); cache_on_16_new_images: lookups per block "
            "over 16 images the cache had not seen, i.e. the hit rate of a new image stream",
        }
    blocks = block_reports(modules, test_x, settings)

    result = {
        **stamp,
        "model_source": source,
        "gate_training": gate_training,
        "backbone": f"{type(backbone).__name__} depth {backbone.depth}, stem {backbone.stem}, "
        f"width {backbone.conv1.out_channels}, input {tuple(test_x.shape[-2:])}",
        "gate_mode": context.gate_mode,
        "device": str(settings.device),
        "dry_run": args.dry_run,
        "torch_num_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "quick": args.quick,
        "batches": list(settings.batches),
        "runtimes": list(settings.runtimes),
        "skipped_runtimes": settings.skipped_runtimes,
        "skipped": skipped,
        "load_average_1_5_15min": {"before_timing": load_before, "after_timing": load_after},
        "note": "variants of one batch size are timed round-robin so load from other processes "
        "affects all alike",
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
            for p, plan in context.plans.items()
        },
        "variants": variant_info,
        "reference_variant": REFERENCE,
        "fidelity_max_abs_diff": fidelity_diffs,
        "onnx": onnx_info,
        "compile_seconds": compile_seconds,
        "timing": {
            "warmup_repeats": {
                str(b): list(repeats_for(settings.repeats, b)) for b in settings.batches
            },
            "batch1_inputs": f"{SINGLES} different single images, cycled per round",
            "statistic": "median ms per forward call, variants interleaved round-robin per "
            "batch size",
        },
        "definitions": report.DEFINITIONS,
        "rows": rows,
        "wall_seconds": time.time() - t_start,
    }
    (args.out / "latency.json").write_text(json.dumps(result, indent=2))
    report.write_csv(rows, args.out / "latency.csv")
    title = (
        f"{result['machine']}, {settings.device}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, {result['date']}\nmodel: {source[:110]}"
    )
    report.plot(rows, args.out / "latency.png", title)
    if blocks:
        write_blocks(blocks, args.out, stamp, title)
    report.print_table(rows)
    print(
        f"model: {source}\nkept ratio r = {stats.mean_ratio:.3f} (FLOPs R. "
        f"{100 * stats.flops_reduction:.1f}%); wrote {args.out} in {time.time() - t_start:.0f} s"
    )
    return result


def write_blocks(rows: list[dict], out: Path, stamp: dict, title: str) -> None:
    """``blocks.csv``, ``blocks.json`` and ``blocks.png`` of the per-block report."""
    import csv

    from experiments.bench import block_report

    with open(out / "blocks.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BLOCK_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    definitions = block_report.__doc__
    (out / "blocks.json").write_text(
        json.dumps({**stamp, "definitions": definitions, "rows": rows}, indent=2)
    )
    plot_blocks(rows, out / "blocks.png", title)
