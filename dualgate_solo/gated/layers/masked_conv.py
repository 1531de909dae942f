"""``conv(a * mask)`` with a dense block's memory: the product is recomputed in backward.

In a gated block the post-ReLU activation ``a`` is needed anyway (ReLU's backward and the
gate's straight-through gradient ``dL/dm = sum_hw dL/dz * a`` read it), and autograd would also keep
the masked product ``z = a * m`` for the convolution's weight gradient: one extra activation per
gated conv. :func:`masked_conv2d` saves ``a`` and ``m`` only and rebuilds ``z`` in backward (one
element-wise multiply), so the gated branch stores what the dense branch stores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _MaskThenConv(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, a: Tensor, mask: Tensor, weight: Tensor, stride, padding, dilation, groups: int
    ) -> Tensor:
        dtype = (
            torch.get_autocast_dtype(a.device.type)
            if torch.is_autocast_enabled(a.device.type)
            else a.dtype
        )
        ctx.dtypes = (a.dtype, mask.dtype, weight.dtype)
        ctx.conf = (stride, padding, dilation, groups)
        a_c, m_c, w_c = a.to(dtype), mask.to(dtype)[:, :, None, None], weight.to(dtype)
        ctx.save_for_backward(a_c, m_c, w_c)
        with torch.autocast(device_type=a.device.type, enabled=False):
            return nn.functional.conv2d(a_c * m_c, w_c, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, m, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        need_a, need_m, need_w = ctx.needs_input_grad[:3]
        grad_z, grad_w, _ = torch.ops.aten.convolution_backward(
            grad.to(a.dtype),
            a * m,
            weight,
            None,
            stride,
            padding,
            dilation,
            False,
            [0, 0],
            groups,
            [need_a or need_m, need_w, False],
        )
        grad_a = (grad_z * m).to(ctx.dtypes[0]) if need_a else None
        grad_m = (grad_z * a).sum((2, 3)).to(ctx.dtypes[1]) if need_m else None
        grad_w = grad_w.to(ctx.dtypes[2]) if need_w else None
        return grad_a, grad_m, grad_w, None, None, None, None


def masked_conv2d(conv: nn.Conv2d, a: Tensor, mask: Tensor) -> Tensor:
    """``conv(a * mask[:, :, None, None])``; ``a [B, C, H, W]``, ``mask [B, C]``; bias-free."""
    if conv.bias is not None or conv.padding_mode != "zeros":
        raise ValueError(
            "masked_conv2d supports bias-free, zero-padded convolutions (the ResNet convs)"
        )
    return _MaskThenConv.apply(
        a, mask, conv.weight, conv.stride, conv.padding, conv.dilation, conv.groups
    )
