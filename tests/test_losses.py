"""L_G and VICReg (solo-learn's formula) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from dualgate_solo.gated.budget import (
    BudgetOptions,
    anneal_p,
    bound_loss,
    budget_loss,
    flops_loss,
    layer_densities,
)
from dualgate_solo.gated.layers import binary_concrete_ste
from dualgate_solo.losses.vicreg import vicreg_loss

# Toy batch: two samples, two gated blocks of 4 and 2 channels.
MASKS = (
    torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]]),  # rho = 0.75
    torch.tensor([[1.0, 0.0], [0.0, 0.0]]),  # rho = 0.25
)
RATIOS = torch.tensor([0.3, 0.5], dtype=torch.float64)  # mean 0.4


def test_anneal_p() -> None:
    assert anneal_p(0, 0.02) == 1.0
    assert anneal_p(100, 0.02) == pytest.approx(math.exp(-2))
    assert anneal_p(10, 0.02) == pytest.approx(0.8187, abs=1e-4)  # p after 10 epochs


def test_layer_densities() -> None:
    torch.testing.assert_close(layer_densities(MASKS, l1_count=True), torch.tensor([0.75, 0.25]))


def test_budget_loss_hand_computed_sqrt_target() -> None:
    # t_d = 0.25 -> q = 0.5; p = 1 -> interval [0.5, 0.5]
    # L_flops = 5 * (0.4 - 0.25)^2 = 0.1125
    # L_bound = mean(relu(0.75 - 0.5)^2, relu(0.5 - 0.25)^2) = mean(0.0625, 0.0625) = 0.0625
    terms = budget_loss(RATIOS, MASKS, BudgetOptions(target_density=0.25), p=1.0)
    assert float(terms.flops) == pytest.approx(0.1125)
    assert float(terms.bound) == pytest.approx(0.0625)
    assert float(terms.loss) == pytest.approx(0.175)
    assert float(terms.ratio) == pytest.approx(0.4)


def test_budget_loss_hand_computed_linear_target_and_annealing() -> None:
    # linear: q = 0.25, p = 1 -> [0.25, 0.25]: only block 1 is out,
    # (0.75 - 0.25)^2 = 0.25 -> mean 0.125
    linear = BudgetOptions(target_density=0.25, bound_target="linear", gamma_bound=2.0)
    assert float(budget_loss(RATIOS, MASKS, linear, p=1.0).bound) == pytest.approx(2 * 0.125)
    # sqrt, p = 0.5: interval [0.25, 0.75] holds both densities -> no bound loss
    assert float(budget_loss(RATIOS, MASKS, BudgetOptions(target_density=0.25), p=0.5).bound) == 0.0


def test_flops_and_bound_primitives() -> None:
    assert float(flops_loss(torch.tensor(0.5), 0.1, 5.0)) == pytest.approx(5 * 0.16)
    rho = torch.tensor([0.0, 1.0])
    # p = 0.5, q = 0.5 -> [0.25, 0.75]: (0.25)^2 below and (0.25)^2 above -> mean 0.0625
    assert float(bound_loss(rho, 0.5, 0.5, 1.0)) == pytest.approx(0.0625)


def test_l1_count_gives_no_bound_gradient_to_closed_gates() -> None:
    """The active count as an L1 norm has zero gradient at closed gates; a plain sum does not."""
    logits = torch.tensor([[2.0, -2.0, 0.5, -0.5, 0.0, 1.0]], requires_grad=True)
    grads, masks = {}, {}
    for l1 in (True, False):
        torch.manual_seed(2)  # the same noise draw for both variants
        logits.grad = None
        masks[l1] = binary_concrete_ste(logits, 2 / 3, True)
        rho = layer_densities((masks[l1],), l1_count=l1)
        bound_loss(rho, 0.99, 1.0, 1.0).backward()  # density < 0.99: push channels up
        grads[l1] = logits.grad.clone()
    assert torch.equal(masks[True], masks[False])
    closed = masks[True].detach() == 0
    assert closed.any() and (~closed).any()
    assert (grads[True][closed] == 0).all() and (grads[True][~closed] != 0).all()
    assert (grads[False] != 0).all()


def test_ste_forward_is_exactly_binary_and_gradient_is_sigmoid_slope() -> None:
    logits = torch.randn(64, 32, requires_grad=True)
    mask = binary_concrete_ste(logits, tau=2 / 3, training=True)
    assert set(mask.detach().unique().tolist()) == {0.0, 1.0}
    mask.sum().backward()
    assert (logits.grad > 0).all()
    eval_mask = binary_concrete_ste(torch.tensor([-1e-3, 0.0, 1e-3]), 2 / 3, training=False)
    assert eval_mask.tolist() == [0.0, 1.0, 1.0]


def test_ste_sampling_is_bernoulli_of_sigmoid_logit() -> None:
    logits = torch.full((200_000,), 1.0)
    rate = binary_concrete_ste(logits, 2 / 3, True).mean().item()
    assert rate == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=0.005)


def _reference_vicreg(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg with solo-learn 1.0.6's conventions by hand (variance summed over the views)."""
    n, d = z1.shape
    sim = ((z1 - z2) ** 2).mean()
    var = sum(torch.clamp(1 - torch.sqrt(z.var(0) + 1e-4), min=0).mean() for z in (z1, z2))
    cov = 0
    for z in (z1, z2):
        zc = z - z.mean(0)
        c = zc.T @ zc / (n - 1)
        cov = cov + (c**2).sum() / d - (torch.diagonal(c) ** 2).sum() / d
    return 25 * sim + 25 * var + cov


def test_vicreg_matches_reference_formula() -> None:
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8) * 0.3
    torch.testing.assert_close(vicreg_loss(z1, z2), _reference_vicreg(z1, z2))


def test_vicreg_hand_computed_tiny_case() -> None:
    # z1 = z2 = [[1, 0], [-1, 0]]: MSE 0; var per dim (2, 0) -> std (sqrt(2.0001), 0.01)
    # v = mean(relu(1 - 1.4142), relu(1 - 0.01)) = 0.495 per view -> 0.99; covariance 0.
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert float(vicreg_loss(z, z, 25, 25, 1)) == pytest.approx(25 * 0.99, rel=1e-5)


def test_flops_loss_with_multiplier_hand_computed() -> None:
    # 5 * (0.4 - 0.25)^2 + 2 * (0.4 - 0.25) = 0.1125 + 0.3
    assert float(flops_loss(torch.tensor(0.4), 0.25, 5.0, multiplier=2.0)) == pytest.approx(0.4125)


def test_budget_multiplier_follows_the_ratio_error() -> None:
    from dualgate_solo.gated.budget import BudgetMultiplier

    cfg = BudgetOptions(target_density=0.1, multiplier_lr=0.5)
    nu = BudgetMultiplier()
    nu.update(torch.tensor(0.3), cfg)
    nu.update(0.2, cfg)
    assert float(nu.value) == pytest.approx(0.5 * 0.2 + 0.5 * 0.1)
    assert "value" in nu.state_dict()


def test_deterministic_masks_threshold_with_sigmoid_gradient() -> None:
    from dualgate_solo.gated.budget import deterministic_masks

    logits = torch.tensor([[-1.0, 0.0, 2.0]], requires_grad=True)
    (mask,) = deterministic_masks((logits,), tau=0.5)
    assert mask.tolist() == [[0.0, 1.0, 1.0]]
    mask.sum().backward()
    s = torch.sigmoid(logits.detach() / 0.5)
    torch.testing.assert_close(logits.grad, s * (1 - s) / 0.5)


def test_vicreg_options_weight_the_loss_they_are_given() -> None:
    from dualgate_solo.method_registry import VICRegOptions

    torch.manual_seed(0)
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    options = VICRegOptions(sim_loss_weight=2.0, var_loss_weight=3.0, cov_loss_weight=4.0)
    torch.testing.assert_close(
        options.weighted(vicreg_loss)(z1, z2), vicreg_loss(z1, z2, 2.0, 3.0, 4.0)
    )
