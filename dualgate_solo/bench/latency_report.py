"""Rows, speed-ups, CSV, plot and console table of the latency benchmark."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

#: the batch sizes the latency benchmarks time
BATCHES = (1, 64)
#: batch -> (warm-up calls, timed rounds) of a full and of a ``--quick`` measurement
REPEATS = {1: (10, 40), 64: (2, 9)}
QUICK_REPEATS = {1: (3, 10), 64: (1, 2)}
CSV_FIELDS = (
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
)
DEFINITIONS = {
    "theoretical_speedup": "dense-branch MACs / variant MACs, both from FlopCounterMode (conv MACs "
    "per image; dynamic and gated_masked averaged over 16 images)",
    "realized_speedup": "median time of the eager dense branch at the same batch / median time "
    "of the row",
    "realized_speedup_same_runtime": "same, against the dense reference of the row's runtime "
    "(compiled dense branch for compile rows, dense_plain in ONNX Runtime for onnxruntime rows)",
    "realized_over_theoretical": "realized_speedup_same_runtime / theoretical_speedup",
}


def row(
    variant: str,
    runtime: str,
    batch: int,
    ms: list[float] | None,
    macs: float,
    dense_macs: float,
    error: str | None = None,
) -> dict:
    """One timing row (``ms``: per-call milliseconds; ``None`` with ``error`` for a failure)."""
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


def median_of(rows: list[dict], variant: str, runtime: str, batch: int) -> float | None:
    """The median ms of the row ``(variant, runtime, batch)``, ``None`` when absent."""
    key = (variant, runtime, batch)
    return next(
        (r["median_ms"] for r in rows if (r["variant"], r["runtime"], r["batch"]) == key), None
    )


def add_speedups(rows: list[dict]) -> None:
    """Fill the speed-up columns (see :data:`DEFINITIONS`) of every timed row in place."""
    for r in rows:
        if r["median_ms"] is None:
            continue
        base = median_of(rows, "dense_branch", "eager", r["batch"])
        reference = "dense_plain" if r["runtime"] == "onnxruntime" else "dense_branch"
        same = median_of(rows, reference, r["runtime"], r["batch"])
        r["realized_speedup"] = base / r["median_ms"]
        r["realized_speedup_same_runtime"] = same / r["median_ms"] if same else None
        r["realized_over_theoretical"] = (
            r["realized_speedup_same_runtime"] or r["realized_speedup"]
        ) / r["theoretical_speedup"]


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Theoretical and realized speed-ups per variant and runtime, one panel per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BATCHES), figsize=(13, 4.2))
    runtimes = ["eager", "compile", "onnxruntime"]
    width = 0.2
    for ax, batch in zip(axes, BATCHES):
        sel = [r for r in rows if r["batch"] == batch and r["median_ms"] is not None]
        variants = list(dict.fromkeys(r["variant"] for r in sel))
        labelled = set()
        for v_i, variant in enumerate(variants):
            theo = next(r["theoretical_speedup"] for r in sel if r["variant"] == variant)
            label = "theoretical (MACs)"
            ax.bar(
                v_i - 1.5 * width,
                theo,
                width,
                color="lightgray",
                edgecolor="k",
                label=None if label in labelled else label,
            )
            labelled.add(label)
            for k, runtime in enumerate(runtimes):
                match = [r for r in sel if (r["variant"], r["runtime"]) == (variant, runtime)]
                if match:
                    label = f"realized, {runtime}"
                    ax.bar(
                        v_i + (k - 0.5) * width,
                        match[0]["realized_speedup"],
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
    legend = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    axes[-1].legend(list(legend.values()), list(legend), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'variant':13} {'runtime':11} {'batch':>5} {'median ms':>10} {'MACs/img':>12} "
        f"{'theor.':>7} {'real.':>7} {'real.(rt)':>9} {'r/t':>6}"
    )
    for r in rows:
        head = f"{r['variant']:13} {r['runtime']:11} {r['batch']:>5}"
        if r["median_ms"] is None:
            print(f"{head} {'failed':>10}  {r['error'][:60]}")
            continue
        same_runtime = r["realized_speedup_same_runtime"] or float("nan")
        print(
            f"{head} {r['median_ms']:10.2f} {r['macs_per_image']:12,.0f} "
            f"{r['theoretical_speedup']:7.2f} {r['realized_speedup']:7.2f} {same_runtime:9.2f} "
            f"{r['realized_over_theoretical']:6.2f}"
        )
