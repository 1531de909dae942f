"""The networks the latency benchmark times side by side: one registry entry per variant.

Each :class:`Variant` names a builder (``BenchContext -> nn.Module``, ``forward(x [B, 3, H, W])
-> [B, num_features]``) and what the variant supports: ONNX export, ``torch.compile``, CUDA-graph
capture, channels-last memory format, batch sizes other than 1, and the backbone ``gate_mode``s
it applies to (``channel``: the paper's per-channel gates; a backbone without the attribute is a
channel-mode one). Every exported network is BN-folded (:func:`~dualgate_solo.export.fold_network`).
Adding a variant is adding one entry to :data:`VARIANTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dualgate_solo.choices import EXECUTORS, POLICIES
from dualgate_solo.export import (
    DynamicGatedResNet,
    ExportPlan,
    copy_to_pruned,
    export_pruned,
    fold_network,
    full_width_blocks,
    make_plan,
)
from dualgate_solo.gated.gate_stats import GateStatistics
from dualgate_solo.gated.layers import gate_mode_of
from dualgate_solo.gated.resnet import GatedResNet

#: the variant whose time and MACs every speed-up divides (same runtime, same batch)
REFERENCE = "dense"
#: active sets per block whose gathered weights ``dynamic_cached`` keeps
DYNAMIC_CACHE_SIZE = 4096


class Branch(nn.Module):
    """``forward(x) = backbone.forward_branch(x, branch).feats`` ``[B, num_features]``."""

    def __init__(self, backbone: GatedResNet, branch: str):
        super().__init__()
        self.backbone, self.branch = backbone, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_branch(x, self.branch).feats


@dataclass
class BenchContext:
    """What the builders read: the backbone (eval mode) and its gate statistics; plans are made
    on first use and kept."""

    backbone: GatedResNet
    stats: GateStatistics
    plans: dict[str, ExportPlan] = field(default_factory=dict)

    def plan(self, policy: str) -> ExportPlan:
        if policy not in self.plans:
            self.plans[policy] = make_plan(self.backbone, self.stats, policy)
        return self.plans[policy]

    @property
    def gate_mode(self) -> str:
        return gate_mode_of(self.backbone).name


@dataclass(frozen=True)
class Variant:
    """One timed network (module docstring)."""

    name: str
    description: str
    build: Callable[[BenchContext], nn.Module]
    onnx: bool = True
    compile: bool = True
    cuda_graphs: bool = True
    channels_last: bool = True
    batch1_only: bool = False
    gate_modes: tuple[str, ...] = ("channel", "width")
    #: optional facts about the built module for the JSON (e.g. extra memory, cache hits)
    info: Callable[[nn.Module], dict] | None = None
    #: builds the variant's ONNX Runtime session itself, ``(module, path, threads) -> (session,
    #: facts)``; default: ``torch.onnx`` export to ``path`` and ``onnx_session``
    onnx_session: Callable[[nn.Module, Path, int], tuple[Any, dict]] | None = None

    def applies_to(self, context: BenchContext) -> bool:
        return context.gate_mode in self.gate_modes


def _dense(ctx: BenchContext) -> nn.Module:
    return fold_network(
        copy_to_pruned(ctx.backbone, full_width_blocks(ctx.backbone, False), "dense")
    )


def _export(policy: str) -> Callable[[BenchContext], nn.Module]:
    return lambda ctx: fold_network(export_pruned(ctx.backbone, ctx.plan(policy)))


def _routed(ctx: BenchContext) -> nn.Module:
    from dualgate_solo.export.routed import RoutedResNet  # the width-mode executor

    return RoutedResNet(ctx.backbone)


def _mean_width(ctx: BenchContext) -> nn.Module:
    from dualgate_solo.export.routed import mean_width_plans

    return fold_network(
        copy_to_pruned(ctx.backbone, mean_width_plans(ctx.backbone, ctx.stats), "gated")
    )


def _routed_session(module: nn.Module, path: Path, threads: int) -> tuple[Any, dict]:
    """The routed network's own ONNX graph (``If`` nodes), specialized for ONNX Runtime."""
    from dualgate_solo.export.routed_onnx import export_routed_onnx, routed_onnx_session

    session, settings = routed_onnx_session(export_routed_onnx(module, path), threads)
    return session, {"exporter": "dualgate_solo.export.routed_onnx", "settings": settings}


#: what the batch-1 dynamic executors can do: no ONNX, no torch.compile (data-dependent shapes
#: recompile per active set), no CUDA graph, no channels-last, channel gates only
_DYNAMIC_FLAGS = {
    "onnx": False,
    "compile": False,
    "cuda_graphs": False,
    "channels_last": False,
    "batch1_only": True,
    "gate_modes": (EXECUTORS["dynamic"].gate_mode,),
}

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dense", "the dense branch as a plain BN-folded ResNet (the reference)", _dense),
        Variant(
            "dense_branch",
            "the GatedResNet dense branch as trained (BatchNorm, branch bookkeeping)",
            lambda ctx: Branch(ctx.backbone, "dense"),
            onnx=False,
        ),
        Variant(
            "gated_masked",
            "the GatedResNet gated branch as trained (dense convs, then channel masks)",
            lambda ctx: Branch(ctx.backbone, "gated"),
            onnx=False,
        ),
        *(
            Variant(
                policy,
                EXECUTORS[policy].description,
                _export(policy),
                gate_modes=(EXECUTORS[policy].gate_mode,),
            )
            for policy in POLICIES
        ),
        Variant(
            "dynamic",
            EXECUTORS["dynamic"].description,
            lambda ctx: DynamicGatedResNet(ctx.backbone),
            **_DYNAMIC_FLAGS,
        ),
        Variant(
            "dynamic_cached",
            f"{EXECUTORS['dynamic'].description}, gathered weights cached per active set "
            f"({DYNAMIC_CACHE_SIZE} per block, warmed on the calibration images)",
            lambda ctx: DynamicGatedResNet(ctx.backbone, cache_size=DYNAMIC_CACHE_SIZE),
            **_DYNAMIC_FLAGS,
            info=lambda module: module.cache_stats(),
        ),
        Variant(
            "routed",
            EXECUTORS["routed"].description,
            _routed,
            cuda_graphs=False,  # per-input widths: data-dependent control flow
            gate_modes=(EXECUTORS["routed"].gate_mode,),
            info=lambda module: {
                "extra_parameter_bytes": int(module.extra_parameter_bytes),
                "block_widths": module.widths,
                "calibration_choice_frequency": module.choice_frequency(),
            },
            onnx_session=_routed_session,
        ),
        Variant(
            "mean_width",
            "plain network at each block's mean active width over the calibration images (no "
            "gates, BN folded): the routed network's convolutions without the routing",
            _mean_width,
            gate_modes=("width",),
        ),
    )
}
