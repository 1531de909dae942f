"""``backbone.kwargs.gate_mode=width`` through solo-learn's unchanged main_pretrain / main_linear.

One tiny epoch of vicreg_dual_gating on the ``cpu_quick`` config, a linear probe of the gated
branch, the one-line refusal of a probe built in channel mode, and the routed executor on the
trained backbone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from script_helpers import checkpoint_of, linear, pretrain

from dualgate_solo.checkpoint import load_backbone
from dualgate_solo.export import RoutedResNet

WIDTH = "+backbone.kwargs.gate_mode=width"
BRANCH = "backbone.kwargs.branch=gated"


@pytest.fixture(scope="module")
def width_run(solo_src, image_folders, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("width")
    return pretrain(solo_src, workdir, image_folders, "vicreg_dual_gating", WIDTH, "max_epochs=1")


def test_width_mode_pretrains_and_probes_the_gated_branch(
    solo_src, width_run, image_folders, tmp_path
) -> None:
    args = json.loads((width_run / "args.json").read_text())
    assert args["backbone"]["kwargs"]["gate_mode"] == "width"
    state = torch.load(checkpoint_of(width_run), map_location="cpu", weights_only=True)
    state = state["state_dict"]
    assert state["backbone.gate_width_choices"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert state["backbone.layer4.1.gate.expand.weight"].shape[0] == 4
    assert state["backbone.trained_steps"].tolist() == [4, 4]

    linear(
        solo_src,
        width_run,
        "vicreg_dual_gating",
        image_folders,
        tmp_path / "probe",
        "backbone.kwargs.branch=gated",
        WIDTH,
    )
    probe_ckpt = next((tmp_path / "probe" / "trained_models" / "linear").rglob("*.ckpt"))
    probe = torch.load(probe_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(
        probe["backbone.layer4.1.gate.expand.weight"],
        state["backbone.layer4.1.gate.expand.weight"],
    )

    refused = linear(
        solo_src,
        width_run,
        "vicreg_dual_gating",
        image_folders,
        tmp_path / "channel",
        "backbone.kwargs.branch=gated",
        check=False,
    )
    errors = [line for line in refused.stderr.splitlines() if "gate_mode=" in line]
    assert refused.returncode != 0 and len(errors) == 1
    assert errors[0].endswith(
        "the checkpoint was trained with backbone.kwargs.gate_mode='width', the backbone is "
        "built with backbone.kwargs.gate_mode='channel'; set +backbone.kwargs.gate_mode=width "
        "+backbone.kwargs.width_choices=[0.25,0.5,0.75,1.0]"
    )
    assert not (tmp_path / "channel" / "trained_models" / "linear").exists()
    # the suggested fix, pasted as it is into the same command, is accepted
    fix = errors[0].split("; set ")[1].split()
    pasted = tmp_path / "pasted"
    linear(solo_src, width_run, "vicreg_dual_gating", image_folders, pasted, *fix, BRANCH)
    assert next((pasted / "trained_models" / "linear").rglob("*.ckpt")).is_file()


def test_routed_executor_runs_the_trained_backbone(width_run) -> None:
    backbone = load_backbone(width_run, backbone_kwargs={"branch": "gated"}).backbone
    x = torch.rand(4, 3, 32, 32)
    expected = backbone.forward_branch(x, "gated").feats
    assert torch.allclose(RoutedResNet(backbone)(x), expected, atol=1e-5, rtol=1e-5)
