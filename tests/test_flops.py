"""MAC accounting against the paper's numbers and torch's FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from model_utils import open_all_gates
from torch.utils.flop_counter import FlopCounterMode

from dualgate_solo.models import create_backbone

# The per-block MAC table for CIFAR (34x34 after the stem):
# (block, C_in, C_out, H_b, dense MACs, MACs per active channel, downsample, gate MACs)
CIFAR_R18_TABLE = [
    ("layer1.0", 64, 64, 34, 85_229_568, 1_331_712, 0, 2_048),
    ("layer1.1", 64, 64, 34, 85_229_568, 1_331_712, 0, 2_048),
    ("layer2.0", 64, 128, 17, 66_289_664, 499_392, 2_367_488, 3_072),
    ("layer2.1", 128, 128, 17, 85_229_568, 665_856, 0, 8_192),
    ("layer3.0", 128, 256, 9, 74_317_824, 279_936, 2_654_208, 12_288),
    ("layer3.1", 256, 256, 9, 95_551_488, 373_248, 0, 32_768),
    ("layer4.0", 256, 512, 5, 91_750_400, 172_800, 3_276_800, 49_152),
    ("layer4.1", 512, 512, 5, 117_964_800, 230_400, 0, 131_072),
]


def flop_counter_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Total MACs torch counts for ``model(x)`` (FlopCounterMode reports 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.parametrize(
    "stem, size, dense_total, stem_macs",
    [
        ("cifar", 32, 703_560_448, 1_997_568),
        ("imagenet", 96, 333_103_104, 21_676_032),
        ("imagenet", 224, 1_813_561_344, 118_013_952),
    ],
)
def test_dense_totals_match_paper(stem: str, size: int, dense_total: int, stem_macs: int) -> None:
    table = create_backbone("dg_resnet18", stem=stem).cost_table((size, size))
    assert table.dense_macs == dense_total
    assert table.stem_macs == stem_macs
    assert table.gate_macs == 240_640


def test_per_block_table_matches_spec(r18_cifar) -> None:
    rows = r18_cifar.cost_table((32, 32)).as_rows()
    got = [
        (
            r["block"],
            r["c_in"],
            r["c_out"],
            r["h_out"],
            r["dense_macs"],
            r["macs_per_active_channel"],
            r["downsample_macs"],
            r["gate_macs"],
        )
        for r in rows
    ]
    assert got == CIFAR_R18_TABLE


def test_floor_ratio_cifar(r18_cifar) -> None:
    # stem + shortcuts + gates are always paid: 1.50% on CIFAR ResNet-18
    assert r18_cifar.cost_table((32, 32)).min_ratio == pytest.approx(0.014976, abs=1e-6)


@pytest.mark.parametrize(
    "name, stem, size",
    [
        ("dg_resnet18", "cifar", 32),
        ("dg_resnet18", "imagenet", 96),
        ("dg_resnet18", "imagenet", 224),
        ("dg_resnet34", "cifar", 40),
        ("dg_resnet50", "imagenet", 224),
        ("dg_resnet50", "cifar", 32),
    ],
)
@pytest.mark.parametrize("width", [64, 16])
def test_dense_macs_agree_with_flop_counter(name: str, stem: str, size: int, width: int) -> None:
    model = create_backbone(name, stem=stem, width=width, branch="dense").eval()
    x = torch.zeros(1, 3, size, size)
    assert flop_counter_macs(model, x) == model.cost_table((size, size)).dense_macs


@pytest.mark.parametrize("name", ["dg_resnet18", "dg_resnet50"])
def test_gated_all_on_macs_agree_with_flop_counter(name: str) -> None:
    """The gated branch computes every conv plus the gates: torch counts F_full + G."""
    model = open_all_gates(create_backbone(name, stem="cifar", branch="gated")).eval()
    x = torch.zeros(2, 3, 32, 32)
    out = model.forward_branch(x, "gated")
    counted = flop_counter_macs(model, x) / x.shape[0]
    assert counted == pytest.approx(float(out.macs[0]), rel=1e-12)
    assert float(out.macs[0]) == out.costs.dense_macs + out.costs.gate_macs


def test_resnet50_bottleneck_costs() -> None:
    table = create_backbone("dg_resnet50", stem="imagenet").cost_table((224, 224))
    first = table.blocks[0]
    # layer1.0: 64 -> (64, 64) -> 256 at 56x56; shortcut 64 -> 256
    hw = 56 * 56
    assert first.dense_macs == hw * (64 * 64 + 9 * 64 * 64 + 64 * 256 + 64 * 256)
    assert first.downsample_macs == hw * 64 * 256
    assert first.gated_channels == 128
    assert first.gate_macs == 64 * 16 + 16 * 128
    assert first.macs_per_active_channel is None
    assert len(table.blocks) == 16


def test_bottleneck_per_sample_macs_follow_product_rule() -> None:
    """conv1 * f1 + conv2 * f1 * f2 + conv3 * f2 + shortcut, with f the active fractions."""
    model = create_backbone("dg_resnet50", stem="cifar").eval()
    block = model.layer1[0]
    width = block.conv1.out_channels
    logits = torch.full((1, 2 * width), -1.0)
    logits[0, : width // 2] = 1.0  # f1 = 1/2
    logits[0, width : width + width // 4] = 1.0  # f2 = 1/4
    block.gate.logits = lambda u: logits.expand(u.shape[0], -1)
    x = torch.randn(3, 64, 8, 8)
    out = block(x, "gated", "layer1.0")
    c1, c2, c3 = 8 * 8 * 64 * width, 8 * 8 * 9 * width * width, 8 * 8 * width * 4 * width
    expected = c1 / 2 + c2 / 8 + c3 / 4 + out.cost.downsample_macs
    assert out.macs.tolist() == [expected] * 3


def test_basic_block_per_sample_macs_count_active_channels(r18_cifar) -> None:
    block = r18_cifar.layer2[0].eval()
    logits = torch.full((2, 128), -1.0)
    logits[0, :10] = 1.0
    logits[1, :100] = 1.0
    block.gate.logits = lambda u: logits
    out = block(torch.randn(2, 64, 34, 34), "gated", "layer2.0")
    assert out.macs.tolist() == [10 * 499_392 + 2_367_488, 100 * 499_392 + 2_367_488]


def test_width_multiplier_scales_macs_quadratically() -> None:
    full = create_backbone("dg_resnet18", stem="cifar").cost_table((32, 32))
    quarter = create_backbone("dg_resnet18", stem="cifar", width=16).cost_table((32, 32))
    stem_full, stem_quarter = full.stem_macs, quarter.stem_macs
    assert stem_quarter * 4 == stem_full  # the stem is linear in width (3 input channels)
    assert (quarter.dense_macs - stem_quarter) * 16 == full.dense_macs - stem_full
