"""Gated ResNet-18/34/50 with a dense and a gated branch over shared conv weights.

Krishna et al., "Unifying Synergies between Self-supervised Learning and Dynamic Computation"
(BMVC 2023). One module holds every parameter of both branches in every mode
(identical state-dict keys whatever the branch), so a checkpoint saved in one mode loads strictly
into the other, and solo-learn's unchanged scripts can evaluate either branch.

* ``forward(x)`` returns ONE tensor ``[B, num_features]`` computed by ``self.branch``: the contract
  of solo-learn's backbones, linear probe, k-NN and UMAP.
* ``forward_branch(x, branch)`` returns a :class:`BranchOutput` with the features, per-sample gate
  masks and per-sample MACs, for the methods and the cost reports.
* ``forward_dual(x)`` runs both branches on the same images.

Stems: ``cifar`` (3x3 conv, stride 1, padding 2, no max-pool: 32x32 -> 34x34) and
``imagenet`` (7x7/2 conv, 3x3/2 max-pool).

Gate modes: ``channel`` (the paper: one gate value per inner channel) and ``width`` (this
package's extension: one width per block and input, a prefix of the inner channels, see
:class:`~dualgate_solo.gated.layers.WidthGate`). A width-mode network saves its choices in the
buffer ``gate_width_choices``; a channel-mode state dict has no such key and is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dualgate_solo.choices import RESNET_STAGES, STEMS
from dualgate_solo.flops import CostTable, conv_macs, kept_ratio, zeros_pass
from dualgate_solo.gated.blocks import GatedBasicBlock, GatedBottleneck
from dualgate_solo.gated.layers import BRANCHES, GateMode, apply_norm, make_norm
from dualgate_solo.state_guard import check_gated_load
from dualgate_solo.stems import stem_layers
from dualgate_solo.validation import check_choice, check_interval
from dualgate_solo.weight_init import init_resnet_weights

ARCHITECTURES = {
    depth: ({"basic": GatedBasicBlock, "bottleneck": GatedBottleneck}[kind], counts)
    for depth, (kind, counts) in RESNET_STAGES.items()
}
#: ``none``: one BN set (VICReg-Gating); ``block``: block-internal BNs dual (the paper);
#: ``backbone``: also stem and shortcut BNs; ``all``: also the projector's BNs (method level).
DUAL_BN_SCOPES = ("none", "block", "backbone", "all")


class BranchOutput(NamedTuple):
    """Result of one branch on a batch.

    Attributes:
        feats: pooled features ``[B, num_features]``.
        masks: one ``[B, gated_channels_b]`` 0/1 tensor per block (gated branch); ``()`` (dense).
        block_macs: per-sample conv MACs of each block, gate excluded, ``[B, n_blocks]`` float64.
        costs: static MAC figures of the network at this input size.
        branch: ``"dense"`` or ``"gated"``.
        logits: the gates' float32 logits, one per block, ``[B, gated_channels_b]`` (channel
            gates) or ``[B, len(width_choices)]`` (width gates); ``()`` (dense).
    """

    feats: Tensor
    masks: tuple[Tensor, ...]
    block_macs: Tensor
    costs: CostTable
    branch: str
    logits: tuple[Tensor, ...] = ()

    @property
    def macs(self) -> Tensor:
        """Per-sample MACs ``[B]``: stem + blocks (+ gates in the gated branch)."""
        gates = self.costs.gate_macs if self.branch == "gated" else 0
        return self.block_macs.sum(1) + (self.costs.stem_macs + gates)

    @property
    def ratio(self) -> Tensor:
        """Per-sample kept-MAC ratio r ``[B]`` (1 for the dense branch)."""
        return kept_ratio(self.macs, self.costs.dense_macs)


class DualOutput(NamedTuple):
    """Both branches on the same batch: ``dense`` and ``gated`` :class:`BranchOutput`."""

    dense: BranchOutput
    gated: BranchOutput


class GatedResNet(nn.Module):
    """ResNet whose residual blocks can run densely or with per-sample channel gates.

    Args:
        depth: 18, 34 (BasicBlock, the paper's family) or 50 (gated Bottleneck, an extension).
        stem: ``"cifar"`` (3x3/1, padding 2, no max-pool) or ``"imagenet"`` (7x7/2 + max-pool).
        branch: which branch ``forward(x)`` runs: ``"dense"`` or ``"gated"``.
        dual_bn_scope: ``"none"``, ``"block"`` (the paper), ``"backbone"`` or ``"all"``.
        gate_reduction: gate bottleneck factor (spec: 4).
        gate_tau: straight-through temperature (spec: 2/3).
        width: channels of the stem and of stage 1; stages have ``width * (1, 2, 4, 8)`` planes
            (64 = the paper; smaller values make cheap CPU-scale experiments).
        gate_mode: ``"channel"`` (the paper) or ``"width"`` (one prefix width per block and
            input; see :class:`~dualgate_solo.gated.layers.WidthGate`).
        width_choices: the fractions of each block's inner channels a width gate picks from
            (``width`` mode only; default ``[0.25, 0.5, 0.75, 1.0]``); giving them in
            ``channel`` mode raises ``UsageError``, since they would be ignored.

    Attributes:
        mode: the :class:`~dualgate_solo.gated.layers.GateMode` of ``gate_mode`` and
            ``width_choices`` (also readable as the properties of those names).
        num_features: width of the pooled output (512 for 18/34, 2048 for 50).
        trained_steps: buffer ``[2]`` counting training passes (grad enabled) per branch
            (dense, gated). Saved in checkpoints, so loading can refuse to evaluate a branch
            that was never trained (e.g. the dense branch of a VICReg-Gating run).

    Loading is guarded (:mod:`~dualgate_solo.state_guard`): a state dict of another
    architecture raises ``UsageError`` naming the option to set, even under ``strict=False``, the
    mode solo-learn's ``main_linear.py`` and ``load_from_checkpoint`` use, which would otherwise
    silently keep random weights.
    """

    def __init__(
        self,
        depth: int = 18,
        stem: str = "cifar",
        branch: str = "dense",
        dual_bn_scope: str = "block",
        gate_reduction: int = 4,
        gate_tau: float = 2 / 3,
        width: int = 64,
        gate_mode: str = "channel",
        width_choices: object = None,
    ):
        super().__init__()
        check_interval("width", width, 1, float("inf"))
        self.mode = GateMode.parse(gate_mode, width_choices)
        block_type, counts = ARCHITECTURES[check_choice("depth", depth, ARCHITECTURES)]
        self.stem = check_choice("stem", stem, STEMS)
        self.dual_bn_scope = check_choice("dual_bn_scope", dual_bn_scope, DUAL_BN_SCOPES)
        self.branch = check_choice("branch", branch, BRANCHES)
        self.depth = depth
        self.gate_tau = gate_tau
        dual_block = dual_bn_scope != "none"
        dual_outer = dual_bn_scope in ("backbone", "all")

        self.conv1, self.maxpool = stem_layers(stem, width)
        self.bn1 = make_norm(width, dual_outer)

        channels = width
        stages = []
        for stage, (planes, n_blocks) in enumerate(
            zip((width, 2 * width, 4 * width, 8 * width), counts)
        ):
            blocks = []
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(
                    block_type(
                        channels,
                        planes,
                        stride,
                        dual_block,
                        dual_outer,
                        gate_reduction,
                        gate_tau,
                        self.mode,
                    )
                )
                channels = planes * block_type.expansion
            stages.append(nn.ModuleList(blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = channels
        self.register_buffer("trained_steps", torch.zeros(len(BRANCHES), dtype=torch.long))
        if self.mode.routed:  # records the gate mode in the state dict
            self.register_buffer(
                "gate_width_choices", torch.tensor(self.width_choices, dtype=torch.float64)
            )
        init_resnet_weights(self)
        self.register_load_state_dict_pre_hook(GatedResNet._check_checkpoint_keys)

    @property
    def gate_mode(self) -> str:
        """``channel`` or ``width``: the name of :attr:`mode`, the network's
        :class:`~dualgate_solo.gated.layers.GateMode`."""
        return self.mode.name

    @property
    def width_choices(self) -> tuple[float, ...] | None:
        """The width gates' choices (``width`` mode), else ``None``."""
        return self.mode.width_choices

    def named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        """``("layer<s>.<i>", block)`` for every residual block, in forward order."""
        for s, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            for i, block in enumerate(stage):
                yield f"layer{s}.{i}", block

    @property
    def gated_block_names(self) -> list[str]:
        """Names of the blocks with a gate (one mask and one density each), in forward order."""
        return [n for n, b in self.named_blocks() if getattr(b, "gate", None) is not None]

    def forward_branch(self, x: Tensor, branch: str) -> BranchOutput:
        """Run one branch. ``x [B, 3, H, W]`` -> :class:`BranchOutput` (any H, W)."""
        check_choice("branch", branch, BRANCHES)
        if self.training and torch.is_grad_enabled():
            self.trained_steps[BRANCHES.index(branch)] += 1
        h = self.conv1(x)
        stem_macs = conv_macs(self.conv1, tuple(h.shape[-2:]))
        h = self.maxpool(torch.relu(apply_norm(self.bn1, h, branch)))
        masks, logits, macs, costs = [], [], [], []
        for name, block in self.named_blocks():
            result = block(h, branch, name)
            h = result.out
            if result.mask is not None:
                masks.append(result.mask)
                logits.append(result.logits)
            macs.append(result.macs)
            costs.append(result.cost)
        feats = torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1)
        table = CostTable(tuple(x.shape[-2:]), stem_macs, tuple(costs))
        return BranchOutput(feats, tuple(masks), torch.stack(macs, 1), table, branch, tuple(logits))

    def ratio_for_masks(self, out: BranchOutput, masks: tuple[Tensor, ...]) -> Tensor:
        """Per-sample kept-MAC ratio ``[B]`` of the gated branch of ``out`` under other ``masks``.

        Used to cost the deterministic (eval-style) masks of a training pass without a second
        forward; differentiable through ``masks``.

        Raises:
            ValueError: a mask's width is not its block's gated channel count (e.g. a mask made
                from width-gate logits by thresholding; use :meth:`deterministic_masks`).
        """
        blocks = [block for _, block in self.named_blocks()]
        for mask, cost in zip(masks, out.costs.blocks):
            if mask.shape[1] != cost.gated_channels:
                raise ValueError(
                    f"mask of block {cost.name} has {mask.shape[1]} channels; the block gates "
                    f"{cost.gated_channels} (gate_mode={self.gate_mode!r}: make eval-style masks "
                    "with GatedResNet.deterministic_masks)"
                )
        block_macs = torch.stack(
            [b.macs_for(m, c) for b, m, c in zip(blocks, masks, out.costs.blocks)], 1
        )
        return out._replace(block_macs=block_macs, masks=masks).ratio

    def deterministic_masks(self, out: BranchOutput) -> tuple[Tensor, ...]:
        """Eval-style masks of the gated pass ``out`` with a straight-through gradient, one
        ``[B, gated_channels_b]`` per block (``ratio_source: deterministic``).

        Channel gates: ``1[logit >= 0]`` with the gradient of ``sigmoid(logit / tau)``; width
        gates: the argmax choice's prefix with the gradient of ``softmax(logits / tau)``.
        """
        blocks = [block for _, block in self.named_blocks()]
        return tuple(b.gate.deterministic(logits) for b, logits in zip(blocks, out.logits))

    def forward_dual(self, x: Tensor) -> DualOutput:
        """Both branches on the same images ``x [B, 3, H, W]``."""
        return DualOutput(self.forward_branch(x, "dense"), self.forward_branch(x, "gated"))

    def forward(self, x: Tensor) -> Tensor:
        """Features ``[B, num_features]`` of ``self.branch``: the solo-learn backbone contract."""
        return self.forward_branch(x, self.branch).feats

    @staticmethod
    def _check_checkpoint_keys(
        module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors
    ) -> None:
        """Load-state-dict pre-hook: :func:`~dualgate_solo.state_guard.check_gated_load`."""
        check_gated_load(module, state_dict, prefix)

    def cost_table(self, input_hw: tuple[int, int]) -> CostTable:
        """Static MAC figures at input size ``input_hw``, read off one dense forward in eval mode
        (:func:`~dualgate_solo.flops.zeros_pass`: train/eval state and BN statistics untouched)."""
        return zeros_pass(self, input_hw, lambda x: self.forward_branch(x, "dense").costs)

    def extra_repr(self) -> str:
        text = (
            f"depth={self.depth}, stem={self.stem!r}, branch={self.branch!r}, "
            f"dual_bn_scope={self.dual_bn_scope!r}, width={self.conv1.out_channels}"
        )
        return text + self.mode.describe()
