"""Training-step time and peak memory: solo-learn's ``vicreg``, ``vicreg_dual_gating`` and the
slimmable methods (``slimclr_vicreg``, ``slimclr_mocov3``, ``sacl_xd``), side by side.

Every method is built by solo-learn from the package's CIFAR-10 configs (paper recipe: ResNet-18,
CIFAR stem, LARS; ``sacl_xd``: its width-128 host with the width-64 slim network) and runs the same
two-view batch: forward, backward, optimiser step and, for a momentum method, the EMA update of its
target encoder, the work of one Lightning training step without the Trainer's bookkeeping. The
SlimCLR methods train only the full width during their slow start; the benchmark times the step
with every sub-network on (``method_kwargs.slow_start_epochs=0``, recorded in the JSON under
``overrides``), the cost of most of their training. Each method runs in its own process, so the
peak-memory figures do not mix; on CPU the peak is the growth of the resident set size (ru_maxrss,
glibc's mmap threshold fixed at 128 KiB so freed tensors leave the resident set) over the size
after building the model, on CUDA ``torch.cuda.max_memory_allocated``. The bytes autograd saves
for backward in one step are also reported (``saved_for_backward_mib``): allocator-independent,
the part that scales with the batch. The summary gives each method's ratios to ``vicreg``. Needs
solo-learn importable (``SOLO_LEARN_SRC`` works).

    SOLO_LEARN_SRC=/path/to/solo-learn python scripts/bench_step.py --batch-size 64 --steps 5

Writes ``<out>/bench_step.{csv,json,png}`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dualgate_solo.method_registry import METHODS
from experiments import python_path
from experiments.runner.protocols import BASELINE, SCHEDULE_VARIANTS, VARIANTS, method_variants


def compared() -> tuple[str, ...]:
    """The entries the benchmark can time, the grid's baseline (solo-learn's VICReg) first: every
    registered method, and after each ``<method>+<grid variant>`` for the variants that are its own
    (:func:`experiments.runner.protocols.method_variants`, e.g. ``vicreg_dual_gating+symmetric``:
    both views through both branches), except those that only schedule other steps
    (:data:`~experiments.runner.protocols.SCHEDULE_VARIANTS`)."""
    entries = [BASELINE]
    for method in METHODS:
        own = [v for v in method_variants(method) if v not in SCHEDULE_VARIANTS]
        entries += [method, *(f"{method}+{v}" for v in own)]
    return tuple(entries)


def method_of(entry: str) -> str:
    """The solo-learn method of a :func:`compared` entry."""
    return entry.split("+")[0]


def method_overrides(entry: str) -> list[str]:
    """Hydra overrides of an entry beyond its method's config: a SlimCLR method's sub-networks on
    from the first step (no slow start), so the step trains every width; a grid variant's
    overrides."""
    from dualgate_solo.slimmable.options import SlimCLROptions

    spec = METHODS.get(method_of(entry))
    if spec is not None and SlimCLROptions in spec.kwargs_types:
        return ["method_kwargs.slow_start_epochs=0"]
    variant = entry.partition("+")[2]
    return list(VARIANTS[variant]) if variant else []


def _build(entry: str, batch_size: int, device: str):
    """The entry's solo-learn method built from the package's ``pretrain/cifar10/<method>.yaml``
    with :func:`method_overrides`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS as SOLO_METHODS

    from dualgate_solo.solo_adapter import register
    from dualgate_solo.solo_adapter.paths import config_dir

    register()
    with initialize_config_dir(
        config_dir=str(config_dir() / "pretrain" / "cifar10"), version_base="1.2"
    ):
        cfg = compose(
            config_name=method_of(entry),
            overrides=[
                f"optimizer.batch_size={batch_size}",
                "knn_eval.enabled=False",
                *method_overrides(entry),
            ],
        )
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    model = SOLO_METHODS[method_of(entry)](cfg).to(device)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=__import__("torch").channels_last)
    return model


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _saved_for_backward_mib(model, batch) -> float:
    """MiB of distinct tensor storages autograd keeps for the backward of one training step."""
    import torch

    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.training_step(batch, 0)
    return sum(storages.values()) / 2**20


def child(method: str, batch_size: int, steps: int, warmup: int, device: str) -> dict:
    """Time ``steps`` training steps after ``warmup``; returns one result row."""
    import torch
    from solo.utils.lars import LARS

    torch.manual_seed(0)
    model = _build(method, batch_size, device).train()
    model.log_dict = model.log = lambda *args, **kwargs: None  # no Trainer attached
    if hasattr(model, "on_train_epoch_start"):
        model.on_train_epoch_start()
    if getattr(model, "subnetworks_on", True) is False:
        raise RuntimeError(f"{method}: the sub-networks are off, the step would time one width")
    momentum_pairs = getattr(model, "momentum_pairs", [])
    # the method's own parameter groups (gates at weight decay 0), solo-learn's LARS as configured
    optimizer = LARS(
        model.learnable_params,
        lr=model.lr,
        weight_decay=model.weight_decay,
        **model.extra_optimizer_args,
    )
    views = [torch.rand(batch_size, 3, 32, 32, device=device) for _ in range(2)]
    batch = [torch.arange(batch_size), views, torch.randint(0, 10, (batch_size,), device=device)]
    saved = _saved_for_backward_mib(model, batch)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rss_before = _rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(warmup + steps):
        sync()
        start = time.perf_counter()
        out = model.training_step(batch, step)
        loss = out["loss"] if isinstance(out, dict) else out
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # solo-learn's on_train_batch_end after an optimiser step
            for pair in momentum_pairs:
                model.momentum_updater.update(*pair)
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mib() - rss_before
    )
    return {
        "method": method,
        "device": device,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "steps": steps,
        **step_times(times),
        "peak_mem_mib": peak,
        "saved_for_backward_mib": saved,
        "overrides": " ".join(method_overrides(method)),
        "peak_mem_kind": "cuda max_memory_allocated"
        if device == "cuda"
        else "ru_maxrss growth after model build",
    }


def step_times(times: list[float]) -> dict[str, float]:
    """``median_step_s`` (the upper median: element ``n // 2`` of the sorted times, a measured
    step even for an even count) and ``min_step_s`` of the timed steps' seconds."""
    ordered = sorted(times)
    return {"median_step_s": ordered[len(ordered) // 2], "min_step_s": ordered[0]}


def ratios_to_baseline(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Each row after the first (the baseline, ``vicreg``) as ratios to it: median step time,
    peak memory and bytes saved for backward; keyed by the row's ``method``."""
    base = rows[0]
    return {
        row["method"]: {
            "time_ratio": row["median_step_s"] / base["median_step_s"],
            "memory_ratio": row["peak_mem_mib"] / base["peak_mem_mib"],
            "saved_for_backward_ratio": row["saved_for_backward_mib"]
            / base["saved_for_backward_mib"],
        }
        for row in rows[1:]
    }


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    names = [r["method"] for r in rows]
    colours = ["#888888", *(f"C{i}" for i in range(len(rows) - 1))]
    for ax, key, label in zip(
        axes,
        ("median_step_s", "peak_mem_mib", "saved_for_backward_mib"),
        ("median step time [s]", "peak memory [MiB]", "saved for backward [MiB]"),
    ):
        bars = ax.bar(names, [r[key] for r in rows], color=colours)
        ax.bar_label(bars, fmt="%.3g")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _run_child(cmd: list[str], method: str, extra_env: dict[str, str]) -> dict:
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": python_path(), **extra_env},
    )
    if result.returncode != 0:
        raise SystemExit(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_step.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench_step"))
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=compared(),
        default=[BASELINE, *METHODS],
        help="entries to time: methods and <method>+<variant> (vicreg, the reference, is always "
        "timed first; default: every method)",
    )
    parser.add_argument("--child", choices=compared(), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch_size, args.steps, args.warmup, args.device)))
        return

    from dualgate_solo.provenance import provenance

    rows = []
    for method in [BASELINE, *(m for m in args.methods if m != BASELINE)]:
        cmd = [
            sys.executable,
            "-m",
            "experiments.bench.step",
            "--child",
            method,
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--device",
            args.device,
        ]
        timed = _run_child(cmd, method, {})
        # memory pass: a fixed mmap threshold stops glibc from keeping freed large blocks in its
        # heap, so the resident-set peak follows the live tensors instead of the allocator's history
        # (it also slows allocation, so the times come from the first, default pass)
        measured = _run_child(
            cmd, method, {"MALLOC_MMAP_THRESHOLD_": "131072"} if args.device == "cpu" else {}
        )
        rows.append({**timed, "peak_mem_mib": measured["peak_mem_mib"]})
        print(
            f"{method:>20}: {rows[-1]['median_step_s']:.3f} s/step, "
            f"peak {rows[-1]['peak_mem_mib']:.0f} MiB"
        )
    summary = ratios_to_baseline(rows)
    summary["vicreg_dual_gating"]["target"] = "<= 1.10 for time and memory"
    for method, ratios in summary.items():
        print(
            f"{method} / vicreg: time x{ratios['time_ratio']:.3f}, "
            f"peak memory x{ratios['memory_ratio']:.3f}, "
            f"saved for backward x{ratios['saved_for_backward_ratio']:.3f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    meta = provenance()
    (args.out / "bench_step.json").write_text(
        json.dumps(
            {
                "provenance": meta,
                "command": "python scripts/bench_step.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "step": "training_step + backward + LARS step (+ EMA update of momentum "
                "methods); SlimCLR methods with every sub-network on (row 'overrides')",
                "rows": rows,
                "summary": summary,
            },
            indent=2,
        )
    )
    with open(args.out / "bench_step.csv", "w") as f:
        f.write(",".join(rows[0]) + "\n")
        for row in rows:
            f.write(",".join(str(v) for v in row.values()) + "\n")
    _plot(
        rows,
        args.out / "bench_step.png",
        f"ResNet-18 CIFAR (sacl_xd: width-128 host, width-64 slim), batch {args.batch_size}, "
        f"{args.device}; "
        f"{meta.get('date', '')} {meta.get('cpu', '')}",
    )


if __name__ == "__main__":  # the child processes: python -m experiments.bench.step --child
    main()
