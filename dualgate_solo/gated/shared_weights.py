"""The weights the dense and the gated branch share, and a gated pass whose gradient into them is
scaled (``DualGatingOptions.gated_grad_scale``).

The gated branch owns its gates and the ``gated`` half of every
:class:`~dualgate_solo.gated.layers.DualBatchNorm`; every other parameter of the backbone and the
projector (convs, shared BNs, linear layers) is used by both branches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from dualgate_solo.gated.layers import ChannelGate, DualBatchNorm
from dualgate_solo.gated.resnet import BranchOutput, GatedResNet
from dualgate_solo.models.projector import Projector


def shared_parameters(module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of ``module``'s parameters that both branches use: all but the gates'
    and the gated BNs'."""
    gated_only: set[int] = set()
    for m in module.modules():
        if isinstance(m, ChannelGate):
            gated_only.update(map(id, m.parameters()))
        elif isinstance(m, DualBatchNorm):
            gated_only.update(map(id, m.gated.parameters()))
    for name, param in module.named_parameters():
        if id(param) not in gated_only:
            yield name, param


class _GatedPass(nn.Module):
    """``x -> (gated BranchOutput, gated embedding)``: one module, so one ``functional_call``."""

    def __init__(self, backbone: GatedResNet, projector: Projector):
        super().__init__()
        self.backbone, self.projector = backbone, projector

    def forward(self, x: Tensor) -> tuple[BranchOutput, Tensor]:
        out = self.backbone.forward_branch(x, "gated")
        return out, self.projector(out.feats, "gated")


def gated_pass(
    backbone: GatedResNet, projector: Projector, x: Tensor, grad_scale: float = 1.0
) -> tuple[BranchOutput, Tensor]:
    """The gated branch on ``x [B, 3, H, W]``: its :class:`BranchOutput` and embedding ``[B, D]``.

    With ``grad_scale = s < 1`` every shared weight ``theta`` (:func:`shared_parameters`) enters
    as ``sg(theta) + s * (theta - sg(theta))``: bit for bit ``theta`` in the forward pass, while
    the gradient this pass sends into ``theta`` is multiplied by ``s``; gates and gated BNs get
    their full gradient. ``s = 0`` passes ``sg(theta)`` itself, so backward skips the shared
    weights' gradients of this pass (it still computes the activations' gradients the gates
    need).
    """
    pair = _GatedPass(backbone, projector)
    if grad_scale == 1.0:
        return pair(x)
    if grad_scale == 0.0:  # no weight gradient to compute at all, only the inputs' (for gates)
        scaled = {name: param.detach() for name, param in shared_parameters(pair)}
    else:
        scaled = {
            name: param.detach() + grad_scale * (param - param.detach())
            for name, param in shared_parameters(pair)
        }
    return torch.func.functional_call(pair, scaled, (x,), strict=False)
