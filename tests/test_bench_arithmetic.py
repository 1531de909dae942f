"""The arithmetic of the training-step benchmark and of the export-accuracy check, by hand."""

from __future__ import annotations

import pytest

from experiments.bench.export_accuracy import _subset, add_comparisons
from experiments.bench.step import ratios_to_baseline, step_times


def test_step_times_are_the_upper_median_and_the_minimum() -> None:
    assert step_times([0.30, 0.10, 0.20]) == {"median_step_s": 0.20, "min_step_s": 0.10}
    # an even count takes element n // 2 of the sorted times: 0.4 of [0.1, 0.2, 0.4, 0.8]
    assert step_times([0.8, 0.2, 0.4, 0.1]) == {"median_step_s": 0.4, "min_step_s": 0.1}
    assert step_times([0.5]) == {"median_step_s": 0.5, "min_step_s": 0.5}


def test_ratios_to_the_first_row_by_hand() -> None:
    rows = [
        {"method": "vicreg", "median_step_s": 0.50, "peak_mem_mib": 400.0,
         "saved_for_backward_mib": 200.0},
        {"method": "vicreg_dual_gating", "median_step_s": 0.55, "peak_mem_mib": 420.0,
         "saved_for_backward_mib": 250.0},
        {"method": "sacl_xd", "median_step_s": 1.25, "peak_mem_mib": 300.0,
         "saved_for_backward_mib": 50.0},
    ]  # fmt: skip
    ratios = ratios_to_baseline(rows)
    assert list(ratios) == ["vicreg_dual_gating", "sacl_xd"]  # the baseline has no ratio
    assert ratios["vicreg_dual_gating"] == pytest.approx(
        {"time_ratio": 1.10, "memory_ratio": 1.05, "saved_for_backward_ratio": 1.25}
    )
    assert ratios["sacl_xd"] == pytest.approx(
        {"time_ratio": 2.5, "memory_ratio": 0.75, "saved_for_backward_ratio": 0.25}
    )


def test_export_accuracy_kept_ratios_and_deltas_by_hand() -> None:
    rows = [
        {"network": "dense branch", "knn_top1_k20": 80.0, "macs_per_image": 1000.0},
        {"network": "gated branch", "knn_top1_k20": 78.5, "macs_per_image": 400.0},
        {"network": "static export", "knn_top1_k20": 70.0, "macs_per_image": 550.0},
    ]
    assert add_comparisons(rows, 1000.0) is rows
    assert [r["kept_ratio"] for r in rows] == [1.0, 0.4, 0.55]
    assert [r["delta_vs_gated_k20"] for r in rows] == [1.5, 0.0, -8.5]


def test_export_accuracy_subsets_are_fixed_by_the_seed() -> None:
    split = list(range(10))
    assert _subset(split, 0, 0) is split and _subset(split, 10, 0) is split  # all images
    first, again, other = _subset(split, 4, 0), _subset(split, 4, 0), _subset(split, 4, 1)
    assert len(first) == 4 and first.indices == again.indices != other.indices
    assert len(set(first.indices)) == 4 and set(first.indices) <= set(split)
