"""Check an export as users run it against what it claims to reproduce, before it is written.

``dualgate-solo export`` calls these after the gate statistics (or choice counts) and before it
writes a file; a mismatch raises :class:`ExportMismatch` (one line, exit 2, nothing written).

* A width-gated export (:func:`verify_routed_export`) claims to *be* the masked gated branch: the
  TorchScript :class:`~dualgate_solo.export.RoutedResNet` (``forward_choices``), the portable
  ONNX graph in a plain ONNX Runtime session and the session users are told to open,
  :func:`~dualgate_solo.export.routed_onnx_session` of ``model.onnx`` (every ``If`` branch
  specialized), are each compared with ``backbone.forward_branch(x, "gated")`` in eval mode on
  every calibration image (as batches, which mixes the choices, and the first
  :data:`SINGLE_IMAGES` one at a time, the batch-1 path): the features and every block's width
  choice (the argmax of its gate's logits). Any choice flip fails: a flipped input ran another
  width than the gated branch, whatever its features.
* A channel-gated export (:func:`verify_pruned_export`) claims the masked gated branch only where
  its plan is exact on the calibration images (:func:`plan_is_exact`): every dropped channel was
  off and every ungated kept channel on for every image, and BN statistics were not
  re-calibrated (``hybrid`` at the default thresholds; ``static`` when no kept channel depends on
  the input). Then the BN-folded network (what every file holds) is compared with the masked
  branch. Otherwise the export is a static approximation: it claims only to reproduce its own
  pruned network (folded vs unfolded here; ONNX Runtime vs PyTorch in
  :func:`~dualgate_solo.export.save_export`), and its difference to the masked branch is recorded
  as ``masked_branch_max_abs_diff``, not checked: its accuracy is its own, not the gated branch's.

Features pass within :data:`FEATURE_TOLERANCE` times ``max(1, largest |feature| of the
reference)`` (float rounding of BN folding and of other kernels grows with the features' scale).
"""

from __future__ import annotations

import itertools
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dualgate_solo.export.fold import fold_network
from dualgate_solo.export.plan import ExportPlan
from dualgate_solo.export.pruned_resnet import PrunedResNet
from dualgate_solo.export.routed import RoutedResNet
from dualgate_solo.gated.gate_stats import GateStatistics
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.validation import UsageError

#: features pass within this times max(1, the reference's largest |feature|)
FEATURE_TOLERANCE = 1e-4
#: calibration images also run one at a time (the batch-1 path of the routed executors)
SINGLE_IMAGES = 16
MASKED_BRANCH = "the masked gated branch (backbone.forward_branch(x, 'gated'), eval mode)"
INPUTS_RULE = f"the calibration images in their batches, then the first {SINGLE_IMAGES} alone"
TOLERANCE_RULE = f"{FEATURE_TOLERANCE:g} x max(1, largest |feature| of the reference)"
EXPORT_FILES = "build_pruned_resnet(spec.json) + weights.pt (model.ts, model.onnx are made from it)"

#: ``x [B, 3, H, W]`` -> (features ``[B, F]``, one choice ``[B]`` per block, or ``None``)
Runner = Callable[[Tensor], tuple[Tensor, "list[Tensor] | None"]]


class ExportMismatch(UsageError):
    """An export differs from what it claims to reproduce (reported in one line, exit 2)."""


def batch_images(batch: Any) -> Tensor:
    """The images ``[B, 3, H, W]`` of a batch that is a tensor or ``(images, labels)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


@dataclass
class Comparison:
    """Running comparison of one executable with its reference over the calibration images.

    ``flips[b]`` counts the inputs whose width choice at block ``block_names[b]`` differs
    (``block_names=None``: features only).
    """

    name: str
    opened_with: str
    block_names: list[str] | None = None
    max_abs_diff: float = 0.0
    scale: float = 0.0
    images: int = 0
    flips: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.flips = [0] * len(self.block_names or [])

    def add(self, expected: tuple, got: tuple) -> None:
        """Compare one batch: ``expected`` and ``got`` are (features, choices or ``None``)."""
        (ref, ref_choices), (out, choices) = expected, got
        self.max_abs_diff = max(self.max_abs_diff, float((out - ref).abs().max()))
        self.scale = max(self.scale, float(ref.abs().max()))
        self.images += ref.shape[0]
        if self.block_names is not None:
            for b, (want, have) in enumerate(zip(ref_choices, choices, strict=True)):
                self.flips[b] += int((want != have).sum())

    @property
    def tolerance(self) -> float:
        return FEATURE_TOLERANCE * max(1.0, self.scale)

    def record(self) -> dict[str, Any]:
        """The JSON entry: largest difference, tolerance and choice flips per block and total."""
        out = {
            "opened_with": self.opened_with,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
        }
        if self.block_names is not None:
            out["choice_flips"] = dict(zip(self.block_names, self.flips))
            out["choice_flips_total"] = sum(self.flips)
        return out

    def check(self, reference: str) -> None:
        """Raise :class:`ExportMismatch` naming what differed, if anything did."""
        flipped = {n: f for n, f in zip(self.block_names or [], self.flips) if f}
        if self.max_abs_diff <= self.tolerance and not flipped:
            return
        flips = ""
        if self.block_names is not None:
            where = ", ".join(f"{name}: {count}" for name, count in flipped.items())
            flips = f", {sum(flipped.values())} width-choice flips" + (where and f" ({where})")
        raise ExportMismatch(
            f"export verification failed: {self.name} ({self.opened_with}) differs from "
            f"{reference} on {self.images} inputs: largest feature difference "
            f"{self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g}){flips}; nothing written"
        )


def _compare(checks: list[tuple[Comparison, Runner, Runner]], batches, max_batches) -> None:
    """For each ``(comparison, runner, reference)``: run both on every batch and on the first
    :data:`SINGLE_IMAGES` images one at a time, and accumulate into ``comparison`` (each callable
    runs once per input)."""
    singles: list[Tensor] = []

    def on(x: Tensor) -> None:
        outputs: dict[int, tuple] = {}
        for comparison, run, reference in checks:
            for fn in (run, reference):
                if id(fn) not in outputs:
                    outputs[id(fn)] = fn(x)
            comparison.add(outputs[id(reference)], outputs[id(run)])

    with torch.no_grad():
        for batch in itertools.islice(batches, max_batches):
            x = batch_images(batch)
            if len(singles) < SINGLE_IMAGES:
                singles += list(x[: SINGLE_IMAGES - len(singles)].split(1))
            on(x)
        for x in singles:
            on(x)


def _session_runner(session, block_names: list[str], name: str) -> Runner:
    """Features and per-block choices of an ONNX Runtime session of a routed graph, read by
    output name (a missing ``choice.<block>`` output is a mismatch)."""
    outputs = [o.name for o in session.get_outputs()]
    wanted = ["features", *(f"choice.{b}" for b in block_names)]
    missing = [o for o in wanted if o not in outputs]
    if missing:
        raise ExportMismatch(
            f"export verification failed: {name} has no output {missing[0]!r} (outputs: "
            f"{', '.join(outputs)}); nothing written"
        )

    def run(x: Tensor) -> tuple[Tensor, list[Tensor]]:
        values = session.run(wanted, {"images": x.cpu().numpy()})
        return torch.from_numpy(values[0]), [torch.from_numpy(v) for v in values[1:]]

    return run


def _masked_branch(backbone: GatedResNet, choices: bool) -> Runner:
    """The masked gated branch: features and, with ``choices``, each width gate's evaluation
    choice."""
    gates = [block.gate for _, block in backbone.named_blocks()]

    def run(x: Tensor) -> tuple[Tensor, list[Tensor] | None]:
        out = backbone.forward_branch(x, "gated")
        if not choices:
            return out.feats, None
        return out.feats, [gate.choice(logits) for gate, logits in zip(gates, out.logits)]

    return run


def _features(module: nn.Module) -> Runner:
    """A network that returns features only."""
    return lambda x: (module(x), None)


def verify_routed_export(
    backbone: GatedResNet,
    routed: RoutedResNet,
    batches: Iterable,
    max_batches: int | None = None,
    formats: Iterable[str] = ("torchscript", "onnx"),
    threads: int | None = None,
) -> dict[str, Any]:
    """Compare every file format of a width-gated export with the masked gated branch (module
    docstring); returns the ``verification`` record of ``export_summary.json``.

    Args:
        backbone: the width-gated backbone (put in eval mode).
        routed: its (calibrated) :class:`RoutedResNet`, the object the files are written from.
        batches: the calibration images (re-iterable: tensors or ``(images, labels)``).
        max_batches: the batches the choice counts used (``None``: all).
        formats: the formats written (``torchscript``: the scripted network; ``onnx``: the
            portable graph and :func:`~dualgate_solo.export.routed_onnx_session` of it).
        threads: ONNX Runtime intra-op threads (default: torch's).

    Raises:
        ExportMismatch: a feature difference above the tolerance or any choice flip.
    """
    from dualgate_solo.export.onnx_runtime import onnx_session
    from dualgate_solo.export.routed_onnx import export_routed_onnx, routed_onnx_session

    backbone.eval()
    formats = set(formats)
    names = list(routed.block_names)
    comparisons: dict[str, Comparison] = {}
    runners: dict[str, Runner] = {}
    with tempfile.TemporaryDirectory(prefix="export_verify_") as directory:
        if "torchscript" in formats:
            with warnings.catch_warnings():  # torch.jit.script's deprecation notice
                warnings.simplefilter("ignore", FutureWarning)
                runners["torchscript"] = torch.jit.script(routed).forward_choices
            comparisons["torchscript"] = Comparison(
                "torchscript", "torch.jit.load('model.ts').forward_choices", names
            )
        if "onnx" in formats:
            path = export_routed_onnx(routed, Path(directory) / "model.onnx")
            for name, opened_with, opener in (
                ("onnx_portable", "onnxruntime.InferenceSession('model.onnx')", onnx_session),
                (
                    "onnx_specialized",
                    "dualgate_solo.export.routed_onnx_session('model.onnx')",
                    routed_onnx_session,
                ),
            ):
                session, _ = opener(path, threads)
                runners[name] = _session_runner(session, names, f"{name} ({opened_with})")
                comparisons[name] = Comparison(name, opened_with, names)
        reference = _masked_branch(backbone, choices=True)
        checks = [(comparisons[name], run, reference) for name, run in runners.items()]
        _compare(checks, batches, max_batches)
    for comparison in comparisons.values():
        comparison.check(MASKED_BRANCH)
    return {
        "reference": MASKED_BRANCH,
        "claim": "exact: features and every block's width choice of the masked gated branch",
        "inputs": next(iter(comparisons.values())).images if comparisons else 0,
        "inputs_rule": INPUTS_RULE,
        "tolerance_rule": TOLERANCE_RULE,
        "choice_flip_rule": "any flip fails",
        "checked": {name: c.record() for name, c in comparisons.items()},
    }


def plan_is_exact(plan: ExportPlan, stats: GateStatistics, recalibrated: bool) -> bool:
    """Whether the export of ``plan`` equals the masked gated branch on ``stats``' images: no
    BN re-calibration, every dropped channel never on and every ungated kept channel always on."""
    if recalibrated:
        return False
    for block, counts in zip(plan.blocks, stats.on_counts, strict=True):
        for g, (size, kept, n_gated) in enumerate(zip(block.group_sizes, block.kept, block.gated)):
            group = counts[g * size : (g + 1) * size]
            dropped = sorted(set(range(size)) - set(kept))
            if bool((group[dropped] > 0).any()):
                return False
            if bool((group[kept[n_gated:]] < stats.num_samples).any()):
                return False
    return True


def verify_pruned_export(
    backbone: GatedResNet,
    model: PrunedResNet,
    plan: ExportPlan,
    stats: GateStatistics,
    batches: Iterable,
    max_batches: int | None = None,
    recalibrated: bool = False,
) -> dict[str, Any]:
    """Compare a channel-gated export with what it claims (module docstring); returns the
    ``verification`` record of ``export_summary.json``.

    Args:
        backbone: the gated backbone the plan was made from (put in eval mode).
        model: the pruned network (after any BN re-calibration), the files' source.
        plan, stats: the prune plan and the gate statistics it was made from.
        batches, max_batches: the calibration images ``stats`` counted.
        recalibrated: whether ``model``'s BN statistics were re-estimated.

    Raises:
        ExportMismatch: the folded network differs from its claimed reference above tolerance.
    """
    backbone.eval()
    exact = plan_is_exact(plan, stats, recalibrated)
    folded = _features(fold_network(model.eval()))
    masked_branch = _masked_branch(backbone, choices=False)
    exported = Comparison("the BN-folded export", EXPORT_FILES)
    if exact:
        reference, claim = MASKED_BRANCH, "exact: the masked gated branch on the calibration images"
        masked = exported
        _compare([(exported, folded, masked_branch)], batches, max_batches)
    else:
        reference = "the unfolded pruned network (PrunedResNet before BN folding)"
        why = "BN re-calibrated" if recalibrated else "a dropped or ungated channel varied"
        claim = (
            f"static approximation ({why}): the {plan.policy} pruned network itself, not the "
            "masked gated branch; its accuracy is its own"
        )
        masked = Comparison("the BN-folded export", EXPORT_FILES)
        checks = [(exported, folded, _features(model.eval())), (masked, folded, masked_branch)]
        _compare(checks, batches, max_batches)
    exported.check(reference)
    return {
        "reference": reference,
        "claim": claim,
        "reproduces_masked_branch": exact,
        "inputs": exported.images,
        "inputs_rule": INPUTS_RULE,
        "tolerance_rule": TOLERANCE_RULE,
        "max_abs_diff": exported.max_abs_diff,
        "tolerance": exported.tolerance,
        "masked_branch_max_abs_diff": masked.max_abs_diff,
    }
