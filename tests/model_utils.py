"""Helpers shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import torch

from dualgate_solo.gated.layers import DualBatchNorm
from dualgate_solo.models import GatedResNet


def open_all_gates(model: GatedResNet) -> GatedResNet:
    """Zero every gate's last conv: logits are 0, so eval-mode gates (logit >= 0) are all on."""
    for _, block in model.named_blocks():
        torch.nn.init.zeros_(block.gate.expand.weight)
    return model


def force_width_choice(model: GatedResNet, choice: int) -> GatedResNet:
    """Every width gate of ``model`` picks ``choice`` for every input in evaluation: the gate's
    hidden units are constant 1 (BN weight 0, bias 1), so its logits are row sums of ``expand``."""
    with torch.no_grad():
        for _, block in model.named_blocks():
            gate = block.gate
            gate.bn.weight.zero_()
            gate.bn.bias.fill_(1.0)
            gate.expand.weight.zero_()
            gate.expand.weight[choice] = 1.0
    return model


def randomize_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Random affine parameters and running statistics in every BatchNorm (as after training)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
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


def write_shape_folders(root: Path, eval_split: str, suffix: str) -> Path:
    """``root/{train,<eval_split>}/class<k>/`` ImageFolders of 32-px coloured shapes; ``root``.

    6 classes, 16 training and 8 evaluation images each, saved as ``suffix`` (``.png`` or
    ``.jpg``, JPEG quality 75 as in the shipped CIFAR-10 copy).
    """
    from PIL import Image

    from dualgate_solo.synthetic import synthetic_shapes

    images, labels = synthetic_shapes(600, seed=0, size=32)
    counts: dict[tuple[str, int], int] = {}
    for image, label in zip(images, labels.tolist()):
        split = "train" if counts.get(("train", label), 0) < 16 else eval_split
        if label >= 6 or counts.get((eval_split, label), 0) >= 8:
            continue
        counts[(split, label)] = counts.get((split, label), 0) + 1
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        array = (image.permute(1, 2, 0).clamp(0, 1) * 255).byte().numpy()
        Image.fromarray(array).save(folder / f"{counts[(split, label)]:04d}{suffix}", quality=75)
    return root


def mix_width_choices(model: GatedResNet) -> GatedResNet:
    """Width gates whose choices vary with the input (large random last-layer weights)."""
    with torch.no_grad():
        for _, block in model.named_blocks():
            block.gate.expand.weight.normal_(0.0, 3.0)
    return model


def varied_images(batch: int, size: int = 32) -> torch.Tensor:
    """``[batch, 3, size, size]`` images with a random per-image colour shift (varied gates)."""
    return torch.randn(batch, 3, size, size) + 3 * torch.randn(batch, 3, 1, 1)


def flip_specialized_choices(monkeypatch) -> None:
    """Make :func:`~dualgate_solo.export.routed_onnx_session`'s specialization flip width choices:
    every gate's ``ArgMax`` in the optimized ``If`` branches becomes ``ArgMin`` (the portable
    graph and the PyTorch executors stay right)."""
    from dualgate_solo.export import routed_onnx

    optimize = routed_onnx._optimized_by_onnxruntime

    def flipping(model, threads):
        optimized = optimize(model, threads)
        for node in optimized.graph.node:
            if node.op_type == "ArgMax":
                node.op_type = "ArgMin"
        return optimized

    monkeypatch.setattr(routed_onnx, "_optimized_by_onnxruntime", flipping)
