"""masked_conv2d == conv(a * mask) in value and gradients; stores less; works under autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dualgate_solo.gated.layers.masked_conv import masked_conv2d


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_equal_the_reference(stride: int, channels_last: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, stride=stride, padding=1, bias=False).double()
    a = torch.randn(3, 6, 9, 9, dtype=torch.float64).relu()
    if channels_last:
        a = a.to(memory_format=torch.channels_last)
    mask = (torch.rand(3, 6, dtype=torch.float64) > 0.5).double()
    inputs = [a.clone().requires_grad_(), mask.clone().requires_grad_()]
    ref_inputs = [a.clone().requires_grad_(), mask.clone().requires_grad_()]
    out = masked_conv2d(conv, *inputs)
    ref = conv(ref_inputs[0] * ref_inputs[1][:, :, None, None])
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [*inputs, conv.weight], grad)
    want = torch.autograd.grad(ref, [*ref_inputs, conv.weight], grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert got[1].abs().sum() > 0  # the gate gets a gradient through switched-off channels too


def test_gradcheck() -> None:
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False).double()
    a = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, m, w: masked_conv2d(conv, a, m), (a, mask, conv.weight)
    )


def test_saves_the_input_and_mask_not_the_product() -> None:
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    a = torch.randn(4, 8, 16, 16, requires_grad=True).relu()
    mask = torch.ones(4, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        masked_conv2d(conv, a, mask)
    big = [t for t in saved if t.numel() == a.numel()]
    assert len(big) == 1 and big[0].data_ptr() == a.data_ptr()


def test_autocast_bfloat16_runs_in_low_precision_with_float32_param_grads() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    a = torch.randn(2, 4, 8, 8).relu()
    mask = torch.ones(2, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = masked_conv2d(conv, a, mask)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert conv.weight.grad.dtype == torch.float32 and mask.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), conv(a), atol=0.1, rtol=0.05)


def test_conv_with_bias_is_refused() -> None:
    with pytest.raises(ValueError, match="bias-free"):
        masked_conv2d(nn.Conv2d(2, 2, 1), torch.randn(1, 2, 3, 3), torch.ones(1, 2))
