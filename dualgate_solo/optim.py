"""LARS with solo-learn 1.0.6's semantics, for the stand-alone demo loop.

Inside solo-learn the methods use solo's own ``LARS`` wrapper; this one reproduces its update so
the framework-free demo trains like the paper's recipe. For every parameter with ``ndim != 1``::

    factor = min(eta * |w| / (|g| + wd * |w| + 1e-8) / lr, 1)   (clip_lr=True)
    g <- (g + wd * w) * factor

and 1-D parameters (biases, BatchNorm) get neither the adaptation nor weight decay. The result is
fed to SGD with momentum. The trust ratio matters for the gates: their gradients are tiny, and
LARS rescales each layer's step to ``eta * |w|`` whatever the gradient scale.
"""

from __future__ import annotations

import torch
from torch.optim import SGD


class LARS(SGD):
    """SGD with momentum plus the layer-wise trust ratio described in the module docstring.

    Args:
        params: parameters or param groups (a group may set its own ``weight_decay``).
        lr: learning rate.
        momentum: SGD momentum (0.9).
        weight_decay: L2 coefficient applied inside the trust ratio (1e-4).
        eta: trust coefficient (0.02 in the paper's scripts).
        clip_lr: cap the adapted learning rate at ``lr``.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        eta: float = 0.02,
        clip_lr: bool = True,
    ):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        for group in self.param_groups:
            group.setdefault("eta", eta)
            group.setdefault("clip_lr", clip_lr)

    @torch.no_grad()
    def step(self, closure=None):
        decays = []
        for group in self.param_groups:
            wd, lr = group["weight_decay"], group["lr"]
            decays.append(wd)
            for p in group["params"]:
                if p.grad is None or p.ndim == 1:
                    continue
                w_norm, g_norm = float(torch.norm(p)), float(torch.norm(p.grad))
                if w_norm == 0 or g_norm == 0:
                    continue
                factor = group["eta"] * w_norm / (g_norm + wd * w_norm + 1e-8)
                if group["clip_lr"]:
                    factor = min(factor / lr, 1.0)
                p.grad.add_(p, alpha=wd).mul_(factor)
            group["weight_decay"] = 0.0  # decay was applied above; 1-D params get none
        try:
            return super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd
