"""solo-learn classes of the methods in :data:`dualgate_solo.method_registry.METHODS`.

Thin Lightning wrappers over the framework-free core (:mod:`dualgate_solo.gated.objective`). One
base, :class:`GatedMethod`, does everything a method's
:class:`~dualgate_solo.method_registry.MethodSpec` describes: it fills and checks the cfg
(:func:`dualgate_solo.solo_adapter.config.configure_run`), builds the gated backbone through
solo-learn's registry, feeds solo-learn's online linear probe and k-NN per trained branch, anneals
``p`` per epoch and gives the gates weight decay 0. A method's class adds only its ``SPEC`` and its
:meth:`GatedMethod.objective`.

Branch conventions (what each unchanged downstream script sees):

* ``forward(X)`` runs ``backbone.branch`` (``backbone.kwargs.branch`` in the cfg) and returns
  ``{"feats", "logits", "z"}``: that is what ``main_knn.py``, ``main_umap.py`` and AutoUMAP read.
* Validation runs every trained branch with deterministic gates. The spec's *primary* branch
  (dense for Dual-Gating, gated for Gating) logs solo-learn's usual ``val_acc1``/``val_knn_acc1``;
  another branch logs ``val_<branch>_acc1``/``val_<branch>_knn_acc1``. The gated branch adds
  ``val_flops_ratio``, ``val_flops_reduction`` and ``val_density/<block>``.

Imports solo-learn at module level: import it only through
:func:`dualgate_solo.solo_adapter.register`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import omegaconf
import torch
from solo.losses.vicreg import vicreg_loss_func
from solo.methods.base import BaseMethod
from torch import Tensor

from dualgate_solo.gated.budget import BudgetMultiplier, BudgetOptions, anneal_p
from dualgate_solo.gated.layers.gate import ChannelGate
from dualgate_solo.gated.objective import (
    ObjectiveOutput,
    dense_warmup_objective,
    dual_gating_objective,
    gating_objective,
)
from dualgate_solo.method_registry import (
    DualGatingOptions,
    MethodSpec,
    VICRegOptions,
    get_method,
)
from dualgate_solo.models import BranchOutput
from dualgate_solo.models.projector import Projector
from dualgate_solo.solo_adapter.config import configure_run
from dualgate_solo.solo_adapter.probes import OnlineProbes


class GatedMethod(OnlineProbes, BaseMethod):
    """Shared machinery of the gated methods, driven by ``SPEC``; subclasses add :meth:`objective`.

    Class attributes:
        SPEC: the method's registry entry: name, trained branches (primary first: the one fed
            to solo-learn's own ``classifier`` and ``knn``), allowed ``dual_bn_scope`` values and
            the dataclasses of its ``method_kwargs``.

    Attributes:
        options: ``{dataclass: instance}`` parsed from ``method_kwargs`` (one per
            ``SPEC.kwargs_types``); ``budget`` is ``options[BudgetOptions]``.
    """

    SPEC: ClassVar[MethodSpec]

    def __init__(self, cfg: omegaconf.DictConfig):
        # Fill and check the cfg before solo-learn builds the backbone from it.
        options = configure_run(cfg, self.SPEC)
        super().__init__(cfg)
        self.options = options
        self.budget: BudgetOptions = options[BudgetOptions]
        vicreg: VICRegOptions = options[VICRegOptions]
        self.vicreg_fn = vicreg.weighted(vicreg_loss_func)
        dual_projector = cfg.backbone.kwargs.dual_bn_scope == "all"
        self.projector = Projector(
            self.features_dim, vicreg.proj_hidden_dim, vicreg.proj_output_dim, dual_projector
        )
        branches = list(self.SPEC.branches)
        self.init_probes(cfg, branches, dict.fromkeys(branches, self.features_dim))
        self.gated_block_names = self.backbone.gated_block_names
        self.budget_multiplier = BudgetMultiplier()
        self.register_buffer("anneal_p", torch.tensor(1.0, dtype=torch.float64))

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        """solo-learn's groups with the gates split off at weight decay 0, plus heads."""
        gate_ids = {
            id(p)
            for m in self.backbone.modules()
            if isinstance(m, ChannelGate)
            for p in m.parameters()
        }
        groups = []
        for group in super().learnable_params:
            if group["name"] == "backbone":
                params = list(self.backbone.parameters())
                groups.append(
                    {"name": "backbone", "params": [p for p in params if id(p) not in gate_ids]}
                )
                groups.append(
                    {
                        "name": "gates",
                        "params": [p for p in params if id(p) in gate_ids],
                        "weight_decay": 0.0,
                    }
                )
            else:
                groups.append(group)
        groups.append({"name": "projector", "params": self.projector.parameters()})
        return groups + self.probe_param_groups()

    # ----------------------------------------------------------------------------- forward
    def forward(self, X: Tensor) -> dict[str, Tensor]:
        """``X [B, 3, H, W]`` through ``backbone.branch``.

        Returns ``feats [B, F]``, ``logits [B, C]`` and ``z [B, D]``.
        """
        branch = self.backbone.branch
        feats = self.backbone(self.layout(X))
        return {
            "feats": feats,
            "logits": self.classifier_for(branch)(feats.detach()),
            "z": self.projector(feats, branch),
        }

    def multicrop_forward(self, X: Tensor) -> dict[str, Any]:
        raise NotImplementedError(
            f"{self.SPEC.name} uses exactly two large views and no small crops"
        )

    # ----------------------------------------------------------------------------- training
    def objective(self, views: tuple[Tensor, Tensor], p: float) -> ObjectiveOutput:
        """The method's loss on two views ``[B, 3, H, W]`` at annealing value ``p``."""
        raise NotImplementedError

    @property
    def gates_on(self) -> bool:
        """Whether the gated branch trains at the current epoch (after Dual-Gating's
        ``gate_warmup_epochs``; always for a method without the option). Restored on resume."""
        dual = self.options.get(DualGatingOptions)
        return dual is None or dual.gates_on(self.current_epoch)

    def validated_networks(self) -> list[str]:
        """Every trained branch; during the gate warm-up only the primary (dense) one, the
        gated one has not trained yet (its probes and k-NN have seen nothing)."""
        return self.networks if self.gates_on else self.networks[:1]

    def on_train_epoch_start(self) -> None:
        """p = exp(-alpha * e) with e the epochs since the gate warm-up (``current_epoch``
        without one), derived from ``current_epoch``, so a resume restores it."""
        dual = self.options.get(DualGatingOptions)
        epoch = self.current_epoch if dual is None else dual.gate_epoch(self.current_epoch)
        self.anneal_p.fill_(anneal_p(epoch, self.budget.anneal_alpha))

    def training_step(self, batch: list[Any], batch_idx: int) -> Tensor:
        """``batch = [indexes, [view_1, view_2], targets]`` -> SSL loss + L_G + probe losses."""
        _, views, targets = batch
        if isinstance(views, Tensor) or len(views) != 2:
            raise ValueError(
                f"{self.SPEC.name} needs exactly 2 views per sample (data.num_large_crops=2)"
            )
        out = self.objective(tuple(self.layout(v) for v in views), float(self.anneal_p))
        log: dict[str, Tensor | float] = {"train_vicreg_loss": out.vicreg}
        if self.gates_on:  # the budget's terms and the gated branch's statistics
            if self.budget.multiplier_lr > 0:
                ratio = self.trainer.strategy.reduce(out.budget.ratio.detach(), reduce_op="mean")
                self.budget_multiplier.update(ratio, self.budget)
            log.update(
                {
                    "train_flops_loss": out.budget.flops,
                    "train_bound_loss": out.budget.bound,
                    "train_flops_ratio": out.budget.ratio,
                    "p": float(self.anneal_p),
                    "budget_multiplier": float(self.budget_multiplier.value),
                }
            )
            for name, density in zip(self.gated_block_names, out.budget.densities):
                log[f"train_density/{name}"] = density
        feats = {o.branch: o.feats for o in self._first_per_branch(out.outputs)}
        class_loss = self.train_probes(feats, targets, log)
        self.log_dict(log, on_epoch=True, sync_dist=True)
        return out.loss + class_loss

    def _first_per_branch(self, outputs: tuple[BranchOutput, ...]) -> list[BranchOutput]:
        """View 1's output of each branch that ran (the online monitors of the paper)."""
        seen: dict[str, BranchOutput] = {}
        for o in outputs:
            seen.setdefault(o.branch, o)
        return [seen[b] for b in self.SPEC.branches if b in seen]

    # ----------------------------------------------------------------------------- validation
    def validate_one(
        self, X: Tensor, network: str, targets: Tensor, metrics: dict[str, Any]
    ) -> None:
        """One branch, gates deterministic; the gated one adds FLOPs ratio and densities."""
        out = self.backbone.forward_branch(X, network)
        self.validate_network(network, out.feats, targets, metrics)
        if network == "gated":
            metrics["val_flops_ratio"] = out.ratio.mean()
            for name, mask in zip(self.gated_block_names, out.masks):
                metrics[f"val_density/{name}"] = mask.float().mean()


class VICRegDualGating(GatedMethod):
    """VICReg-Dual-Gating (Krishna et al., BMVC 2023): view 1 -> gated branch, view 2 -> dense."""

    SPEC = get_method("vicreg_dual_gating")

    def objective(self, views: tuple[Tensor, Tensor], p: float) -> ObjectiveOutput:
        if not self.gates_on:
            return dense_warmup_objective(self.backbone, self.projector, views, self.vicreg_fn)
        return dual_gating_objective(
            self.backbone,
            self.projector,
            views,
            self.budget,
            p,
            self.vicreg_fn,
            self.options[DualGatingOptions],
            multiplier=float(self.budget_multiplier.value),
        )


class VICRegGating(GatedMethod):
    """VICReg-Gating (Krishna et al., IMVIP 2022): both views gated, one BN set."""

    SPEC = get_method("vicreg_gating")

    def objective(self, views: tuple[Tensor, Tensor], p: float) -> ObjectiveOutput:
        return gating_objective(
            self.backbone,
            self.projector,
            views,
            self.budget,
            p,
            self.vicreg_fn,
            multiplier=float(self.budget_multiplier.value),
        )
