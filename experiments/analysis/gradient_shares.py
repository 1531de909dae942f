"""Where the shared weights' gradient comes from in VICReg-Dual-Gating: one number per loss path.

The paper's step loss ``L = VICReg(z_g, z_d) + L_G`` (``z_g = g(view 1)``, ``z_d = d(view 2)``)
trains one set of conv weights through both branches. Its gradient splits exactly into paths::

    grad L = grad_via_g VICReg(z_g, sg(z_d))    "cross_via_gated"
           + grad_via_d VICReg(sg(z_g), z_d)    "cross_via_dense"  (none with detach_dense_target)
           + w * grad VICReg(d(view 1), z_d)    "dense_pair"       (dense_pair_weight w > 0)
           + grad L_G                            "budget"

For each parameter group (the shared convs per stage, the dense/gated/shared BNs, the gates, the
projector) and each path T this module reports, from one forward pass per batch:

* ``norm``: ``||g_T||`` over the group;
* ``share``: ``<g_T, g> / ||g||^2`` with ``g`` the whole step's gradient of the group; the shares
  of the paths sum to 1, so a share says how much of the update direction the path sets (LARS
  rescales a layer's whole gradient, so the direction is what a path controls);
* ``cosine``: ``<g_T, g> / (||g_T|| ||g||)``.

A ``symmetric`` run (two cross pairs) is refused: its pairs would need their own paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.gated.layers.dual_bn import DualBatchNorm
from dualgate_solo.gated.objective import gated_budget
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.models.projector import Projector
from dualgate_solo.validation import UsageError

#: the gradient paths in the order they are reported
PATHS = ("cross_via_gated", "cross_via_dense", "dense_pair", "budget")
#: the reported groups' kinds, in report order (``conv:<stage>`` sorted by stage within ``conv``)
GROUP_ORDER = ("conv", "bn", "gates", "projector")
VICRegFn = Callable[[Tensor, Tensor], Tensor]


def path_losses(
    backbone: GatedResNet,
    projector: Projector,
    views: tuple[Tensor, Tensor],
    budget: BudgetOptions,
    options: DualGatingOptions,
    p: float,
    vicreg_fn: VICRegFn,
    multiplier: float | Tensor = 0.0,
) -> dict[str, Tensor]:
    """One loss per gradient path (see the module) from one pass of each branch over ``views``
    (``[B, 3, H, W]`` each, view 1 gated, view 2 dense, as in
    :func:`dualgate_solo.gated.objective.dual_gating_objective`, whose gradient their sum's
    equals for the same gate noise)."""
    if options.symmetric:
        raise UsageError(
            "method_kwargs.symmetric=True is not supported by the gradient-share analysis; "
            "allowed: symmetric=False (one gated-dense pair)"
        )
    gated = backbone.forward_branch(views[0], "gated")
    z_gated = projector(gated.feats, "gated")
    z_dense = projector(backbone.forward_branch(views[1], "dense").feats, "dense")
    losses = {"cross_via_gated": vicreg_fn(z_gated, z_dense.detach())}
    if not options.detach_dense_target:
        losses["cross_via_dense"] = vicreg_fn(z_gated.detach(), z_dense)
    if options.dense_pair_weight:
        z_dense_1 = projector(backbone.forward_branch(views[0], "dense").feats, "dense")
        losses["dense_pair"] = options.dense_pair_weight * vicreg_fn(z_dense_1, z_dense)
    losses["budget"] = gated_budget(backbone, gated, budget, p, multiplier).loss
    return losses


def _stage(name: str) -> str:
    top = name.split(".")[0]
    return top if top.startswith("layer") else "stem"


def parameter_groups(backbone: GatedResNet, projector: Projector) -> dict[str, list[nn.Parameter]]:
    """The reported groups: ``conv:<stage>`` (shared conv weights of the stem and each
    ``layer<i>``, shortcuts included), ``bn:dense``/``bn:gated`` (the two halves of the dual BNs),
    ``bn:shared`` (BNs both branches use), ``gates`` and ``projector``. Every parameter is in
    exactly one group."""
    groups: dict[str, list[nn.Parameter]] = {}
    dual_halves = {}
    for module_name, module in backbone.named_modules():
        if isinstance(module, DualBatchNorm):
            for branch in ("dense", "gated"):
                for param_name, _ in getattr(module, branch).named_parameters():
                    dual_halves[f"{module_name}.{branch}.{param_name}"] = f"bn:{branch}"
    bn_params = {
        f"{m}.{p}" if m else p
        for m, module in backbone.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for p, _ in module.named_parameters(recurse=False)
    }
    for name, param in backbone.named_parameters():
        if ".gate." in name:
            group = "gates"
        elif name in dual_halves:
            group = dual_halves[name]
        elif name in bn_params:
            group = "bn:shared"
        else:
            group = f"conv:{_stage(name)}"
        groups.setdefault(group, []).append(param)
    groups["projector"] = list(projector.parameters())
    return dict(sorted(groups.items(), key=lambda kv: GROUP_ORDER.index(kv[0].split(":")[0])))


@dataclass(frozen=True)
class PathShare:
    """One (path, group) measurement of one batch: see the module for the three numbers."""

    path: str
    group: str
    norm: float
    share: float
    cosine: float


def _flat(grads: Iterable[Tensor | None], params: list[nn.Parameter]) -> Tensor:
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1).double()
            for g, p in zip(grads, params)
        ]
    )


def path_shares(
    losses: dict[str, Tensor], groups: dict[str, list[nn.Parameter]]
) -> list[PathShare]:
    """The (path, group) numbers of one batch from :func:`path_losses`' ``losses``."""
    params = [p for group in groups.values() for p in group]
    per_path = {
        path: torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        for path, loss in losses.items()
    }
    rows = []
    start = 0
    for group, members in groups.items():
        span = slice(start, start + len(members))
        start += len(members)
        flat = {path: _flat(grads[span], members) for path, grads in per_path.items()}
        total = sum(flat.values())
        total_sq = float(total @ total)
        for path, g in flat.items():
            norm = float(g.norm())
            dot = float(g @ total)
            rows.append(
                PathShare(
                    path=path,
                    group=group,
                    norm=norm,
                    share=dot / total_sq if total_sq else 0.0,
                    cosine=dot / (norm * total_sq**0.5) if norm and total_sq else 0.0,
                )
            )
    return rows
