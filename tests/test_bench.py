"""The benchmarks' own arithmetic (dualgate_solo.bench): MAC counting, round-robin timing order,
timing rows and speed-ups, with hand-computed numbers. Nothing here measures speed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from dualgate_solo.bench.latency_report import CSV_FIELDS, add_speedups, row, write_csv
from dualgate_solo.bench.timing import count_macs, round_robin


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
    first = row("dense_branch", "eager", 1, [1.0, 2.0, 3.0, 4.0], dense_macs, dense_macs)
    # statistics.quantiles(n=4), exclusive method: positions 1.25 and 3.75 of 4 sorted values
    assert (first["median_ms"], first["p25_ms"], first["p75_ms"]) == (2.5, 1.25, 3.75)
    rows = [
        first,
        row("static", "eager", 1, [1.25], 25.0, dense_macs),  # theoretical 4
        row("dense_plain", "onnxruntime", 1, [2.0], dense_macs, dense_macs),
        row("static", "onnxruntime", 1, [0.5], 25.0, dense_macs),
        row("static", "compile", 1, None, 25.0, dense_macs, error="boom"),
    ]
    add_speedups(rows)
    static, onnx, failed = rows[1], rows[3], rows[4]
    assert static["theoretical_speedup"] == 4.0 and static["realized_speedup"] == 2.0
    assert static["realized_over_theoretical"] == 0.5
    # ONNX Runtime rows: against the eager dense branch, and against dense_plain in ORT
    assert onnx["realized_speedup"] == 5.0 and onnx["realized_speedup_same_runtime"] == 4.0
    assert onnx["realized_over_theoretical"] == 1.0
    assert failed["realized_speedup"] is None and failed["repeats"] == 0


def test_latency_csv_has_the_published_columns(tmp_path) -> None:
    rows = [row("dense_branch", "eager", 64, [3.0, 5.0], 10.0, 10.0)]
    write_csv(rows, tmp_path / "latency.csv")
    written = list(csv.DictReader((tmp_path / "latency.csv").open()))
    assert tuple(written[0]) == CSV_FIELDS
    assert written[0]["median_ms"] == "4.0" and written[0]["ms_per_image"] == "0.0625"
    published = Path(__file__).resolve().parents[1] / "results" / "latency_trained_w16"
    with open(published / "latency.csv") as f:
        assert tuple(next(csv.reader(f))) == CSV_FIELDS


@pytest.mark.parametrize("quick, repeats", [(True, {1: (3, 10), 64: (1, 2)}), (False, None)])
def test_quick_settings(quick, repeats) -> None:
    from dualgate_solo.bench.latency import Settings, build_parser

    settings = Settings.from_args(build_parser().parse_args(["--quick"] if quick else []))
    assert settings.use_compile is not quick
    assert settings.train_steps == (5 if quick else 60)
    assert settings.repeats == (repeats or {1: (10, 40), 64: (2, 9)})
