"""``gated_grad_scale``: the gated passes send exactly ``s`` of their gradient into the weights
both branches share, and nothing else changes."""

from __future__ import annotations

import pytest
import torch

from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.gated.layers import ChannelGate, DualBatchNorm
from dualgate_solo.gated.objective import dual_gating_objective
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.gated.shared_weights import gated_pass, shared_parameters
from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.models import create_backbone
from dualgate_solo.models.projector import Projector
from dualgate_solo.validation import UsageError


@pytest.fixture
def parts():
    torch.manual_seed(0)
    backbone = create_backbone("dg_resnet18", stem="cifar", width=8)
    projector = Projector(64, 32, 16, dual_bn=True)
    views = (torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32))
    return backbone, projector, views


def _gated_only(module: torch.nn.Module) -> set[str]:
    """Names of the gates' and the gated BNs' parameters, found independently of the code."""
    names = set()
    for prefix, m in module.named_modules():
        if isinstance(m, ChannelGate):
            names |= {f"{prefix}.{n}" for n, _ in m.named_parameters()}
        if isinstance(m, DualBatchNorm):
            names |= {f"{prefix}.gated.{n}" for n, _ in m.gated.named_parameters()}
    return names


def test_shared_parameters_are_all_but_the_gates_and_gated_bns(parts) -> None:
    backbone, projector, _ = parts
    for module in (backbone, projector):
        every = {n for n, _ in module.named_parameters()}
        shared = {n for n, _ in shared_parameters(module)}
        assert shared == every - _gated_only(module)
    gated = _gated_only(backbone)
    assert any(".gate." in n for n in gated) and any(".gated." in n for n in gated)
    assert "conv1.weight" in {n for n, _ in shared_parameters(backbone)}


def _grads(backbone, projector, x, scale) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    backbone.zero_grad(), projector.zero_grad()
    torch.manual_seed(1)  # the same gate samples for every scale
    out, z = gated_pass(backbone, projector, x, scale)
    (z.square().sum() + out.ratio.sum()).backward()
    named = [*backbone.named_parameters(prefix="b"), *projector.named_parameters(prefix="p")]
    return z.detach(), {n: p.grad.clone() for n, p in named if p.grad is not None}


@pytest.mark.parametrize("scale", [0.0, 0.3])
def test_a_scaled_gated_pass_keeps_values_and_scales_only_the_shared_gradient(parts, scale):
    backbone, projector, views = parts
    steps = backbone.trained_steps.clone()
    z_full, full = _grads(backbone, projector, views[0], 1.0)
    z_scaled, scaled = _grads(backbone, projector, views[0], scale)
    torch.testing.assert_close(z_scaled, z_full, rtol=0, atol=0)
    assert (backbone.trained_steps - steps).tolist() == [0, 2]  # the gated counter still counts
    shared = {f"b.{n}" for n, _ in shared_parameters(backbone)}
    shared |= {f"p.{n}" for n, _ in shared_parameters(projector)}
    # s = 0 computes no gradient for the shared weights at all: None, i.e. zero
    assert set(scaled) == (set(full) - shared if scale == 0 else set(full))
    for name, grad in full.items():
        expected = scale * grad if name in shared else grad
        torch.testing.assert_close(scaled.get(name, torch.zeros_like(grad)), expected, msg=name)
    assert any(full[n].abs().sum() > 0 for n in full if n not in shared)


def test_scale_zero_with_a_detached_dense_pair_trains_shared_weights_as_vicreg(parts) -> None:
    """``s = 0``, ``w = 1`` and ``sg``: the shared weights get exactly the gradient of
    ``VICReg(d(view 1), d(view 2))``; the gates and gated BNs still learn."""
    backbone, projector, views = parts
    options = DualGatingOptions(dense_pair_weight=1, detach_dense_target=True, gated_grad_scale=0)
    dual_gating_objective(
        backbone, projector, views, BudgetOptions(0.3), 0.5, vicreg_loss, options
    ).loss.backward()
    got = {n: p.grad.clone() for n, p in shared_parameters(backbone)}
    gated = [p.grad for n, p in backbone.named_parameters() if n in _gated_only(backbone)]
    backbone.zero_grad(), projector.zero_grad()
    dense = [projector(backbone.forward_branch(v, "dense").feats, "dense") for v in views]
    vicreg_loss(*dense).backward()
    for name, param in shared_parameters(backbone):
        torch.testing.assert_close(got[name], param.grad, msg=name)
    assert all(g is not None for g in gated) and sum(g.abs().sum() for g in gated) > 0


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_gated_grad_scale_outside_zero_one_is_refused(value) -> None:
    with pytest.raises(UsageError, match=rf"gated_grad_scale={value}.*allowed"):
        DualGatingOptions(gated_grad_scale=value)
