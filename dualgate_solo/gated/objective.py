"""One training objective per method, framework-free (used by solo-learn methods and the demo).

* :func:`dual_gating_objective`: VICReg-Dual-Gating (BMVC 2023). View 1 -> gated
  branch, view 2 -> dense branch, one shared projector, ``L = VICReg(z_g, z_d) + L_G(gated)``.
  :class:`~dualgate_solo.gated.options.DualGatingOptions` add, off by default: the symmetric
  pairing, a dense-dense VICReg term, a stop-gradient on the dense side of the cross term and a
  scale on the gated passes' gradient into the shared weights.
* :func:`dense_warmup_objective`: its gate warm-up (``gate_warmup_epochs``), both views dense,
  ``L = VICReg(d(view 1), d(view 2))``.
* :func:`gating_objective`: VICReg-Gating, Baseline-2 (IMVIP 2022). Both views run the
  gated branch with their own gate samples, ``L = VICReg(z_1, z_2) + L_G(view 1) + L_G(view 2)``.

``vicreg_fn(z1, z2) -> scalar`` is injected: solo-learn's gathered ``vicreg_loss_func`` inside
solo, :func:`dualgate_solo.losses.vicreg.vicreg_loss` elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

from dualgate_solo.gated.budget import BudgetOptions, BudgetTerms, budget_loss
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.gated.resnet import BranchOutput, GatedResNet
from dualgate_solo.gated.shared_weights import gated_pass
from dualgate_solo.models.projector import Projector

VICRegFn = Callable[[Tensor, Tensor], Tensor]
#: the paper's form: one gated-dense pair, no dense-dense term, no stop-gradient
PAPER_DUAL_OPTIONS = DualGatingOptions()


class ObjectiveOutput(NamedTuple):
    """Loss and everything worth logging from one step.

    Attributes:
        loss: total loss (scalar).
        vicreg: the VICReg part (scalar, averaged over pairs when symmetric).
        budget: L_G terms (averaged over gated passes for the dual method, summed for the
            baseline, as the paper's baseline sums them).
        outputs: the branch outputs in forward order (view 1's first).
        embeddings: projector outputs ``[B, D]`` in the same order.
    """

    loss: Tensor
    vicreg: Tensor
    budget: BudgetTerms
    outputs: tuple[BranchOutput, ...]
    embeddings: tuple[Tensor, ...]


def gated_budget(
    backbone: GatedResNet,
    out: BranchOutput,
    config: BudgetOptions,
    p: float,
    multiplier: float | Tensor = 0.0,
) -> BudgetTerms:
    """L_G of one gated pass on the sampled masks (paper) or eval-style ones (``ratio_source``)."""
    if config.ratio_source == "deterministic":
        masks = backbone.deterministic_masks(out)
        return budget_loss(backbone.ratio_for_masks(out, masks), masks, config, p, multiplier)
    return budget_loss(out.ratio, out.masks, config, p, multiplier)


def _combine(terms: list[BudgetTerms], scale: float) -> BudgetTerms:
    return BudgetTerms(*(scale * sum(parts) for parts in zip(*terms)))


def _mean(terms: list[BudgetTerms]) -> BudgetTerms:
    return _combine(terms, 1.0 / len(terms))


def dual_gating_objective(
    backbone: GatedResNet,
    projector: Projector,
    views: tuple[Tensor, Tensor],
    budget: BudgetOptions,
    p: float,
    vicreg_fn: VICRegFn,
    options: DualGatingOptions = PAPER_DUAL_OPTIONS,
    multiplier: float | Tensor = 0.0,
) -> ObjectiveOutput:
    """VICReg-Dual-Gating loss for two views ``[B, 3, H, W]`` (view 1 gated, view 2 dense).

    ``L = mean_pairs VICReg(z_g, sg(z_d)) + w * VICReg(d(view 1), d(view 2)) + L_G`` where the
    pairs are (gated view 1, dense view 2) and, when ``options.symmetric``, (gated view 2, dense
    view 1); ``sg`` is a stop-gradient when ``options.detach_dense_target``, ``w`` is
    ``options.dense_pair_weight`` (the paper: one pair, no ``sg``, ``w = 0``); the gated passes
    send ``options.gated_grad_scale`` of their gradient into the shared weights
    (:func:`~dualgate_solo.gated.shared_weights.gated_pass`). ``vicreg`` in the
    output is the whole VICReg part, ``outputs``/``embeddings`` hold every pass in forward order.
    """
    order = [(0, 1)] + ([(1, 0)] if options.symmetric else [])
    dense: dict[int, tuple[BranchOutput, Tensor]] = {}
    outputs, embeddings, vicregs, budgets = [], [], [], []

    def dense_pass(view: int) -> Tensor:
        if view not in dense:
            out = backbone.forward_branch(views[view], "dense")
            dense[view] = out, projector(out.feats, "dense")
            outputs.append(out)
            embeddings.append(dense[view][1])
        return dense[view][1]

    for gated_view, dense_view in order:
        gated, z_gated = gated_pass(
            backbone, projector, views[gated_view], options.gated_grad_scale
        )
        outputs.append(gated)
        embeddings.append(z_gated)
        z_dense = dense_pass(dense_view)
        target = z_dense.detach() if options.detach_dense_target else z_dense
        vicregs.append(vicreg_fn(z_gated, target))
        budgets.append(gated_budget(backbone, gated, budget, p, multiplier))
    vicreg = sum(vicregs) / len(vicregs)
    if options.dense_pair_weight:
        vicreg = vicreg + options.dense_pair_weight * vicreg_fn(dense_pass(0), dense_pass(1))
    terms = _mean(budgets)
    return ObjectiveOutput(vicreg + terms.loss, vicreg, terms, tuple(outputs), tuple(embeddings))


def dense_warmup_objective(
    backbone: GatedResNet,
    projector: Projector,
    views: tuple[Tensor, Tensor],
    vicreg_fn: VICRegFn,
) -> ObjectiveOutput:
    """The gate warm-up's loss on two views ``[B, 3, H, W]``: both through the dense branch,
    ``L = VICReg(d(view 1), d(view 2))``; no gated pass, so no ``L_G`` (its terms are 0, its ratio
    the dense branch's 1 and every block's density 1)."""
    outputs = tuple(backbone.forward_branch(x, "dense") for x in views)
    embeddings = tuple(projector(o.feats, "dense") for o in outputs)
    vicreg = vicreg_fn(*embeddings)
    zero = vicreg.new_zeros(())
    densities = vicreg.new_ones(len(backbone.gated_block_names))
    terms = BudgetTerms(zero, zero, zero, outputs[0].ratio.mean().float(), densities)
    return ObjectiveOutput(vicreg, vicreg, terms, outputs, embeddings)


def gating_objective(
    backbone: GatedResNet,
    projector: Projector,
    views: tuple[Tensor, Tensor],
    budget: BudgetOptions,
    p: float,
    vicreg_fn: VICRegFn,
    multiplier: float | Tensor = 0.0,
) -> ObjectiveOutput:
    """VICReg-Gating (Baseline-2) loss: both views ``[B, 3, H, W]`` through the gated branch."""
    outputs = tuple(backbone.forward_branch(x, "gated") for x in views)
    embeddings = tuple(projector(o.feats, "gated") for o in outputs)
    vicreg = vicreg_fn(*embeddings)
    terms = [gated_budget(backbone, o, budget, p, multiplier) for o in outputs]
    summed = _combine(terms, 1.0)
    # ratio and densities are reported as the mean over views; the loss parts are summed.
    mean = _mean(terms)
    reported = BudgetTerms(summed.loss, summed.flops, summed.bound, mean.ratio, mean.densities)
    return ObjectiveOutput(vicreg + summed.loss, vicreg, reported, outputs, embeddings)
