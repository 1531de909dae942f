"""Channel-usage figure (paper Fig. 1): per gated block, channels always on / off / data dependent.

Input: :class:`~dualgate_solo.gated.gate_stats.GateStatistics`; output: one row per block (CSV) and
a stacked bar chart (PNG). A channel is "always off" when its on-rate over the split is at most
``off_below``, "always on" when at least ``on_above`` (0 and 1 by default: never on / never off).
"""

from __future__ import annotations

import csv
from pathlib import Path

from dualgate_solo.gated.gate_stats import GateStatistics, channel_categories

CATEGORIES = ("always_off", "data_dependent", "always_on")
COLOURS = {"always_off": "#bbbbbb", "data_dependent": "#e6862a", "always_on": "#2a6fb0"}


def channel_usage_rows(
    stats: GateStatistics, off_below: float = 0.0, on_above: float = 1.0
) -> list[dict[str, object]]:
    """Per block: channel counts per category and the block's mean on-rate."""
    rows = []
    for name, rate in zip(stats.block_names, stats.on_rates):
        cats = channel_categories(rate, off_below, on_above)
        rows.append(
            {
                "block": name,
                "channels": rate.numel(),
                **{c: int(cats[c].sum()) for c in CATEGORIES},
                "mean_on_rate": float(rate.mean()),
            }
        )
    return rows


def write_channel_usage(
    rows: list[dict[str, object]], csv_path: Path, png_path: Path, title: str = ""
) -> None:
    """Write the rows as CSV and as a stacked-bar PNG (fractions of each block's channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows)), 3.5))
    bottom = [0.0] * len(rows)
    names = [r["block"] for r in rows]
    for cat in CATEGORIES:
        share = [r[cat] / r["channels"] for r in rows]
        ax.bar(names, share, bottom=bottom, color=COLOURS[cat], label=cat.replace("_", " "))
        bottom = [b + s for b, s in zip(bottom, share)]
    ax.set_ylabel("fraction of gated channels")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=45)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120, bbox_inches="tight")
    plt.close(fig)
