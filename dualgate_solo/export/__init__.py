"""Deployable networks from a gated backbone: static prune export, hybrid gates, dynamic execution.

Turns the analytic "FLOPs R." of VICReg-Dual-Gating (Krishna et al., "Unifying Synergies between
Self-supervised Learning and Dynamic Computation", BMVC 2023) into wall-clock savings:

* :mod:`~dualgate_solo.export.plan`: which channels to keep, from gate statistics;
* :mod:`~dualgate_solo.export.pruned_resnet`: the plain, torch-only pruned ResNet;
* :mod:`~dualgate_solo.export.weights`: the one weight copy from a gated backbone into it;
* :mod:`~dualgate_solo.export.fold`: BatchNorm folded into the conv before it (every export);
* :mod:`~dualgate_solo.export.exporter`: export, BN re-calibration, state dict / TorchScript /
  ONNX, ONNX Runtime sessions;
* :mod:`~dualgate_solo.export.dynamic`: batch-1 execution that gathers the active channels;
* :mod:`~dualgate_solo.export.routed`: a width-gated backbone run at its chosen widths (any batch);
* :mod:`~dualgate_solo.export.routed_onnx`: the same as one ONNX graph (``If`` nodes), and an
  ONNX Runtime session that runs its branches with the optimized kernels.
* :mod:`~dualgate_solo.export.verify`: every written format checked, before writing, against
  what it claims to reproduce (the masked gated branch, or a static approximation's own network).
"""

from dualgate_solo.export.dynamic import DynamicGatedResNet
from dualgate_solo.export.exporter import (
    EXPORT_FORMATS,
    ONNX_EXPORTERS,
    export_pruned,
    onnx_export,
    recalibrate_bn,
    save_export,
    verify_onnx,
)
from dualgate_solo.export.fold import fold_bn, fold_network
from dualgate_solo.export.onnx_runtime import onnx_session
from dualgate_solo.export.plan import (
    POLICIES,
    BlockPlan,
    ExportPlan,
    check_backbone,
    full_width_blocks,
    make_plan,
)
from dualgate_solo.export.pruned_resnet import PrunedResNet, build_pruned_resnet
from dualgate_solo.export.routed import RoutedResNet, prefix_plans
from dualgate_solo.export.routed_onnx import (
    export_routed_onnx,
    routed_onnx_model,
    routed_onnx_session,
    specialize_for_onnxruntime,
)
from dualgate_solo.export.weights import branch_norm, copy_to_pruned

__all__ = [
    "EXPORT_FORMATS",
    "ONNX_EXPORTERS",
    "POLICIES",
    "BlockPlan",
    "DynamicGatedResNet",
    "ExportPlan",
    "PrunedResNet",
    "RoutedResNet",
    "branch_norm",
    "build_pruned_resnet",
    "check_backbone",
    "copy_to_pruned",
    "export_pruned",
    "export_routed_onnx",
    "fold_bn",
    "fold_network",
    "full_width_blocks",
    "make_plan",
    "onnx_export",
    "onnx_session",
    "prefix_plans",
    "recalibrate_bn",
    "routed_onnx_model",
    "routed_onnx_session",
    "save_export",
    "specialize_for_onnxruntime",
    "verify_onnx",
]
