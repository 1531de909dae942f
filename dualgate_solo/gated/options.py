"""Options of VICReg-Dual-Gating beyond VICReg and the budget: its ``method_kwargs`` that change
the objective (:func:`dualgate_solo.gated.objective.dual_gating_objective`); the budget's own are
:class:`dualgate_solo.gated.budget.BudgetOptions`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dualgate_solo.validation import UsageError, check_choice, check_integer, check_interval


@dataclass(frozen=True)
class DualGatingOptions:
    """Options of VICReg-Dual-Gating beyond VICReg and the budget (defaults: the paper's form).

    With ``z_g = g(view 1)``, ``z_d = d(view 2)`` the projected gated and dense embeddings, the
    paper's loss is ``VICReg(z_g, z_d) + L_G``. The options below change it to

        mean over pairs of VICReg(z_g, sg(z_d)) + w * VICReg(d(view 1), d(view 2)) + L_G

    (after ``gate_warmup_epochs`` epochs of ``VICReg(d(view 1), d(view 2))`` alone), with the
    gated passes run on ``sg(theta) + s * (theta - sg(theta))`` for every weight ``theta`` the two
    branches share: the same values, a gradient into ``theta`` scaled by ``s``.

    Attributes:
        symmetric: also pair gated(view 2) with dense(view 1) and average the two cross terms
            and the two budget losses (both views through both branches; twice the forward cost).
        dense_pair_weight: ``w``, the weight of a dense-dense VICReg term on the two views, the
            dense branch's own VICReg objective (0: off, the paper). Costs one more dense pass
            (none when ``symmetric``, which runs both views densely already).
        detach_dense_target: ``sg``: stop the gradient of the gated-dense term at the dense
            embedding, so the gated branch learns from the dense one and not the reverse. Needs
            ``dense_pair_weight > 0``, else the dense branch would get no training signal.
        gate_warmup_epochs: ``N``, the official code's ``--warmup-gate`` ablation (off in the
            paper's runs): for the first ``N`` epochs both views run the dense branch only,
            ``L = VICReg(d(view 1), d(view 2))`` with no gated pass and no ``L_G``
            (:func:`~dualgate_solo.gated.objective.dense_warmup_objective`); then the objective
            above, with the annealing clock started at epoch ``N``:
            ``p = exp(-alpha * (epoch - N))``.
        gated_grad_scale: ``s`` in [0, 1], the share of the gated passes' gradient that reaches
            the weights both branches use (convs, shared BNs, the projector's linear layers);
            the gates and the gated BNs get all of it (1: the paper). ``s = 0`` with
            ``dense_pair_weight > 0`` and ``detach_dense_target`` trains the shared weights by
            the dense VICReg term alone, as VICReg would, and the gated branch only learns where
            to switch channels off and its own BNs.
    """

    symmetric: bool = False
    dense_pair_weight: float = 0.0
    detach_dense_target: bool = False
    gate_warmup_epochs: int = 0
    gated_grad_scale: float = 1.0

    def __post_init__(self) -> None:
        check_choice("symmetric", self.symmetric, (True, False))
        check_interval("dense_pair_weight", self.dense_pair_weight, 0.0, math.inf)
        check_choice("detach_dense_target", self.detach_dense_target, (True, False))
        check_integer("gate_warmup_epochs", self.gate_warmup_epochs, 0)
        check_interval("gated_grad_scale", self.gated_grad_scale, 0.0, 1.0)
        if self.detach_dense_target and self.dense_pair_weight == 0:
            raise UsageError(
                "detach_dense_target=True is invalid with dense_pair_weight=0; allowed: "
                "detach_dense_target=True only with dense_pair_weight > 0 (else the dense branch "
                "gets no gradient)"
            )

    def gates_on(self, epoch: int) -> bool:
        """Whether the gated branch trains at ``epoch`` (0-based): after the gate warm-up."""
        return epoch >= self.gate_warmup_epochs

    def gate_epoch(self, epoch: int) -> int:
        """The annealing clock at ``epoch``: epochs since the gate warm-up ended (0 within it)."""
        return max(0, epoch - self.gate_warmup_epochs)
