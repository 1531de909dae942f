"""Training objectives of the slimmable family, framework-free (the solo-learn methods call them).

* :func:`slimclr_objective`: SlimCLR (Zhao et al., IJCV 2024) over any per-width SSL loss:
  ``L = lambda_max L(w_max) + sum_{w < w_max} [(1 - beta) L_ssl(w) + beta KD(w <- w_max)]``,
  the narrower terms only once the sub-networks are on (after the slow start).
* :func:`slimclr_vicreg_objective`: SlimCLR over VICReg; :func:`slimclr_vicreg_terms` is a
  narrower width's ``L_ssl(w)`` with full-width targets and its embedding distillation.
* :func:`sacl_xd_objective`: SACL-XD (Meng et al., NeurIPS 2023):
  ``L = alpha BT(host(x_A), slim(x_B)) + (1 - alpha) L_XD``.

Shapes: views ``[B, 3, H, W]``, embeddings ``[B, D]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dualgate_solo.losses.vicreg import covariance_loss, invariance_loss, variance_loss
from dualgate_solo.method_registry import VICRegOptions
from dualgate_solo.slimmable.heads import SlimMLP
from dualgate_solo.slimmable.losses import (
    barlow_twins_loss,
    cross_distillation_loss,
    embedding_distillation,
    slimclr_loss_weights,
)
from dualgate_solo.slimmable.options import BarlowOptions, SACLOptions, SlimCLROptions
from dualgate_solo.slimmable.resnet import SlimResNet


class WidthTerms(NamedTuple):
    """One narrower width's loss terms: ``ssl`` (against full-width targets), ``distill``."""

    ssl: Tensor
    distill: Tensor


class SlimObjectiveOutput(NamedTuple):
    """Loss and what is worth logging from one step.

    Attributes:
        loss: the total loss (scalar).
        terms: ``{"<name>": scalar}`` for the logs (per-width losses, distillation, ...).
        feats: view 1's backbone features ``[B, F(w)]`` per trained width (online probes).
    """

    loss: Tensor
    terms: dict[str, Tensor]
    feats: dict[float, Tensor]


def slimclr_objective(
    widths: Sequence[float],
    full_loss: Tensor,
    narrow_terms: dict[float, WidthTerms],
    options: SlimCLROptions,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Combine SlimCLR's per-width terms: ``(loss, log terms)``.

    Args:
        widths: the network's whole width list, full first (fixes the weights
            :func:`~dualgate_solo.slimmable.losses.slimclr_loss_weights`).
        full_loss: ``L(w_max)``.
        narrow_terms: the active narrower widths' terms (empty during the slow start).
        options: ``distill_weight`` (beta) and ``loss_reweighting``.
    """
    weights = dict(zip(widths, slimclr_loss_weights(widths, options.loss_reweighting)))
    beta = options.distill_weight
    loss = weights[widths[0]] * full_loss
    log = {"loss_w1": full_loss.detach()}
    for w, terms in narrow_terms.items():
        loss = loss + weights[w] * ((1 - beta) * terms.ssl + beta * terms.distill)
        log[f"loss_w{w:g}"] = terms.ssl.detach()
        log[f"distill_w{w:g}"] = terms.distill.detach()
    return loss, log


def vicreg_with_targets(
    z1: Tensor,
    z2: Tensor,
    target1: Tensor,
    target2: Tensor,
    sim_loss_weight: float,
    var_loss_weight: float,
    cov_loss_weight: float,
) -> Tensor:
    """VICReg of a narrower width against the full width's targets.

    ``sim * 1/2 [MSE(z1, sg t2) + MSE(z2, sg t1)] + var * (v(z1) + v(z2)) + cov * (c(z1) +
    c(z2))``: each view is pulled toward the detached full-width embedding of the other view,
    variance and covariance act on the width's own embeddings, at the scale of one VICReg loss.
    """
    invariance = 0.5 * (
        invariance_loss(z1, target2.detach()) + invariance_loss(z2, target1.detach())
    )
    return (
        sim_loss_weight * invariance
        + var_loss_weight * variance_loss(z1, z2)
        + cov_loss_weight * covariance_loss(z1, z2)
    )


def slimclr_vicreg_terms(
    z: tuple[Tensor, Tensor],
    full: tuple[Tensor, Tensor],
    vicreg_weights: tuple[float, float, float],
    distill_loss: str,
) -> WidthTerms:
    """``L_ssl(w)`` (:func:`vicreg_with_targets`) and ``KD(w)`` (embedding distillation of each
    view from the same view's detached full-width embedding, averaged over the views)."""
    sim, var, cov = vicreg_weights
    ssl = vicreg_with_targets(z[0], z[1], full[0], full[1], sim, var, cov)
    distill = 0.5 * sum(
        embedding_distillation(zw, zf, distill_loss, sim) for zw, zf in zip(z, full)
    )
    return WidthTerms(ssl, distill)


def slimclr_vicreg_objective(
    backbone: SlimResNet,
    projector: SlimMLP,
    views: tuple[Tensor, Tensor],
    vicreg: VICRegOptions,
    options: SlimCLROptions,
    distill_loss: str,
    subnetworks_on: bool,
    vicreg_fn: Callable[[Tensor, Tensor], Tensor],
) -> SlimObjectiveOutput:
    """SlimCLR over VICReg on two views: ``L(w_max) = vicreg_fn(z_1, z_2)`` of the full width;
    with ``subnetworks_on`` every narrower width adds :func:`slimclr_vicreg_terms`, combined
    by :func:`slimclr_objective`. One pass per view and active width."""
    weights = (vicreg.sim_loss_weight, vicreg.var_loss_weight, vicreg.cov_loss_weight)
    full_feats, full = embed_views(backbone, projector, views, 1.0)
    feats = {1.0: full_feats[0]}
    narrow = {}
    for w in backbone.widths[1:] if subnetworks_on else ():
        f, z = embed_views(backbone, projector, views, w)
        narrow[w] = slimclr_vicreg_terms((z[0], z[1]), (full[0], full[1]), weights, distill_loss)
        feats[w] = f[0]
    loss, terms = slimclr_objective(backbone.widths, vicreg_fn(*full), narrow, options)
    return SlimObjectiveOutput(loss, terms, feats)


def embed_views(
    backbone: SlimResNet, head: SlimMLP, views: Sequence[Tensor], width_mult: float
) -> tuple[list[Tensor], list[Tensor]]:
    """``(feats, z)`` of every view at ``width_mult``: ``[B, F(w)]`` and ``[B, D]`` each."""
    index = backbone.width_index(width_mult)
    feats = [backbone.forward_width(v, width_mult).feats for v in views]
    return feats, [head(f, index, width_mult) for f in feats]


@contextmanager
def frozen_pass(module: nn.Module) -> Iterator[None]:
    """No gradient and no BatchNorm running-statistics update inside (batch statistics are
    still used in training mode): the "frozen encoder" of SACL-XD's cross-distillation, a copy
    of the current weights that trains nothing."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    counts = [m.num_batches_tracked.clone() for m in norms if m.num_batches_tracked is not None]
    try:
        for m in norms:
            m.momentum = 0.0
        with torch.no_grad():
            yield
    finally:
        tracked = iter(counts)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            if m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(next(tracked))


def sacl_xd_objective(
    backbone: SlimResNet,
    head: SlimMLP,
    views: tuple[Tensor, Tensor],
    sacl: SACLOptions,
    barlow: BarlowOptions,
) -> SlimObjectiveOutput:
    """SACL-XD on two views: view A through the host (width 1), view B through the slim network.

    ``L_SACL = BT(z^A, z^B)``; the frozen encoders re-encode the swapped views,
    ``[z^A] = slim(x_A)``, ``[z^B] = host(x_B)``, and ``L_XD = 1/2 [BT(z^A, [z^A]) +
    BT(z^B, [z^B])]``; ``L = alpha L_SACL + (1 - alpha) L_XD``. Four passes per step, two with
    gradients.
    """
    x_a, x_b = views
    slim = sacl.slim_width
    (host_feats,), (z_a,) = embed_views(backbone, head, [x_a], 1.0)
    (slim_feats,), (z_b,) = embed_views(backbone, head, [x_b], slim)
    with frozen_pass(backbone), frozen_pass(head):
        _, (frozen_slim_a,) = embed_views(backbone, head, [x_a], slim)
        _, (frozen_host_b,) = embed_views(backbone, head, [x_b], 1.0)
    sacl_loss = barlow_twins_loss(z_a, z_b, barlow.lamb, barlow.scale_loss)
    xd_loss = cross_distillation_loss(
        z_a, frozen_slim_a, z_b, frozen_host_b, barlow.lamb, barlow.scale_loss
    )
    loss = sacl.alpha * sacl_loss + (1 - sacl.alpha) * xd_loss
    terms = {"sacl_loss": sacl_loss.detach(), "xd_loss": xd_loss.detach()}
    return SlimObjectiveOutput(loss, terms, {1.0: host_feats, slim: slim_feats})
