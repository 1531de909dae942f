"""BatchNorm folded into the conv before it: the inference form of every exported network.

In eval mode a BatchNorm after a conv is an affine map per output channel ``c``::

    BN(conv(x))_c = s_c * (W_c * x - mu_c) + beta_c,   s_c = gamma_c / sqrt(var_c + eps)
                  = (s_c W_c) * x + (beta_c - s_c mu_c)  (+ s_c b_c when the conv has a bias b)

so :func:`fold_bn` returns one conv with weight ``s_c W_c`` and bias ``beta_c + s_c (b_c - mu_c)``
and the BatchNorm disappears (one kernel less per conv, no separate pass over the activations).
:func:`fold_network` applies it to every conv/BN pair of a
:class:`~dualgate_solo.export.pruned_resnet.PrunedResNet` (static, hybrid, dynamic, slim and dense
exports alike) and returns the ``folded_bn`` network of the same spec, which saves, reloads and
exports to TorchScript/ONNX like the unfolded one. The gates keep their own BatchNorm (free on a
pooled vector, and their on/off decisions stay bit-identical to the unfolded network's).
Placeholder channels (BN weight 0, bias 0) fold to zero rows and zero bias, so they stay inert.
"""

from __future__ import annotations

import torch
from torch import nn

from dualgate_solo.export.pruned_resnet import (
    NORM_AFTER_CONV,
    PrunedGate,
    PrunedResNet,
    build_pruned_resnet,
)


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv with bias equal to ``bn(conv(x))`` with ``bn`` in eval mode (running stats).

    Shapes: weight ``[C_out, C_in / groups, k, k]`` scaled per output channel, bias ``[C_out]``.
    ``conv`` and ``bn`` are not modified.
    """
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"bn.num_features={bn.num_features} does not match conv.out_channels="
            f"{conv.out_channels}"
        )
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [C_out]
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    folded.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    folded.bias.copy_(bn.bias + scale * (bias - bn.running_mean))
    return folded


@torch.no_grad()
def fold_network(model: PrunedResNet) -> PrunedResNet:
    """``model`` with every BatchNorm folded into its conv, as a new ``folded_bn`` network in eval
    mode on ``model``'s device; a network that is already folded is returned as it is.

    ``forward`` is unchanged up to float rounding (eval semantics: BN running statistics).
    """
    if model.spec.get("folded_bn", False):
        return model
    folded = build_pruned_resnet({**model.spec, "folded_bn": True})
    state = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        parent, _, leaf = name.rpartition(".")
        norm_name = NORM_AFTER_CONV.get(leaf)
        if norm_name is None:  # the gate's convs (kept as they are, with the gate's BN)
            state[f"{name}.weight"] = module.weight
            continue
        norm = model.get_submodule(f"{parent}.{norm_name}" if parent else norm_name)
        fused = fold_bn(module, norm)
        state[f"{name}.weight"], state[f"{name}.bias"] = fused.weight, fused.bias
    for name, module in model.named_modules():
        if isinstance(module, PrunedGate):
            for key, value in module.bn.state_dict().items():
                state[f"{name}.bn.{key}"] = value
    folded.load_state_dict(state, strict=True)
    return folded.to(model.conv1.weight.device).eval()
