"""Losses of the slimmable family: SlimCLR's weights and distillation, SACL-XD's Barlow terms.

All framework-free (torch only); the solo-learn methods call them, and the tests check each one
against hand-computed values and, where solo-learn is importable, against its own losses.
Shapes: embeddings ``[N, D]``, scalar results.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def slimclr_loss_weights(widths: Sequence[float], reweight: bool = True) -> list[float]:
    """SlimCLR's per-width loss weights, full width first.

    ``lambda_max = 1 + sum_{w < w_max} w`` and ``lambda_w = 1`` otherwise (its released
    scripts' ``slim_loss_weighted=5``): ``[1.0, 0.75, 0.5, 0.25] -> [2.5, 1, 1, 1]``. Without
    ``reweight`` every weight is 1.
    """
    widths = list(widths)
    if not reweight:
        return [1.0] * len(widths)
    return [1.0 + sum(widths[1:])] + [1.0] * (len(widths) - 1)


def similarity_distillation(
    student: Tensor, teacher: Tensor, keys: Tensor, temperature: float = 1.0
) -> Tensor:
    """SEED-style distillation on the similarity distribution (SlimCLR's ``seed_loss``).

    ``s = norm(student) norm(keys)^T``, ``t = norm(teacher) norm(keys)^T`` (``[N, K]``);
    ``KD = mean_n [-sum_k softmax(t / tau)_nk log softmax(s / tau)_nk] * tau^2``. The teacher
    is detached.

    Args:
        student: ``[N, D]`` the narrower width's queries.
        teacher: ``[N, D]`` the full width's queries (no gradient flows into it).
        keys: ``[K, D]`` the momentum targets both are compared with.
        temperature: tau (SlimCLR's MoCo v3: 1.0).
    """
    keys = F.normalize(keys.detach(), dim=1)
    s = F.normalize(student, dim=1) @ keys.T / temperature
    t = F.normalize(teacher.detach(), dim=1) @ keys.T / temperature
    return -(F.softmax(t, dim=1) * F.log_softmax(s, dim=1)).sum(dim=1).mean() * temperature**2


def embedding_distillation(
    student: Tensor, teacher: Tensor, kind: str = "mse", mse_weight: float = 25.0
) -> Tensor:
    """Distillation on embeddings ``[N, D]`` from the detached teacher.

    ``mse``: ``mse_weight * mean((student - sg(teacher))^2)`` (VICReg's invariance term, its
    weight ``sim_loss_weight``); ``cosine``: ``mean_n (2 - 2 cos(student_n, sg(teacher_n)))``.
    """
    teacher = teacher.detach()
    if kind == "mse":
        return mse_weight * F.mse_loss(student, teacher)
    return (2 - 2 * F.cosine_similarity(student, teacher, dim=1)).mean()


def barlow_twins_loss(z1: Tensor, z2: Tensor, lamb: float = 0.0051, scale: float = 0.1) -> Tensor:
    """Barlow Twins (Zbontar et al., ICML 2021), solo-learn's conventions.

    Each embedding is standardised along the batch (biased variance, eps 1e-5, as
    ``BatchNorm1d(affine=False)`` in training), ``C = z1_hat^T z2_hat / N`` ``[D, D]``
    (averaged over processes when distributed) and
    ``L = scale [sum_i (1 - C_ii)^2 + lamb sum_{i != j} C_ij^2]``.
    """
    n, d = z1.shape
    z1 = F.batch_norm(z1, None, None, training=True, eps=1e-5)
    z2 = F.batch_norm(z2, None, None, training=True, eps=1e-5)
    corr = z1.T @ z2 / n
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(corr)
        corr = corr / dist.get_world_size()
    diagonal = torch.eye(d, device=corr.device, dtype=torch.bool)
    on = (1 - corr[diagonal]).pow(2).sum()
    off = corr[~diagonal].pow(2).sum()
    return scale * (on + lamb * off)


def cross_distillation_loss(
    host_a: Tensor,
    frozen_slim_a: Tensor,
    slim_b: Tensor,
    frozen_host_b: Tensor,
    lamb: float = 0.0051,
    scale: float = 0.1,
) -> Tensor:
    """SACL-XD's cross-distillation ``L_XD = 1/2 [L_C(z^A, [z^A]) + L_C(z^B, [z^B])]``.

    ``z^A = host(x_A)`` against the frozen slim network on the same view ``[z^A]``, and
    ``z^B = slim(x_B)`` against the frozen host on ``x_B``: each pair shares its input and
    differs only by the slimming. ``L_C`` is :func:`barlow_twins_loss`; the frozen embeddings are
    detached.
    """
    first = barlow_twins_loss(host_a, frozen_slim_a.detach(), lamb, scale)
    second = barlow_twins_loss(slim_b, frozen_host_b.detach(), lamb, scale)
    return 0.5 * (first + second)
