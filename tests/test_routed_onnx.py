"""The routed executor as one ONNX graph: same features and choices as RoutedResNet, portable
and ONNX Runtime-specialized, at batch 1, for every forced width and for mixed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_utils import (
    force_width_choice,
    mix_width_choices,
    randomize_batch_norms,
    varied_images,
)

from dualgate_solo.export import RoutedResNet
from dualgate_solo.export.routed_onnx import (
    export_routed_onnx,
    routed_onnx_model,
    routed_onnx_session,
    specialize_for_onnxruntime,
)
from dualgate_solo.models import create_backbone

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

NETWORKS = [("dg_resnet18", 16), ("dg_resnet34", 8), ("dg_resnet50", 8)]


def _width_model(name: str, width: int, stem: str = "cifar"):
    model = create_backbone(name, width=width, stem=stem, gate_mode="width")
    return randomize_batch_norms(model).eval()


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _check(session, routed: RoutedResNet, x: torch.Tensor) -> None:
    """Features to 1e-5 and every block's choices equal to the PyTorch routed run."""
    feats, choices = routed.forward_choices(x)
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"images": x.numpy()}))
    )
    np.testing.assert_allclose(outputs["features"], feats.numpy(), atol=1e-5, rtol=1e-5)
    for name, choice in zip(routed.block_names, choices):
        np.testing.assert_array_equal(outputs[f"choice.{name}"], choice.numpy())


@pytest.mark.parametrize("name, width", NETWORKS)
def test_every_forced_width_matches_the_routed_executor(name, width) -> None:
    model = _width_model(name, width)
    for choice in range(len(model.width_choices)):
        routed = RoutedResNet(force_width_choice(model, choice))
        portable = routed_onnx_model(routed)
        onnx.checker.check_model(portable)
        for session in (_session(portable), _session(specialize_for_onnxruntime(portable))):
            for batch in (1, 3):
                _check(session, routed, varied_images(batch))


@pytest.mark.parametrize("name, width", NETWORKS)
def test_mixed_batches_match_the_routed_executor(name, width) -> None:
    routed = RoutedResNet(mix_width_choices(_width_model(name, width)))
    x = varied_images(12)
    _, choices = routed.forward_choices(x)
    assert any(len(c.unique()) > 1 for c in choices)  # some block splits the batch into groups
    portable = routed_onnx_model(routed)
    for session in (_session(portable), _session(specialize_for_onnxruntime(portable))):
        _check(session, routed, x)
        for i in (0, 7):
            _check(session, routed, x[i : i + 1])


def test_imagenet_stem_and_a_saved_file(tmp_path) -> None:
    """The max-pooled stem is exported too; a saved file opens as a specialized session."""
    routed = RoutedResNet(mix_width_choices(_width_model("dg_resnet18", 8, stem="imagenet")))
    path = export_routed_onnx(routed, tmp_path / "routed.onnx")
    session, settings = routed_onnx_session(path, threads=1)
    assert settings["routed_branches_specialized"] and settings["intra_op_num_threads"] == 1
    _check(session, routed, varied_images(6, size=64))


def test_specialization_moves_the_convolutions_to_optimized_kernels() -> None:
    """Before: plain ``Conv`` nodes inside the ``If`` branches. After: none of the branch
    convolutions is left to ONNX Runtime's unoptimized path (they are fused or blocked kernels),
    and no initializer is stored twice."""
    routed = RoutedResNet(_width_model("dg_resnet18", 64))

    def branch_ops(graph, inside=False):
        ops = []
        for node in graph.node:
            if inside:
                ops.append((node.domain, node.op_type))
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    ops += branch_ops(attribute.g, True)
        return ops

    portable = routed_onnx_model(routed)
    assert ("", "Conv") in branch_ops(portable.graph)
    specialized = specialize_for_onnxruntime(portable)
    ops = branch_ops(specialized.graph)
    assert ("", "Conv") not in ops and any(op == "Conv" for _, op in ops if _ != "")
    blobs = [t.raw_data for t in specialized.graph.initializer if len(t.raw_data) > 64]
    assert len(blobs) == len(set(blobs))


def _first_case(graph) -> int:
    """The width the first dispatch ``If`` of the first block tests (``Equal(case, j)``)."""
    from onnx import numpy_helper

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    case = next(n.output[0] for n in graph.node if n.op_type == "Where")
    test = next(n for n in graph.node if n.op_type == "Equal" and n.input[0] == case)
    return int(constants[test.input[1]])


def test_calibrated_counts_put_the_frequent_width_first_and_keep_the_outputs() -> None:
    model = _width_model("dg_resnet18", 16)
    routed = RoutedResNet(force_width_choice(model, 2))
    assert routed.choice_frequency() is None and _first_case(routed_onnx_model(routed).graph) == 0
    x = varied_images(5)
    routed.count_choices(x)
    routed.count_choices(x[:3])
    assert routed.choice_counts[:, 2].tolist() == [8] * 8 and routed.choice_counts.sum() == 64
    assert routed.choice_frequency() == [[0.0, 0.0, 1.0, 0.0]] * 8
    calibrated = routed_onnx_model(routed)
    assert _first_case(calibrated.graph) == 2
    _check(_session(specialize_for_onnxruntime(calibrated)), routed, x)
    mixed = RoutedResNet(mix_width_choices(_width_model("dg_resnet18", 16)))
    mixed.count_choices(varied_images(16))
    _check(_session(routed_onnx_model(mixed)), mixed, varied_images(9))


def test_verification_names_a_choice_output_the_session_lost(monkeypatch) -> None:
    """A specialized graph that renames a block's choice output cannot be checked block by block:
    the verification refuses it, naming the output."""
    from dualgate_solo.export import routed_onnx
    from dualgate_solo.export.verify import ExportMismatch, verify_routed_export

    name, renamed = "choice.layer3.0", "choice.layer3.0.renamed"

    def renaming(model, threads=1):
        specialized = specialize_for_onnxruntime(model, threads)
        for node in specialized.graph.node:
            node.output[:] = [renamed if o == name else o for o in node.output]
        for output in specialized.graph.output:
            output.name = renamed if output.name == name else output.name
        return specialized

    model = mix_width_choices(_width_model("dg_resnet18", 8))
    routed, x = RoutedResNet(model), varied_images(8)
    checked = verify_routed_export(model, routed, [x], formats=["onnx"])["checked"]
    assert checked["onnx_specialized"]["choice_flips_total"] == 0
    monkeypatch.setattr(routed_onnx, "specialize_for_onnxruntime", renaming)
    with pytest.raises(ExportMismatch, match=rf"onnx_specialized .* has no output '{name}' \("):
        verify_routed_export(model, routed, [x], formats=["onnx"])
