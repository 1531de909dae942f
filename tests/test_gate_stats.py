"""Gate statistics over a split (shared by the cost report and the exporter)."""

from __future__ import annotations

import pytest
import torch
from model_utils import open_all_gates

from dualgate_solo.gated.gate_stats import channel_categories, collect_gate_statistics


def test_all_on_gates_give_rate_one_and_ratio_one_plus_gates(r18_cifar) -> None:
    open_all_gates(r18_cifar)
    batches = [torch.randn(3, 3, 32, 32), (torch.randn(2, 3, 32, 32), torch.zeros(2))]
    stats = collect_gate_statistics(r18_cifar, batches, progress=False)
    assert stats.num_samples == 5
    assert all(bool((rate == 1).all()) for rate in stats.on_rates)
    costs = stats.costs
    assert stats.mean_ratio == pytest.approx(1 + costs.gate_macs / costs.dense_macs)
    assert stats.std_ratio == pytest.approx(0.0, abs=1e-7)
    assert r18_cifar.training  # state restored


def test_statistics_match_a_direct_forward(r18_cifar) -> None:
    x = torch.randn(8, 3, 32, 32)
    stats = collect_gate_statistics(r18_cifar, [x[:5], x[5:]], progress=False)
    out = r18_cifar.eval().forward_branch(x, "gated")
    for counts, mask in zip(stats.on_counts, out.masks):
        assert counts.tolist() == mask.sum(0).long().tolist()
    assert stats.mean_ratio == pytest.approx(float(out.ratio.mean()))
    assert stats.std_ratio == pytest.approx(float(out.ratio.std(unbiased=False)), abs=1e-9)
    assert stats.flops_reduction == pytest.approx(1 - float(out.ratio.mean()))


def test_channel_categories() -> None:
    rate = torch.tensor([0.0, 0.02, 0.5, 0.99, 1.0])
    cats = channel_categories(rate)
    assert cats["always_off"].tolist() == [True, False, False, False, False]
    assert cats["always_on"].tolist() == [False, False, False, False, True]
    assert cats["data_dependent"].tolist() == [False, True, True, True, False]
    loose = channel_categories(rate, off_below=0.05, on_above=0.95)
    assert loose["data_dependent"].tolist() == [False, False, True, False, False]
    with pytest.raises(ValueError, match="off_below"):
        channel_categories(rate, off_below=0.9, on_above=0.1)


def test_empty_or_mixed_size_splits_fail_clearly(r18_cifar) -> None:
    with pytest.raises(ValueError, match="empty"):
        collect_gate_statistics(r18_cifar, [], progress=False)
    with pytest.raises(ValueError, match="one image size"):
        collect_gate_statistics(
            r18_cifar, [torch.randn(1, 3, 32, 32), torch.randn(1, 3, 40, 40)], progress=False
        )


def test_knn_top1_hand_computed() -> None:
    from dualgate_solo.knn import knn_top1

    train = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[0.4], [10.6], [6.0]])
    # k = 1: nearest is class 0, class 1, class 1 (10 is closer to 6 than 1 is)
    assert knn_top1(train, labels, test, torch.tensor([0, 1, 1]), k=1) == 100.0
    # k = 4 at 6.0: weights 1/6+1/5 (class 0) vs 1/4+1/5 (class 1) -> class 1
    assert knn_top1(train, labels, test, torch.tensor([0, 1, 0]), k=4) == pytest.approx(200 / 3)
