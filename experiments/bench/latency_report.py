"""Rows, speed-ups, CSV, plot and console table of the latency benchmark."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

#: the batch sizes the family benchmark times
BATCHES = (1, 64)
#: the batch sizes ``bench_latency`` times by default on a CPU and with ``--device cuda``
LATENCY_BATCHES = (1, 8, 64)
CUDA_BATCHES = (1, 64, 256)
#: batch -> (warm-up calls, timed rounds) of a full and of a ``--quick`` measurement (other
#: batch sizes take the entry of the next larger listed one)
REPEATS = {1: (10, 40), 8: (3, 20), 64: (2, 9), 256: (2, 9)}
QUICK_REPEATS = {1: (3, 10), 8: (1, 3), 64: (1, 2), 256: (1, 2)}
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
    "theoretical_speedup": "dense MACs / the variant's executed MACs per image, both counted by "
    "FlopCounterMode over the network's own runs on the timed inputs of that batch size (batch "
    "1: mean over the cycled single images)",
    "realized_speedup": "median time of the eager dense reference at the same batch / median "
    "time of the row",
    "realized_speedup_same_runtime": "median time of the dense reference in the row's runtime "
    "at the same batch / median time of the row",
    "realized_over_theoretical": "realized_speedup_same_runtime / theoretical_speedup",
}


def repeats_for(table: dict[int, tuple[int, int]], batch: int) -> tuple[int, int]:
    """``table``'s (warm-up, rounds) of ``batch``, or of the next larger listed batch size."""
    return table[min((b for b in table if b >= batch), default=max(table))]


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


def add_speedups(rows: list[dict], reference: str = "dense") -> None:
    """Fill the speed-up columns (see :data:`DEFINITIONS`) of every timed row in place;
    ``reference``: the dense variant."""
    for r in rows:
        if r["median_ms"] is None:
            continue
        base = median_of(rows, reference, "eager", r["batch"])
        same = median_of(rows, reference, r["runtime"], r["batch"])
        r["realized_speedup"] = base / r["median_ms"] if base else None
        r["realized_speedup_same_runtime"] = same / r["median_ms"] if same else None
        realized = r["realized_speedup_same_runtime"] or r["realized_speedup"]
        r["realized_over_theoretical"] = realized / r["theoretical_speedup"] if realized else None


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Theoretical and realized (same runtime) speed-ups per variant and runtime, one panel per
    batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(6.5 * len(batches), 4.2), squeeze=False)
    axes = axes[0]
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    width = 0.8 / (len(runtimes) + 1)
    for ax, batch in zip(axes, batches):
        sel = [r for r in rows if r["batch"] == batch and r["median_ms"] is not None]
        variants = list(dict.fromkeys(r["variant"] for r in sel))
        labelled = set()
        for v_i, variant in enumerate(variants):
            theo = next(r["theoretical_speedup"] for r in sel if r["variant"] == variant)
            label = "theoretical (MACs)"
            ax.bar(
                v_i - 0.4,
                theo,
                width,
                color="lightgray",
                edgecolor="k",
                label=None if label in labelled else label,
            )
            labelled.add(label)
            for k, runtime in enumerate(runtimes):
                match = [r for r in sel if (r["variant"], r["runtime"]) == (variant, runtime)]
                if match and match[0]["realized_speedup_same_runtime"]:
                    label = f"realized, {runtime}"
                    ax.bar(
                        v_i - 0.4 + (k + 1) * width,
                        match[0]["realized_speedup_same_runtime"],
                        width,
                        color=f"C{k}",
                        label=None if label in labelled else label,
                    )
                    labelled.add(label)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(range(len(variants)), variants, rotation=25, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("speed-up vs dense (same runtime)")
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
        f"\n{'variant':14} {'runtime':18} {'batch':>5} {'median ms':>10} {'MACs/img':>12} "
        f"{'theor.':>7} {'real.':>7} {'real.(rt)':>9} {'r/t':>6}"
    )
    for r in rows:
        head = f"{r['variant']:14} {r['runtime']:18} {r['batch']:>5}"
        if r["median_ms"] is None:
            print(f"{head} {'failed':>10}  {r['error'][:60]}")
            continue
        same_runtime = r["realized_speedup_same_runtime"] or float("nan")
        realized = r["realized_speedup"] or float("nan")
        ratio = r["realized_over_theoretical"] or float("nan")
        print(
            f"{head} {r['median_ms']:10.2f} {r['macs_per_image']:12,.0f} "
            f"{r['theoretical_speedup']:7.2f} {realized:7.2f} {same_runtime:9.2f} {ratio:6.2f}"
        )
