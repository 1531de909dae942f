"""The slimmable family's core without solo-learn: backbone, export, channel order, losses,
objectives."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.method_registry import VICRegOptions, get_method
from dualgate_solo.models import SlimResNet, create_backbone
from dualgate_solo.slimmable.channel_order import order_channels_by_l1
from dualgate_solo.slimmable.export import export_width, width_spec
from dualgate_solo.slimmable.heads import SlimMLP
from dualgate_solo.slimmable.layers import check_width_list, scaled_channels
from dualgate_solo.slimmable.losses import (
    barlow_twins_loss,
    cross_distillation_loss,
    embedding_distillation,
    similarity_distillation,
    slimclr_loss_weights,
)
from dualgate_solo.slimmable.objective import (
    frozen_pass,
    sacl_xd_objective,
    slimclr_vicreg_objective,
)
from dualgate_solo.slimmable.options import BarlowOptions, SACLOptions, SlimCLROptions
from dualgate_solo.validation import UsageError


def _randomise_norms(model: torch.nn.Module) -> None:
    """Non-trivial BN parameters and statistics, so copies and permutations are tested."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen)
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


@pytest.mark.parametrize("name", ["slim_resnet18", "slim_resnet50"])
def test_each_width_equals_a_plain_resnet_with_those_channels(name) -> None:
    torch.manual_seed(0)
    model = create_backbone(name, width=8)
    _randomise_norms(model)
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    for w in model.widths:
        plain = export_width(model, w)
        spec = width_spec(model, w)
        assert spec["width"] == scaled_channels(8, w)
        assert plain.num_features == model.features_at(w)
        torch.testing.assert_close(plain(x), model.forward_width(x, w).feats, atol=1e-5, rtol=1e-5)
        assert (
            sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in model.parameters())
            or w == 1.0
        )


@pytest.mark.parametrize("name", ["slim_resnet18", "slim_resnet50"])
def test_macs_per_width_equal_flop_counter_mode(name) -> None:
    model = create_backbone(name, width=8, stem="imagenet").eval()
    x = torch.zeros(1, 3, 64, 64)
    for w in model.widths:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = model.forward_width(x, w)
        assert out.macs == counter.get_total_flops() // 2 == model.macs_at(w, (64, 64))


def test_full_width_macs_equal_the_gated_backbones_dense_macs() -> None:
    slim = create_backbone("slim_resnet18", width=16)
    gated = create_backbone("dg_resnet18", width=16)
    assert slim.macs_at(1.0, (32, 32)) == gated.cost_table((32, 32)).dense_macs


def test_training_one_width_leaves_every_other_widths_bn_unchanged() -> None:
    torch.manual_seed(0)
    model = create_backbone("slim_resnet18", width=8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model.forward_width(torch.randn(4, 3, 32, 32), 0.5)
    out.feats.sum().backward()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    index = model.width_index(0.5)
    bn_keys = {k for k in changed if ".bns." in k}
    assert bn_keys and all(f".bns.{index}." in k for k in bn_keys)
    for name, p in model.named_parameters():
        if ".bns." in name and f".bns.{index}." not in name:
            assert p.grad is None, name
    assert model.trained_steps.tolist() == [0, 0, 1, 0]


def test_state_dict_saved_at_one_width_loads_strictly_at_another() -> None:
    torch.manual_seed(0)
    trained = create_backbone("slim_resnet18", width=8, width_mult=1.0).train()
    x = torch.randn(4, 3, 32, 32)
    for w in trained.widths:
        trained.forward_width(x, w).feats.sum().backward()
    other = create_backbone("slim_resnet18", width=8, width_mult=0.25)
    other.load_state_dict(trained.state_dict(), strict=True)
    trained.eval(), other.eval()
    torch.testing.assert_close(other(x), trained.forward_width(x, 0.25).feats)


def test_loading_refuses_other_width_lists_widths_and_untrained_widths() -> None:
    source = create_backbone("slim_resnet18", width=8, width_mult_list=[1.0, 0.5]).train()
    source.forward_width(torch.randn(2, 3, 32, 32), 1.0)
    state = source.state_dict()
    with pytest.raises(UsageError, match=r"width_mult_list=\[1.0, 0.75, 0.5, 0.25\].*\[1.0, 0.5\]"):
        create_backbone("slim_resnet18", width=8).load_state_dict(state, strict=False)
    with pytest.raises(UsageError, match=r"set backbone.kwargs.width=8"):
        create_backbone("slim_resnet18", width=16, width_mult_list=[1.0, 0.5]).load_state_dict(
            state, strict=False
        )
    untrained = create_backbone(
        "slim_resnet18", width=8, width_mult_list=[1.0, 0.5], width_mult=0.5
    )
    with pytest.raises(UsageError, match=r"width_mult=0.5 was never trained.*allowed values: 1$"):
        untrained.load_state_dict(state, strict=False)
    with pytest.raises(UsageError, match="holds no slimmable ResNet"):
        create_backbone("slim_resnet18", width=8).load_state_dict(
            create_backbone("dg_resnet18", width=8).state_dict(), strict=False
        )


@pytest.mark.parametrize(
    "widths", [[], [0.5, 1.0], [1.0, 0.5, 0.5], [1.0, 0.0], [1.0, 1.5], [0.75, 0.5], "abc"]
)
def test_bad_width_lists_are_refused(widths) -> None:
    with pytest.raises(ValueError, match=r"^width_mult_list=.*allowed values: a non-empty"):
        SlimResNet(width_mult_list=widths)


def test_a_width_not_in_the_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^width_mult=0.3 is invalid; allowed values: 1, 0.5$"):
        SlimResNet(width=8, width_mult_list=[1.0, 0.5], width_mult=0.3)
    model = SlimResNet(width=8, width_mult_list=[1.0, 0.5])
    with pytest.raises(ValueError, match=r"^width_mult=0.25"):
        model.forward_width(torch.zeros(1, 3, 32, 32), 0.25)
    assert check_width_list("x", [1, 0.5]) == (1.0, 0.5)


@pytest.mark.parametrize(
    ("option", "kind", "value"),
    [
        ("alpha", SACLOptions, 1.5),
        ("alpha", SACLOptions, -0.1),
        ("host_width", SACLOptions, 1.0),
        ("channel_selection", SACLOptions, "random"),
        ("distill_weight", SlimCLROptions, 2.0),
        ("slow_start_epochs", SlimCLROptions, -2),
        ("post_switch_lr_scale", SlimCLROptions, 0.0),
    ],
)
def test_bad_method_options_are_refused_naming_the_option(option, kind, value) -> None:
    with pytest.raises(ValueError, match=rf"^{option}={value!r} is invalid; allowed values: "):
        kind(**{option: value})
    spec = get_method("sacl_xd" if kind is SACLOptions else "slimclr_vicreg")
    with pytest.raises(UsageError, match=rf"^method_kwargs.{option}="):
        spec.parse_method_kwargs({option: value})


def test_l1_order_keeps_the_full_network_and_puts_the_largest_filters_first() -> None:
    torch.manual_seed(0)
    model = create_backbone("slim_resnet18", width=8, width_mult_list=[1.0, 0.5])
    x = torch.randn(2, 3, 32, 32)
    reference = create_backbone("slim_resnet18", width=8, width_mult_list=[1.0, 0.5])
    reference.load_state_dict(model.state_dict())
    orders = order_channels_by_l1(model)
    model.eval(), reference.eval()
    torch.testing.assert_close(
        model(x), reference(x)[:, orders[-1]], atol=1e-5, rtol=1e-5
    )  # the same function, features permuted
    # the first group is layer1.0's inner width: kept (prefix) = its L1-largest conv1 filters
    l1 = reference.layer1[0].conv1.weight.abs().sum(dim=(1, 2, 3))
    kept = set(orders[0][:4].tolist())
    assert kept == set(torch.topk(l1, 4).indices.tolist())
    reordered = model.layer1[0].conv1.weight.abs().sum(dim=(1, 2, 3))
    torch.testing.assert_close(reordered, l1.sort(descending=True).values)
    model.train()
    model.forward_width(x, 1.0)
    with pytest.raises(UsageError, match="trained backbone"):
        order_channels_by_l1(model)


def test_slimclr_loss_weights() -> None:
    assert slimclr_loss_weights([1.0, 0.75, 0.5, 0.25]) == [2.5, 1.0, 1.0, 1.0]
    assert slimclr_loss_weights([1.0, 0.5]) == [1.5, 1.0]
    assert slimclr_loss_weights([1.0, 0.5], reweight=False) == [1.0, 1.0]


def test_similarity_distillation_equals_the_hand_computed_value() -> None:
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    tau = 0.5
    kn = [[1, 0], [0, 1], [2**-0.5, 2**-0.5]]
    sn, tn = [[1, 0], [0, 1]], [[0, 1], [2**-0.5, 2**-0.5]]
    total = 0.0
    for a, b in zip(sn, tn):
        s_logits = [sum(x * y for x, y in zip(a, key)) / tau for key in kn]
        t_logits = [sum(x * y for x, y in zip(b, key)) / tau for key in kn]
        p = [math.exp(v) / sum(math.exp(u) for u in t_logits) for v in t_logits]
        log_q = [v - math.log(sum(math.exp(u) for u in s_logits)) for v in s_logits]
        total += -sum(pi * qi for pi, qi in zip(p, log_q))
    expected = total / 2 * tau**2
    assert similarity_distillation(s, t, k, tau).item() == pytest.approx(expected, rel=1e-6)
    student = s.clone().requires_grad_()
    teacher = t.clone().requires_grad_()
    similarity_distillation(student, teacher, k, tau).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_embedding_distillation_equals_the_hand_computed_value() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[1.0, 0.0], [3.0, 5.0]])
    assert embedding_distillation(a, b, "mse", 25.0).item() == pytest.approx(25.0 * 5 / 4)
    cos = [1 / math.sqrt(5), (9 + 20) / (5 * math.sqrt(34))]
    expected = sum(2 - 2 * c for c in cos) / 2
    assert embedding_distillation(a, b, "cosine").item() == pytest.approx(expected, rel=1e-6)


def _barlow_by_hand(z1: torch.Tensor, z2: torch.Tensor, lamb: float, scale: float) -> float:
    def standardise(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    a, b = standardise(z1.double()), standardise(z2.double())
    n, d = a.shape
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            total += (1 - c) ** 2 if i == j else lamb * c**2
    return scale * float(total)


def test_barlow_and_cross_distillation_equal_hand_computed_values() -> None:
    gen = torch.Generator().manual_seed(0)
    za, fa, zb, fb = (torch.randn(5, 3, generator=gen) for _ in range(4))
    assert barlow_twins_loss(za, zb, 0.1, 0.5).item() == pytest.approx(
        _barlow_by_hand(za, zb, 0.1, 0.5), rel=1e-5
    )
    expected = 0.5 * (_barlow_by_hand(za, fa, 0.1, 0.5) + _barlow_by_hand(zb, fb, 0.1, 0.5))
    assert cross_distillation_loss(za, fa, zb, fb, 0.1, 0.5).item() == pytest.approx(
        expected, rel=1e-5
    )
    student, frozen = za.clone().requires_grad_(), fa.clone().requires_grad_()
    cross_distillation_loss(student, frozen, zb, fb).backward()
    assert frozen.grad is None and student.grad.abs().sum() > 0


def _slim_pair(widths=(1.0, 0.75, 0.5, 0.25)):
    torch.manual_seed(0)
    backbone = create_backbone("slim_resnet18", width=8, width_mult_list=list(widths)).train()
    head = SlimMLP(backbone.full_features, 32, 16, backbone.widths)
    views = (torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32))
    return backbone, head, views


def _vicreg_objective(backbone, head, views, on: bool, **options):
    return slimclr_vicreg_objective(
        backbone,
        head,
        views,
        VICRegOptions(),
        SlimCLROptions(**options),
        "mse",
        on,
        vicreg_loss,
    )


def test_slow_start_trains_only_the_full_width_then_every_width() -> None:
    backbone, head, views = _slim_pair()
    out = _vicreg_objective(backbone, head, views, on=False)
    out.loss.backward()
    narrow_only = [
        (n, p) for n, p in [*backbone.named_parameters(), *head.named_parameters()]
        if ".bns." in n and ".bns.0." not in n
    ]  # fmt: skip
    assert narrow_only and all(p.grad is None for _, p in narrow_only)
    assert set(out.feats) == {1.0} and backbone.trained_steps.tolist() == [2, 0, 0, 0]
    out = _vicreg_objective(backbone, head, views, on=True)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in narrow_only)
    assert set(out.feats) == set(backbone.widths)
    assert backbone.trained_steps.tolist() == [4, 2, 2, 2]


def test_slimclr_vicreg_loss_is_the_weighted_sum_of_its_terms() -> None:
    backbone, head, views = _slim_pair((1.0, 0.5))
    out = _vicreg_objective(backbone, head, views, on=True, distill_weight=0.25)
    full, narrow = out.terms["loss_w1"], out.terms["loss_w0.5"]
    distill = out.terms["distill_w0.5"]
    expected = 1.5 * full + (0.75 * narrow + 0.25 * distill)
    torch.testing.assert_close(out.loss.detach(), expected)


def test_sacl_xd_objective_is_alpha_mix_and_the_frozen_passes_train_nothing() -> None:
    backbone, head, views = _slim_pair((1.0, 0.5))
    twin = copy.deepcopy(backbone)
    sacl, barlow = SACLOptions(alpha=0.9), BarlowOptions()
    out = sacl_xd_objective(backbone, head, views, sacl, barlow)
    torch.testing.assert_close(
        out.loss.detach(), 0.9 * out.terms["sacl_loss"] + 0.1 * out.terms["xd_loss"]
    )
    assert backbone.trained_steps.tolist() == [1, 1]  # the frozen passes are not training passes
    # the statistics are those of exactly the two training passes (host on x_A, slim on x_B)
    twin.forward_width(views[0], 1.0), twin.forward_width(views[1], 0.5)
    for key, value in twin.state_dict().items():
        torch.testing.assert_close(backbone.state_dict()[key], value, msg=key)
    assert set(out.feats) == {1.0, 0.5}


def test_frozen_pass_changes_no_statistic_and_builds_no_graph() -> None:
    backbone, head, views = _slim_pair((1.0, 0.5))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with frozen_pass(backbone):
        out = backbone.forward_width(views[0], 0.5)
    assert not out.feats.requires_grad
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(m.momentum == 0.1 for m in backbone.modules() if hasattr(m, "momentum"))


def test_vicreg_of_the_full_width_matches_the_reference_loss() -> None:
    backbone, head, views = _slim_pair((1.0, 0.5))
    out = _vicreg_objective(backbone, head, views, on=False)
    z = [head(backbone.forward_width(v, 1.0).feats, 0, 1.0) for v in views]
    torch.testing.assert_close(out.terms["loss_w1"], vicreg_loss(*z).detach(), rtol=1e-4, atol=1e-4)


def test_other_backbones_refuse_a_slimmable_checkpoint_naming_the_settings() -> None:
    from dualgate_solo.solo_adapter.load_guard import refuse_gated_state

    state = create_backbone("slim_resnet18", width=8, width_mult_list=[1.0, 0.5]).state_dict()
    plain = torch.nn.Conv2d(3, 8, 3)
    with pytest.raises(UsageError, match=r"backbone.kwargs.width=8 backbone.kwargs.width_mult_list"
                       r"=\[1.0, 0.5\] backbone.kwargs.width_mult=<1\|0.5>$"):  # fmt: skip
        refuse_gated_state("resnet18", plain, state, "")
