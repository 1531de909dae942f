"""Building blocks: the channel and width gates and branch-routed BatchNorm."""

from dualgate_solo.layers.dual_bn import BRANCHES, DualBatchNorm, apply_norm, make_norm
from dualgate_solo.layers.gate import (
    DEFAULT_WIDTH_CHOICES,
    GATE_MODES,
    ChannelGate,
    WidthGate,
    binary_concrete_ste,
    check_width_choices,
    prefix_widths,
)

__all__ = [
    "BRANCHES",
    "DEFAULT_WIDTH_CHOICES",
    "GATE_MODES",
    "ChannelGate",
    "DualBatchNorm",
    "WidthGate",
    "apply_norm",
    "binary_concrete_ste",
    "check_width_choices",
    "make_norm",
    "prefix_widths",
]
