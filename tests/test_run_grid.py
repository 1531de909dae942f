"""The grid runner's own logic (scripts/run_grid.py): run order, data subsets, table, publishing.

Its solo-learn stages run in tests/integration/test_solo_scripts.py.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("run_grid", REPO / "scripts" / "run_grid.py")
run_grid = importlib.util.module_from_spec(spec)
sys.modules["run_grid"] = run_grid  # dataclasses look their module up
spec.loader.exec_module(run_grid)


def test_grid_has_every_method_budget_and_variant_once_with_the_budget_option_on_dual_only() -> (
    None
):
    runs = run_grid.grid(
        ["vicreg", "vicreg_gating", "vicreg_dual_gating"], [0.1, 0.3, 0.5], ["paper", "tracked"]
    )
    names = [r.name for r in runs]
    assert len(names) == len(set(names)) == 1 + 3 + 6
    assert names[0] == "vicreg_dual_gating-td0.1-paper" and names[-1] == "vicreg-paper"
    assert not any(r.method == "vicreg_gating" and r.variant == "tracked" for r in runs)
    tracked = next(r for r in runs if r.variant == "tracked")
    assert tracked.overrides() == [
        f"method_kwargs.target_density={tracked.target_density}",
        *run_grid.TRACKED,
    ]
    assert runs[0].overrides() == ["method_kwargs.target_density=0.1"]
    assert [r.branches for r in runs[-2:]] == [("gated",), ("dense",)]


def _image_folder(root, per_class):
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            (root / cls / f"{i:03d}.jpg").write_bytes(b"x")
    return root


def test_subset_folder_is_seeded_per_class_and_idempotent(tmp_path) -> None:
    source = _image_folder(tmp_path / "src", 10)
    first = run_grid.subset_folder(source, tmp_path / "a", 4)
    again = run_grid.subset_folder(source, tmp_path / "a", 4)
    other = run_grid.subset_folder(source, tmp_path / "b", 4)
    listing = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))  # noqa: E731
    assert listing(first) == listing(again) == listing(other)
    assert [len(list((first / c).iterdir())) for c in ("cat", "dog")] == [4, 4]
    assert all(p.is_symlink() and p.resolve().parent.parent == source for p in first.rglob("*.jpg"))
    with pytest.raises(SystemExit, match="has 10 images, fewer than the 11"):
        run_grid.subset_folder(source, tmp_path / "c", 11)


def test_table_plot_and_publish(tmp_path) -> None:
    rows = [
        {
            "method": "vicreg_dual_gating",
            "variant": "paper",
            "t_d": 0.1,
            "branch": "gated",
            "linear_top1": 41.0,
            "knn_top1_k1": 30.5,
            "knn_top1_k20": 35.25,
            "flops_reduction_pct": 81.5,
        },
        {
            "method": "vicreg",
            "variant": "paper",
            "t_d": "",
            "branch": "dense",
            "linear_top1": 44.0,
            "knn_top1_k1": 33.0,
            "knn_top1_k20": 38.0,
            "flops_reduction_pct": 0.0,
        },
    ]
    out = tmp_path / "out"
    run_dir = out / "runs" / "vicreg_dual_gating-td0.1-paper"
    (run_dir / "cost").mkdir(parents=True)
    (run_dir / "cost" / "channel_usage.png").write_bytes(b"png")
    (run_dir / "linear-gated.json").write_text(json.dumps({"linear_top1": 41.0}))
    (run_dir / "pretrain" / "trained_models").mkdir(parents=True)
    (run_dir / "pretrain" / "trained_models" / "x.ckpt").write_bytes(b"ckpt")
    (out / "provenance.json").write_text("{}")
    run_grid.write_table(rows, out, "title")
    assert (
        "| vicreg_dual_gating | paper | 0.1 | gated | 41.00 | 30.50 | 35.25 | 81.50 % |"
        in (out / "table.md").read_text()
    )
    assert list(csv.DictReader((out / "table.csv").open()))[1]["linear_top1"] == "44.0"
    assert (out / "accuracy_vs_flops.png").stat().st_size > 1000
    run_grid.publish(out, tmp_path / "pub")
    published = sorted(
        str(p.relative_to(tmp_path / "pub")) for p in (tmp_path / "pub").rglob("*") if p.is_file()
    )
    assert published == [
        "accuracy_vs_flops.png",
        "provenance.json",
        "runs/vicreg_dual_gating-td0.1-paper/cost/channel_usage.png",
        "runs/vicreg_dual_gating-td0.1-paper/linear-gated.json",
        "table.csv",
        "table.md",
    ]
