"""Helpers shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import torch

from dualgate_solo.layers import DualBatchNorm
from dualgate_solo.models import GatedResNet


def open_all_gates(model: GatedResNet) -> GatedResNet:
    """Zero every gate's last conv: logits are 0, so eval-mode gates (logit >= 0) are all on."""
    for _, block in model.named_blocks():
        torch.nn.init.zeros_(block.gate.expand.weight)
    return model


def copy_dense_bn_to_gated(model: GatedResNet) -> GatedResNet:
    """Give every DualBatchNorm's gated copy the dense copy's parameters and running statistics."""
    for module in model.modules():
        if isinstance(module, DualBatchNorm):
            module.gated.load_state_dict(module.dense.state_dict())
    return model


def fake_solo_methods(root: Path, body: str) -> Path:
    """``root`` holding a stand-in ``solo.methods`` package whose ``__init__`` is ``body``."""
    methods = root / "solo" / "methods"
    methods.mkdir(parents=True)
    (methods.parent / "__init__.py").write_text("")
    (methods / "__init__.py").write_text(body)
    return root
