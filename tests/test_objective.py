"""The framework-free objectives compose exactly the terms of VICReg-(Dual-)Gating."""

from __future__ import annotations

import pytest
import torch

from dualgate_solo.gated.budget import BudgetOptions, budget_loss
from dualgate_solo.gated.objective import (
    dense_warmup_objective,
    dual_gating_objective,
    gating_objective,
)
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.models import create_backbone
from dualgate_solo.models.projector import Projector
from dualgate_solo.validation import UsageError


@pytest.fixture
def parts():
    backbone = create_backbone("dg_resnet18", stem="cifar")
    projector = Projector(512, 32, 16)
    views = (torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32))
    return backbone, projector, views


def test_dual_objective_routes_views_and_adds_terms(parts) -> None:
    backbone, projector, views = parts
    out = dual_gating_objective(backbone, projector, views, BudgetOptions(0.1), 0.5, vicreg_loss)
    gated, dense = out.outputs
    assert (gated.branch, dense.branch) == ("gated", "dense")
    torch.testing.assert_close(out.loss, out.vicreg + out.budget.loss)
    torch.testing.assert_close(out.vicreg, vicreg_loss(*out.embeddings))
    expected = budget_loss(gated.ratio, gated.masks, BudgetOptions(0.1), 0.5)
    torch.testing.assert_close(out.budget.loss, expected.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in backbone.parameters())
    assert all(p.grad is not None for p in projector.parameters())


def test_dense_branch_sees_view_two(parts) -> None:
    backbone, projector, views = parts
    backbone.eval()
    out = dual_gating_objective(backbone, projector, views, BudgetOptions(0.1), 1.0, vicreg_loss)
    torch.testing.assert_close(
        out.outputs[1].feats, backbone.forward_branch(views[1], "dense").feats
    )
    torch.testing.assert_close(
        out.outputs[0].feats, backbone.forward_branch(views[0], "gated").feats
    )


def test_symmetric_objective_averages_both_pairings(parts) -> None:
    backbone, projector, views = parts
    backbone.eval(), projector.eval()
    symmetric = DualGatingOptions(symmetric=True)
    out = dual_gating_objective(
        backbone, projector, views, BudgetOptions(0.3), 1.0, vicreg_loss, symmetric
    )
    assert [o.branch for o in out.outputs] == ["gated", "dense", "gated", "dense"]
    z = out.embeddings
    torch.testing.assert_close(out.vicreg, (vicreg_loss(z[0], z[1]) + vicreg_loss(z[2], z[3])) / 2)
    g1, g2 = out.outputs[0], out.outputs[2]
    torch.testing.assert_close(out.budget.ratio, ((g1.ratio.mean() + g2.ratio.mean()) / 2).float())


def test_baseline_objective_gates_both_views_and_sums_budget(parts) -> None:
    backbone, projector, views = parts
    cfg = BudgetOptions(0.1)
    out = gating_objective(backbone, projector, views, cfg, 1.0, vicreg_loss)
    assert [o.branch for o in out.outputs] == ["gated", "gated"]
    per_view = [budget_loss(o.ratio, o.masks, cfg, 1.0) for o in out.outputs]
    torch.testing.assert_close(out.budget.loss, per_view[0].loss + per_view[1].loss)
    torch.testing.assert_close(out.loss, out.vicreg + per_view[0].loss + per_view[1].loss)


def test_dual_projector_bn_routes_by_branch() -> None:
    projector = Projector(8, 16, 4, dual_bn=True)
    h = torch.randn(5, 8)
    projector(h, "gated").sum().backward()
    assert projector.bn1.dense.weight.grad is None and projector.bn1.gated.weight.grad is not None


def test_ratio_for_masks_reproduces_the_forward_ratio(parts) -> None:
    backbone, _, views = parts
    out = backbone.forward_branch(views[0], "gated")
    torch.testing.assert_close(backbone.ratio_for_masks(out, out.masks), out.ratio)
    r50 = create_backbone("dg_resnet50", stem="cifar")
    out50 = r50.forward_branch(views[0], "gated")
    torch.testing.assert_close(r50.ratio_for_masks(out50, out50.masks), out50.ratio)


def test_deterministic_ratio_source_costs_the_eval_masks(parts) -> None:
    backbone, projector, views = parts
    backbone.eval(), projector.eval()
    cfg = BudgetOptions(0.1, ratio_source="deterministic")
    out = dual_gating_objective(backbone, projector, views, cfg, 1.0, vicreg_loss)
    eval_ratio = backbone.forward_branch(views[0], "gated").ratio.mean()
    torch.testing.assert_close(out.budget.ratio, eval_ratio.float())
    out.loss.backward()
    assert backbone.layer4[1].gate.expand.weight.grad.abs().sum() > 0


def test_multiplier_enters_the_flops_term(parts) -> None:
    backbone, projector, views = parts
    backbone.eval(), projector.eval()
    cfg = BudgetOptions(0.1)
    plain = dual_gating_objective(backbone, projector, views, cfg, 1.0, vicreg_loss)
    shifted = dual_gating_objective(
        backbone, projector, views, cfg, 1.0, vicreg_loss, multiplier=3.0
    )
    torch.testing.assert_close(
        shifted.budget.flops - plain.budget.flops, 3.0 * (plain.budget.ratio - 0.1)
    )


def _count_passes(backbone, monkeypatch) -> list[str]:
    passes = []
    forward_branch = backbone.forward_branch

    def counted(x, branch):
        passes.append(branch)
        return forward_branch(x, branch)

    monkeypatch.setattr(backbone, "forward_branch", counted)
    return passes


@pytest.mark.parametrize("symmetric", [False, True])
def test_dense_pair_adds_the_weighted_dense_vicreg_term(parts, monkeypatch, symmetric) -> None:
    backbone, projector, views = parts
    backbone.eval(), projector.eval()
    cfg = BudgetOptions(0.3)
    paper = dual_gating_objective(
        backbone, projector, views, cfg, 1.0, vicreg_loss, DualGatingOptions(symmetric=symmetric)
    )
    passes = _count_passes(backbone, monkeypatch)
    options = DualGatingOptions(symmetric=symmetric, dense_pair_weight=0.5)
    out = dual_gating_objective(backbone, projector, views, cfg, 1.0, vicreg_loss, options)
    # one more dense pass (view 1) unless symmetric already ran both views densely
    expected = ["gated", "dense", "gated", "dense"] if symmetric else ["gated", "dense", "dense"]
    assert passes == expected == [o.branch for o in out.outputs]
    z_dense_1 = projector(backbone.forward_branch(views[0], "dense").feats, "dense")
    z_dense_2 = projector(backbone.forward_branch(views[1], "dense").feats, "dense")
    pair = vicreg_loss(z_dense_1, z_dense_2)
    torch.testing.assert_close(out.vicreg, paper.vicreg + 0.5 * pair)
    torch.testing.assert_close(out.loss, paper.loss + 0.5 * pair)


def test_detached_dense_target_leaves_the_dense_branch_only_its_own_term(parts) -> None:
    backbone, projector, views = parts
    backbone.eval(), projector.eval()
    dense_bn = backbone.layer1[0].bn1.dense.weight  # a parameter of the dense branch alone

    def dense_grad(loss: torch.Tensor) -> torch.Tensor:
        backbone.zero_grad(), projector.zero_grad()
        loss.backward()
        return dense_bn.grad.clone()

    def objective(**options) -> torch.Tensor:
        return dual_gating_objective(
            backbone,
            projector,
            views,
            BudgetOptions(0.3),
            1.0,
            vicreg_loss,
            DualGatingOptions(dense_pair_weight=1.0, **options),
        ).loss

    z = [projector(backbone.forward_branch(v, "dense").feats, "dense") for v in views]
    own_term = dense_grad(vicreg_loss(*z))
    torch.testing.assert_close(dense_grad(objective(detach_dense_target=True)), own_term)
    assert not torch.allclose(dense_grad(objective()), own_term)  # the cross term reaches it


def test_detached_dense_target_without_a_dense_term_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^detach_dense_target=True is invalid with dense_pair"):
        DualGatingOptions(detach_dense_target=True)
    with pytest.raises(UsageError, match=r"^dense_pair_weight=-1"):
        DualGatingOptions(dense_pair_weight=-1.0)


def test_gate_warmup_trains_the_dense_branch_alone_on_both_views(parts, monkeypatch) -> None:
    backbone, projector, views = parts
    backbone.eval(), projector.eval()
    passes = _count_passes(backbone, monkeypatch)
    out = dense_warmup_objective(backbone, projector, views, vicreg_loss)
    assert passes == ["dense", "dense"] == [o.branch for o in out.outputs]
    z = [projector(backbone.forward_branch(v, "dense").feats, "dense") for v in views]
    torch.testing.assert_close(out.loss, vicreg_loss(*z))
    assert out.budget.loss == out.budget.flops == out.budget.bound == 0
    assert out.budget.ratio == 1 and out.budget.densities.tolist() == [1.0] * 8
    backbone.zero_grad(set_to_none=True)
    out.loss.backward()
    untouched = {n for n, p in backbone.named_parameters() if p.grad is None}
    gated = {n for n, _ in backbone.named_parameters() if ".gate." in n or ".gated." in n}
    assert untouched == gated and gated  # the gates and the gated BatchNorms get nothing


@pytest.mark.parametrize(
    ("epoch", "on", "clock"), [(0, False, 0), (2, False, 0), (3, True, 0), (7, True, 4)]
)
def test_gate_warmup_delays_the_gates_and_the_annealing_clock(epoch, on, clock) -> None:
    options = DualGatingOptions(gate_warmup_epochs=3)
    assert options.gates_on(epoch) is on and options.gate_epoch(epoch) == clock
    paper = DualGatingOptions()
    assert paper.gates_on(epoch) and paper.gate_epoch(epoch) == epoch


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_bad_gate_warmup_is_refused_in_one_line(value) -> None:
    with pytest.raises(UsageError, match=rf"^gate_warmup_epochs={value!r} is invalid; allowed"):
        DualGatingOptions(gate_warmup_epochs=value)
