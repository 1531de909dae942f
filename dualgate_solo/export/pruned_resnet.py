"""Plain-PyTorch ResNets with physically narrower residual blocks: the deployable export target.

Static channel pruning from gate statistics of
VICReg-Dual-Gating (Krishna et al., "Unifying Synergies between Self-supervised Learning and
Dynamic Computation", BMVC 2023): channels a gate never switches on are removed from the weights,
so the exported network is an ordinary, smaller dense ResNet.

This module needs only ``torch`` and the torch-only :mod:`dualgate_solo.stems` (no gate code).
A saved ``state_dict`` plus the JSON ``spec`` written by :mod:`dualgate_solo.export.exporter`
are enough to rebuild the network with :func:`build_pruned_resnet`, without this package's
gate/block code (this file and ``stems.py`` are all it takes).

Spec format (a JSON-serialisable dict)::

    {
      "format": "dualgate_solo.pruned_resnet/1",
      "depth": 18 | 34 | 50,            # 18/34: BasicBlock, 50: Bottleneck (torchvision v1.5)
      "stem": "cifar" | "imagenet",     # cifar: 3x3/1 conv, padding 2, no max-pool
      "width": 64,                      # stem / stage-1 channels; stages have width * (1, 2, 4, 8)
      "folded_bn": false,               # optional; true: every BatchNorm is folded into the conv
                                        # before it (convs with bias, no BatchNorm modules)
      "blocks": [                       # one entry per residual block, forward order
        {"name": "layer1.0",
         "widths": [w] | [w1, w2],       # inner widths actually built (>= 1 each)
         "gated":  [g] | [g1, g2],       # leading channels of each inner width that keep a gate
         "gate_hidden": h},             # hidden width of the kept gate (ignored when all g == 0)
        ...
      ]
    }

Inside a block the inner channels are ordered ``[gated..., static...]``: the first ``g`` channels
of each inner width are multiplied by the gate's 0/1 output, the remaining ``w - g`` are always on.
Stem, downsample shortcuts and block outputs keep their full width, so ``forward(x)`` returns
pooled features ``[B, num_features]`` (512 for ResNet-18/34, 2048 for ResNet-50, at width 64).

With ``folded_bn`` each conv followed by a BatchNorm (``conv<i>``/``bn<i>``, ``downsample.conv``/
``.bn``) is built with a bias and its BatchNorm is an ``nn.Identity``: the inference network of
:func:`dualgate_solo.export.fold.fold_network` (gates keep their BN, see ``NORM_AFTER_CONV``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualgate_solo.choices import STEMS
from dualgate_solo.stems import stem_layers

SPEC_FORMAT = "dualgate_solo.pruned_resnet/1"
STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
EXPANSION = {18: 1, 34: 1, 50: 4}


#: the BatchNorm that follows each conv, by the conv's attribute name (same parent module); the
#: gate's BN is never folded: it costs nothing on the pooled ``[B, hidden, 1, 1]`` vector, and
#: unchanged arithmetic keeps the gate's on/off decisions those of the gated branch
NORM_AFTER_CONV = {"conv1": "bn1", "conv2": "bn2", "conv3": "bn3", "conv": "bn"}


def conv_norm(
    in_channels: int,
    out_channels: int,
    kernel: int,
    folded: bool,
    stride: int = 1,
    padding: int = 0,
) -> tuple[nn.Conv2d, nn.Module]:
    """A bias-free conv and its ``BatchNorm2d``, or (``folded``) a conv with bias and an
    ``nn.Identity``."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=folded)
    return conv, nn.Identity() if folded else nn.BatchNorm2d(out_channels)


class PrunedGate(nn.Module):
    """Deterministic (evaluation) channel gate restricted to the data-dependent channels.

    ``x [B, C_in, H, W]`` -GAP-> ``[B, C_in, 1, 1]`` -1x1-> ``[B, hidden]`` -BN-ReLU-1x1->
    logits ``[B, n_out]`` -> mask ``1[logit >= 0]`` ``[B, n_out]`` in ``x``'s dtype.
    """

    def __init__(self, in_channels: int, hidden: int, n_out: int):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.expand = nn.Conv2d(hidden, n_out, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean(dim=(2, 3), keepdim=True)
        logits = self.expand(torch.relu(self.bn(self.reduce(pooled)))).flatten(1)
        return (logits >= 0).to(x.dtype)


def _gate_or_none(in_channels: int, hidden: int, n_gated: int) -> PrunedGate | None:
    return PrunedGate(in_channels, hidden, n_gated) if n_gated > 0 else None


def _apply_mask(a: Tensor, mask: Tensor, n_static: int) -> Tensor:
    """``a [B, g + n_static, H, W]`` times ``[mask [B, g], ones [B, n_static]]`` over space."""
    if n_static > 0:
        mask = F.pad(mask, (0, n_static), value=1.0)
    return a * mask[:, :, None, None]


class Downsample(nn.Module):
    """Full-width 1x1 strided conv + BN shortcut (never pruned)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, folded: bool = False):
        super().__init__()
        self.conv, self.bn = conv_norm(in_channels, out_channels, 1, folded, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class PrunedBasicBlock(nn.Module):
    """BasicBlock whose inner width (conv1 out = bn1 = conv2 in) is ``width`` instead of ``planes``.

    Shapes: ``x [B, in_channels, H, W]`` -> ``[B, planes, H / stride, W / stride]``.
    The first ``gated`` inner channels are masked by a :class:`PrunedGate` reading ``x``.
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        width: int,
        stride: int,
        gated: int = 0,
        gate_hidden: int = 1,
        folded: bool = False,
    ):
        super().__init__()
        self.conv1, self.bn1 = conv_norm(in_channels, width, 3, folded, stride, padding=1)
        self.conv2, self.bn2 = conv_norm(width, planes, 3, folded, padding=1)
        self.gate = _gate_or_none(in_channels, gate_hidden, gated)
        self.n_static = width - gated
        needs_projection = stride != 1 or in_channels != planes
        self.downsample = (
            Downsample(in_channels, planes, stride, folded) if needs_projection else None
        )

    def forward(self, x: Tensor) -> Tensor:
        a = torch.relu(self.bn1(self.conv1(x)))
        if self.gate is not None:
            a = _apply_mask(a, self.gate(x), self.n_static)
        y = self.bn2(self.conv2(a))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + shortcut)


class PrunedBottleneck(nn.Module):
    """Bottleneck (stride on the 3x3) with inner widths ``w1`` (conv1 out) and ``w2`` (conv2 out).

    Shapes: ``x [B, in_channels, H, W]`` -> ``[B, 4 * planes, H / stride, W / stride]``.
    One :class:`PrunedGate` reading ``x`` emits ``g1 + g2`` values: the first ``g1`` mask the
    leading channels of conv1's output, the next ``g2`` those of conv2's output.
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        widths: tuple[int, int],
        stride: int,
        gated: tuple[int, int] = (0, 0),
        gate_hidden: int = 1,
        folded: bool = False,
    ):
        super().__init__()
        w1, w2 = widths
        out_channels = 4 * planes
        self.conv1, self.bn1 = conv_norm(in_channels, w1, 1, folded)
        self.conv2, self.bn2 = conv_norm(w1, w2, 3, folded, stride, padding=1)
        self.conv3, self.bn3 = conv_norm(w2, out_channels, 1, folded)
        self.gate = _gate_or_none(in_channels, gate_hidden, gated[0] + gated[1])
        self.g1 = gated[0]
        self.n_static1 = w1 - gated[0]
        self.n_static2 = w2 - gated[1]
        needs_projection = stride != 1 or in_channels != out_channels
        self.downsample = (
            Downsample(in_channels, out_channels, stride, folded) if needs_projection else None
        )

    def forward(self, x: Tensor) -> Tensor:
        a = torch.relu(self.bn1(self.conv1(x)))
        mask = self.gate(x) if self.gate is not None else None
        if mask is not None:
            a = _apply_mask(a, mask[:, : self.g1], self.n_static1)
        b = torch.relu(self.bn2(self.conv2(a)))
        if mask is not None:
            b = _apply_mask(b, mask[:, self.g1 :], self.n_static2)
        y = self.bn3(self.conv3(b))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + shortcut)


class PrunedResNet(nn.Module):
    """A plain ResNet built from a pruning ``spec`` (see the module docstring).

    ``forward(x [B, 3, H, W]) -> [B, num_features]`` (global-average-pooled features, no FC head).
    Parts: the stem (``conv1``, ``bn1``, ReLU, ``maxpool``), ``blocks`` and ``head`` (pooling).
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        spec = validate_spec(spec)
        self.spec = spec
        depth, width, stem = spec["depth"], spec["width"], spec["stem"]
        folded = bool(spec.get("folded_bn", False))
        conv1, self.maxpool = stem_layers(stem, width)
        self.conv1, self.bn1 = conv_norm(
            3, width, conv1.kernel_size[0], folded, conv1.stride[0], conv1.padding[0]
        )
        expansion = EXPANSION[depth]
        blocks = []
        channels = width
        entries = iter(spec["blocks"])
        for stage, n_blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = width * 2**stage
            for i in range(n_blocks):
                entry = next(entries)
                stride = 2 if stage > 0 and i == 0 else 1
                hidden = int(entry.get("gate_hidden", 1))
                if expansion == 1:
                    block = PrunedBasicBlock(
                        channels,
                        planes,
                        entry["widths"][0],
                        stride,
                        entry["gated"][0],
                        hidden,
                        folded,
                    )
                else:
                    block = PrunedBottleneck(
                        channels,
                        planes,
                        tuple(entry["widths"]),
                        stride,
                        tuple(entry["gated"]),
                        hidden,
                        folded,
                    )
                blocks.append(block)
                channels = planes * expansion
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.num_features = channels

    def forward(self, x: Tensor) -> Tensor:
        h = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.head(self.blocks(h))


def validate_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a spec's structure; raises ``ValueError`` naming the offending key."""
    if not isinstance(spec, dict):
        raise ValueError(f"spec={type(spec).__name__} is invalid; allowed values: a dict")
    if spec.get("format", SPEC_FORMAT) != SPEC_FORMAT:
        raise ValueError(
            f"spec.format={spec.get('format')!r} is invalid; allowed values: {SPEC_FORMAT!r}"
        )
    depth = spec.get("depth")
    if depth not in STAGE_BLOCKS:
        raise ValueError(
            f"spec.depth={depth!r} is invalid; allowed values: {', '.join(map(str, STAGE_BLOCKS))}"
        )
    if spec.get("stem") not in STEMS:
        raise ValueError(
            f"spec.stem={spec.get('stem')!r} is invalid; allowed values: "
            f"{', '.join(map(repr, STEMS))}"
        )
    if not isinstance(spec.get("folded_bn", False), bool):
        raise ValueError(
            f"spec.folded_bn={spec['folded_bn']!r} is invalid; allowed values: true, false"
        )
    width = spec.get("width")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"spec.width={width!r} is invalid; allowed values: a positive int")
    blocks = spec.get("blocks")
    n_blocks = sum(STAGE_BLOCKS[depth])
    n_groups = 1 if EXPANSION[depth] == 1 else 2
    if not isinstance(blocks, list) or len(blocks) != n_blocks:
        raise ValueError(
            f"spec.blocks has {len(blocks) if isinstance(blocks, list) else blocks!r} entries; "
            f"allowed values: a list of {n_blocks} (depth {depth})"
        )
    for b, entry in enumerate(blocks):
        widths, gated = entry.get("widths"), entry.get("gated", [0] * n_groups)
        if not (
            isinstance(widths, list)
            and len(widths) == n_groups
            and all(isinstance(w, int) and w >= 1 for w in widths)
        ):
            raise ValueError(
                f"spec.blocks[{b}].widths={widths!r} is invalid; allowed values: "
                f"{n_groups} int(s) >= 1"
            )
        if not (
            isinstance(gated, list)
            and len(gated) == n_groups
            and all(isinstance(g, int) and 0 <= g <= w for g, w in zip(gated, widths))
        ):
            raise ValueError(
                f"spec.blocks[{b}].gated={gated!r} is invalid; allowed values: "
                f"{n_groups} int(s) in [0, width]"
            )
    return spec


def build_pruned_resnet(
    spec: dict[str, Any], state_dict: dict[str, Tensor] | None = None
) -> PrunedResNet:
    """Build the pruned ResNet described by ``spec``; load ``state_dict`` strictly when given.

    Returns the module in eval mode. Needs only ``torch``: e.g. ``build_pruned_resnet(
    json.load(open("spec.json")), torch.load("weights.pt", weights_only=True))``.
    """
    model = PrunedResNet(spec)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()
