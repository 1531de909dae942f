"""Input-conditioned channel gate of VICReg-(Dual-)Gating.

Krishna et al., "Unifying Synergies between Self-supervised Learning and Dynamic Computation"
(BMVC 2023), after DGNet (Li et al., ICCV 2021).

The gate squeezes the block input by global average pooling and maps it through a two-layer
1x1-conv bottleneck to one logit per gated channel::

    u [B, C_in, H, W] -GAP-> [B, C_in, 1, 1] -1x1-> [B, C_in/r] -BN-ReLU-1x1-> logits [B, C_gated]

Training draws a binary-concrete (Gumbel-sigmoid) sample per (sample, channel) and passes the hard
{0, 1} value forward with a straight-through gradient; evaluation thresholds ``logit >= 0``.
Everything after the pooling runs in float32 with autocast disabled, so fp16 never under-flows the
noise (bug 18 of the official code).

``gate_mode: width`` (this package's extension, after Li et al., "Dynamic Slimmable Network",
CVPR 2021) replaces the per-channel logits by one logit per entry of ``width_choices``: the
:class:`WidthGate` picks one width per input (straight-through Gumbel-softmax in training, argmax
in evaluation) and switches on the *prefix* of the block's inner channels, the first
``round(w * C)``. The mask is still a ``[B, C]`` 0/1 tensor, so MAC accounting, the budget loss,
dual BN, gate statistics and probes read it unchanged; a prefix is a contiguous slice, which a
batched executor can run for real (:mod:`dualgate_solo.export.routed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dualgate_solo.choices import GATE_MODES
from dualgate_solo.gated.budget import deterministic_masks
from dualgate_solo.validation import UsageError, check_choice, check_interval

#: Uniform noise is clamped to ``[NOISE_EPS, 1 - NOISE_EPS]`` so that ``log(0)`` never occurs.
NOISE_EPS = 1e-6
#: fractions of a block's inner channels the width gate chooses from (full width last)
DEFAULT_WIDTH_CHOICES = (0.25, 0.5, 0.75, 1.0)


def binary_concrete_ste(logits: Tensor, tau: float, training: bool) -> Tensor:
    """Hard {0, 1} gate values with a straight-through binary-concrete gradient.

    Args:
        logits: gate logits, any shape, e.g. ``[B, C]``.
        tau: temperature of the relaxed sample used for the backward pass (spec: 2/3).
        training: draw logistic noise (training) or threshold ``logits >= 0`` (evaluation).

    Returns:
        A tensor shaped like ``logits`` whose values are exactly 0 or 1. In training its gradient
        is that of ``sigmoid((logits + noise) / tau)``; in evaluation it carries no gradient.
    """
    if not training:
        return (logits >= 0).to(logits.dtype)
    uniform = torch.rand_like(logits).clamp_(NOISE_EPS, 1.0 - NOISE_EPS)
    noisy = logits + torch.log(uniform) - torch.log1p(-uniform)
    soft = torch.sigmoid(noisy / tau)
    hard = (noisy >= 0).to(logits.dtype)
    # ``soft - soft.detach()`` is exactly zero, so the forward value is exactly ``hard``.
    return hard + (soft - soft.detach())


class ChannelGate(nn.Module):
    """Per-sample channel gate: GAP -> 1x1 (C_in -> C_in // r) -> BN -> ReLU -> 1x1 -> logits.

    Args:
        in_channels: channels of the block input the gate looks at (C_in).
        gated_channels: number of channels it switches (C_out for a BasicBlock).
        reduction: bottleneck factor r (spec: 4); the hidden width is ``max(1, C_in // r)``.
        tau: straight-through temperature (spec: 2/3, constant).

    Shapes:
        ``forward(u)``: ``u [B, C_in, H, W]`` -> mask ``[B, gated_channels]`` in float32.
    """

    def __init__(
        self, in_channels: int, gated_channels: int, reduction: int = 4, tau: float = 2 / 3
    ):
        super().__init__()
        check_interval("gate_reduction", reduction, 1, float("inf"))
        self.tau = check_interval("gate_tau", tau, 0.0, float("inf"), low_inclusive=False)
        hidden = max(1, in_channels // int(reduction))
        self.reduce = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.expand = nn.Conv2d(hidden, gated_channels, kernel_size=1, bias=False)

    @property
    def gated_channels(self) -> int:
        """Width of the mask: one value per gated channel."""
        return self.expand.out_channels

    @property
    def macs(self) -> int:
        """MACs of the two 1x1 convs on the pooled vector (pooling not counted)."""
        return self.reduce.in_channels * self.reduce.out_channels + (
            self.expand.in_channels * self.expand.out_channels
        )

    def logits(self, u: Tensor) -> Tensor:
        """Gate logits ``[B, gated_channels]`` in float32, computed with autocast disabled."""
        with torch.autocast(device_type=u.device.type, enabled=False):
            pooled = u.float().mean(dim=(2, 3), keepdim=True)
            hidden = torch.relu(self.bn(self.reduce(pooled)))
            return self.expand(hidden).flatten(1)

    def sample(self, logits: Tensor) -> Tensor:
        """0/1 mask ``[B, gated_channels]`` from float32 ``logits``.

        Stochastic straight-through sample in training, ``logit >= 0`` in eval.
        """
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return binary_concrete_ste(logits, self.tau, self.training)

    def forward(self, u: Tensor) -> Tensor:
        return self.sample(self.logits(u))

    def deterministic(self, logits: Tensor) -> Tensor:
        """Eval-style mask ``1[logit >= 0]`` ``[B, gated_channels]`` with the straight-through
        gradient of ``sigmoid(logit / tau)`` (``ratio_source: deterministic``)."""
        return deterministic_masks((logits,), self.tau)[0]


def check_width_choices(width_choices: object) -> tuple[float, ...]:
    """``width_choices`` as a tuple of floats, or ``UsageError`` naming it.

    Allowed: a non-empty list of numbers in (0, 1], strictly increasing (so no duplicates),
    whose last entry is 1.0 (the full width is always one of the choices).
    """
    allowed = (
        "a non-empty, strictly increasing list of fractions in (0, 1] that ends with 1.0, "
        f"e.g. {list(DEFAULT_WIDTH_CHOICES)}"
    )
    error = UsageError(f"width_choices={width_choices!r} is invalid; allowed values: {allowed}")
    if isinstance(width_choices, (str, bytes)) or not hasattr(width_choices, "__iter__"):
        raise error
    values = list(width_choices)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise error
    choices = tuple(float(v) for v in values)
    increasing = all(a < b for a, b in zip(choices, choices[1:]))
    if not increasing or choices[0] <= 0.0 or choices[-1] != 1.0:
        raise error
    return choices


def prefix_widths(width_choices: tuple[float, ...], channels: int) -> tuple[int, ...]:
    """Active channels per choice: ``max(1, floor(w * C + 1/2))`` (half rounds up).

    A choice that would round to 0 channels of a narrow block is clamped to 1, so every choice
    runs at least one channel in every block (two choices may then share a width).
    """
    return tuple(max(1, int(w * channels + 0.5)) for w in width_choices)


class WidthGate(ChannelGate):
    """Per-sample width gate: the :class:`ChannelGate` network with one logit per width choice.

    ``u [B, C_in, H, W]`` -GAP-1x1-BN-ReLU-1x1-> logits ``[B, n_choices]`` -> choice ``[B]`` ->
    prefix mask ``[B, groups * group_size]``: for choice ``j`` the first
    ``prefix_widths(width_choices, group_size)[j]`` channels of each of the ``groups`` groups are
    1, the rest 0. Training draws a straight-through Gumbel-softmax sample at temperature ``tau``
    (forward: the hard one-hot, exactly; backward: the gradient of the relaxed softmax);
    evaluation takes the argmax.

    Channel order: nothing reorders channels. Trained from scratch with prefix masks, channel
    ``c`` runs whenever the chosen width exceeds ``c``, so the first channels, on for every
    choice, learn the most general features and later channels refine them, as in slimmable
    networks.

    Args:
        in_channels: channels of the block input (C_in).
        group_size: inner channels of one gated group (a BasicBlock's C_out, a Bottleneck's width).
        width_choices: validated fractions (:func:`check_width_choices`).
        groups: how many groups one choice sets (2 for the Bottleneck: conv1's and conv2's
            outputs share the choice).
        reduction, tau: as in :class:`ChannelGate`.
    """

    def __init__(
        self,
        in_channels: int,
        group_size: int,
        width_choices: tuple[float, ...],
        groups: int = 1,
        reduction: int = 4,
        tau: float = 2 / 3,
    ):
        choices = check_width_choices(width_choices)
        super().__init__(in_channels, len(choices), reduction, tau)
        self.widths = prefix_widths(choices, group_size)
        prefix = (torch.arange(group_size)[None, :] < torch.tensor(self.widths)[:, None]).float()
        # [n_choices, groups * group_size]: row j is choice j's mask; not saved in state dicts
        self.register_buffer("prefix", prefix.repeat(1, groups), persistent=False)

    @property
    def gated_channels(self) -> int:
        """Width of the mask, ``groups * group_size``."""
        return self.prefix.shape[1]

    def choice(self, logits: Tensor) -> Tensor:
        """Evaluation choice ``[B]`` (int64): the argmax of ``logits [B, n_choices]``."""
        return logits.argmax(1)

    def _mask(self, one_hot: Tensor) -> Tensor:
        """``one_hot [B, n_choices]`` -> prefix mask ``[B, gated_channels]`` (exactly 0/1)."""
        return one_hot @ self.prefix.to(one_hot.dtype)

    def _straight_through(self, scores: Tensor) -> Tensor:
        """Hard one-hot of ``argmax(scores)`` with the gradient of ``softmax(scores / tau)``."""
        soft = torch.softmax(scores / self.tau, dim=1)
        hard = nn.functional.one_hot(scores.argmax(1), scores.shape[1]).to(soft.dtype)
        # ``soft - soft.detach()`` is exactly zero, so the forward value is exactly ``hard``.
        return hard + (soft - soft.detach())

    def sample(self, logits: Tensor) -> Tensor:
        """Prefix mask ``[B, gated_channels]`` from float32 ``logits [B, n_choices]``.

        Straight-through Gumbel-softmax sample in training, the argmax's prefix in eval.
        """
        with torch.autocast(device_type=logits.device.type, enabled=False):
            if not self.training:
                one_hot = nn.functional.one_hot(self.choice(logits), logits.shape[1])
                return self._mask(one_hot.to(logits.dtype))
            uniform = torch.rand_like(logits).clamp_(NOISE_EPS, 1.0 - NOISE_EPS)
            return self._mask(self._straight_through(logits - torch.log(-torch.log(uniform))))

    def deterministic(self, logits: Tensor) -> Tensor:
        """Eval-style prefix mask (argmax) with the gradient of ``softmax(logits / tau)``."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._mask(self._straight_through(logits))


@dataclass(frozen=True)
class GateMode:
    """How the gated blocks of a network pick the channels they run: every difference between
    the two modes of :data:`~dualgate_solo.choices.GATE_MODES` lives here (the gate each block
    builds, the backbone options that rebuild it, how it is described, which deployable executor
    runs it).

    Both modes produce ``[B, C]`` 0/1 masks, so MAC accounting, the budget loss, dual BN, gate
    statistics and probes do not depend on the mode.

    Attributes:
        name: ``channel`` (the paper: one on/off value per channel, :class:`ChannelGate`) or
            ``width`` (one prefix width per block and input, :class:`WidthGate`).
        width_choices: the fractions a width gate picks from (``width``), else ``None``.
    """

    name: str = "channel"
    width_choices: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, gate_mode: str = "channel", width_choices: object = None) -> GateMode:
        """The mode of the backbone options ``gate_mode`` and ``width_choices`` (``None``: the
        defaults :data:`DEFAULT_WIDTH_CHOICES` in ``width`` mode).

        Raises:
            UsageError: an unknown mode, invalid choices, or choices given in ``channel`` mode.
        """
        check_choice("gate_mode", gate_mode, GATE_MODES)
        if gate_mode == "width":
            given = DEFAULT_WIDTH_CHOICES if width_choices is None else width_choices
            return cls("width", check_width_choices(given))
        if width_choices is not None:
            raise UsageError(
                f"width_choices={width_choices!r} is invalid with gate_mode='channel'; allowed "
                "values: null (omit it), or set gate_mode=width"
            )
        return cls()

    @property
    def routed(self) -> bool:
        """Whether masks are prefixes, which the routed executor runs for real
        (:class:`~dualgate_solo.export.RoutedResNet`); channel masks go to the static, hybrid
        and dynamic exports instead."""
        return self.name == "width"

    def make_gate(
        self, in_channels: int, group_size: int, groups: int, reduction: int, tau: float
    ) -> ChannelGate:
        """The gate of a block that gates ``groups`` groups of ``group_size`` channels (a width
        gate's one choice sets every group's prefix)."""
        if self.routed:
            return WidthGate(in_channels, group_size, self.width_choices, groups, reduction, tau)
        return ChannelGate(in_channels, groups * group_size, reduction, tau)

    def backbone_kwargs(self) -> dict[str, object]:
        """The ``backbone.kwargs`` that rebuild this mode (none for ``channel``, the default)."""
        if not self.routed:
            return {}
        return {"gate_mode": self.name, "width_choices": list(self.width_choices)}

    def describe(self) -> str:
        """``""`` for ``channel``, else ``", gate_mode='width', width_choices=[...]"`` (for a
        network's description)."""
        return "".join(f", {key}={value!r}" for key, value in self.backbone_kwargs().items())

    def require(self, routed: bool, executor: str) -> None:
        """Refuse an executor for the other mode: ``routed`` says whether ``executor`` runs
        prefix masks (``UsageError`` naming the mode and the executor to use instead)."""
        if routed == self.routed:
            return
        if routed:
            raise UsageError(
                f"gate_mode={self.name!r} is invalid for {executor}; allowed values: 'width' "
                "(channel gates pick arbitrary subsets: use the static, hybrid or dynamic export)"
            )
        raise UsageError(
            f"gate_mode={self.name!r} is invalid for {executor}; allowed values: 'channel' (run "
            "a width-gated backbone with dualgate_solo.export.RoutedResNet)"
        )


#: the paper's mode, also the mode of a network without gates
CHANNEL_GATES = GateMode()


def gate_mode_of(network: nn.Module) -> GateMode:
    """The :class:`GateMode` of ``network`` (:data:`CHANNEL_GATES` for one without gates)."""
    return getattr(network, "mode", CHANNEL_GATES)
