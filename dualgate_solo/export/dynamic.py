"""Dynamic execution of the gated branch at batch size 1: run only the active channels.

Real speed-up from per-input gating, for VICReg-Dual-Gating (Krishna et al., BMVC 2023): per
block, compute the gate on the block input, take the active channels' weights and run smaller
convs

* BasicBlock: conv1 rows ``W1[idx] : [k, C_in, 3, 3]`` and bias ``[k]``, conv2 columns
  ``W2[:, idx] : [C_out, k, 3, 3]``;
* Bottleneck: conv1 rows ``[k1, C_in, 1, 1]``, conv2 ``[k2, k1, 3, 3]``, conv3 columns
  ``[C_out, k2, 1, 1]``;

so a switched-off channel costs nothing. The weights are those of the full-width, fully gated
:class:`~dualgate_solo.export.pruned_resnet.PrunedResNet` that
:func:`~dualgate_solo.export.weights.copy_to_pruned` fills from the backbone (the gated branch
as a plain network), with every BatchNorm folded into its conv
(:func:`~dualgate_solo.export.fold.fold_network`): one conv per step and no per-channel BN
parameters to gather. Cheaper where it can be:

* a group whose channels are all active runs the full weights (no gather);
* with ``cache_size > 0`` each block keeps the gathered weights of its ``cache_size`` most recently
  seen active sets (least recently used ones are evicted); a repeated set costs a dictionary
  lookup instead of the gathers. :attr:`DynamicBlock.hits` / :attr:`DynamicBlock.misses` count
  the lookups, which says whether the cache pays on a given image stream.

Evaluation semantics only (deterministic ``logit >= 0`` gates, BN running statistics of the gated
branch), and ``B = 1`` only: for larger batches the active sets differ per sample (their union is
close to everything). The result equals ``GatedResNet.forward_branch(x, "gated").feats`` up to
float rounding.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualgate_solo.export.fold import fold_network
from dualgate_solo.export.plan import full_width_blocks
from dualgate_solo.export.pruned_resnet import PrunedBottleneck
from dualgate_solo.export.weights import copy_to_pruned
from dualgate_solo.gated.resnet import GatedResNet


def _active(mask: Tensor, size: int) -> Tensor | None:
    """Indices ``[k]`` of the non-zero entries of ``mask [size]``; ``None`` when all are on."""
    idx = torch.nonzero(mask).flatten()
    return None if idx.numel() == size else idx


def _rows(t: Tensor, idx: Tensor | None) -> Tensor:
    return t if idx is None else t.index_select(0, idx)


def _cols(t: Tensor, idx: Tensor | None) -> Tensor:
    return t if idx is None else t.index_select(1, idx)


class DynamicBlock(nn.Module):
    """One BN-folded block of the gated branch, running only its active inner channels
    (``x [1, C_in, H, W] -> [1, C_out, H / stride, W / stride]``).

    ``downsample`` is the block's (full-width) shortcut, a module of its own so that it can be
    timed and counted separately.
    """

    def __init__(self, block: nn.Module, cache_size: int = 0):
        super().__init__()
        self.block = block
        self.downsample = block.downsample
        self.bottleneck = isinstance(block, PrunedBottleneck)
        self.cache_size = cache_size
        self.cache: OrderedDict[bytes, tuple[Tensor, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        """``.to()``/``.cuda()``/``.double()``: the cached gathers would keep the old device and
        dtype, so the cache starts empty again."""
        self.cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def _weights(self, mask: Tensor) -> tuple[Tensor, ...] | None:
        """The gathered weights of the active set ``mask [n_gated]`` (see :meth:`_gather`),
        through the cache."""
        if self.cache_size == 0:
            return self._gather(mask)
        key = mask.to(torch.bool).cpu().numpy().tobytes()
        cached = self.cache.get(key)
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return cached
        self.misses += 1
        weights = self._gather(mask)
        self.cache[key] = weights
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return weights

    def _gather(self, mask: Tensor) -> tuple[Tensor, ...] | None:
        """BasicBlock: ``(w1 [k, C_in, 3, 3], b1 [k], w2 [C_out, k, 3, 3])``; Bottleneck:
        ``(w1, b1, w2, b2, w3)``, with ``w1``/``b1`` ``None`` when no conv1 channel is active;
        ``None`` when the block's last inner group has no active channel (its output is the
        constant last bias)."""
        b = self.block
        if not self.bottleneck:
            idx = _active(mask, mask.numel())
            if idx is not None and idx.numel() == 0:
                return None
            w1 = _rows(b.conv1.weight, idx).contiguous()
            return w1, _rows(b.conv1.bias, idx), _cols(b.conv2.weight, idx).contiguous()
        i1, i2 = _active(mask[: b.g1], b.g1), _active(mask[b.g1 :], mask.numel() - b.g1)
        if i2 is not None and i2.numel() == 0:
            return None
        b2 = _rows(b.conv2.bias, i2)
        w3 = _cols(b.conv3.weight, i2).contiguous()
        if i1 is not None and i1.numel() == 0:  # conv2 sees only zeros: its output is b2
            return None, None, None, b2, w3
        w1, b1 = _rows(b.conv1.weight, i1).contiguous(), _rows(b.conv1.bias, i1)
        w2 = _cols(_rows(b.conv2.weight, i2), i1).contiguous()
        return w1, b1, w2, b2, w3

    def forward(self, x: Tensor) -> Tensor:
        b = self.block
        shortcut = x if self.downsample is None else self.downsample(x)
        weights = self._weights(b.gate(x)[0])
        last = b.conv3 if self.bottleneck else b.conv2
        if weights is None:  # the last conv sees only zeros
            return torch.relu(shortcut + last.bias[None, :, None, None])
        if not self.bottleneck:
            w1, b1, w2 = weights
            a = torch.relu(F.conv2d(x, w1, b1, stride=b.conv1.stride, padding=1))
            return torch.relu(F.conv2d(a, w2, b.conv2.bias, padding=1) + shortcut)
        w1, b1, w2, b2, w3 = weights
        if w1 is None:
            hw = shortcut.shape[-2:]
            h = torch.relu(b2)[None, :, None, None].expand(1, b2.numel(), *hw)
        else:
            a = torch.relu(F.conv2d(x, w1, b1))
            h = torch.relu(F.conv2d(a, w2, b2, stride=b.conv2.stride, padding=1))
        return torch.relu(F.conv2d(h, w3, b.conv3.bias) + shortcut)


class DynamicGatedResNet(nn.Module):
    """The gated branch of a :class:`GatedResNet`, executing only active channels (batch size 1).

    ``forward(x [1, 3, H, W]) -> [1, num_features]``; a batch larger than one raises
    ``ValueError``. Weights are copied and BN-folded at construction (later changes to
    ``backbone`` are not seen). ``cache_size``: active sets per block whose gathered weights are
    kept (0: gather on every call). Parts: ``conv1``/``maxpool`` (stem), ``blocks`` (named
    ``block_names``), ``head``.
    """

    def __init__(self, backbone: GatedResNet, cache_size: int = 0):
        super().__init__()
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size={cache_size!r} is invalid; allowed values: an int >= 0")
        network = copy_to_pruned(backbone, full_width_blocks(backbone, gated=True), "gated")
        network = fold_network(network)
        self.conv1, self.maxpool, self.head = network.conv1, network.maxpool, network.head
        self.blocks = nn.ModuleList(DynamicBlock(b, cache_size) for b in network.blocks)
        self.block_names = [entry["name"] for entry in network.spec["blocks"]]
        self.num_features = network.num_features
        self.eval()

    def cache_stats(self) -> dict[str, int]:
        """``{"hits", "misses", "entries"}`` summed over the blocks."""
        return {
            "hits": sum(b.hits for b in self.blocks),
            "misses": sum(b.misses for b in self.blocks),
            "entries": sum(len(b.cache) for b in self.blocks),
        }

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] != 1:
            raise ValueError(
                f"batch size {x.shape[0]} is invalid; allowed values: 1 (dynamic execution "
                "gathers one sample's active channels)"
            )
        h = self.maxpool(torch.relu(self.conv1(x)))
        for block in self.blocks:
            h = block(h)
        return self.head(h)
