"""Gated-branch cost report: what the gated encoder costs on an image split.

With deterministic (eval) gates over the split: per-sample kept-MAC ratio r (mean, std), the
paper's "FLOPs R." = 1 - mean r, per-layer kept MACs and densities, per-channel on-rates, and the
channel-usage figure. Python API :func:`cost_report` and :func:`write_report`; command line
``dualgate-solo cost-report`` (:mod:`dualgate_solo.commands.cost_report`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from dualgate_solo.gated.gate_stats import GateStatistics, collect_gate_statistics
from dualgate_solo.models import GatedResNet
from dualgate_solo.reports.channel_usage import channel_usage_rows, write_channel_usage


def layer_rows(stats: GateStatistics) -> list[dict[str, object]]:
    """Per gated block: dense MACs, mean kept MACs, per-layer FLOPs R. and channel density."""
    rows = []
    for cost, macs_sum, density in zip(
        stats.costs.blocks, stats.block_macs_sum.tolist(), stats.layer_densities
    ):
        kept = macs_sum / stats.num_samples
        rows.append(
            {
                "block": cost.name,
                "dense_macs": cost.dense_macs,
                "mean_kept_macs": kept,
                "flops_reduction": 1 - kept / cost.dense_macs,
                "channel_density": density,
                "gate_macs": cost.gate_macs,
            }
        )
    return rows


def cost_report(
    backbone: GatedResNet,
    batches: Iterable,
    device: str = "cpu",
    max_batches: int | None = None,
    off_below: float = 0.0,
    on_above: float = 1.0,
    progress: bool = True,
) -> dict[str, object]:
    """Summary, per-layer rows, channel-usage rows and on-rates of the gated branch."""
    stats = collect_gate_statistics(backbone, batches, device, max_batches, progress)
    return {
        "summary": {
            "num_samples": stats.num_samples,
            "input_hw": list(stats.costs.input_hw),
            "dense_macs": stats.costs.dense_macs,
            "gate_macs": stats.costs.gate_macs,
            "mean_kept_macs": stats.mean_ratio * stats.costs.dense_macs,
            "flops_ratio": stats.mean_ratio,
            "flops_ratio_std": stats.std_ratio,
            "flops_reduction": stats.flops_reduction,
            "min_possible_ratio": stats.costs.min_ratio,
        },
        "layers": layer_rows(stats),
        "channel_usage": channel_usage_rows(stats, off_below, on_above),
        "on_rates": {name: rate.tolist() for name, rate in zip(stats.block_names, stats.on_rates)},
    }


def write_report(report: dict[str, object], out: Path, title: str = "") -> None:
    """Write ``cost_report.json``, ``layers.csv``, ``channel_usage.csv`` and ``.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost_report.json").write_text(json.dumps(report, indent=2))
    with open(out / "layers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(report["layers"][0]))
        writer.writeheader()
        writer.writerows(report["layers"])
    write_channel_usage(
        report["channel_usage"], out / "channel_usage.csv", out / "channel_usage.png", title
    )
