"""Building blocks: the channel gate and branch-routed BatchNorm."""

from dualgate_solo.layers.dual_bn import BRANCHES, DualBatchNorm, apply_norm, make_norm
from dualgate_solo.layers.gate import ChannelGate, binary_concrete_ste

__all__ = [
    "BRANCHES",
    "ChannelGate",
    "DualBatchNorm",
    "apply_norm",
    "binary_concrete_ste",
    "make_norm",
]
