"""The one path that copies weights out of a gated backbone into a plain :class:`PrunedResNet`.

Used by the static/hybrid exporter (the kept channels of an
:class:`~dualgate_solo.export.plan.ExportPlan`), by the dynamic network (every channel kept and
gated: the gated branch itself) and by the benchmarks (every channel kept, no gate, the dense
branch's BatchNorms: the plain dense baseline). Given one :class:`BlockPlan` per block:

* conv weights are sliced to the kept channels: BasicBlock conv1 rows ``[w, C_in, 3, 3]`` and
  conv2 columns ``[C_out, w, 3, 3]``; Bottleneck conv1 rows, conv2 rows and columns, conv3
  columns;
* every BatchNorm is the one the chosen branch uses (``DualBatchNorm.gated`` / ``.dense`` where
  the ``dual_bn_scope`` made it dual, the shared BN elsewhere), sliced like its channels;
* for blocks with gated channels the gate's ``reduce``/``bn`` are copied and its ``expand`` rows
  are restricted to the kept gated channels;
* a group with nothing kept gets one placeholder channel with zero conv rows/columns and a BN of
  weight 0, bias 0, so its activation is exactly 0, as in the gated branch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dualgate_solo.choices import BRANCHES
from dualgate_solo.export.plan import BlockPlan, check_backbone, pruned_spec
from dualgate_solo.export.pruned_resnet import PrunedGate, PrunedResNet, build_pruned_resnet
from dualgate_solo.gated.blocks import GatedBottleneck
from dualgate_solo.gated.layers import DualBatchNorm
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.validation import check_choice


def branch_norm(norm: nn.Module, branch: str) -> nn.BatchNorm2d:
    """The BatchNorm ``branch`` applies: its half of a ``DualBatchNorm``, else ``norm`` itself."""
    return getattr(norm, branch) if isinstance(norm, DualBatchNorm) else norm


@torch.no_grad()
def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, index: Tensor | None = None) -> None:
    """``dst`` <- ``src`` restricted to channels ``index`` (``[w]`` int64; ``None``: all)."""
    pick = (lambda t: t) if index is None else (lambda t: t.index_select(0, index))
    dst.weight.copy_(pick(src.weight))
    dst.bias.copy_(pick(src.bias))
    dst.running_mean.copy_(pick(src.running_mean))
    dst.running_var.copy_(pick(src.running_var))
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps = src.eps


@torch.no_grad()
def _zero_placeholder(conv_out: nn.Conv2d, bn: nn.BatchNorm2d, conv_in: nn.Conv2d) -> None:
    """Make a width-1 placeholder channel exactly inert: zero rows/columns, BN output 0."""
    conv_out.weight.zero_()
    conv_in.weight.zero_()
    bn.weight.zero_()
    bn.bias.zero_()
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0)


def _index(kept: list[int], device: torch.device) -> Tensor:
    return torch.tensor(kept if kept else [0], dtype=torch.long, device=device)


@torch.no_grad()
def _copy_gate(dst: PrunedGate | None, src: nn.Module, rows: list[int]) -> None:
    """Copy the gate's reduce conv and BN, and the ``expand`` rows of the kept gated channels."""
    if dst is None:
        return
    dst.reduce.weight.copy_(src.reduce.weight)
    _copy_bn(dst.bn, src.bn)
    index = torch.tensor(rows, dtype=torch.long, device=src.expand.weight.device)
    dst.expand.weight.copy_(src.expand.weight.index_select(0, index))


@torch.no_grad()
def _copy_block(dst: nn.Module, src: nn.Module, plan: BlockPlan, branch: str) -> None:
    device = src.conv1.weight.device
    if src.downsample is not None:
        dst.downsample.conv.weight.copy_(src.downsample.conv.weight)
        _copy_bn(dst.downsample.bn, branch_norm(src.downsample.bn, branch))
    if isinstance(src, GatedBottleneck):
        k1, k2 = (_index(k, device) for k in plan.kept)
        dst.conv1.weight.copy_(src.conv1.weight.index_select(0, k1))
        _copy_bn(dst.bn1, branch_norm(src.bn1, branch), k1)
        dst.conv2.weight.copy_(src.conv2.weight.index_select(0, k2).index_select(1, k1))
        _copy_bn(dst.bn2, branch_norm(src.bn2, branch), k2)
        dst.conv3.weight.copy_(src.conv3.weight.index_select(1, k2))
        _copy_bn(dst.bn3, branch_norm(src.bn3, branch))
        if plan.placeholders[0]:
            _zero_placeholder(dst.conv1, dst.bn1, dst.conv2)
        if plan.placeholders[1]:
            _zero_placeholder(dst.conv2, dst.bn2, dst.conv3)
        size = plan.group_sizes[0]
        rows = plan.kept[0][: plan.gated[0]] + [size + i for i in plan.kept[1][: plan.gated[1]]]
    else:
        k = _index(plan.kept[0], device)
        dst.conv1.weight.copy_(src.conv1.weight.index_select(0, k))
        _copy_bn(dst.bn1, branch_norm(src.bn1, branch), k)
        dst.conv2.weight.copy_(src.conv2.weight.index_select(1, k))
        _copy_bn(dst.bn2, branch_norm(src.bn2, branch))
        if plan.placeholders[0]:
            _zero_placeholder(dst.conv1, dst.bn1, dst.conv2)
        rows = plan.kept[0][: plan.gated[0]]
    _copy_gate(dst.gate, src.gate, rows)


@torch.no_grad()
def copy_to_pruned(
    backbone: GatedResNet, blocks: list[BlockPlan], branch: str = "gated"
) -> PrunedResNet:
    """A :class:`PrunedResNet` with ``blocks``' channels, filled with ``branch``'s weights.

    Args:
        backbone: a :class:`GatedResNet` (ResNet-18/34/50); weights are read, never modified.
        blocks: one plan per block of ``backbone``, in order (an ``ExportPlan``'s ``blocks``, or
            :func:`~dualgate_solo.export.plan.full_width_blocks`).
        branch: whose BatchNorms to copy, ``"gated"`` or ``"dense"``.

    Returns:
        The network in eval mode on ``backbone``'s device; ``forward(x [B, 3, H, W])`` ->
        ``[B, num_features]``.

    Raises:
        ValueError: ``backbone`` is not a supported ``GatedResNet``, or ``blocks`` do not
            name its blocks in order.
    """
    check_backbone(backbone)
    check_choice("branch", branch, BRANCHES)
    named = list(backbone.named_blocks())
    names = [plan.name for plan in blocks]
    if names != [name for name, _ in named]:
        raise ValueError(
            f"plan blocks {names} do not match the backbone blocks {[n for n, _ in named]}"
        )
    spec = pruned_spec(backbone.depth, backbone.stem, backbone.conv1.out_channels, blocks)
    model = build_pruned_resnet(spec).to(backbone.conv1.weight.device)
    model.conv1.weight.copy_(backbone.conv1.weight)
    _copy_bn(model.bn1, branch_norm(backbone.bn1, branch))
    for (_, src), dst, plan in zip(named, model.blocks, blocks):
        _copy_block(dst, src, plan, branch)
    return model.eval()
