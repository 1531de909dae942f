"""The routed executor of width-gated backbones: same features, MACs executed = MACs accounted."""

from __future__ import annotations

import pytest
import torch
from model_utils import (
    force_width_choice,
    mix_width_choices,
    randomize_batch_norms,
    varied_images,
)
from torch.utils.flop_counter import FlopCounterMode

from dualgate_solo.export import RoutedResNet
from dualgate_solo.gated.layers import prefix_widths
from dualgate_solo.models import create_backbone
from dualgate_solo.validation import UsageError

NETWORKS = [("dg_resnet18", 8), ("dg_resnet34", 4), ("dg_resnet50", 8)]
CHOICES = (0.25, 0.5, 0.75, 1.0)


def _width_model(name: str, width: int):
    model = create_backbone(name, width=width, gate_mode="width", dual_bn_scope="backbone")
    return randomize_batch_norms(model).eval()


def _executed_macs(module, x: torch.Tensor) -> int:
    """MACs torch counts for ``module(x)`` over the whole batch (2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def _check(model, routed, x: torch.Tensor) -> None:
    """Features to 1e-5, the same choices, and executed MACs == the per-sample accounting."""
    out = model.forward_branch(x, "gated")
    feats, choices = routed.forward_choices(x)
    assert torch.allclose(feats, out.feats, atol=1e-5, rtol=1e-5)
    for (_, block), mask, choice in zip(model.named_blocks(), out.masks, choices):
        assert torch.equal(mask, block.gate.prefix[choice])
    assert _executed_macs(routed, x) == out.macs.sum().item()


@pytest.mark.parametrize("name, width", NETWORKS)
@pytest.mark.parametrize("choice", range(len(CHOICES)))
def test_forced_choices_match_the_masked_branch(name, width, choice) -> None:
    model = force_width_choice(_width_model(name, width), choice)
    routed = RoutedResNet(model)
    for batch in (1, 3):
        _check(model, routed, varied_images(batch))


@pytest.mark.parametrize("name, width", NETWORKS)
def test_mixed_batches_match_the_masked_branch(name, width) -> None:
    model = mix_width_choices(_width_model(name, width))
    routed = RoutedResNet(model)
    x = varied_images(12)
    _, choices = routed.forward_choices(x)
    assert any(len(c.unique()) > 1 for c in choices)  # some block splits the batch into groups
    _check(model, routed, x)
    for i in (0, 5):  # batch 1 runs one image's slices
        _check(model, routed, x[i : i + 1])


def test_prefix_accounting_matches_the_hand_count_and_the_executed_macs() -> None:
    """ResNet-18, width 8, every block at choice 0.5: the masked branch's MAC accounting is
    stem + sum_b (k_b (C_in + C) 9 HW + shortcut + gate), and the routed run executes exactly that.
    """
    model = force_width_choice(_width_model("dg_resnet18", 8), 1)
    x = varied_images(2)
    stages = [(8, 8, 34), (8, 8, 34), (8, 16, 17), (16, 16, 17)]
    stages += [(16, 32, 9), (32, 32, 9), (32, 64, 5), (64, 64, 5)]
    per_image = 3 * 8 * 9 * 34 * 34
    for c_in, c, hw in stages:
        hidden = max(1, c_in // 4)
        shortcut = c_in * c * hw * hw if c_in != c else 0
        per_image += (c // 2) * (c_in + c) * 9 * hw * hw + shortcut + c_in * hidden + hidden * 4
    assert model.forward_branch(x, "gated").macs.tolist() == [float(per_image)] * 2
    assert _executed_macs(RoutedResNet(model), x) == 2 * per_image


def test_torchscript_runs_the_same_routes() -> None:
    model = mix_width_choices(_width_model("dg_resnet18", 8))
    routed = RoutedResNet(model)
    scripted = torch.jit.script(routed)
    x = varied_images(6)
    assert torch.equal(scripted(x), routed(x))
    assert torch.equal(scripted(x[:1]), routed(x[:1]))


@pytest.mark.parametrize("name, width", [("dg_resnet18", 8), ("dg_resnet50", 4)])
def test_extra_parameter_bytes_count_the_narrower_slices(name, width) -> None:
    """Per block and choice with k < C: folded conv weights and biases, float32."""
    model = _width_model(name, width)
    expected = 0
    for _, block in model.named_blocks():
        c_in, inner = block.conv1.in_channels, block.conv1.out_channels
        for k in prefix_widths(CHOICES, inner):
            if k == inner:
                continue
            if name == "dg_resnet18":
                c_out = block.conv2.out_channels
                expected += 4 * (k * c_in * 9 + k + c_out * k * 9 + c_out)
            else:
                c_out = block.conv3.out_channels
                expected += 4 * (k * c_in + k + k * k * 9 + k + c_out * k + c_out)
    routed = RoutedResNet(model)
    assert routed.extra_parameter_bytes == expected
    assert routed.parameter_bytes > expected


def test_channel_mode_backbones_are_refused() -> None:
    with pytest.raises(UsageError, match=r"^gate_mode='channel' is invalid for routed execution"):
        RoutedResNet(create_backbone("dg_resnet18", width=4))


@pytest.mark.parametrize("name, width", [("dg_resnet18", 8), ("dg_resnet50", 8)])
def test_mean_width_plans_keep_the_mean_active_prefix(name, width) -> None:
    """All inputs at choice 1: the mean-width network is that width's plain network (same features
    and MACs as the routed run); half the inputs at 1/4 and half at 3/4 of a 8-channel block
    average 4 channels."""
    from dualgate_solo.export import copy_to_pruned, fold_network
    from dualgate_solo.export.routed import mean_width_plans
    from dualgate_solo.gated.gate_stats import collect_gate_statistics

    model = force_width_choice(_width_model(name, width), 1)
    x = varied_images(4)
    stats = collect_gate_statistics(model, [x], progress=False)
    plans = mean_width_plans(model, stats)
    assert [p.widths for p in plans] == [
        [b.gate.widths[1]] * len(p.group_sizes) for p, (_, b) in zip(plans, model.named_blocks())
    ]
    plain = fold_network(copy_to_pruned(model, plans, "gated")).eval()
    routed = RoutedResNet(model)
    assert torch.allclose(plain(x), routed(x), atol=1e-5)
    routers = [block.router for block in routed.blocks]  # 1x1 convs on pooled [B, C, 1, 1]
    gate_macs = x.shape[0] * sum(r.reduce.weight.numel() + r.expand.weight.numel() for r in routers)
    assert _executed_macs(routed, x) == _executed_macs(plain, x) + gate_macs
    if name == "dg_resnet18":  # layer1.0 (8 channels), 2 images at widths 2 and 6 -> 4 channels
        stats.on_counts[0] = torch.tensor([2, 2, 1, 1, 1, 1, 0, 0])
        stats.num_samples = 2
        assert mean_width_plans(model, stats)[0].widths == [4]
