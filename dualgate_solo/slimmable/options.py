"""``method_kwargs`` of the slimmable family: SlimCLR over VICReg or MoCo v3, and SACL-XD.

Each dataclass is one group of options of :data:`dualgate_solo.method_registry.METHODS`; its
field defaults are the method's defaults (one place each) and ``__post_init__`` refuses a bad
value with a :class:`~dualgate_solo.validation.UsageError` naming the option and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dualgate_solo.validation import check_choice, check_integer, check_interval

#: distillation of a narrower width's embedding from the full width's (SlimCLR over VICReg)
EMBEDDING_DISTILL_LOSSES = ("mse", "cosine")
#: how SACL-XD picks the host channels its slim network keeps
CHANNEL_SELECTIONS = ("l1", "prefix")


@dataclass(frozen=True)
class SlimCLROptions:
    """SlimCLR's three changes (Zhao et al., IJCV 2024) to a self-supervised objective.

    ``L = lambda_max L(w_max) + sum_{w < w_max} [(1 - beta) L_ssl(w) + beta KD(w <- w_max)]``
    with ``lambda_max = 1 + sum_{w < w_max} w`` (``loss_reweighting``) and every other
    ``lambda_w = 1``; the narrower widths' terms join after ``slow_start_epochs``.

    Attributes:
        slow_start_epochs: epochs in which only the full width trains; ``-1`` = half of
            ``max_epochs`` (written into the run's cfg as a number at start).
        post_switch_lr_scale: factor on the learning rate of every non-classifier parameter
            group once the sub-networks join (1.0 keeps the schedule; SlimCLR's MoCo v3 script
            raises its base lr 1.2 -> 3.2, a factor of 8/3).
        distill_weight: beta, the share of the distillation term in a narrower width's loss.
        loss_reweighting: use ``lambda_max = 1 + sum_{w < w_max} w`` (else every lambda = 1).
    """

    slow_start_epochs: int = -1
    post_switch_lr_scale: float = 1.0
    distill_weight: float = 0.5
    loss_reweighting: bool = True

    def __post_init__(self) -> None:
        check_integer("slow_start_epochs", self.slow_start_epochs, -1)
        check_interval(
            "post_switch_lr_scale", self.post_switch_lr_scale, 0.0, math.inf, low_inclusive=False
        )
        check_interval("distill_weight", self.distill_weight, 0.0, 1.0)
        check_choice("loss_reweighting", self.loss_reweighting, (True, False))


@dataclass(frozen=True)
class EmbeddingDistillOptions:
    """Distillation on embeddings (SlimCLR over a non-contrastive loss such as VICReg).

    ``mse``: ``sim_loss_weight * mean((z_w - sg(z_max))^2)`` (VICReg's invariance term against
    the detached full width); ``cosine``: ``2 - 2 cos(z_w, sg(z_max))`` averaged over the batch.
    """

    distill_loss: str = "mse"

    def __post_init__(self) -> None:
        check_choice("distill_loss", self.distill_loss, EMBEDDING_DISTILL_LOSSES)


@dataclass(frozen=True)
class MoCoV3Options:
    """MoCo v3 (Chen et al., ICCV 2021) as solo-learn configures it for CIFAR, plus SlimCLR's
    SEED-style distillation temperature.

    Attributes:
        proj_hidden_dim, proj_output_dim, pred_hidden_dim: projector / predictor MLP widths
            (hidden widths scale with the network's width).
        temperature: InfoNCE temperature T (loss multiplied by 2T).
        distill_temperature: tau of ``KD = -sum softmax(t / tau) log softmax(s / tau) tau^2``
            on the similarities to the momentum targets (SlimCLR's MoCo v3: 1.0).
    """

    proj_hidden_dim: int = 4096
    proj_output_dim: int = 256
    pred_hidden_dim: int = 4096
    temperature: float = 0.2
    distill_temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("proj_hidden_dim", "proj_output_dim", "pred_hidden_dim"):
            check_integer(name, getattr(self, name), 1)
        for name in ("temperature", "distill_temperature"):
            check_interval(name, getattr(self, name), 0.0, math.inf, low_inclusive=False)


@dataclass(frozen=True)
class BarlowOptions:
    """Barlow Twins loss ``s [sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2]`` on batch-
    standardised projector outputs (Zbontar et al., ICML 2021), projector widths."""

    proj_hidden_dim: int = 2048
    proj_output_dim: int = 2048
    lamb: float = 0.0051
    scale_loss: float = 0.1

    def __post_init__(self) -> None:
        for name in ("proj_hidden_dim", "proj_output_dim"):
            check_integer(name, getattr(self, name), 1)
        check_interval("lamb", self.lamb, 0.0, math.inf)
        check_interval("scale_loss", self.scale_loss, 0.0, math.inf, low_inclusive=False)


@dataclass(frozen=True)
class SACLOptions:
    """SACL-XD (Meng et al., NeurIPS 2023): a host network and its slimmed copy.

    ``L = alpha L_SACL + (1 - alpha) L_XD``, ``L_SACL = BT(host(x_A), slim(x_B))``,
    ``L_XD = 1/2 [BT(host(x_A), sg slim(x_A)) + BT(slim(x_B), sg host(x_B))]``.

    Attributes:
        host_width: the host is this many times as wide as the deployable slim network
            (``backbone.kwargs.width`` is the host's; the slim network keeps ``1 / host_width``
            of every layer's channels). The paper's MobileNet hosts use 1.5; 2.0 slims a
            width-2x ResNet-18 to the standard one.
        alpha: weight of the asymmetric contrastive term, in [0, 1].
        channel_selection: ``l1``: the slim network keeps each layer's L1-largest channels at
            initialisation (the authors' code); ``prefix``: it keeps the first ones.
    """

    host_width: float = 2.0
    alpha: float = 0.95
    channel_selection: str = "l1"

    def __post_init__(self) -> None:
        check_interval("host_width", self.host_width, 1.0, math.inf, low_inclusive=False)
        check_interval("alpha", self.alpha, 0.0, 1.0)
        check_choice("channel_selection", self.channel_selection, CHANNEL_SELECTIONS)

    @property
    def slim_width(self) -> float:
        """The slim network's width multiplier, ``1 / host_width`` (6 decimals)."""
        return round(1.0 / self.host_width, 6)
