"""The gradient-share analysis splits the training objective's gradient exactly into its paths."""

from __future__ import annotations

import pytest
import torch

from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.gated.objective import dual_gating_objective
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.losses.vicreg import vicreg_loss
from dualgate_solo.models import create_backbone
from dualgate_solo.models.projector import Projector
from dualgate_solo.validation import UsageError
from experiments.analysis.gradient_shares import parameter_groups, path_losses, path_shares

BUDGET = BudgetOptions(target_density=0.3, lambda_flops=50.0)  # a budget gradient worth seeing


def _parts(dual_bn_scope: str = "block"):
    torch.manual_seed(0)
    backbone = create_backbone("dg_resnet18", stem="cifar", width=8, dual_bn_scope=dual_bn_scope)
    projector = Projector(backbone.num_features, 32, 16, dual_bn=dual_bn_scope == "all")
    views = (torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16))
    return backbone, projector, views


def _grads(loss, params):
    return [
        torch.zeros_like(p) if g is None else g
        for g, p in zip(
            torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True), params
        )
    ]


@pytest.mark.parametrize(
    "options",
    [
        DualGatingOptions(),
        DualGatingOptions(dense_pair_weight=0.5),
        DualGatingOptions(dense_pair_weight=1.0, detach_dense_target=True),
    ],
    ids=["paper", "dense_pair", "dense_pair_sg"],
)
def test_the_paths_sum_to_the_objectives_gradient(options) -> None:
    backbone, projector, views = _parts()
    params = [*backbone.parameters(), *projector.parameters()]
    torch.manual_seed(1)
    objective = dual_gating_objective(
        backbone, projector, views, BUDGET, 0.5, vicreg_loss, options, multiplier=0.2
    )
    expected = _grads(objective.loss, params)
    torch.manual_seed(1)  # the same gate noise
    losses = path_losses(backbone, projector, views, BUDGET, options, 0.5, vicreg_loss, 0.2)
    assert ("cross_via_dense" in losses) is not options.detach_dense_target
    assert ("dense_pair" in losses) is bool(options.dense_pair_weight)
    per_path = [_grads(loss, params) for loss in losses.values()]
    scale = torch.cat([g.flatten() for g in expected]).norm()
    for index, want in enumerate(expected):  # equal up to float32 rounding of the whole step
        error = (sum(g[index] for g in per_path) - want).norm()
        assert error <= 1e-6 * scale, (index, float(error), float(scale))


@pytest.mark.parametrize("scope", ["block", "backbone", "all"])
def test_every_parameter_is_in_exactly_one_group(scope) -> None:
    backbone, projector, _ = _parts(scope)
    groups = parameter_groups(backbone, projector)
    grouped = [id(p) for members in groups.values() for p in members]
    assert sorted(grouped) == sorted(
        id(p) for p in [*backbone.parameters(), *projector.parameters()]
    )
    assert list(groups)[:5] == [
        "conv:stem",
        "conv:layer1",
        "conv:layer2",
        "conv:layer3",
        "conv:layer4",
    ]
    assert {"bn:dense", "bn:gated", "gates", "projector"} <= set(groups)
    assert ("bn:shared" in groups) is (scope == "block")  # backbone/all: the stem BN is dual too


def test_shares_sum_to_one_and_branch_private_parts_get_one_branch_only() -> None:
    backbone, projector, views = _parts()
    torch.manual_seed(2)
    losses = path_losses(backbone, projector, views, BUDGET, DualGatingOptions(), 0.5, vicreg_loss)
    rows = path_shares(losses, parameter_groups(backbone, projector))
    by = {(r.path, r.group): r for r in rows}
    for group in {r.group for r in rows}:
        total = sum(r.share for r in rows if r.group == group)
        assert total == pytest.approx(1.0, abs=1e-9), group
    # the dense BNs only see the dense pass, the gated BNs and gates only the gated one
    assert by[("cross_via_gated", "bn:dense")].norm == 0.0
    assert by[("cross_via_dense", "bn:gated")].norm == 0.0
    assert by[("cross_via_dense", "gates")].norm == 0.0
    assert by[("budget", "projector")].norm == 0.0
    assert by[("budget", "gates")].norm > 0.0
    # a lone nonzero path in a group carries the whole step: share and cosine 1
    assert by[("cross_via_dense", "bn:dense")].share == pytest.approx(1.0)
    assert by[("cross_via_dense", "bn:dense")].cosine == pytest.approx(1.0)


def test_a_symmetric_run_is_refused_in_one_line() -> None:
    backbone, projector, views = _parts()
    with pytest.raises(UsageError, match="symmetric=True"):
        path_losses(
            backbone,
            projector,
            views,
            BUDGET,
            DualGatingOptions(symmetric=True),
            0.5,
            vicreg_loss,
        )


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--checkpoint", "CKPT", "--batches", "0"], "--batches"),
        (["--checkpoint", "missing.ckpt"], "missing.ckpt"),
    ],
)
def test_bad_options_stop_before_anything_is_written(tmp_path, argv, named) -> None:
    from experiments.analysis.gradient_share_report import main

    out = tmp_path / "out"
    argv = [a.replace("CKPT", str(tmp_path / "missing.ckpt")) for a in argv]
    with pytest.raises(UsageError, match=named):
        main([*argv, "--out", str(out)])
    assert not out.exists()


def test_seeds_of_one_variant_are_averaged_by_hand() -> None:
    from experiments.analysis.gradient_share_report import by_variant, variant_of

    assert variant_of("vicreg_dual_gating-td0.3-seed1-paper") == "vicreg_dual_gating-td0.3-paper"
    assert variant_of("my-own-run") == "my-own-run"

    def row(run, share, std=0.5):
        return {
            "run": run,
            "state": "trained",
            "epoch": 4,
            "path": "budget",
            "group": "gates",
            "share_mean": share,
            "share_std": std,
            "cosine_mean": share / 2,
        }

    rows = [
        row("vicreg_dual_gating-td0.3-paper", 0.2),
        row("vicreg_dual_gating-td0.3-seed1-paper", 0.4),
        row("vicreg_dual_gating-td0.3-paper_dense_pair", 0.7, std=0.25),
    ]
    paper, pair = by_variant(rows)
    assert (paper["variant"], paper["runs"]) == ("vicreg_dual_gating-td0.3-paper", 2)
    assert paper["share_mean"] == pytest.approx(0.3)
    assert paper["share_std"] == pytest.approx(0.2 / 2**0.5)  # sample std of 0.2 and 0.4
    assert paper["cosine_mean"] == pytest.approx(0.15)
    assert (pair["runs"], pair["share_std"]) == (1, 0.25)  # one run: its std over batches


def test_every_network_gets_the_same_batches_whatever_ran_before(tmp_path) -> None:
    """The augmentations are seeded inside ``training_batches``: draws from the global generators
    between two calls (another network's gate noise) do not change the views."""
    pytest.importorskip("solo.data.pretrain_dataloader", reason="solo-learn is not importable")
    import random

    from model_utils import write_shape_folders

    from experiments.analysis.gradient_share_report import training_batches

    root = write_shape_folders(tmp_path, "val", ".jpg")
    augmentation = {
        "rrc": {"enabled": True, "crop_min_scale": 0.2, "crop_max_scale": 1.0},
        "color_jitter": {
            "prob": 0.8,
            "brightness": 0.4,
            "contrast": 0.4,
            "saturation": 0.2,
            "hue": 0.1,
        },
        "grayscale": {"prob": 0.2},
        "gaussian_blur": {"prob": 0.5},  # draws its sigma from Python's generator
        "solarization": {"prob": 0.1},
        "equalization": {"prob": 0.0},
        "horizontal_flip": {"prob": 0.5},
        "crop_size": 32,
        "num_crops": 2,
    }
    args = {
        "data": {"dataset": "custom", "train_path": str(root / "train")},
        "optimizer": {"batch_size": 8},
        "augmentations": [augmentation],
    }
    first = training_batches(args, 2, seed=3)
    torch.rand(1000), random.random()
    again = training_batches(args, 2, seed=3)
    other = training_batches(args, 2, seed=4)
    for (a1, a2), (b1, b2) in zip(first, again):
        assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(first[0][0], other[0][0])
    assert not torch.equal(first[0][0], first[0][1])  # the two views differ
