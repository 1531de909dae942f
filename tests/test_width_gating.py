"""``gate_mode: width``: validation, prefix masks, sampling, gradients, MACs, checkpoint guards."""

from __future__ import annotations

import math

import pytest
import torch
from model_utils import force_width_choice

from dualgate_solo.gated.budget import BudgetOptions, budget_loss
from dualgate_solo.gated.layers import WidthGate, check_width_choices, prefix_widths
from dualgate_solo.gated.objective import gated_budget
from dualgate_solo.models import create_backbone
from dualgate_solo.validation import UsageError

# (backbone, width): cheap networks of every depth
NETWORKS = [("dg_resnet18", 8), ("dg_resnet34", 4), ("dg_resnet50", 4)]


@pytest.mark.parametrize(
    "choices",
    [[], [0.5, 0.25, 1.0], [0.5, 0.5, 1.0], [0.0, 1.0], [-0.5, 1.0], [0.5, 1.5], [0.25, 0.5]],
    ids=["empty", "unsorted", "duplicate", "zero", "negative", "above-one", "no-full-width"],
)
def test_bad_width_choices_raise_one_line_naming_the_option(choices) -> None:
    with pytest.raises(UsageError) as error:
        create_backbone("dg_resnet18", width=4, gate_mode="width", width_choices=choices)
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message
    assert message.startswith(f"width_choices={choices!r} is invalid; allowed values: ")
    assert "ends with 1.0" in message


@pytest.mark.parametrize("value", ["0.5,1.0", 0.5, [True, 1.0], [None, 1.0]])
def test_width_choices_that_are_no_list_of_numbers_are_refused(value) -> None:
    with pytest.raises(UsageError, match=r"^width_choices="):
        check_width_choices(value)


def test_width_choices_in_channel_mode_and_unknown_modes_are_refused() -> None:
    with pytest.raises(UsageError, match=r"^width_choices=\[0.5, 1.0\] is invalid with gate_mode"):
        create_backbone("dg_resnet18", width=4, width_choices=[0.5, 1.0])
    with pytest.raises(UsageError, match=r"^gate_mode='depth' is invalid; allowed values"):
        create_backbone("dg_resnet18", width=4, gate_mode="depth")


def test_channel_mode_state_dict_is_unchanged() -> None:
    default = create_backbone("dg_resnet18", width=4).state_dict()
    explicit = create_backbone("dg_resnet18", width=4, gate_mode="channel").state_dict()
    width = create_backbone("dg_resnet18", width=4, gate_mode="width").state_dict()
    assert {k: v.shape for k, v in default.items()} == {k: v.shape for k, v in explicit.items()}
    assert "gate_width_choices" not in default
    assert set(width) - set(default) == {"gate_width_choices"}
    assert width["layer3.0.gate.expand.weight"].shape[0] == 4  # one logit per choice
    assert default["layer3.0.gate.expand.weight"].shape[0] == 16  # one logit per channel


@pytest.mark.parametrize(
    "channels, widths",
    [
        (8, (2, 4, 6, 8)),
        (64, (16, 32, 48, 64)),
        (6, (2, 3, 5, 6)),
        (2, (1, 1, 2, 2)),
        (1, (1,) * 4),
    ],
)
def test_prefix_widths_round_half_up_and_keep_one_channel(channels, widths) -> None:
    assert prefix_widths((0.25, 0.5, 0.75, 1.0), channels) == widths


def _assert_prefix_masks(model, out) -> None:
    for (_, block), mask in zip(model.named_blocks(), out.masks):
        assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}
        groups = mask.detach().view(mask.shape[0], -1, block.conv1.out_channels)
        counts = groups.sum(2)
        assert (counts == counts[:, :1]).all()  # a Bottleneck's two inner widths share the choice
        for n in counts[:, 0].tolist():
            assert int(n) in block.gate.widths
        expected = torch.arange(groups.shape[2]) < counts[..., None]
        assert torch.equal(groups, expected.to(groups.dtype))


@pytest.mark.parametrize("name, width", NETWORKS)
@pytest.mark.parametrize("training", [True, False])
def test_masks_are_exact_prefixes_of_a_listed_width(name, width, training) -> None:
    model = create_backbone(name, width=width, gate_mode="width").train(training)
    with torch.no_grad():
        for _, block in model.named_blocks():
            block.gate.expand.weight.normal_(0.0, 3.0)  # spread the choices
    x = torch.randn(16, 3, 32, 32) + 3 * torch.randn(16, 3, 1, 1)  # images of distinct colours
    out = model.forward_branch(x, "gated")
    _assert_prefix_masks(model, out)
    assert any(len(m.sum(1).unique()) > 1 for m in out.masks)  # inputs chose different widths


def test_training_sample_is_gumbel_max_distributed() -> None:
    """The hard sample is argmax(logits + Gumbel noise): choice j with probability softmax_j."""
    gate = WidthGate(4, 8, (0.25, 0.5, 0.75, 1.0), tau=2 / 3).train()
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = probs.log().expand(40_000, 4)
    mask = gate.sample(logits)
    counts = torch.bincount((mask.sum(1) / 2 - 1).long(), minlength=4).double()
    assert torch.allclose(counts / counts.sum(), probs.double(), atol=0.01)
    assert torch.equal(gate.eval().sample(logits[:1]), gate.prefix[3:4])  # eval: argmax


@pytest.mark.parametrize("name, width", NETWORKS)
def test_gradients_reach_every_gate_parameter(name, width) -> None:
    model = create_backbone(name, width=width, gate_mode="width").train()
    out = model.forward_branch(torch.randn(4, 3, 32, 32), "gated")
    terms = budget_loss(out.ratio, out.masks, BudgetOptions(target_density=0.3), p=1.0)
    (out.feats.sum() + terms.loss).backward()
    gates = {n: p for n, p in model.named_parameters() if ".gate." in n}
    assert gates and all(p.grad is not None and p.grad.abs().sum() > 0 for p in gates.values())


def test_deterministic_masks_are_the_eval_prefixes_with_a_gradient() -> None:
    """``ratio_source: deterministic`` costs the argmax prefixes, differentiably."""
    model = create_backbone("dg_resnet18", width=8, gate_mode="width").train()
    x = torch.randn(3, 3, 32, 32)
    out = model.forward_branch(x, "gated")
    masks = model.deterministic_masks(out)
    for (_, block), mask, logits in zip(model.named_blocks(), masks, out.logits):
        assert torch.equal(mask.detach(), block.gate.prefix[logits.argmax(1)])
    ratio = model.ratio_for_masks(out, masks)
    ratio.mean().backward()
    assert model.layer1[0].gate.expand.weight.grad.abs().sum() > 0
    thresholded = tuple((logits >= 0).float() for logits in out.logits)
    with pytest.raises(ValueError, match=r"mask of block layer1.0 has 4 channels; the block"):
        model.ratio_for_masks(out, thresholded)


def test_tracked_budget_runs_in_width_mode() -> None:
    model = create_backbone("dg_resnet18", width=8, gate_mode="width").train()
    out = model.forward_branch(torch.randn(2, 3, 32, 32), "gated")
    config = BudgetOptions(ratio_source="deterministic", lambda_flops=50.0, multiplier_lr=0.05)
    terms = gated_budget(model, out, config, p=1.0)
    assert math.isfinite(float(terms.loss))


@pytest.mark.parametrize("choice", range(4))
def test_resnet18_prefix_macs_match_the_hand_count(choice) -> None:
    """k active channels of a BasicBlock cost k * (C_in + C) * 9 * H * W plus the shortcut."""
    model = force_width_choice(
        create_backbone("dg_resnet18", width=8, gate_mode="width").eval(), choice
    )
    out = model.forward_branch(torch.randn(2, 3, 32, 32), "gated")
    stages = [(8, 8, 34), (8, 8, 34), (8, 16, 17), (16, 16, 17)]
    stages += [(16, 32, 9), (32, 32, 9), (32, 64, 5), (64, 64, 5)]
    expected = 0
    for c_in, c, hw in stages:
        k = prefix_widths((0.25, 0.5, 0.75, 1.0), c)[choice]
        shortcut = c_in * c * hw * hw if c_in != c else 0
        gate = c_in * max(1, c_in // 4) + max(1, c_in // 4) * 4
        expected += k * (c_in + c) * 9 * hw * hw + shortcut + gate
    expected += 3 * 8 * 9 * 34 * 34  # stem
    assert out.macs.tolist() == [float(expected)] * 2


def test_bottleneck_prefix_macs_use_one_width_for_both_inner_convs() -> None:
    model = force_width_choice(create_backbone("dg_resnet50", width=8, gate_mode="width").eval(), 1)
    block = model.layer1[0]
    out = block(torch.randn(2, 8, 34, 34), "gated", "layer1.0")
    hw, k = 34 * 34, 4  # width 8, choice 0.5
    expected = hw * (8 * k + 9 * k * k + k * 32 + 8 * 32)
    assert out.macs.tolist() == [float(expected)] * 2


def test_state_dicts_of_the_other_gate_mode_are_refused_in_one_line() -> None:
    width = create_backbone("dg_resnet18", width=4, gate_mode="width")
    channel = create_backbone("dg_resnet18", width=4)
    with pytest.raises(UsageError) as error:
        channel.load_state_dict(width.state_dict(), strict=False)
    assert str(error.value) == (
        "checkpoint does not match the backbone: the checkpoint was trained with "
        "backbone.kwargs.gate_mode='width', the backbone is built with "
        "backbone.kwargs.gate_mode='channel'; set backbone.kwargs.gate_mode=width "
        "backbone.kwargs.width_choices=[0.25,0.5,0.75,1.0]"
    )
    with pytest.raises(UsageError) as error:
        width.load_state_dict(channel.state_dict(), strict=False)
    assert str(error.value) == (
        "checkpoint does not match the backbone: the checkpoint was trained with "
        "backbone.kwargs.gate_mode='channel', the backbone is built with "
        "backbone.kwargs.gate_mode='width'; set backbone.kwargs.gate_mode=channel"
    )


@pytest.mark.parametrize(
    ("config_kwargs", "fix"),
    [
        ({"width"}, "+backbone.kwargs.gate_mode=width +backbone.kwargs.width_choices="),
        ({"width", "gate_mode"}, "backbone.kwargs.gate_mode=width +backbone.kwargs.width_choices="),
    ],
)
def test_the_suggested_fix_adds_keys_the_runs_cfg_lacks_with_a_plus(config_kwargs, fix) -> None:
    """solo-learn's factory records the ``backbone.kwargs`` a module was built from: a key the
    cfg lacks must be added with Hydra's ``+`` (a plain override of an absent key is refused)."""
    width = create_backbone("dg_resnet18", width=4, gate_mode="width")
    channel = create_backbone("dg_resnet18", width=4)
    channel.config_kwargs = frozenset(config_kwargs)
    with pytest.raises(UsageError, match="; set ") as error:
        channel.load_state_dict(width.state_dict(), strict=False)
    assert str(error.value).split("; set ")[1] == f"{fix}[0.25,0.5,0.75,1.0]"


def test_other_width_choices_are_refused_even_with_equal_shapes() -> None:
    saved = create_backbone("dg_resnet18", width=4, gate_mode="width", width_choices=[0.5, 1.0])
    other = create_backbone("dg_resnet18", width=4, gate_mode="width", width_choices=[0.4, 1])
    with pytest.raises(UsageError) as error:
        other.load_state_dict(saved.state_dict())
    message = str(error.value)
    assert "\n" not in message and message.endswith("set backbone.kwargs.width_choices=[0.5,1.0]")
    other = create_backbone("dg_resnet18", width=4, gate_mode="width", width_choices=[0.5, 1])
    other.load_state_dict(saved.state_dict())  # same choices: loads


def test_non_gated_backbones_name_the_width_settings() -> None:
    """solo-learn's own backbones refuse a width-mode checkpoint with the settings to use."""
    torchvision = pytest.importorskip("torchvision")
    from dualgate_solo.solo_adapter.load_guard import refuse_gated_state

    state = create_backbone("dg_resnet18", width=4, gate_mode="width").state_dict()
    with pytest.raises(UsageError) as error:
        refuse_gated_state("resnet18", torchvision.models.resnet18(), state, "")
    message = str(error.value)
    assert "\n" not in message
    assert "backbone.kwargs.gate_mode=width backbone.kwargs.width_choices=[0.25,0.5,0.75,1.0]" in (
        message
    )


def test_timm_builds_every_depth_in_width_mode() -> None:
    timm = pytest.importorskip("timm")
    for name, width in NETWORKS:
        model = timm.create_model(name, width=width, gate_mode="width", width_choices=[0.5, 1.0])
        assert model.gate_mode == "width" and model.width_choices == (0.5, 1.0)


def test_channel_exports_refuse_a_width_gated_backbone_in_one_line() -> None:
    """Static, hybrid and dynamic exports keep single channels; a width gate chooses prefixes, so
    they point to the routed executor. The dense network still exports."""
    from dualgate_solo.export import DynamicGatedResNet, full_width_blocks, make_plan
    from dualgate_solo.gated.gate_stats import collect_gate_statistics

    model = create_backbone("dg_resnet18", width=8, gate_mode="width").eval()
    with pytest.raises(UsageError) as error:
        DynamicGatedResNet(model)
    assert "\n" not in str(error.value) and "RoutedResNet" in str(error.value)
    assert "gate_mode='width'" in str(error.value)
    stats = collect_gate_statistics(model, [torch.randn(4, 3, 32, 32)], progress=False)
    for policy in ("static", "hybrid"):
        with pytest.raises(UsageError, match="RoutedResNet"):
            make_plan(model, stats, policy)
    dense = full_width_blocks(model, gated=False)
    assert [b.widths for b in dense][:2] == [[8], [8]]


def test_a_plain_width_mode_state_dict_loads_with_its_gate_mode_read_off_it(tmp_path) -> None:
    from dualgate_solo.checkpoint import load_backbone

    choices = (0.5, 1.0)
    model = create_backbone("dg_resnet18", width=8, gate_mode="width", width_choices=choices)
    model.trained_steps[1] = 5  # the gated branch was trained
    torch.save(model.state_dict(), tmp_path / "width.pt")
    loaded = load_backbone(tmp_path / "width.pt", "dg_resnet18", {"width": 8}).backbone
    assert (loaded.gate_mode, tuple(loaded.width_choices)) == ("width", choices)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.eval()(x), model.eval().forward_branch(x, "gated").feats)


def test_a_gate_mode_is_one_object_read_by_backbone_checkpoint_and_exports() -> None:
    from dualgate_solo.gated.layers import CHANNEL_GATES, GateMode, WidthGate, gate_mode_of

    width = GateMode.parse("width", [0.5, 1.0])
    assert (width.name, width.width_choices, width.routed) == ("width", (0.5, 1.0), True)
    assert GateMode.parse("width").width_choices == (0.25, 0.5, 0.75, 1.0)
    assert GateMode.parse() == CHANNEL_GATES and not CHANNEL_GATES.routed
    assert width.backbone_kwargs() == {"gate_mode": "width", "width_choices": [0.5, 1.0]}
    assert CHANNEL_GATES.backbone_kwargs() == {} and CHANNEL_GATES.describe() == ""
    assert isinstance(width.make_gate(8, 4, 1, 4, 2 / 3), WidthGate)
    assert type(CHANNEL_GATES.make_gate(8, 4, 1, 4, 2 / 3)).__name__ == "ChannelGate"
    model = create_backbone("dg_resnet18", width=4, **width.backbone_kwargs())
    assert gate_mode_of(model) == width and gate_mode_of(torch.nn.Linear(1, 1)) == CHANNEL_GATES
    assert model.extra_repr().endswith(", gate_mode='width', width_choices=[0.5, 1.0]")
    with pytest.raises(UsageError, match=r"^gate_mode='width' is invalid for a static export"):
        width.require(routed=False, executor="a static export")
    with pytest.raises(UsageError, match=r"^gate_mode='channel' is invalid for routed execution"):
        CHANNEL_GATES.require(routed=True, executor="routed execution")
    with pytest.raises(UsageError, match=r"^gate_mode='x' is invalid"):
        GateMode.parse("x")
