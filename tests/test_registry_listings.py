"""The lab's listings (grid runs and variants, the step benchmark's entries, the family plot's
labels and styles) come from the method registry: a method added by one registry entry plus its
own module appears in all of them, and no listing names the methods by hand."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.method_registry import METHODS, MethodSpec, VICRegOptions
from experiments.bench.family import family_label, family_style
from experiments.bench.step import compared, method_overrides
from experiments.runner import cli
from experiments.runner.protocols import Run, grid, method_variants, takes_variant

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ToyOptions:
    """The toy method's own option (its ``method_kwargs`` beyond VICReg and the budget)."""

    toy_weight: float = 0.0


TOY = MethodSpec(
    name="toy_gating",
    display="Toy",
    summary="a toy two-branch method, registered by the test alone",
    solo_class=f"{__name__}:ToyOptions",
    branches=("dense", "gated"),
    dual_bn_scopes=("block",),
    kwargs_types=(VICRegOptions, BudgetOptions, ToyOptions),
)


@pytest.fixture
def toy(monkeypatch) -> str:
    monkeypatch.setitem(METHODS, TOY.name, TOY)
    return TOY.name


def test_a_registered_method_is_in_the_runner_listings(toy) -> None:
    args = cli.build_parser().parse_args(
        ["--protocol", "smoke", "--train", "t", "--val", "v", "--out", "o", "--methods", toy]
    )
    runs = grid(args.methods, [0.3], ["paper", "tracked", "paper_dense_pair", "symmetric"])
    # the budget variants apply; Dual-Gating's own options (dense pair, symmetric) do not
    assert [r.name for r in runs] == ["toy_gating-td0.3-paper", "toy_gating-td0.3-tracked"]
    assert Run.from_name("toy_gating-td0.3-tracked") == runs[1]
    assert runs[0].gated and runs[0].branches == ("dense", "gated")
    assert method_variants(toy) == ()


def test_a_registered_method_is_in_the_benchmark_listings(toy) -> None:
    assert toy in compared() and method_overrides(toy) == []
    assert family_label(toy, "dense_plain") == "Toy dense"
    assert family_label(toy, "gated_masked") == "Toy gated (masked)"
    assert family_style(toy, "static_export") == (f"C{len(METHODS) - 1}", "^", False)


def test_variants_follow_the_options_each_method_has() -> None:
    own = (
        "tracked_symmetric",
        "paper_dense_pair",
        "paper_dense_pair_sg",
        "paper_dense_pair_sg_s0",
        "symmetric",
    )
    assert method_variants("vicreg_dual_gating") == (*own, "paper_gate_warmup")
    assert method_variants("vicreg_gating") == ()
    assert takes_variant("vicreg_gating", "tracked") and takes_variant("vicreg_gating", "paper")
    assert not takes_variant("vicreg_gating", "paper_dense_pair")
    entries = compared()
    assert entries[:2] == ("vicreg", "vicreg_dual_gating")
    # the gate warm-up's steps are the paper's and a dense pair's: no entry of its own
    assert [e for e in entries if "+" in e] == [f"vicreg_dual_gating+{v}" for v in own]
    assert method_overrides("vicreg_dual_gating+symmetric") == ["method_kwargs.symmetric=True"]


def test_family_labels_reproduce_the_committed_family_table() -> None:
    with open(ROOT / "results/family_cpu/family.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 10
    for row in rows:
        run = Run.from_name(row["run"])
        assert family_label(run.method, row["kind"], run.width) == row["family"], row["run"]
