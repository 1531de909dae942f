"""solo-learn classes of the slimmable family: SlimCLR over VICReg and MoCo v3, and SACL-XD.

Thin Lightning wrappers over :mod:`dualgate_solo.slimmable.objective`. :class:`WidthMethod` does
what the methods share: it fills and checks the cfg
(:func:`dualgate_solo.solo_adapter.config.configure_run`), gives every trained width its online
linear probe and k-NN (:class:`OnlineProbes`; the primary width logs solo-learn's
``val_acc1``/``val_knn_acc1``, another one ``val_w0.5_acc1`` and so on), validates every width,
runs the slow start and the post-switch learning-rate factor.

Width conventions (what each unchanged downstream script sees): ``forward(X)`` runs the
backbone at ``backbone.kwargs.width_mult`` and returns ``{"feats", "logits", "z"}``, so
``main_linear.py``/``main_knn.py``/``main_umap.py`` evaluate the width the cfg names.

Imports solo-learn at module level: import it only through
:func:`dualgate_solo.solo_adapter.register`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import omegaconf
import torch
from solo.losses.mocov3 import mocov3_loss_func
from solo.losses.vicreg import vicreg_loss_func
from solo.methods.base import BaseMethod
from solo.methods.mocov3 import MoCoV3
from solo.utils.momentum import initialize_momentum_params
from torch import Tensor, nn

from dualgate_solo.method_registry import (
    MethodSpec,
    VICRegOptions,
    get_method,
    label_width,
    trained_branches,
    width_label,
)
from dualgate_solo.slimmable.channel_order import order_channels_by_l1
from dualgate_solo.slimmable.heads import SlimMLP
from dualgate_solo.slimmable.losses import similarity_distillation
from dualgate_solo.slimmable.objective import (
    SlimObjectiveOutput,
    WidthTerms,
    sacl_xd_objective,
    slimclr_objective,
    slimclr_vicreg_objective,
)
from dualgate_solo.slimmable.options import (
    BarlowOptions,
    EmbeddingDistillOptions,
    MoCoV3Options,
    SACLOptions,
    SlimCLROptions,
)
from dualgate_solo.solo_adapter.config import configure_run
from dualgate_solo.solo_adapter.probes import OnlineProbes


class WidthMethod(OnlineProbes):
    """Mixin (before the solo-learn base class) for methods over a slimmable backbone.

    Subclasses set ``SPEC``, build their heads in ``__init__`` (after :meth:`init_widths`) and
    implement :meth:`head` (features -> embedding at a width) and :meth:`objective`.
    """

    SPEC: ClassVar[MethodSpec]

    def init_widths(self, cfg: omegaconf.DictConfig, options: dict[type, Any]) -> None:
        """Per-width probes and the options; call right after the solo-learn ``__init__``."""
        self.options = options
        networks = trained_branches(self.SPEC.name, cfg.backbone.kwargs)
        features = {n: self.backbone.features_at(label_width(n)) for n in networks}
        # solo-learn sized ``classifier`` for the evaluated width; it belongs to the primary one
        # whatever ``width_mult`` a later script evaluates, so checkpoints load at every width
        self.classifier = nn.Linear(features[networks[0]], self.num_classes)
        self.init_probes(cfg, list(networks), features)

    # ------------------------------------------------------------------ widths
    @property
    def widths(self) -> tuple[float, ...]:
        """The backbone's width list, full width first."""
        return self.backbone.widths

    @property
    def slow_start_epochs(self) -> int:
        """Epochs in which only the full width trains (0 without SlimCLR's slow start)."""
        slim = self.options.get(SlimCLROptions)
        return slim.slow_start_epochs if slim is not None else 0

    @property
    def subnetworks_on(self) -> bool:
        """Whether the narrower widths train at the current epoch (restored on resume)."""
        return self.current_epoch >= self.slow_start_epochs

    def validated_networks(self) -> list[str]:
        """Every trained width; during the slow start only the full width, the narrower ones
        have not trained yet (their probes and k-NN have seen nothing)."""
        if self.subnetworks_on:
            return self.networks
        return [width_label(self.widths[0])]

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure=None):
        """The optimizer step, with every non-classifier group's lr times
        ``post_switch_lr_scale`` once the sub-networks are on (the scheduled lr is restored
        afterwards, so the schedule itself is unchanged)."""
        slim = self.options.get(SlimCLROptions)
        scale = slim.post_switch_lr_scale if slim is not None and self.subnetworks_on else 1.0
        groups = [g for g in optimizer.param_groups if not g.get("name", "").endswith("classifier")]
        scheduled = [g["lr"] for g in groups]
        for group in groups:
            group["lr"] = group["lr"] * scale
        try:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        finally:
            for group, lr in zip(groups, scheduled):
                group["lr"] = lr

    # ------------------------------------------------------------------ forward
    def head(self, feats: Tensor, width_mult: float) -> Tensor:
        """The method's embedding of ``feats [B, F(w)]`` at ``width_mult``."""
        raise NotImplementedError

    def forward(self, X: Tensor) -> dict[str, Tensor]:
        """``X [B, 3, H, W]`` at ``backbone.width_mult`` -> ``feats``, ``logits``, ``z``."""
        width = self.backbone.width_mult
        feats = self.backbone.forward_width(self.layout(X), width).feats
        return {
            "feats": feats,
            "logits": self.classifier_for(width_label(width))(feats.detach()),
            "z": self.head(feats, width),
        }

    def multicrop_forward(self, X: Tensor) -> dict[str, Any]:
        raise NotImplementedError(
            f"{self.SPEC.name} uses exactly two large views and no small crops"
        )

    # ------------------------------------------------------------------ training
    def objective(self, views: tuple[Tensor, Tensor]) -> SlimObjectiveOutput:
        """The method's loss on two views ``[B, 3, H, W]``."""
        raise NotImplementedError

    def training_step(self, batch: list[Any], batch_idx: int) -> Tensor:
        """``batch = [indexes, [view_1, view_2], targets]`` -> SSL loss + probe losses."""
        _, views, targets = batch
        if isinstance(views, Tensor) or len(views) != 2:
            raise ValueError(
                f"{self.SPEC.name} needs exactly 2 views per sample (data.num_large_crops=2)"
            )
        out = self.objective(tuple(self.layout(v) for v in views))
        log: dict[str, Any] = {f"train_{k}": v for k, v in out.terms.items()}
        log["train_ssl_loss"] = out.loss.detach()
        log["subnetworks_on"] = float(self.subnetworks_on)
        feats = {width_label(w): f for w, f in out.feats.items()}
        class_loss = self.train_probes(feats, targets, log)
        self.log_dict(log, on_epoch=True, sync_dist=True)
        return out.loss + class_loss

    # ------------------------------------------------------------------ validation
    def validate_one(
        self, X: Tensor, network: str, targets: Tensor, metrics: dict[str, Any]
    ) -> None:
        """One width's probe and k-NN."""
        feats = self.backbone.forward_width(X, label_width(network)).feats
        self.validate_network(network, feats, targets, metrics)


class ProjectorMethod(WidthMethod):
    """A :class:`WidthMethod` with one slimmable 3-layer projector (VICReg, Barlow Twins)."""

    def init_projector(self, hidden_dim: int, output_dim: int) -> None:
        self.projector = SlimMLP(self.backbone.full_features, hidden_dim, output_dim, self.widths)

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return [
            *super().learnable_params,
            {"name": "projector", "params": self.projector.parameters()},
            *self.probe_param_groups(),
        ]

    def head(self, feats: Tensor, width_mult: float) -> Tensor:
        return self.projector(feats, self.backbone.width_index(width_mult), width_mult)


class SlimCLRVICReg(ProjectorMethod, BaseMethod):
    """SlimCLR's slow start, full-width targets, distillation and re-weighting over VICReg."""

    SPEC = get_method("slimclr_vicreg")

    def __init__(self, cfg: omegaconf.DictConfig):
        options = configure_run(cfg, self.SPEC)
        super().__init__(cfg)
        self.init_widths(cfg, options)
        self.vicreg: VICRegOptions = options[VICRegOptions]
        self.init_projector(self.vicreg.proj_hidden_dim, self.vicreg.proj_output_dim)

    def objective(self, views: tuple[Tensor, Tensor]) -> SlimObjectiveOutput:
        vicreg = self.vicreg
        return slimclr_vicreg_objective(
            self.backbone,
            self.projector,
            views,
            vicreg,
            self.options[SlimCLROptions],
            self.options[EmbeddingDistillOptions].distill_loss,
            self.subnetworks_on,
            vicreg.weighted(vicreg_loss_func),
        )


class SlimCLRMoCoV3(WidthMethod, MoCoV3):
    """solo-learn's MoCo v3 with SlimCLR's changes: every width's queries against the
    full-width momentum targets, SEED-style distillation, slow start, loss re-weighting."""

    SPEC = get_method("slimclr_mocov3")

    def __init__(self, cfg: omegaconf.DictConfig):
        options = configure_run(cfg, self.SPEC)
        super().__init__(cfg)
        self.init_widths(cfg, options)
        moco: MoCoV3Options = options[MoCoV3Options]
        self.moco = moco
        full = self.backbone.full_features

        def projector() -> SlimMLP:
            return SlimMLP(
                full,
                moco.proj_hidden_dim,
                moco.proj_output_dim,
                self.widths,
                num_layers=2,
                bias=False,
                last_bn="plain",
            )

        self.projector = projector()
        self.momentum_projector = projector()
        self.predictor = SlimMLP(
            moco.proj_output_dim,
            moco.pred_hidden_dim,
            moco.proj_output_dim,
            self.widths,
            num_layers=2,
            bias=False,
        )
        initialize_momentum_params(self.projector, self.momentum_projector)

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return [*super().learnable_params, *self.probe_param_groups()]

    def head(self, feats: Tensor, width_mult: float) -> Tensor:
        """The online query ``q = predictor(projector(feats))``."""
        index = self.backbone.width_index(width_mult)
        return self.predictor(self.projector(feats, index, width_mult), index, width_mult)

    @torch.no_grad()
    def momentum_forward(self, X: Tensor) -> dict[str, Tensor]:
        """The full-width momentum encoder: ``feats`` and the target ``k``."""
        feats = self.momentum_backbone.forward_width(self.layout(X), 1.0).feats
        return {"feats": feats, "k": self.momentum_projector(feats, 0, 1.0)}

    def objective(self, views: tuple[Tensor, Tensor]) -> SlimObjectiveOutput:
        k1, k2 = (self.momentum_forward(v)["k"] for v in views)
        temperature = self.moco.temperature

        def queries(width: float) -> tuple[list[Tensor], list[Tensor]]:
            feats = [self.backbone.forward_width(v, width).feats for v in views]
            return feats, [self.head(f, width) for f in feats]

        def contrast(q1: Tensor, q2: Tensor) -> Tensor:
            return mocov3_loss_func(q1, k2, temperature) + mocov3_loss_func(q2, k1, temperature)

        full_feats, (qf1, qf2) = queries(1.0)
        full_loss = contrast(qf1, qf2)
        feats = {1.0: full_feats[0]}
        narrow = {}
        if self.subnetworks_on:
            tau = self.moco.distill_temperature
            for w in self.widths[1:]:
                f, (q1, q2) = queries(w)
                distill = similarity_distillation(q1, qf1, k2, tau) + similarity_distillation(
                    q2, qf2, k1, tau
                )
                narrow[w] = WidthTerms(contrast(q1, q2), distill)
                feats[w] = f[0]
        loss, terms = slimclr_objective(
            self.widths, full_loss, narrow, self.options[SlimCLROptions]
        )
        return SlimObjectiveOutput(loss, terms, feats)


class SACLXD(ProjectorMethod, BaseMethod):
    """SACL-XD: host (width 1) and slimmed network (``1 / host_width``) over one set of weights,
    Barlow Twins between them and cross-distillation through frozen re-encodings."""

    SPEC = get_method("sacl_xd")

    def __init__(self, cfg: omegaconf.DictConfig):
        options = configure_run(cfg, self.SPEC)
        super().__init__(cfg)
        self.init_widths(cfg, options)
        barlow: BarlowOptions = options[BarlowOptions]
        if options[SACLOptions].channel_selection == "l1":
            order_channels_by_l1(self.backbone)
        self.init_projector(barlow.proj_hidden_dim, barlow.proj_output_dim)

    def objective(self, views: tuple[Tensor, Tensor]) -> SlimObjectiveOutput:
        return sacl_xd_objective(
            self.backbone,
            self.projector,
            views,
            self.options[SACLOptions],
            self.options[BarlowOptions],
        )
