"""Cross-checks of the framework-free copies against the implementations they reproduce.

- VICReg loss (:mod:`dualgate_solo.losses.vicreg`) against solo-learn's ``vicreg_loss_func`` and
  against the formula of the authors' code (facebookresearch/vicreg, ``main_vicreg.py``).
- LARS (:mod:`dualgate_solo.optim`) against solo-learn's ``solo.utils.lars.LARS`` and timm's
  ``timm.optim.Lars``, over several steps.
- k-NN (:mod:`dualgate_solo.knn`) against solo-learn's ``WeightedKNNClassifier``.
- Barlow Twins (:mod:`dualgate_solo.slimmable.losses`, SACL-XD) against solo-learn's
  ``barlow_loss_func``; the SEED distillation against the MoCo v3 similarities.

The solo-learn checks skip, with the reason, when solo-learn is not importable (install it from
requirements-solo.txt, or put a checkout on PYTHONPATH).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dualgate_solo.knn import knn_top1
from dualgate_solo.losses.vicreg import variance_loss, vicreg_loss
from dualgate_solo.optim import LARS

SOLO_MISSING = (
    "solo-learn is not importable: pip install -r requirements-solo.txt, or put a solo-learn "
    "checkout on PYTHONPATH"
)
WEIGHTS = [(25.0, 25.0, 1.0), (10.0, 3.0, 0.5)]  # (sim, var, cov): solo-learn's defaults, others


def _solo(module: str):
    return pytest.importorskip(module, reason=SOLO_MISSING)


def _embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    """Two correlated float64 views ``[32, 16]`` with per-dimension std 0.3-1.5 (hinge active)."""
    scale = torch.linspace(0.3, 1.5, 16, dtype=torch.float64)
    z1 = torch.randn(32, 16, dtype=torch.float64) * scale
    z2 = (z1 + 0.5 * torch.randn(32, 16, dtype=torch.float64)) * scale
    mixing = torch.eye(16, dtype=torch.float64) + 0.2 * torch.randn(16, 16, dtype=torch.float64)
    return (z1 @ mixing).requires_grad_(), (z2 @ mixing).requires_grad_()


# ------------------------------------------------------------------------------------ VICReg
def facebook_vicreg_loss(
    x: torch.Tensor, y: torch.Tensor, sim_coeff: float, std_coeff: float, cov_coeff: float
) -> torch.Tensor:
    """``VICReg.forward`` of facebookresearch/vicreg (single process, batch ``N``, width ``D``)::

        repr = mean((x - y)^2);  x, y centred over the batch
        std  = mean(relu(1 - sqrt(Var(x) + 1e-4))) / 2 + mean(relu(1 - sqrt(Var(y) + 1e-4))) / 2
        cov  = sum_{i != j} C(x)_ij^2 / D + sum_{i != j} C(y)_ij^2 / D,  C(x) = x^T x / (N - 1)
        loss = sim_coeff * repr + std_coeff * std + cov_coeff * cov

    The two std terms are averaged here; solo-learn (and this package) sums them.
    """
    n, d = x.shape
    representation = ((x - y) ** 2).mean()
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    std = sum(torch.clamp(1 - torch.sqrt(v.var(dim=0) + 1e-4), min=0).mean() / 2 for v in (x, y))
    off_diagonal = ~torch.eye(d, dtype=torch.bool)
    cov = sum(((v.T @ v) / (n - 1))[off_diagonal].pow(2).sum() / d for v in (x, y))
    return sim_coeff * representation + std_coeff * std + cov_coeff * cov


@pytest.mark.parametrize("weights", WEIGHTS)
def test_vicreg_is_the_reference_formula_with_the_std_weight_doubled(weights) -> None:
    """Exact relationship: ours(sim, var, cov) == reference(sim, 2 var, cov), loss and gradients."""
    sim, var, cov = weights
    z1, z2 = _embeddings()
    ours = vicreg_loss(z1, z2, sim, var, cov)
    reference = facebook_vicreg_loss(z1, z2, sim, 2 * var, cov)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        torch.autograd.grad(ours, (z1, z2)),
        torch.autograd.grad(reference, (z1, z2)),
        rtol=1e-10,
        atol=1e-14,
    )
    # At equal weights the two differ by half the (summed) variance term, which is not zero here.
    with torch.no_grad():
        gap = vicreg_loss(z1, z2, sim, var, cov) - facebook_vicreg_loss(z1, z2, sim, var, cov)
        half_variance = var * variance_loss(z1, z2) / 2
    assert float(half_variance) > 0.1
    torch.testing.assert_close(gap, half_variance, rtol=1e-10, atol=0)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_vicreg_matches_solo_learn(weights) -> None:
    solo_vicreg = _solo("solo.losses.vicreg")
    z1, z2 = _embeddings()
    ours = vicreg_loss(z1, z2, *weights)
    theirs = solo_vicreg.vicreg_loss_func(z1, z2, *weights)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        torch.autograd.grad(ours, (z1, z2)),
        torch.autograd.grad(theirs, (z1, z2)),
        rtol=1e-10,
        atol=1e-14,
    )


# -------------------------------------------------------------------------------------- LARS
def _model() -> torch.nn.Module:
    """Matrices and 1-D parameters (biases, BatchNorm), in float64."""
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3)
    ).double()


def _groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Matrices with their decay, 1-D parameters with none (timm's way to exclude them)."""
    params = list(model.parameters())
    return [
        {"params": [p for p in params if p.ndim != 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim == 1], "weight_decay": 0.0},
    ]


def _train_side_by_side(make_reference, clip_lr: bool, steps: int = 6) -> None:
    """Same model, data and settings under both optimisers; parameters compared after each step."""
    lr, weight_decay, eta = 0.3, 5e-4, 0.02
    ours_model, reference_model = _model(), _model()
    ours = LARS(_groups(ours_model, weight_decay), lr=lr, momentum=0.9, eta=eta, clip_lr=clip_lr)
    reference = make_reference(_groups(reference_model, weight_decay), lr, eta, clip_lr)
    data = torch.randn(steps, 16, 6, dtype=torch.float64)
    targets = torch.randint(0, 3, (steps, 16))
    for x, y in zip(data, targets):
        for model, optimizer in ((ours_model, ours), (reference_model, reference)):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        for mine, theirs in zip(ours_model.parameters(), reference_model.parameters()):
            torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-15)
    moved = [
        float((p - q).abs().max().detach())
        for p, q in zip(ours_model.parameters(), _model().parameters())
    ]
    assert min(moved) > 1e-4  # every parameter was updated, so the comparison had something to see


@pytest.mark.parametrize("clip_lr", [True, False])
def test_lars_matches_solo_learn_over_several_steps(clip_lr) -> None:
    solo_lars = _solo("solo.utils.lars")

    def make(groups, lr, eta, clip):
        return solo_lars.LARS(
            groups, lr=lr, momentum=0.9, eta=eta, clip_lr=clip, exclude_bias_n_norm=True
        )

    _train_side_by_side(make, clip_lr)


@pytest.mark.parametrize("clip_lr", [True, False])
def test_lars_matches_timm_over_several_steps(clip_lr) -> None:
    from timm.optim import Lars

    def make(groups, lr, eta, clip):
        return Lars(groups, lr=lr, momentum=0.9, trust_coeff=eta, trust_clip=clip)

    _train_side_by_side(make, clip_lr)


# --------------------------------------------------------------------------------------- k-NN
def _clusters(count: int, seed: int, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping Gaussian clusters ``[count, 8]``; labels cycle, so every class is present."""
    centres = torch.randn(classes, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(count) % classes
    noise = torch.randn(count, 8, generator=torch.Generator().manual_seed(seed))
    return centres[labels] + noise, labels


@pytest.mark.parametrize(("k", "chunk_size"), [(1, 1024), (5, 7), (20, 1024), (200, 13)])
def test_knn_matches_solo_learns_weighted_knn_classifier(k, chunk_size) -> None:
    solo_knn = _solo("solo.utils.knn")
    train_feats, train_labels = _clusters(150, seed=1)
    test_feats, test_labels = _clusters(60, seed=2)
    ours = knn_top1(train_feats, train_labels, test_feats, test_labels, k, chunk_size)
    classifier = solo_knn.WeightedKNNClassifier(
        k=k, distance_fx="euclidean", max_distance_matrix_size=chunk_size * len(train_labels)
    )
    classifier.update(train_feats, train_labels, test_feats, test_labels)
    top1, _ = classifier.compute()
    assert 0 < ours < 100  # neither all right nor all wrong: the comparison can tell them apart
    assert ours == top1


# ------------------------------------------------------------------------------------ slim family
def test_barlow_twins_loss_equals_solo_learns_value_and_gradients() -> None:
    from dualgate_solo.slimmable.losses import barlow_twins_loss

    barlow = _solo("solo.losses.barlow")
    for lamb, scale in ((0.0051, 0.1), (0.05, 0.024)):
        # float32: solo-learn's loss standardises with a float32 BatchNorm1d
        ours_in = [z.detach().float().requires_grad_() for z in _embeddings()]
        solo_in = [z.detach().clone().requires_grad_() for z in ours_in]
        ours = barlow_twins_loss(*ours_in, lamb, scale)
        theirs = barlow.barlow_loss_func(*solo_in, lamb=lamb, scale_loss=scale)
        torch.testing.assert_close(ours, theirs)
        ours.backward(), theirs.backward()
        for a, b in zip(ours_in, solo_in):
            torch.testing.assert_close(a.grad, b.grad)


def test_similarity_distillation_with_equal_logits_is_the_entropy_of_mocov3_targets() -> None:
    """SEED distillation of a network from itself is the entropy of its similarity distribution,
    and solo-learn's MoCo v3 InfoNCE on the same similarities is the cross-entropy to the
    positives: both read the same normalised logits."""
    from dualgate_solo.slimmable.losses import similarity_distillation

    mocov3 = _solo("solo.losses.mocov3")
    q, k = (t.detach().float() for t in _embeddings())
    tau = 0.2
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / tau
    entropy = -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1).mean() * tau**2
    torch.testing.assert_close(similarity_distillation(q, q, k, tau), entropy)
    info_nce = F.cross_entropy(logits, torch.arange(len(q))) * 2 * tau
    torch.testing.assert_close(mocov3.mocov3_loss_func(q, k, temperature=tau), info_nce)
