"""The closed value sets of the package's options, importable without torch.

The command line builds its ``--help`` (choices included) from these names without importing
torch, so printing help stays fast. The modules that implement each choice read the same names.
"""

from __future__ import annotations

from typing import NamedTuple

#: gated ResNet constructor name -> depth
BACKBONE_DEPTHS = {"dg_resnet18": 18, "dg_resnet34": 34, "dg_resnet50": 50}

#: the two branches of a gated ResNet, over the same convolutions: every channel, and the gated one
BRANCHES = ("dense", "gated")

#: ResNet depth -> (block kind, blocks per stage), for the gated and the slimmable ResNets
RESNET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}

#: slimmable ResNet constructor name -> depth
SLIM_BACKBONE_DEPTHS = {"slim_resnet18": 18, "slim_resnet50": 50}

#: SlimCLR's width multipliers (its released scripts), the default ``width_mult_list``
DEFAULT_WIDTH_MULTS = (1.0, 0.75, 0.5, 0.25)

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


class Executor(NamedTuple):
    """A deployable executor of a trained gated branch (entry of :data:`EXECUTORS`).

    Attributes:
        description: what it runs.
        gate_mode: the :data:`GATE_MODES` entry whose masks it executes.
        policy: whether it is a prune policy of ``make_plan``/``export_pruned`` (a plain ResNet
            with the channels the plan keeps), the ``--policy`` of ``dualgate-solo export``.
    """

    description: str
    gate_mode: str
    policy: bool = False


#: the one catalogue of the gated branch's executors, read by the export command, the export
#: plan, the benchmarks and their plots
EXECUTORS = {
    "static": Executor(
        "static prune export (always-off channels removed, no gate), BN folded", "channel", True
    ),
    "hybrid": Executor(
        "always-off channels removed, always-on ones ungated, data-dependent ones masked by the "
        "gate, BN folded",
        "channel",
        True,
    ),
    "dynamic": Executor(
        "batch-1 execution gathering the active channels' BN-folded weights per input", "channel"
    ),
    "routed": Executor(
        "width-gated branch run at each input's chosen width per block (RoutedResNet), BN folded",
        "width",
    ),
}
#: prune-export policies: ``static`` drops never-used channels; ``hybrid`` also keeps gates only
#: where channels are data dependent
POLICIES = tuple(name for name, executor in EXECUTORS.items() if executor.policy)

#: files an export can write
EXPORT_FORMATS = ("state_dict", "torchscript", "onnx")

#: ``dynamo``: ``torch.onnx.export(dynamo=True)`` (torch.export based, the default since torch 2.9);
#: ``torchscript``: the legacy TorchScript-based exporter (several times faster to run)
ONNX_EXPORTERS = ("dynamo", "torchscript")

#: masks the budget loss costs: the sampled training masks (the paper) or the eval-style
#: ``1[logit >= 0]`` ones with a straight-through gradient
RATIO_SOURCES = ("sampled", "deterministic")

#: per-layer bound of the budget loss around ``sqrt(t_d)`` (the paper) or ``t_d``
BOUND_TARGETS = ("sqrt", "linear")

#: budget-loss presets (``method_kwargs`` values): ``paper`` = :class:`BudgetOptions`'s defaults;
#: ``tracked`` steers the evaluated ratio to t_d (eval-style masks, a 10x stiffer quadratic term,
#: a slow Lagrange multiplier that removes what offset remains)
BUDGET_PRESETS = {
    "paper": {"ratio_source": "sampled", "lambda_flops": 5.0, "multiplier_lr": 0.0},
    "tracked": {"ratio_source": "deterministic", "lambda_flops": 50.0, "multiplier_lr": 0.05},
}

#: environment variable naming the evaluation pipeline of solo-learn's ``custom`` data (read by
#: :mod:`dualgate_solo.solo_adapter.custom_pipeline`; stand-alone scripts set it without importing
#: it)
CUSTOM_PIPELINE_ENV_VAR = "DUALGATE_CUSTOM_PIPELINE"

#: gate modes of the gated backbones: ``channel``, one gate value per channel (the paper);
#: ``width``, one prefix width per block and input
GATE_MODES = ("channel", "width")
