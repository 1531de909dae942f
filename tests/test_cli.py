"""The command line: the embedded demo job and the MAC table."""

from __future__ import annotations

import csv
import json

import pytest

from dualgate_solo.cli import main


def test_demo_runs_end_to_end_and_writes_consistent_outputs(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    args = [
        "demo",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--train-size",
        "40",
        "--test-size",
        "20",
        "--proj-dim",
        "32",
        "--target-density",
        "0.1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 3 and (out / "budget.png").stat().st_size > 0
    assert summary["dense_macs"] == 703_560_448 and summary["gate_macs"] == 240_640
    floor, ceiling = 0.01497, 1 + 240_640 / 703_560_448
    assert floor <= summary["eval_flops_ratio"] <= ceiling
    assert summary["eval_flops_reduction"] == pytest.approx(1 - summary["eval_flops_ratio"])
    assert 0 <= summary["knn20_top1_dense"] <= 100 and 0 <= summary["knn20_top1_gated"] <= 100
    assert len(summary["layer_densities"]) == 8
    for row in rows:
        assert float(row["loss"]) == pytest.approx(
            float(row["vicreg_loss"]) + float(row["budget_loss"]), rel=1e-5
        )
    assert "FLOPs R." in capsys.readouterr().out


def test_demo_rejects_bad_target_density(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"target_density=1.5 is invalid"):
        main(["demo", "--target-density", "1.5", "--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []  # nothing written before the check


def test_mac_table_prints_paper_total(capsys) -> None:
    main(["mac-table", "--backbone", "dg_resnet18", "--stem", "imagenet", "--size", "224"])
    assert "dense total 1,813,561,344" in capsys.readouterr().out
