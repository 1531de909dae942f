"""Which gated channels survive a static export: a serialisable per-block prune plan.

Krishna et al. (BMVC 2023, paper Fig. 1) observe that at low budgets most
gates are input-independent: each block's channels split into *always off*, *always on* and
*data dependent*. From per-channel on-rates over a calibration split
(:func:`dualgate_solo.gated.gate_stats.collect_gate_statistics`, categories from
:func:`dualgate_solo.gated.gate_stats.channel_categories`) this module decides, per block, which
inner channels the exported network keeps:

* ``static``: keep every channel with on-rate ``> off_threshold`` (i.e. drop the always-off ones);
  the kept data-dependent channels run always on, no gate is left;
* ``hybrid``: drop the always-off channels, run the always-on ones without a gate, and keep a small
  gate for the data-dependent ones (``off_threshold < rate < on_threshold``).

Per block the plan stores, for each gated group (one for BasicBlock: conv1's output; two for the
gated Bottleneck: conv1's and conv2's outputs), the kept *original* channel indices ordered
``[gated..., always-on...]`` and how many leading ones keep their gate. A group whose kept set is
empty is built with one placeholder channel whose weights are zeroed by the exporter (its
activation is exactly 0), because zero-width convolutions do not export portably.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dualgate_solo.choices import POLICIES
from dualgate_solo.export.pruned_resnet import SPEC_FORMAT
from dualgate_solo.gated.blocks import GatedBottleneck
from dualgate_solo.gated.gate_stats import GateStatistics, channel_categories
from dualgate_solo.gated.layers import gate_mode_of
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.validation import check_choice, check_interval

SUPPORTED_DEPTHS = (18, 34, 50)


@dataclass
class BlockPlan:
    """Kept channels of one residual block.

    Attributes:
        name: ``"layer<s>.<i>"``.
        group_sizes: full inner widths per gated group (``[C]`` BasicBlock, ``[w, w]`` Bottleneck).
        kept: per group, kept original channel indices (within the group),
            ``[gated..., static...]``.
        gated: per group, how many leading entries of ``kept`` keep their gate (0 for ``static``).
        gate_in: block input channels (the gate's C_in).
        gate_hidden: the gate's hidden width (copied when any ``gated`` > 0).
        macs: predicted conv MACs of the exported block (shortcut and kept gate included).
        dense_macs: the dense block's conv MACs (shortcut included, gate excluded).
    """

    name: str
    group_sizes: list[int]
    kept: list[list[int]]
    gated: list[int]
    gate_in: int
    gate_hidden: int
    macs: int = 0
    dense_macs: int = 0

    @property
    def widths(self) -> list[int]:
        """Inner widths actually built (a group with nothing kept gets one zeroed placeholder)."""
        return [max(1, len(k)) for k in self.kept]

    @property
    def placeholders(self) -> list[bool]:
        """Per group, whether the built width is a zeroed placeholder channel."""
        return [len(k) == 0 for k in self.kept]

    def spec_entry(self) -> dict[str, Any]:
        """This block's entry of the pruned network's JSON spec (see ``pruned_resnet``)."""
        return {
            "name": self.name,
            "widths": self.widths,
            "gated": list(self.gated),
            "gate_hidden": self.gate_hidden,
        }


@dataclass
class ExportPlan:
    """Per-block kept channels of a gated backbone plus the options that produced them.

    ``spec()`` is the architecture description
    :func:`~dualgate_solo.export.pruned_resnet.build_pruned_resnet` needs; ``to_json()`` /
    ``from_json()`` round-trip the whole plan.
    """

    policy: str
    off_threshold: float
    on_threshold: float
    depth: int
    stem: str
    width: int
    input_hw: list[int]
    num_samples: int
    stem_macs: int
    blocks: list[BlockPlan] = field(default_factory=list)

    @property
    def dense_macs(self) -> int:
        """Dense conv MACs of the gated backbone at ``input_hw`` (the paper's F_full)."""
        return self.stem_macs + sum(b.dense_macs for b in self.blocks)

    @property
    def predicted_macs(self) -> int:
        """Conv MACs the exported network runs per image at ``input_hw`` (kept gates included)."""
        return self.stem_macs + sum(b.macs for b in self.blocks)

    @property
    def widths(self) -> list[list[int]]:
        """Built inner widths per block."""
        return [b.widths for b in self.blocks]

    def spec(self) -> dict[str, Any]:
        """The JSON architecture spec of the exported network (see ``pruned_resnet``)."""
        return pruned_spec(self.depth, self.stem, self.width, self.blocks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportPlan:
        data = dict(data)
        data["blocks"] = [BlockPlan(**b) for b in data["blocks"]]
        return cls(**data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path: str | Path) -> ExportPlan:
        return cls.from_dict(json.loads(Path(path).read_text()))


def pruned_spec(depth: int, stem: str, width: int, blocks: list[BlockPlan]) -> dict[str, Any]:
    """The JSON spec (see ``pruned_resnet``) of the network that builds ``blocks``' channels."""
    return {
        "format": SPEC_FORMAT,
        "depth": depth,
        "stem": stem,
        "width": width,
        "blocks": [b.spec_entry() for b in blocks],
    }


def check_backbone(backbone: Any) -> GatedResNet:
    """Refuse anything but a :class:`GatedResNet` of a supported depth (``ValueError``)."""
    if not isinstance(backbone, GatedResNet):
        raise ValueError(
            f"backbone={type(backbone).__name__} is invalid; allowed values: a dualgate_solo "
            "GatedResNet (dg_resnet18/34/50); a checkpoint of a non-gated method has no gates to "
            "export"
        )
    check_choice("backbone.depth", backbone.depth, SUPPORTED_DEPTHS)
    return backbone


def check_channel_gates(backbone: GatedResNet) -> GatedResNet:
    """Refuse a width-gated backbone in the channel exports (static, hybrid, dynamic): they keep
    or gate single channels, which a width gate does not choose (``UsageError``)."""
    gate_mode_of(backbone).require(routed=False, executor="a static, hybrid or dynamic export")
    return backbone


def full_width_blocks(backbone: GatedResNet, gated: bool) -> list[BlockPlan]:
    """Block plans that keep every channel in its original order, every one gated or none.

    ``gated=True`` describes the gated branch itself (all gates kept: the masked network);
    ``gated=False`` a plain full-width ResNet (no gate, e.g. for the dense branch). MACs are
    not predicted (``macs`` and ``dense_macs`` stay 0): these plans need no gate statistics.
    """
    check_backbone(backbone)
    if gated:
        check_channel_gates(backbone)
    plans = []
    for name, block in backbone.named_blocks():
        n_groups = 2 if isinstance(block, GatedBottleneck) else 1
        size = block.gate.gated_channels // n_groups
        kept = [list(range(size)) for _ in range(n_groups)]
        n_gated = [size if gated else 0] * n_groups
        hidden = block.gate.reduce.out_channels
        plans.append(
            BlockPlan(name, [size] * n_groups, kept, n_gated, block.conv1.in_channels, hidden)
        )
    return plans


def _block_macs(block: Any, cost: Any, kept_widths: list[int], n_gated: int, hidden: int) -> int:
    """Conv MACs of one exported block (``kept_widths`` are the built widths).

    The block's own :meth:`macs_for` costs a mask with ``kept_widths`` channels on per gated width,
    so the export and the gated branch share one MAC formula; the kept gate adds its 1x1 convs.
    """
    gate = block.conv1.in_channels * hidden + hidden * n_gated if n_gated else 0
    full = block.gate.gated_channels // len(kept_widths)
    mask = torch.zeros(1, full * len(kept_widths))
    for part, kept in enumerate(kept_widths):
        mask[0, part * full : part * full + kept] = 1
    return round(float(block.macs_for(mask, cost))) + gate


def make_plan(
    backbone: GatedResNet,
    stats: GateStatistics,
    policy: str = "static",
    off_threshold: float = 0.0,
    on_threshold: float = 1.0,
) -> ExportPlan:
    """Decide the kept channels of every block of ``backbone`` from its gate statistics.

    Args:
        backbone: the gated backbone the statistics were collected on.
        stats: per-block per-channel on-rates (``[C_b]`` each) over a calibration split.
        policy: ``"static"`` or ``"hybrid"`` (module docstring).
        off_threshold: a channel with on-rate ``<= off_threshold`` is dropped (0: never on).
        on_threshold: with ``hybrid``, a channel with on-rate ``>= on_threshold`` runs without a
            gate (1: never off); channels in between keep their gate.
    """
    check_channel_gates(check_backbone(backbone))
    check_choice("policy", policy, POLICIES)
    check_interval("off_threshold", off_threshold, 0.0, 1.0)
    check_interval("on_threshold", on_threshold, 0.0, 1.0)
    blocks = list(backbone.named_blocks())
    if not isinstance(stats, GateStatistics) or len(stats.on_counts) != len(blocks):
        raise ValueError(
            f"stats has {len(getattr(stats, 'on_counts', []))} blocks; allowed values: "
            f"GateStatistics of this backbone ({len(blocks)} gated blocks)"
        )
    plans = []
    for (name, block), rate, cost in zip(blocks, stats.on_rates, stats.costs.blocks):
        if rate.numel() != block.gate.gated_channels:
            raise ValueError(
                f"stats for block {name} have {rate.numel()} channels; the backbone's gate has "
                f"{block.gate.gated_channels}"
            )
        n_groups = 2 if isinstance(block, GatedBottleneck) else 1
        size = rate.numel() // n_groups
        kept, gated = [], []
        for group_rate in rate.split(size):
            cats = channel_categories(group_rate, off_below=off_threshold, on_above=on_threshold)
            if policy == "static":
                order = torch.nonzero(~cats["always_off"]).flatten().tolist()
                n_gated = 0
            else:
                dependent = torch.nonzero(cats["data_dependent"]).flatten().tolist()
                order = dependent + torch.nonzero(cats["always_on"]).flatten().tolist()
                n_gated = len(dependent)
            kept.append(order)
            gated.append(n_gated)
        hidden = block.gate.reduce.out_channels
        plan = BlockPlan(name, [size] * n_groups, kept, gated, block.conv1.in_channels, hidden)
        plan.macs = _block_macs(block, cost, plan.widths, sum(gated), hidden)
        plan.dense_macs = cost.dense_macs
        plans.append(plan)
    return ExportPlan(
        policy=policy,
        off_threshold=float(off_threshold),
        on_threshold=float(on_threshold),
        depth=backbone.depth,
        stem=backbone.stem,
        width=backbone.conv1.out_channels,
        input_hw=list(stats.costs.input_hw),
        num_samples=stats.num_samples,
        stem_macs=stats.costs.stem_macs,
        blocks=plans,
    )
