"""The closed value sets of the package's options, importable without torch.

The command line builds its ``--help`` (choices included) from these names without importing
torch, so printing help stays fast. The modules that implement each choice read the same names.
"""

from __future__ import annotations

#: gated ResNet constructor name -> depth
BACKBONE_DEPTHS = {"dg_resnet18": 18, "dg_resnet34": 34, "dg_resnet50": 50}

#: ``cifar``: 3x3 conv, stride 1, padding 2 (32 -> 34 px), no max-pool;
#: ``imagenet``: 7x7/2 conv + 3x3/2 max-pool.
STEMS = ("cifar", "imagenet")

#: evaluation dataset (solo-learn's dataset names plus ``cifar_jpg``, CIFAR stored as an
#: ImageFolder of 32-px JPEGs) -> the side in pixels of the images its validation transform yields
DATASET_INPUT_SIZES = {
    "cifar10": 32,
    "cifar100": 32,
    "cifar_jpg": 32,
    "stl10": 96,
    "imagenet": 224,
    "imagenet100": 224,
    "custom": 224,
}
DATASETS = tuple(DATASET_INPUT_SIZES)

#: prune-export policies: ``static`` drops never-used channels; ``hybrid`` also keeps gates only
#: where channels are data dependent
POLICIES = ("static", "hybrid")

#: files an export can write
EXPORT_FORMATS = ("state_dict", "torchscript", "onnx")

#: ``dynamo``: ``torch.onnx.export(dynamo=True)`` (torch.export based, the default since torch 2.9);
#: ``torchscript``: the legacy TorchScript-based exporter (several times faster to run)
ONNX_EXPORTERS = ("dynamo", "torchscript")
