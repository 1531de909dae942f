"""Export a gated backbone's gated branch as a physically pruned plain ResNet, and save it.

Static prune export of VICReg-Dual-Gating (Krishna et al., BMVC 2023): given an
:class:`~dualgate_solo.export.plan.ExportPlan`, :func:`export_pruned` copies the gated branch's
weights of the kept channels with :func:`~dualgate_solo.export.weights.copy_to_pruned` (with the
``hybrid`` policy the data-dependent channels keep their gate). Then optionally re-calibrate
BN statistics (:func:`recalibrate_bn`) and write, with every BatchNorm folded into its conv
(:func:`~dualgate_solo.export.fold.fold_network`), a ``state_dict`` + ``spec.json`` (reloadable
with :func:`~dualgate_solo.export.pruned_resnet.build_pruned_resnet` alone), TorchScript and
ONNX (dynamic batch axis, checked against ONNX Runtime) with :func:`save_export`.
ONNX Runtime sessions come from :func:`~dualgate_solo.export.onnx_runtime.onnx_session`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dualgate_solo.choices import EXPORT_FORMATS, ONNX_EXPORTERS
from dualgate_solo.export.fold import fold_network
from dualgate_solo.export.onnx_runtime import onnx_session
from dualgate_solo.export.plan import ExportPlan, check_backbone
from dualgate_solo.export.pruned_resnet import PrunedGate, PrunedResNet
from dualgate_solo.export.verify import ExportMismatch
from dualgate_solo.export.weights import copy_to_pruned
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.validation import check_choice, check_interval


def export_pruned(backbone: GatedResNet, plan: ExportPlan) -> PrunedResNet:
    """The pruned plain ResNet of ``plan``, filled with ``backbone``'s gated-branch weights.

    Args:
        backbone: a :class:`GatedResNet` (ResNet-18/34/50); weights are read, never modified.
        plan: from :func:`~dualgate_solo.export.plan.make_plan` on this backbone.

    Returns:
        The :class:`PrunedResNet` in eval mode, on ``backbone``'s device.
        ``forward(x [B, 3, H, W])`` -> ``[B, num_features]``.
    """
    check_backbone(backbone)
    if not isinstance(plan, ExportPlan):
        raise ValueError(
            f"plan={type(plan).__name__} is invalid; allowed values: an ExportPlan from make_plan"
        )
    width = backbone.conv1.out_channels
    if (plan.depth, plan.stem, plan.width) != (backbone.depth, backbone.stem, width):
        raise ValueError(
            f"plan (depth {plan.depth}, stem {plan.stem!r}, width {plan.width}) does not match "
            f"the backbone (depth {backbone.depth}, stem {backbone.stem!r}, width {width})"
        )
    return copy_to_pruned(backbone, plan.blocks, "gated")


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, batches: Iterable, num_batches: int = 10, device: str | torch.device = "cpu"
) -> nn.Module:
    """Re-estimate the running statistics of every BatchNorm of ``model`` on ``num_batches``
    batches.

    Statistics are reset and accumulated as a cumulative average (``momentum=None``) in train
    mode, without gradients. Gate BNs (inside :class:`PrunedGate`) are kept as trained, since they
    decide which channels are on, and placeholder channels stay inert (their BN affine is 0).
    ``batches`` yields ``[B, 3, H, W]`` tensors or ``(images, labels)``. Returns ``model`` in
    eval mode.
    """
    check_interval("num_batches", num_batches, 1, float("inf"))
    gate_bns = {id(m) for g in model.modules() if isinstance(g, PrunedGate) for m in g.modules()}
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in gate_bns
    ]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    for m in norms:
        m.train()
    seen = 0
    try:
        for batch in batches:
            if seen >= num_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(images.to(device))
            seen += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("batches is empty: BN re-calibration saw no image")
    return model


def onnx_export(
    model: nn.Module, example: Tensor, path: str | Path, exporter: str = "dynamo"
) -> str:
    """Export ``model`` to ONNX with a dynamic batch axis (input ``images [B, 3, H, W]``, output
    ``features``).

    Returns the exporter that produced the file: ``dynamo`` falls back to ``torchscript`` (and
    says so in the returned string) if the torch.export-based exporter fails.
    """
    check_choice("onnx_exporter", exporter, ONNX_EXPORTERS)
    path = Path(path)
    names = {"input_names": ["images"], "output_names": ["features"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            try:
                batch = torch.export.Dim("batch", min=1, max=4096)
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamic_shapes={"x": {0: batch}},
                    dynamo=True,
                    verbose=False,
                    **names,
                )
                return "dynamo"
            except Exception as error:  # pragma: no cover - depends on the torch version
                exporter = (
                    f"torchscript (dynamo failed: {type(error).__name__}: {str(error)[:200]})"
                )
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            dynamo=False,
            **names,
        )
    return exporter


def verify_onnx(
    path: str | Path, model: nn.Module, inputs: Iterable[Tensor], atol: float = 1e-4
) -> float:
    """Run the ONNX file in ONNX Runtime (CPU, :func:`onnx_session`) on each input; the max abs
    difference to ``model``.

    Raises :class:`~dualgate_solo.export.verify.ExportMismatch` (a one-line ``UsageError``)
    when a difference exceeds ``atol``.
    """

    session, _ = onnx_session(path)
    name = session.get_inputs()[0].name
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected = model(x).cpu().numpy()
            got = session.run(None, {name: x.cpu().numpy()})[0]
            worst = max(worst, float(abs(expected - got).max()))
    if worst > atol:
        raise ExportMismatch(
            f"export verification failed: {Path(path).name} in ONNX Runtime differs from PyTorch "
            f"by {worst:.3g} > atol {atol}"
        )
    return worst


def save_export(
    model: PrunedResNet,
    out: str | Path,
    example: Tensor,
    formats: Iterable[str] = EXPORT_FORMATS,
    plan: ExportPlan | None = None,
    verify: bool = True,
    onnx_exporter: str = "dynamo",
) -> dict[str, Any]:
    """Write the exported network, BN folded, to ``out``; returns ``{format: path, ...}`` plus
    check results (``folded_bn_max_abs_diff``: folded vs ``model`` on ``example``).

    Files: ``weights.pt`` (state dict) and ``spec.json`` (``state_dict``), ``model.ts``
    (TorchScript, ``torch.jit.script``), ``model.onnx`` (dynamic batch axis, compared with ONNX
    Runtime on ``example`` and on a batch of one when ``verify``; ``onnx_exporter`` picks the
    exporter), ``plan.json`` when ``plan`` is given.
    """
    formats = [check_choice("format", f, EXPORT_FORMATS) for f in formats]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unfolded = model.eval()
    model = fold_network(unfolded)
    result: dict[str, Any] = {}
    with torch.no_grad():
        result["folded_bn_max_abs_diff"] = float((model(example) - unfolded(example)).abs().max())
    (out / "spec.json").write_text(json.dumps(model.spec, indent=1))
    result["spec"] = str(out / "spec.json")
    if plan is not None:
        plan.to_json(out / "plan.json")
        result["plan"] = str(out / "plan.json")
    if "state_dict" in formats:
        torch.save(model.state_dict(), out / "weights.pt")
        result["state_dict"] = str(out / "weights.pt")
    if "torchscript" in formats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(model)
        scripted.save(str(out / "model.ts"))
        result["torchscript"] = str(out / "model.ts")
    if "onnx" in formats:
        result["onnx_exporter"] = onnx_export(model, example, out / "model.onnx", onnx_exporter)
        result["onnx"] = str(out / "model.onnx")
        if verify:
            result["onnx_max_abs_diff"] = verify_onnx(
                out / "model.onnx", model, [example, example[:1]]
            )
    return result
