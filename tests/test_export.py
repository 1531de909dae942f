"""Static prune export, hybrid gates, dynamic batch-1 execution and the ``export`` sub-command.

Models have gates forced into known always-off / always-on / data-dependent patterns (through the
gate's BN and last 1x1 conv), so the exported networks must reproduce the gated branch exactly.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dualgate_solo.export import (
    DynamicGatedResNet,
    ExportPlan,
    build_pruned_resnet,
    copy_to_pruned,
    export_pruned,
    fold_bn,
    fold_network,
    full_width_blocks,
    make_plan,
    recalibrate_bn,
    save_export,
)
from dualgate_solo.gated.gate_stats import collect_gate_statistics
from dualgate_solo.models import create_backbone

ATOL = 1e-5
OFF, ON, DEPENDENT = 0, 1, 2


def images(n: int, hw: int = 32, seed: int = 0) -> torch.Tensor:
    """Gaussian images with a per-image scale and offset, ``[n, 3, hw, hw]``."""
    gen = torch.Generator().manual_seed(seed)
    scale = 0.5 + torch.rand(n, 1, 1, 1, generator=gen)
    return torch.randn(n, 3, hw, hw, generator=gen) * scale + torch.randn(n, 1, 1, 1, generator=gen)


@torch.no_grad()
def calibrate(model, x: torch.Tensor) -> None:
    """Running statistics of both branches from ``x`` (features of order 1, so ``ATOL`` is
    meaningful)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for xb in x.split(32):
        model.forward_branch(xb, "dense")
        model.forward_branch(xb, "gated")
    model.eval()


@torch.no_grad()
def force_gates(
    model, x: torch.Tensor, p_off: float = 0.5, p_on: float = 0.3, seed: int = 0
) -> list[torch.Tensor]:
    """Force each gate into a channel pattern; returns per block the kind of each channel.

    Half of the gate's hidden units become constant 1 (BN weight 0, bias 1); the other half stay
    data dependent. Always-off rows of ``expand`` read -10 from the constant units, always-on rows
    +10, data-dependent rows read random weights from the data units and are centred on their median
    logit over ``x`` (on-rate ~0.5).
    """
    gen = torch.Generator().manual_seed(seed)
    kinds = []
    for b, (_, block) in enumerate(model.named_blocks()):
        gate = block.gate
        hidden = gate.reduce.out_channels
        half = max(1, hidden // 2)
        gate.bn.weight[:half], gate.bn.bias[:half] = 0.0, 1.0
        gate.bn.weight[half:], gate.bn.bias[half:] = 5.0, 0.0
        n = gate.expand.out_channels
        r = torch.rand(n, generator=gen)
        kind = torch.where(r < p_off, OFF, torch.where(r < p_off + p_on, ON, DEPENDENT))
        weight = gate.expand.weight.view(n, hidden)
        weight.zero_()
        weight[kind == OFF, :half] = -10.0
        weight[kind == ON, :half] = 10.0
        dependent = kind == DEPENDENT
        weight[dependent, half:] = torch.randn(int(dependent.sum()), hidden - half, generator=gen)
        logits = model.forward_branch(x, "gated").logits[b]
        weight[dependent, :half] = -logits[:, dependent].median(0).values[:, None] / half
        kinds.append(kind)
    return kinds


def forced_model(
    name: str = "dg_resnet18", p_on: float = 0.3, p_off: float = 0.5, hw: int = 32, **kwargs
):
    torch.manual_seed(0)
    kwargs = {"stem": "cifar", "width": 16, **kwargs}
    model = create_backbone(name, **kwargs)
    x = images(64, hw)
    calibrate(model, x)
    kinds = force_gates(model, x, p_off=p_off, p_on=p_on)
    stats = collect_gate_statistics(model, x.split(32), progress=False)
    return model, kinds, stats


@pytest.fixture(scope="module")
def r18():
    """ResNet-18 (width 16, CIFAR stem) with always-off, always-on and data-dependent channels."""
    return forced_model()


@pytest.fixture(scope="module")
def r18_static():
    """ResNet-18 whose gates are all input-independent (no data-dependent channel)."""
    return forced_model(p_on=0.4, p_off=0.6)


def macs_of(model, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def test_plan_categories_follow_the_forced_pattern(r18) -> None:
    model, kinds, stats = r18
    static, hybrid = make_plan(model, stats, "static"), make_plan(model, stats, "hybrid")
    for kind, sp, hp in zip(kinds, static.blocks, hybrid.blocks):
        assert sorted(sp.kept[0]) == torch.nonzero(kind != OFF).flatten().tolist() and sp.gated == [
            0
        ]
        dependent = torch.nonzero(kind == DEPENDENT).flatten().tolist()
        assert hp.kept[0][: hp.gated[0]] == dependent  # gated channels lead, always-on follow
        assert sorted(hp.kept[0][hp.gated[0] :]) == torch.nonzero(kind == ON).flatten().tolist()
    again = ExportPlan.from_dict(json.loads(json.dumps(hybrid.to_dict())))
    assert again == hybrid and again.spec() == hybrid.spec()


def test_static_export_matches_gated_branch_and_predicted_macs(r18_static) -> None:
    model, kinds, stats = r18_static
    plan = make_plan(model, stats, "static")
    pruned = export_pruned(model, plan)
    x = images(8, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(
            pruned(x), model.forward_branch(x, "gated").feats, atol=ATOL, rtol=0
        )
    assert macs_of(pruned, x[:1]) == plan.predicted_macs
    # the gated branch's own kept-MAC count from gate statistics and the CostTable (gates excluded)
    assert (
        plan.predicted_macs
        == round(stats.mean_ratio * stats.costs.dense_macs) - stats.costs.gate_macs
    )
    assert plan.predicted_macs < 0.6 * plan.dense_macs


def test_hybrid_export_matches_gated_branch_on_new_inputs(r18) -> None:
    model, _, stats = r18
    plan = make_plan(model, stats, "hybrid")
    pruned = export_pruned(model, plan)
    x = images(16, seed=2)
    with torch.no_grad():
        out = model.forward_branch(x, "gated")
        torch.testing.assert_close(pruned(x), out.feats, atol=ATOL, rtol=0)
    assert any(g[0] > 0 for g in plan.widths) and any(b.gated[0] > 0 for b in plan.blocks)
    assert macs_of(pruned, x[:1]) == plan.predicted_macs


def test_static_export_of_data_dependent_channels_keeps_them_on(r18) -> None:
    """With data-dependent channels, ``static`` equals the gated branch with those gates opened."""
    model, kinds, stats = r18
    pruned = export_pruned(model, make_plan(model, stats, "static"))
    opened = create_backbone("dg_resnet18", stem="cifar", width=16)
    opened.load_state_dict(model.state_dict())
    with torch.no_grad():
        for kind, (_, block) in zip(kinds, opened.named_blocks()):
            block.gate.expand.weight[kind == DEPENDENT] = 0.0  # logit 0 -> on
    x = images(4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(
            pruned(x), opened.eval().forward_branch(x, "gated").feats, atol=ATOL, rtol=0
        )


@pytest.mark.parametrize("branch", ["dense", "gated"])
def test_full_width_copy_reproduces_each_branch_with_its_own_batchnorms(r18, branch) -> None:
    """The one weight copy: every channel kept, gated (the gated branch) or not (the dense one)."""
    model, _, _ = r18
    plain = copy_to_pruned(model, full_width_blocks(model, gated=branch == "gated"), branch)
    x = images(8, seed=11)
    with torch.no_grad():
        torch.testing.assert_close(
            plain(x), model.forward_branch(x, branch).feats, atol=ATOL, rtol=0
        )
        other = "gated" if branch == "dense" else "dense"
        mixed = copy_to_pruned(model, full_width_blocks(model, gated=branch == "gated"), other)
        assert (mixed(x) - plain(x)).abs().max() > 1e-2  # the dual BNs differ
    assert all((block.gate is not None) == (branch == "gated") for block in plain.blocks), (
        "a gate exactly where the channels are gated"
    )


def test_weight_copy_refuses_blocks_of_another_backbone_and_unknown_branches(r18) -> None:
    model, _, _ = r18
    blocks = full_width_blocks(model, gated=False)
    with pytest.raises(ValueError, match="plan blocks .* do not match the backbone blocks"):
        copy_to_pruned(model, blocks[::-1])
    with pytest.raises(ValueError, match="branch='both' is invalid; allowed values: 'dense', 'ga"):
        copy_to_pruned(model, blocks, "both")


def test_dynamic_batch1_matches_gated_branch(r18) -> None:
    model, _, _ = r18
    dynamic = DynamicGatedResNet(model)
    x = images(4, seed=4)
    with torch.no_grad():
        for i in range(4):
            xi = x[i : i + 1]
            torch.testing.assert_close(
                dynamic(xi), model.forward_branch(xi, "gated").feats, atol=ATOL, rtol=0
            )
        with pytest.raises(ValueError, match="batch size 4 is invalid; allowed values: 1"):
            dynamic(x)


def test_block_with_every_channel_off_exports_an_inert_placeholder(r18_static) -> None:
    model, _, _ = r18_static
    model = create_backbone("dg_resnet18", stem="cifar", width=16)
    model.load_state_dict(r18_static[0].state_dict())
    with torch.no_grad():  # layer2.1: every channel always off
        block = dict(model.named_blocks())["layer2.1"]
        weight = block.gate.expand.weight.view(block.gate.expand.out_channels, -1)
        half = max(1, block.gate.reduce.out_channels // 2)
        weight[:, :half], weight[:, half:] = -10.0, 0.0
    model.eval()
    x = images(8, seed=5)
    stats = collect_gate_statistics(model, [x], progress=False)
    plan = make_plan(model, stats, "static")
    assert plan.blocks[3].kept == [[]] and plan.blocks[3].widths == [1]
    pruned = export_pruned(model, plan)
    with torch.no_grad():
        torch.testing.assert_close(
            pruned(x), model.forward_branch(x, "gated").feats, atol=ATOL, rtol=0
        )
        dyn = DynamicGatedResNet(model)
        torch.testing.assert_close(
            dyn(x[:1]), model.forward_branch(x[:1], "gated").feats, atol=ATOL, rtol=0
        )


def test_saved_files_reload_torchscript_and_onnx(r18, tmp_path) -> None:
    model, _, stats = r18
    plan = make_plan(model, stats, "hybrid")
    pruned = export_pruned(model, plan)
    x = images(4, seed=6)
    files = save_export(
        pruned, tmp_path, x, plan=plan
    )  # ONNX checked against ONNX Runtime (atol 1e-4)
    assert files["onnx_max_abs_diff"] <= 1e-4 and files["folded_bn_max_abs_diff"] <= ATOL
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["folded_bn"] is True  # the files hold the BN-folded network
    reloaded = build_pruned_resnet(spec, torch.load(tmp_path / "weights.pt", weights_only=True))
    norms = [n for n, m in reloaded.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(n.endswith(".gate.bn") for n in norms)  # only the gates keep a BN
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        expected = pruned(x)
        torch.testing.assert_close(reloaded(x), fold_network(pruned)(x), atol=0, rtol=0)
        torch.testing.assert_close(reloaded(x), expected, atol=ATOL, rtol=0)
        torch.testing.assert_close(scripted(x), expected, atol=ATOL, rtol=0)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (x[:1], images(7, seed=7)):  # dynamic batch axis
        got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), pruned(batch), atol=1e-4, rtol=0)
    assert ExportPlan.from_json(tmp_path / "plan.json") == plan


def test_pruned_resnet_needs_only_torch_the_stems_and_the_choices() -> None:
    """The export builder must not depend on the gate/block code: torch, stems, choices only."""
    import ast
    from pathlib import Path

    import dualgate_solo.choices as choices
    import dualgate_solo.export.pruned_resnet as module
    import dualgate_solo.stems as stems

    def imports(path: str) -> set[str]:
        tree = ast.parse(Path(path).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return names | {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        }

    allowed = {"torch", "torch.nn", "torch.nn.functional", "typing", "__future__"}
    assert imports(module.__file__) <= allowed | {"dualgate_solo.stems", "dualgate_solo.choices"}
    assert imports(stems.__file__) <= allowed
    assert imports(choices.__file__) <= {"__future__", "typing"}  # standard library only


@pytest.mark.parametrize("policy", ["static", "hybrid"])
def test_resnet50_bottleneck_export(policy) -> None:
    model, kinds, stats = forced_model(
        "dg_resnet50",
        width=8,
        stem="imagenet",
        hw=64,
        p_on=0.4,
        p_off=0.6 if policy == "static" else 0.4,
    )
    plan = make_plan(model, stats, policy)
    assert all(len(w) == 2 for w in plan.widths)
    pruned = export_pruned(model, plan)
    x = images(4, 64, seed=8)
    with torch.no_grad():
        torch.testing.assert_close(
            pruned(x), model.forward_branch(x, "gated").feats, atol=ATOL, rtol=0
        )
        dyn = DynamicGatedResNet(model)  # BN folded: rounding differs, to 1e-5 relative
        torch.testing.assert_close(
            dyn(x[:1]), model.forward_branch(x[:1], "gated").feats, atol=ATOL, rtol=ATOL
        )
    assert macs_of(pruned, x[:1]) == plan.predicted_macs
    assert pruned(x).shape == (4, model.num_features)


def test_bn_recalibration_changes_running_stats_but_not_gates(r18) -> None:
    model, _, stats = r18
    pruned = export_pruned(model, make_plan(model, stats, "hybrid"))
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    recalibrate_bn(pruned, [images(16, seed=9), images(16, seed=10)], num_batches=2)
    after = pruned.state_dict()
    assert not pruned.training
    assert not torch.equal(before["blocks.0.bn1.running_mean"], after["blocks.0.bn1.running_mean"])
    assert not torch.equal(before["blocks.2.bn2.running_var"], after["blocks.2.bn2.running_var"])
    for key in after:
        if ".gate." in key or "weight" in key or "bias" in key:
            assert torch.equal(before[key], after[key]), key
    with pytest.raises(ValueError, match="num_batches=0 is invalid"):
        recalibrate_bn(pruned, [images(2)], num_batches=0)


def test_unsupported_inputs_raise_clear_errors(r18) -> None:
    model, _, stats = r18
    with pytest.raises(
        ValueError, match=r"policy='dynamic' is invalid; allowed values: 'static', 'hybrid'"
    ):
        make_plan(model, stats, "dynamic")
    with pytest.raises(
        ValueError, match=r"off_threshold=1.5 is invalid; allowed values: a number in \[0.0, 1.0\]"
    ):
        make_plan(model, stats, "static", off_threshold=1.5)
    with pytest.raises(ValueError, match="allowed values: a dualgate_solo GatedResNet"):
        make_plan(__import__("torchvision").models.resnet18(), stats)
    with pytest.raises(ValueError, match="allowed values: a dualgate_solo GatedResNet"):
        DynamicGatedResNet(torch.nn.Conv2d(3, 3, 1))
    other = create_backbone("dg_resnet18", stem="cifar", width=8)
    with pytest.raises(ValueError, match="does not match the backbone"):
        export_pruned(other, make_plan(model, stats))
    with pytest.raises(ValueError, match=r"spec.depth=101 is invalid; allowed values: 18, 34, 50"):
        build_pruned_resnet({**make_plan(model, stats).spec(), "depth": 101})


def test_export_cli_writes_files_and_prints_macs(r18, tmp_path, capsys) -> None:
    from dualgate_solo.cli import main

    model, _, _ = r18
    torch.save(model.state_dict(), tmp_path / "backbone.pt")
    out = tmp_path / "export"
    args = [
        "export",
        "--checkpoint",
        str(tmp_path / "backbone.pt"),
        "--backbone",
        "dg_resnet18",
        "--stem",
        "cifar",
        "--width",
        "16",
        "--dataset",
        "cifar10",
        "--synthetic-size",
        "64",
        "--batch-size",
        "32",
        "--policy",
        "hybrid",
        "--recalibrate-batches",
        "1",
        "--onnx-exporter",
        "torchscript",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "export_summary.json").read_text())
    assert {"weights.pt", "spec.json", "plan.json", "model.ts", "model.onnx"} <= {
        p.name for p in out.iterdir()
    }
    assert summary["dense_macs"] == 44_347_072 and summary["exported_macs"] < summary["dense_macs"]
    assert len(summary["blocks"]) == 8 and summary["files"]["onnx_max_abs_diff"] <= 1e-4
    verification = summary["verification"]  # BN re-calibrated: not the masked branch any more
    assert not verification["reproduces_masked_branch"]
    assert verification["claim"].startswith("static approximation (BN re-calibrated)")
    assert verification["max_abs_diff"] <= verification["tolerance"]
    assert verification["masked_branch_max_abs_diff"] > verification["tolerance"]
    text = capsys.readouterr().out
    assert "layer4.1" in text and f"{summary['exported_macs']:,} MACs" in text


def _width_gated_checkpoint(tmp_path):
    """A width-gated ResNet-18 (width 16) with varied choices, saved; its export command."""
    from model_utils import mix_width_choices, randomize_batch_norms

    model = create_backbone("dg_resnet18", width=16, gate_mode="width")
    model = mix_width_choices(randomize_batch_norms(model))
    torch.save(model.state_dict(), tmp_path / "backbone.pt")
    args = ["export", "--checkpoint", str(tmp_path / "backbone.pt"), "--backbone", "dg_resnet18"]
    args += ["--width", "16", "--dataset", "cifar10", "--synthetic-size", "32"]
    return model, args


def test_export_cli_writes_the_routed_network_of_a_width_gated_checkpoint(tmp_path, capsys):
    """A width-mode checkpoint exports its routed executor (TorchScript and the If graph): every
    format, the specialized session users open included, is checked against the masked gated
    branch (features and choices) and the summary says so; it has every block's choice shares."""
    from dualgate_solo.cli import main

    model, args = _width_gated_checkpoint(tmp_path)
    out = tmp_path / "export"
    args += ["--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "export_summary.json").read_text())
    assert {p.name for p in out.iterdir()} == {"model.ts", "model.onnx", "export_summary.json"}
    assert summary["dense_macs"] == 44_347_072 and summary["num_samples"] == 32
    assert summary["gated_branch_mean_macs"] < summary["dense_macs"]
    verification = summary["verification"]
    assert verification["inputs"] == 32 + 16  # the batch, then 16 images one at a time
    checked = verification["checked"]
    assert list(checked) == ["torchscript", "onnx_portable", "onnx_specialized"]
    assert "routed_onnx_session('model.onnx')" in checked["onnx_specialized"]["opened_with"]
    for record in checked.values():
        assert record["max_abs_diff"] <= record["tolerance"] <= 1e-3
        assert record["choice_flips_total"] == 0 and len(record["choice_flips"]) == 8
    assert len(summary["blocks"]) == 8
    for block in summary["blocks"]:
        assert block["widths"][-1] == max(block["widths"])
        assert abs(sum(block["choice_frequency"]) - 1) < 1e-9
    assert sum(0 < f < 1 for b in summary["blocks"] for f in b["choice_frequency"]) >= 2  # mixed
    x = torch.randn(4, 3, 32, 32)
    expected = model.eval().forward_branch(x, "gated").feats
    scripted = torch.jit.load(str(out / "model.ts"))
    assert torch.allclose(scripted(x), expected, atol=1e-5)
    assert "layer4.1" in capsys.readouterr().out
    refused = tmp_path / "refused"
    assert main([*args[:-1], str(refused), "--policy", "hybrid"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("dualgate-solo: error: --policy='hybrid' is invalid")
        and "allowed values: 'static'" in err
    )
    assert len(err.splitlines()) == 1 and not refused.exists()


def test_export_fails_when_the_specialized_graph_flips_a_choice(tmp_path, capsys, monkeypatch):
    """A specialization bug that flips width choices (here: every gate's ArgMax in the optimized
    If branches becomes ArgMin) is caught in the session users open: one line, exit 2, nothing
    written, although the portable graph and TorchScript are right."""
    from model_utils import flip_specialized_choices

    from dualgate_solo.cli import main

    flip_specialized_choices(monkeypatch)
    _, args = _width_gated_checkpoint(tmp_path)
    out = tmp_path / "export"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "dualgate-solo: error: export verification failed: onnx_specialized "
        "(dualgate_solo.export.routed_onnx_session('model.onnx')) differs from the masked gated "
        "branch"
    )
    flips = int(err[0].split(" width-choice flips")[0].rsplit(", ", 1)[1])
    assert flips > 0 and err[0].endswith("; nothing written")
    assert not out.exists()


def test_channel_exports_claim_the_masked_branch_only_where_exact(r18, r18_static) -> None:
    """``hybrid`` (default thresholds) and ``static`` without input-dependent channels reproduce
    the masked branch on the calibration images and are checked against it; ``static`` with
    input-dependent channels, or any BN re-calibration, is a static approximation: checked
    against its own network, its distance to the masked branch recorded, not claimed."""
    from dualgate_solo.export.verify import ExportMismatch, plan_is_exact, verify_pruned_export

    # forced_model centres the data-dependent logits on its own images (near-ties there)
    calibration = images(64, seed=3).split(32)
    for (model, _, _), policy, exact in (
        (r18, "hybrid", True),
        (r18_static, "static", True),
        (r18, "static", False),
    ):
        stats = collect_gate_statistics(model, calibration, progress=False)
        plan = make_plan(model, stats, policy)
        assert plan_is_exact(plan, stats, recalibrated=False) == exact
        assert not plan_is_exact(plan, stats, recalibrated=True)
        pruned = export_pruned(model, plan)
        record = verify_pruned_export(model, pruned, plan, stats, calibration)
        assert record["reproduces_masked_branch"] == exact and record["inputs"] == 64 + 16
        assert record["max_abs_diff"] <= record["tolerance"]
        if exact:
            assert record["claim"].startswith("exact: the masked gated branch")
            assert record["masked_branch_max_abs_diff"] == record["max_abs_diff"]
        else:
            assert record["claim"].startswith("static approximation")
            assert record["masked_branch_max_abs_diff"] > 100 * record["tolerance"]
    model = r18[0]
    stats = collect_gate_statistics(model, calibration, progress=False)
    plan = make_plan(model, stats, "hybrid")
    pruned = export_pruned(model, plan)
    with torch.no_grad():
        pruned.blocks[3].bn2.bias += 0.5  # an export that no longer matches the gated branch
    with pytest.raises(ExportMismatch, match=r"^export verification failed: the BN-folded export"):
        verify_pruned_export(model, pruned, plan, stats, calibration)


def test_export_cli_refuses_a_non_gated_checkpoint(tmp_path, capsys) -> None:
    from dualgate_solo.cli import main

    run = tmp_path / "vicreg_run"
    run.mkdir()
    (run / "args.json").write_text(
        json.dumps({"method": "vicreg", "backbone": {"name": "dg_resnet18"}})
    )
    torch.save({"state_dict": {}}, run / "last.ckpt")
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "method='vicreg', which never trains gates" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ BN folding, ORT, dynamic cache
@pytest.mark.parametrize("with_bias", [False, True])
def test_fold_bn_equals_conv_then_eval_batchnorm(with_bias) -> None:
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, stride=2, padding=1, bias=with_bias)
    bn = torch.nn.BatchNorm2d(7, eps=1e-3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(7, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(7, generator=gen))
        bn.running_mean.copy_(torch.randn(7, generator=gen))
        bn.running_var.copy_(torch.rand(7, generator=gen) + 0.1)
    bn.eval()
    x = torch.randn(3, 5, 9, 9, generator=gen)
    folded = fold_bn(conv, bn)
    assert folded.bias is not None and folded.stride == (2, 2) and folded.padding == (1, 1)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)), atol=ATOL, rtol=ATOL)
    with pytest.raises(ValueError, match="bn.num_features=3 does not match conv.out_channels=7"):
        fold_bn(conv, torch.nn.BatchNorm2d(3))


@pytest.mark.parametrize("policy", ["static", "hybrid"])
def test_folded_export_equals_unfolded_and_keeps_only_gate_norms(r18, policy) -> None:
    model, _, stats = r18
    pruned = export_pruned(model, make_plan(model, stats, policy))
    folded = fold_network(pruned)
    assert folded.spec == {**pruned.spec, "folded_bn": True} and fold_network(folded) is folded
    norms = {n for n, m in folded.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert norms == {n for n, m in pruned.named_modules() if n.endswith("gate.bn")}
    x = images(8, seed=11)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), pruned(x), atol=ATOL, rtol=ATOL)
    assert macs_of(folded, x[:1]) == macs_of(pruned, x[:1])  # a bias add is no MAC


def test_onnx_session_uses_every_graph_optimisation_and_the_given_threads(r18, tmp_path) -> None:
    import onnxruntime as ort

    from dualgate_solo.export import onnx_export, onnx_session

    model, _, stats = r18
    folded = fold_network(export_pruned(model, make_plan(model, stats, "static")))
    x = images(2, seed=12)
    onnx_export(folded, x, tmp_path / "m.onnx")
    session, settings = onnx_session(tmp_path / "m.onnx", threads=3)
    options = session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert settings["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert settings["intra_op_num_threads"] == 3
    got = session.run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), folded(x), atol=1e-4, rtol=0)


def test_dynamic_cache_reuses_gathered_weights_and_stays_exact(r18) -> None:
    model, _, _ = r18
    cached = DynamicGatedResNet(model, cache_size=2)
    x = images(3, seed=13)
    with torch.no_grad():
        expected = [model.forward_branch(x[i : i + 1], "gated").feats for i in range(3)]
        for _ in range(2):  # the second pass meets sets seen before (or evicted: 3 > 2)
            for i in range(3):
                torch.testing.assert_close(cached(x[i : i + 1]), expected[i], atol=ATOL, rtol=ATOL)
    counts = cached.cache_stats()
    assert counts["hits"] + counts["misses"] == 2 * 3 * len(cached.blocks)
    assert counts["hits"] > 0 and all(len(b.cache) <= 2 for b in cached.blocks)
    # moving the network (here to float64, as .cuda() would to another device) empties the
    # cache: gathers made before the move would keep the old dtype/device
    cached = cached.double()
    assert all(len(b.cache) == 0 for b in cached.blocks)
    with torch.no_grad():
        out = cached(x[:1].double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), expected[0], atol=ATOL, rtol=ATOL)
    with pytest.raises(ValueError, match="cache_size=-1 is invalid"):
        DynamicGatedResNet(model, cache_size=-1)
