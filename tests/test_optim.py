"""LARS update against a hand computation of solo-learn's rule."""

from __future__ import annotations

import pytest
import torch

from dualgate_solo.optim import LARS


def test_lars_single_step_matches_hand_computation() -> None:
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # |w| = 5
    b = torch.nn.Parameter(torch.tensor([1.0, 2.0]))  # 1-D: no LARS, no decay
    w.grad = torch.tensor([[0.6, 0.8]])  # |g| = 1
    b.grad = torch.tensor([0.5, 0.5])
    lr, wd, eta = 0.1, 0.01, 0.02
    LARS([w, b], lr=lr, momentum=0.9, weight_decay=wd, eta=eta).step()
    trust = eta * 5 / (1 + wd * 5 + 1e-8)  # 0.0995...
    factor = min(trust / lr, 1.0)
    expected_w = torch.tensor([[3.0, 4.0]]) - lr * factor * (
        torch.tensor([[0.6, 0.8]]) + wd * torch.tensor([[3.0, 4.0]])
    )
    torch.testing.assert_close(w.detach(), expected_w)
    torch.testing.assert_close(b.detach(), torch.tensor([1.0, 2.0]) - lr * torch.tensor([0.5, 0.5]))


def test_lars_clip_caps_at_base_lr_and_restores_group_decay() -> None:
    w = torch.nn.Parameter(torch.tensor([[100.0]]))
    w.grad = torch.tensor([[1e-3]])  # huge trust ratio -> clipped to 1
    opt = LARS([w], lr=0.5, weight_decay=0.0, eta=0.02)
    opt.step()
    assert float(w) == pytest.approx(100.0 - 0.5 * 1e-3)
    assert opt.param_groups[0]["weight_decay"] == 0.0
    opt2 = LARS([torch.nn.Parameter(torch.ones(2, 2))], lr=0.5, weight_decay=1e-4)
    opt2.step()
    assert opt2.param_groups[0]["weight_decay"] == 1e-4
