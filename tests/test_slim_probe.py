"""The switchable linear probe (``dualgate_solo.slimmable.probe``, ``dualgate-solo slim-linear``).

A width-4 slimmable ResNet-18 with widths [1.0, 0.5, 0.25] (random running statistics, so an
update would show) is saved as a solo-learn run directory; the 6-class shape ImageFolders of
``model_utils`` are the data.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from model_utils import write_shape_folders
from test_commands_errors import _problems, _run

from dualgate_solo.cli import main
from dualgate_solo.models import SlimResNet, create_backbone
from dualgate_solo.reports.eval_data import image_folder_split, loader
from dualgate_solo.slimmable.probe import (
    SwitchableLinearProbe,
    extract_features,
    per_class_subset,
    switchable_probe_loss,
    train_probe,
)

WIDTHS = [1.0, 0.5, 0.25]
KWARGS = {"stem": "cifar", "width": 4, "width_mult_list": WIDTHS, "width_mult": 1.0}


def tiny_backbone() -> SlimResNet:
    """The width-4 backbone with random BatchNorm statistics and every width counted as trained."""
    torch.manual_seed(0)
    backbone = create_backbone("slim_resnet18", **KWARGS)
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    backbone.trained_steps.fill_(3)
    return backbone


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``run/`` (args.json + last.ckpt), ``gated_run/`` (a dg_resnet18 run), ``train``/``val``."""
    root = write_shape_folders(tmp_path_factory.mktemp("probe"), "val", ".png")
    run = root / "run"
    run.mkdir()
    state = {f"backbone.{k}": v for k, v in tiny_backbone().state_dict().items()}
    torch.save({"state_dict": state}, run / "last.ckpt")
    args = {
        "method": "slimclr_vicreg",
        "backbone": {"name": "slim_resnet18", "kwargs": KWARGS},
        "data": {"dataset": "cifar_jpg"},
    }
    (run / "args.json").write_text(json.dumps(args))
    gated = root / "gated_run"
    gated.mkdir()
    backbone = create_backbone("dg_resnet18", width=4)
    torch.save(
        {"state_dict": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}},
        gated / "last.ckpt",
    )
    (gated / "args.json").write_text(
        json.dumps({"method": "vicreg_dual_gating", "backbone": {"name": "dg_resnet18"}})
    )
    return root


def test_loss_is_full_ce_plus_half_ce_and_soft_ce_of_narrower_heads() -> None:
    full = torch.tensor([[0.0, 0.0]])  # softmax (1/2, 1/2): the teacher
    narrow = torch.tensor([[math.log(3.0), 0.0]])  # softmax (3/4, 1/4)
    labels = torch.tensor([0])
    loss = switchable_probe_loss([full, narrow], labels, [1.0, 0.5])
    full_ce = math.log(2.0)
    narrow_ce = -math.log(0.75)
    soft_ce = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    assert loss.per_width[0].item() == pytest.approx(full_ce, abs=1e-6)
    assert loss.per_width[1].item() == pytest.approx(0.5 * (narrow_ce + soft_ce), abs=1e-6)
    assert loss.total.item() == pytest.approx(full_ce + 0.5 * (narrow_ce + soft_ce), abs=1e-6)


def test_without_the_full_width_every_head_gets_plain_cross_entropy() -> None:
    logits = [torch.tensor([[math.log(3.0), 0.0]]), torch.tensor([[0.0, 0.0]])]
    loss = switchable_probe_loss(logits, torch.tensor([1]), [0.5, 0.25])
    assert loss.total.item() == pytest.approx(-math.log(0.25) + math.log(2.0), abs=1e-6)


def test_distillation_gradient_does_not_reach_the_full_width_head() -> None:
    torch.manual_seed(0)
    probe = SwitchableLinearProbe(tiny_backbone(), WIDTHS, num_classes=5)
    feats = [torch.randn(8, head.in_features) for head in probe.heads]
    labels = torch.randint(0, 5, (8,))
    switchable_probe_loss(probe(feats), labels, WIDTHS).total.backward()
    with_narrow = [p.grad.clone() for p in probe.heads[0].parameters()]
    probe.zero_grad()
    F.cross_entropy(probe.heads[0](feats[0]), labels).backward()
    for got, full_ce_only in zip(with_narrow, probe.heads[0].parameters()):
        torch.testing.assert_close(got, full_ce_only.grad, rtol=0, atol=0)


def test_each_width_has_its_own_head_of_its_feature_width() -> None:
    backbone = tiny_backbone()
    probe = SwitchableLinearProbe(backbone, WIDTHS, num_classes=6)
    assert [(h.in_features, h.out_features) for h in probe.heads] == [(32, 6), (16, 6), (8, 6)]
    assert [backbone.features_at(w) for w in WIDTHS] == [32, 16, 8]
    pointers = {p.data_ptr() for p in probe.parameters()}
    assert len(pointers) == 2 * len(WIDTHS)  # no shared weights


def test_probing_leaves_backbone_weights_and_every_bn_statistic_unchanged(files) -> None:
    backbone = tiny_backbone().train()  # extraction must switch to eval mode itself
    before = copy.deepcopy(backbone.state_dict())
    split = image_folder_split(files / "train", "cifar_jpg")
    feats = extract_features(backbone, loader(split, 32, 0), WIDTHS)
    probe = SwitchableLinearProbe(backbone, WIDTHS, num_classes=6)
    train_probe(probe, feats, epochs=2, batch_size=16)
    after = backbone.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    images = torch.stack([split[i][0] for i in range(4)])
    for w, f in zip(WIDTHS, feats.feats):  # eval-mode features, per width
        torch.testing.assert_close(f[:4], backbone.eval().forward_width(images, w).feats)


def test_per_class_subset_takes_the_first_images_of_every_class(files) -> None:
    split = image_folder_split(files / "train", "cifar_jpg")
    subset = per_class_subset(split, 3)
    labels = [split.targets[i] for i in subset.indices]
    assert labels == [c for c in range(6) for _ in range(3)]
    assert subset.indices[:3] == [0, 1, 2] and per_class_subset(split, None) is split


def test_command_writes_every_width_with_features_and_macs(files, monkeypatch) -> None:
    monkeypatch.chdir(files)
    argv = ["slim-linear", "--checkpoint", "run", "--train", "train", "--val", "val"]
    argv += ["--epochs", "3", "--batch-size", "32", "--num-workers", "0", "--out", "out"]
    assert main([*argv, "--train-per-class", "8"]) == 0
    report = json.loads((files / "out" / "slim_linear.json").read_text())
    config = json.loads((files / "out" / "args.json").read_text())
    backbone = tiny_backbone()
    assert list(report["widths"]) == ["w1", "w0.5", "w0.25"]
    for w, row in zip(WIDTHS, report["widths"].values()):
        assert row["features_dim"] == backbone.features_at(w)
        assert row["macs_per_image"] == backbone.macs_at(w, (32, 32))
        assert 0.0 <= row["val_top1"] <= 100.0 and row["train_loss"] > 0
    assert report["in_place_distillation"] and (report["num_train"], report["num_val"]) == (48, 48)
    assert config["widths"] == WIDTHS and config["train_per_class"] == 8
    assert (
        config["dataset"] == "cifar_jpg"
        and "--train-per-class 8" in report["provenance"]["command"]
    )


def test_narrower_widths_only_train_with_plain_cross_entropy(files, monkeypatch, capsys) -> None:
    monkeypatch.chdir(files)
    argv = ["slim-linear", "--checkpoint", "run/last.ckpt", "--train", "train", "--val", "val"]
    argv += ["--widths", "0.25", "0.5", "--epochs", "1", "--num-workers", "0", "--out", "narrow"]
    assert main(argv) == 0
    report = json.loads((files / "narrow" / "slim_linear.json").read_text())
    assert list(report["widths"]) == ["w0.5", "w0.25"] and not report["in_place_distillation"]
    assert "no in-place distillation" in capsys.readouterr().out


BASE = ["slim-linear", "--train", "train", "--val", "val"]
BAD_INPUTS = [
    ([*BASE, "--checkpoint", "run", "--widths", "0.3"], ["--widths=0.3", "1, 0.5, 0.25"]),
    ([*BASE, "--checkpoint", "missing"], ["--checkpoint=", "missing", "does not exist"]),
    ([*BASE, "--checkpoint", "gated_run"], ["--checkpoint=", "dg_resnet18", "slimclr_vicreg"]),
    (
        ["slim-linear", "--checkpoint", "run", "--train", "nowhere", "--val", "val"],
        ["--train=", "nowhere", "ImageFolder"],
    ),
    ([*BASE, "--checkpoint", "run", "--lr", "0"], ["--lr", "'0'", "> 0"]),
]


@pytest.mark.parametrize(
    ("argv", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))]
)
def test_bad_inputs_fail_in_one_line_and_write_nothing(argv, words, files) -> None:
    full = [*argv, "--out", "bad_out"]
    result = _run(full, files)
    assert not _problems(full, "bad_out", words, result.returncode, result.stderr, files)


def test_export_writes_one_width_as_a_plain_network(files, tmp_path) -> None:
    """``dualgate-solo export`` on a slimmable run: the width's plain network, loadable with
    torch and ``pruned_resnet`` alone, equal to the backbone at that width."""
    from dualgate_solo.export.pruned_resnet import build_pruned_resnet

    out = tmp_path / "export"
    argv = ["export", "--checkpoint", str(files / "run"), "--width-mult", "0.5"]
    assert main([*argv, "--formats", "state_dict", "torchscript", "--out", str(out)]) in (0, None)
    summary = json.loads((out / "export_summary.json").read_text())
    backbone = tiny_backbone().eval()
    assert summary["exported_macs"] == backbone.macs_at(0.5, (32, 32))
    spec = json.loads((out / "spec.json").read_text())
    plain = build_pruned_resnet(spec, torch.load(out / "weights.pt", weights_only=True))
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(plain(x), backbone.forward_width(x, 0.5).feats)
    torch.testing.assert_close(torch.jit.load(str(out / "model.ts"))(x), plain(x))


def test_export_refuses_a_width_the_run_does_not_have(files, tmp_path) -> None:
    out = tmp_path / "bad"
    argv = ["export", "--checkpoint", str(files / "run"), "--width-mult", "0.3", "--out", str(out)]
    result = _run(argv, tmp_path)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip().splitlines() == [
        "dualgate-solo: error: --width-mult=0.3 is invalid; allowed values: 1, 0.5, 0.25"
    ]
