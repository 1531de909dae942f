"""Routed execution of a width-gated backbone: each input runs its chosen widths for real.

A ``gate_mode: width`` :class:`~dualgate_solo.models.GatedResNet` picks, per block and input, one
entry of ``width_choices``; its mask is the prefix of the first ``k_j`` inner channels
(:class:`~dualgate_solo.gated.layers.WidthGate`). A prefix is a contiguous slice, so it can run as a
smaller dense conv with no gather (Li et al., "Dynamic Slimmable Network", CVPR 2021). This module
prepares, once per block and width choice ``j``, contiguous pre-sliced weights

* BasicBlock: conv1 rows ``[k_j, C_in, 3, 3]``, conv2 columns ``[C_out, k_j, 3, 3]``;
* Bottleneck (one choice sets both inner widths): conv1 ``[k_j, C_in, 1, 1]``, conv2
  ``[k_j, k_j, 3, 3]``, conv3 ``[C_out, k_j, 1, 1]``;

with the gated branch's BatchNorms folded into them
(:func:`~dualgate_solo.export.fold.fold_bn`), the shortcut and the stem folded once, and the
gate's BN folded into its first 1x1 conv. At run time each block
evaluates its gate (argmax of the logits, the evaluation choice), then

* batch 1: runs the chosen slice;
* batch N: groups the inputs by their choice, runs each group at its width and writes the outputs
  back in input order (``index_copy``); a batch that agrees on one choice runs it without copies.

The weights come out of the backbone through
:func:`~dualgate_solo.export.weights.copy_to_pruned` (one prefix
:class:`~dualgate_solo.export.pruned_resnet.PrunedResNet` per choice), so slicing and BN selection
exist in one place. ``forward(x [B, 3, H, W]) -> [B, num_features]`` equals
``backbone.forward_branch(x, "gated").feats`` in evaluation up to float rounding, and the MACs it
executes per input are exactly the backbone's per-sample accounting. The module is torch-only and
``torch.jit.script``-able.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dualgate_solo.export.fold import fold_bn
from dualgate_solo.export.plan import BlockPlan, check_backbone
from dualgate_solo.export.pruned_resnet import PrunedBasicBlock, PrunedBottleneck
from dualgate_solo.export.weights import copy_to_pruned
from dualgate_solo.gated.blocks import GatedBottleneck
from dualgate_solo.gated.gate_stats import GateStatistics
from dualgate_solo.gated.layers import WidthGate
from dualgate_solo.gated.resnet import GatedResNet


def _tensor_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


class WidthRouter(nn.Module):
    """The evaluation choice of a :class:`~dualgate_solo.gated.layers.WidthGate`.

    ``x [B, C_in, H, W]`` -GAP-> ``[B, C_in, 1, 1]`` -1x1 (BN folded)-ReLU-1x1-> logits
    ``[B, n_choices]`` -> choice ``[B]`` (int64, argmax).
    """

    def __init__(self, gate: WidthGate):
        super().__init__()
        self.reduce = fold_bn(gate.reduce, gate.bn)
        self.expand = nn.Conv2d(gate.expand.in_channels, gate.expand.out_channels, 1, bias=False)
        self.expand.weight.data.copy_(gate.expand.weight.data)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean(dim=(2, 3), keepdim=True)
        return self.expand(torch.relu(self.reduce(pooled))).flatten(1).argmax(1)


class BasicPath(nn.Module):
    """Residual path of a BasicBlock at one width: conv1 (+bn1) -> ReLU -> conv2 (+bn2)."""

    def __init__(self, block: PrunedBasicBlock):
        super().__init__()
        self.conv1 = fold_bn(block.conv1, block.bn1)
        self.conv2 = fold_bn(block.conv2, block.bn2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


class BottleneckPath(nn.Module):
    """Residual path of a Bottleneck at one width: three convs with their BNs folded."""

    def __init__(self, block: PrunedBottleneck):
        super().__init__()
        self.conv1 = fold_bn(block.conv1, block.bn1)
        self.conv2 = fold_bn(block.conv2, block.bn2)
        self.conv3 = fold_bn(block.conv3, block.bn3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


class RoutedBlock(nn.Module):
    """One residual block with a pre-sliced path per width choice.

    ``downsample``: the shortcut's BN-folded 1x1 strided conv, ``None`` for an identity shortcut.
    ``forward(x [B, C_in, H, W])`` -> (``[B, C_out, H', W']``, choice ``[B]``).
    """

    def __init__(self, router: WidthRouter, paths: list[nn.Module], downsample: nn.Module | None):
        super().__init__()
        self.router = router
        self.paths = nn.ModuleList(paths)
        self.downsample = downsample

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        choice = self.router(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        y = shortcut  # replaced below (TorchScript needs a typed value first)
        if x.shape[0] == 1:
            chosen = int(choice[0])
            for j, path in enumerate(self.paths):
                if j == chosen:
                    y = path(x)
        else:
            y = torch.empty_like(shortcut)
            for j, path in enumerate(self.paths):
                index = torch.nonzero(choice == j).flatten()
                if index.numel() == x.shape[0]:
                    y = path(x)
                elif index.numel() > 0:
                    y.index_copy_(0, index, path(x.index_select(0, index)))
        return torch.relu(y + shortcut), choice


def prefix_plans(backbone: GatedResNet, kept: list[int]) -> list[BlockPlan]:
    """Block plans keeping, in block ``b``, the first ``kept[b]`` inner channels (of each inner
    conv for a Bottleneck), with no gate."""
    plans = []
    for (name, block), k in zip(backbone.named_blocks(), kept, strict=True):
        groups = 2 if isinstance(block, GatedBottleneck) else 1
        size = block.gate.gated_channels // groups
        hidden = block.gate.reduce.out_channels
        plans.append(
            BlockPlan(
                name,
                [size] * groups,
                [list(range(k)) for _ in range(groups)],
                [0] * groups,
                block.conv1.in_channels,
                hidden,
            )
        )
    return plans


def mean_width_plans(backbone: GatedResNet, stats: GateStatistics) -> list[BlockPlan]:
    """:func:`prefix_plans` at each block's mean active width over ``stats``' images (rounded,
    at least 1): the plain network running about the MACs the routed network runs on average."""
    kept = []
    for (_, block), counts in zip(backbone.named_blocks(), stats.on_counts, strict=True):
        groups = 2 if isinstance(block, GatedBottleneck) else 1
        kept.append(max(1, round(float(counts.sum()) / stats.num_samples / groups)))
    return prefix_plans(backbone, kept)


class RoutedResNet(nn.Module):
    """The gated branch of a width-mode :class:`GatedResNet`, run at the chosen widths.

    Args:
        backbone: a ``gate_mode: width`` ``GatedResNet`` (ResNet-18/34/50); weights are copied
            at construction (later changes to ``backbone`` are not seen).

    Attributes:
        conv1, maxpool, blocks, head: the stem (BN folded into ``conv1``), the
            :class:`RoutedBlock` of every residual block (named ``block_names``, e.g.
            ``layer2.0``, as in the backbone) and the global average pooling.
        num_features: width of the pooled output.
        widths: per block, the active inner channels of each width choice.
        extra_parameter_bytes: bytes of the pre-sliced copies of the choices narrower than their
            block (the full-width choice's weights are the network's own).
        choice_counts: ``[n_blocks, n_choices]`` inputs counted per block and width
            (:meth:`count_choices`; zero until calibrated).
        parameter_bytes: bytes of every parameter and buffer of this module.

    Raises:
        UsageError: ``backbone`` is a ``channel``-mode network (its masks are no prefixes).
    """

    def __init__(self, backbone: GatedResNet):
        super().__init__()
        check_backbone(backbone)
        backbone.mode.require(routed=True, executor="routed execution")
        n_choices = len(backbone.width_choices)
        networks = [
            copy_to_pruned(
                backbone,
                prefix_plans(backbone, [b.gate.widths[j] for _, b in backbone.named_blocks()]),
                "gated",
            )
            for j in range(n_choices)
        ]
        full = networks[-1]
        self.conv1 = fold_bn(full.conv1, full.bn1)
        self.maxpool, self.head = full.maxpool, full.head
        blocks, extra = [], 0
        for b, (_, block) in enumerate(backbone.named_blocks()):
            pruned = [network.blocks[b] for network in networks]
            kind = BottleneckPath if isinstance(block, GatedBottleneck) else BasicPath
            paths = [kind(p) for p in pruned]
            full_width = block.gate.gated_channels // (2 if kind is BottleneckPath else 1)
            extra += sum(
                _tensor_bytes(path) for path, k in zip(paths, block.gate.widths) if k < full_width
            )
            downsample = pruned[-1].downsample
            if downsample is not None:
                downsample = fold_bn(downsample.conv, downsample.bn)
            blocks.append(RoutedBlock(WidthRouter(block.gate), paths, downsample))
        self.blocks = nn.ModuleList(blocks)
        self.block_names = [name for name, _ in backbone.named_blocks()]
        self.num_features = full.num_features
        self.widths = [list(block.gate.widths) for _, block in backbone.named_blocks()]
        self.extra_parameter_bytes = extra
        self.parameter_bytes = _tensor_bytes(self)
        most = max(len(w) for w in self.widths)
        self.register_buffer("choice_counts", torch.zeros(len(blocks), most, dtype=torch.int64))
        self.requires_grad_(False)
        self.eval()

    @torch.jit.export
    def forward_choices(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``x [B, 3, H, W]`` -> (features ``[B, num_features]``, one choice ``[B]`` per block)."""
        h = self.maxpool(torch.relu(self.conv1(x)))
        choices: list[Tensor] = []
        for block in self.blocks:
            h, choice = block(h)
            choices.append(choice)
        return self.head(h), choices

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_choices(x)[0]

    @torch.no_grad()
    def count_choices(self, x: Tensor) -> None:
        """Add how often each block picks each width on ``x [B, 3, H, W]`` to ``choice_counts``
        ``[n_blocks, n_choices]`` (calibration: the ONNX graph tests frequent widths first)."""
        for counts, choice in zip(self.choice_counts, self.forward_choices(x)[1]):
            counts += torch.bincount(choice, minlength=counts.numel())

    def choice_frequency(self) -> list[list[float]] | None:
        """Per block, the share of counted inputs that took each width (``None``: none counted)."""
        totals = self.choice_counts.sum(1, keepdim=True)
        if not bool((totals > 0).all()):
            return None
        shares = (self.choice_counts / totals).tolist()
        return [row[: len(widths)] for row, widths in zip(shares, self.widths)]
