"""Building blocks: the channel and width gates and branch-routed BatchNorm."""

from dualgate_solo.choices import GATE_MODES
from dualgate_solo.gated.layers.dual_bn import BRANCHES, DualBatchNorm, apply_norm, make_norm
from dualgate_solo.gated.layers.gate import (
    CHANNEL_GATES,
    DEFAULT_WIDTH_CHOICES,
    ChannelGate,
    GateMode,
    WidthGate,
    binary_concrete_ste,
    check_width_choices,
    gate_mode_of,
    prefix_widths,
)

__all__ = [
    "BRANCHES",
    "CHANNEL_GATES",
    "DEFAULT_WIDTH_CHOICES",
    "GATE_MODES",
    "ChannelGate",
    "DualBatchNorm",
    "GateMode",
    "WidthGate",
    "apply_norm",
    "binary_concrete_ste",
    "check_width_choices",
    "gate_mode_of",
    "make_norm",
    "prefix_widths",
]
