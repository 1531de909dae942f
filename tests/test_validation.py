"""Bad options fail with a ValueError naming the option and the allowed values."""

from __future__ import annotations

import pytest
import torch

from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.gated.layers import ChannelGate, DualBatchNorm
from dualgate_solo.models import create_backbone


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"branch": "sparse"}, r"branch='sparse' is invalid; allowed values: 'dense', 'gated'"),
        (
            {"dual_bn_scope": "stem"},
            r"dual_bn_scope='stem' is invalid; allowed values: 'none', 'block', 'backbone', 'all'",
        ),
        ({"stem": "tiny"}, r"stem='tiny' is invalid; allowed values: 'cifar', 'imagenet'"),
        ({"gate_tau": 0.0}, r"gate_tau=0.0 is invalid; allowed values: a number in \(0.0, inf\]"),
        ({"gate_tau": -1}, r"gate_tau=-1 is invalid"),
        ({"width": 0}, r"width=0 is invalid; allowed values: a number in \[1, inf\]"),
        ({"widht": 2}, r"backbone.kwargs key='widht' is invalid; allowed values: 'stem', 'branch'"),
    ],
)
def test_bad_backbone_options(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        create_backbone("dg_resnet18", **kwargs)


def test_bad_depth_and_name() -> None:
    from dualgate_solo.models import GatedResNet

    with pytest.raises(ValueError, match=r"depth=20 is invalid; allowed values: 18, 34, 50"):
        GatedResNet(depth=20)
    with pytest.raises(
        ValueError, match=r"backbone.name='resnet18' is invalid; allowed values: 'dg_resnet18'"
    ):
        create_backbone("resnet18")


def test_bad_branch_at_call_time(r18_cifar) -> None:
    with pytest.raises(ValueError, match="branch='both'"):
        r18_cifar.forward_branch(torch.randn(1, 3, 32, 32), "both")
    r18_cifar.branch = "both"
    with pytest.raises(ValueError, match="branch='both'"):
        r18_cifar(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="branch='x'"):
        DualBatchNorm(torch.nn.BatchNorm2d(2))(torch.randn(2, 2, 1, 1), "x")


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5, float("nan"), "abc"])
def test_target_density_outside_unit_interval(target) -> None:
    with pytest.raises(
        ValueError, match=r"target_density=.* is invalid; allowed values: a number in \(0.0, 1.0\]"
    ):
        BudgetOptions(target_density=target)


def test_target_density_one_is_allowed() -> None:
    assert BudgetOptions(target_density=1.0).layer_target == 1.0


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (
            {"bound_target": "log"},
            "bound_target='log' is invalid; allowed values: 'sqrt', 'linear'",
        ),
        ({"lambda_flops": -1.0}, "lambda_flops=-1.0 is invalid"),
        ({"l1_count": "yes"}, "l1_count='yes' is invalid; allowed values: True, False"),
    ],
)
def test_bad_budget_options(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        BudgetOptions(target_density=0.1, **kwargs)


def test_bad_gate_options() -> None:
    with pytest.raises(ValueError, match="gate_reduction=0"):
        ChannelGate(8, 8, reduction=0)


def _trained(**kwargs) -> dict:
    backbone = create_backbone("dg_resnet18", **kwargs)
    backbone.trained_steps += torch.tensor([3, 3])
    return backbone.state_dict()


@pytest.mark.parametrize(
    "name, kwargs, architecture",
    [
        ("dg_resnet18", {"stem": "cifar", "width": 8}, ("cifar", 8, "block", 4)),
        ("dg_resnet34", {"width": 16, "dual_bn_scope": "none"}, ("cifar", 16, "none", 4)),
        (
            "dg_resnet50",
            {"stem": "imagenet", "width": 8, "gate_reduction": 2},
            ("imagenet", 8, "block", 2),
        ),
        ("dg_resnet18", {"width": 8, "dual_bn_scope": "all"}, ("cifar", 8, "backbone", 4)),
    ],
)
def test_architecture_is_read_off_a_state_dict(name, kwargs, architecture) -> None:
    from dualgate_solo.state_guard import read_architecture

    state = {f"backbone.{k}": v for k, v in create_backbone(name, **kwargs).state_dict().items()}
    found = read_architecture(state, "backbone.")
    assert found.name == name
    assert (found.stem, found.width, found.dual_bn_scope, found.gate_reduction) == architecture
    assert found.trained_branches == () and read_architecture(state) is None  # wrong prefix


@pytest.mark.parametrize(
    "kwargs, setting",
    [
        ({"width": 16}, "set backbone.kwargs.width=8"),
        ({"stem": "imagenet"}, "set backbone.kwargs.stem=cifar"),
        ({"dual_bn_scope": "none"}, "set backbone.kwargs.dual_bn_scope=block"),
        ({"gate_reduction": 2}, "set backbone.kwargs.gate_reduction=4"),
        (
            {"width": 16, "stem": "imagenet"},
            "set backbone.kwargs.stem=cifar backbone.kwargs.width=8",
        ),
    ],
)
def test_checkpoint_mismatch_is_one_line_naming_the_kwarg(kwargs, setting) -> None:
    from dualgate_solo.validation import UsageError

    state = _trained(stem="cifar", width=8)
    backbone = create_backbone("dg_resnet18", **{"stem": "cifar", "width": 8, **kwargs})
    with pytest.raises(UsageError) as error:
        backbone.load_state_dict(state, strict=False)
    message = str(error.value)
    assert "\n" not in message and message.endswith(setting)
    assert message.startswith("checkpoint does not match the backbone: the checkpoint holds a ")


def test_other_depth_and_non_gated_state_dicts_are_refused() -> None:
    from torchvision.models import resnet18

    state = _trained(width=8)
    with pytest.raises(ValueError, match=r"; set backbone.name=dg_resnet18$"):
        create_backbone("dg_resnet34", width=8).load_state_dict(state)
    with pytest.raises(ValueError, match=r"it holds no gated ResNet \(235 of the backbone's 257"):
        create_backbone("dg_resnet18", stem="imagenet").load_state_dict(
            resnet18().state_dict(), strict=False
        )
