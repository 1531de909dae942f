"""Options of VICReg-Dual-Gating beyond VICReg and the budget: its ``method_kwargs`` that change
the objective (:func:`dualgate_solo.gated.objective.dual_gating_objective`); the budget's own are
:class:`dualgate_solo.gated.budget.BudgetOptions`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dualgate_solo.validation import UsageError, check_choice, check_interval


@dataclass(frozen=True)
class DualGatingOptions:
    """Options of VICReg-Dual-Gating beyond VICReg and the budget (defaults: the paper's form).

    With ``z_g = g(view 1)``, ``z_d = d(view 2)`` the projected gated and dense embeddings, the
    paper's loss is ``VICReg(z_g, z_d) + L_G``. The options below change it to

        mean over pairs of VICReg(z_g, sg(z_d)) + w * VICReg(d(view 1), d(view 2)) + L_G

    Attributes:
        symmetric: also pair gated(view 2) with dense(view 1) and average the two cross terms
            and the two budget losses (both views through both branches; twice the forward cost).
        dense_pair_weight: ``w``, the weight of a dense-dense VICReg term on the two views, the
            dense branch's own VICReg objective (0: off, the paper). Costs one more dense pass
            (none when ``symmetric``, which runs both views densely already).
        detach_dense_target: ``sg``: stop the gradient of the gated-dense term at the dense
            embedding, so the gated branch learns from the dense one and not the reverse. Needs
            ``dense_pair_weight > 0``, else the dense branch would get no training signal.
    """

    symmetric: bool = False
    dense_pair_weight: float = 0.0
    detach_dense_target: bool = False

    def __post_init__(self) -> None:
        check_choice("symmetric", self.symmetric, (True, False))
        check_interval("dense_pair_weight", self.dense_pair_weight, 0.0, math.inf)
        check_choice("detach_dense_target", self.detach_dense_target, (True, False))
        if self.detach_dense_target and self.dense_pair_weight == 0:
            raise UsageError(
                "detach_dense_target=True is invalid with dense_pair_weight=0; allowed: "
                "detach_dense_target=True only with dense_pair_weight > 0 (else the dense branch "
                "gets no gradient)"
            )
