"""Cost report, channel usage and UMAP on a tiny checkpoint and ImageFolder split."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torchvision import transforms

from dualgate_solo.checkpoint import load_backbone
from dualgate_solo.cli import main
from dualgate_solo.gated.gate_stats import collect_gate_statistics
from dualgate_solo.models import create_backbone
from dualgate_solo.reports.eval_data import (
    CIFAR_STATS,
    eval_transform,
    evaluation_dataset,
    image_folder_split,
)
from dualgate_solo.validation import UsageError

NUM_CLASSES = 5


@pytest.fixture
def split_dir(tmp_path):
    root = tmp_path / "split"
    gen = torch.Generator().manual_seed(0)
    for c in range(NUM_CLASSES):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(4):
            pixels = (torch.rand(32, 32, 3, generator=gen) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def _save_run(tmp_path, method: str, state: dict, num_classes: int = NUM_CLASSES):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"state_dict": state, "epoch": 3}, run / "last.ckpt")
    args = {
        "method": method,
        "backbone": {"name": "dg_resnet18", "kwargs": {"stem": "cifar", "dual_bn_scope": "block"}},
        "data": {"dataset": "custom", "num_classes": num_classes},
    }
    (run / "args.json").write_text(json.dumps(args))
    return run


@pytest.fixture
def gated_run(tmp_path):
    backbone = create_backbone("dg_resnet18", stem="cifar")
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["projector.fc1.weight"] = torch.zeros(2, 2)  # other modules of the method are ignored
    return _save_run(tmp_path, "vicreg_dual_gating", state), backbone


def test_cost_report_cli_matches_direct_statistics(gated_run, split_dir, tmp_path) -> None:
    run, backbone = gated_run
    out = tmp_path / "report"
    status = main(
        [
            "cost-report",
            "--checkpoint",
            str(run),
            "--data",
            str(split_dir),
            "--dataset",
            "cifar_jpg",
            "--batch-size",
            "7",
            "--num-workers",
            "0",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    report = json.loads((out / "cost_report.json").read_text())
    split = image_folder_split(split_dir, "cifar_jpg")
    images = torch.stack([split[i][0] for i in range(len(split))])
    stats = collect_gate_statistics(backbone, [images], progress=False)
    summary = report["summary"]
    assert summary["num_samples"] == 20
    assert summary["flops_ratio"] == pytest.approx(stats.mean_ratio, rel=1e-6)
    assert summary["flops_reduction"] == pytest.approx(1 - stats.mean_ratio, rel=1e-6)
    assert summary["dense_macs"] == 703_560_448
    usage = report["channel_usage"]
    assert [u["block"] for u in usage][:2] == ["layer1.0", "layer1.1"]
    assert all(
        u["always_off"] + u["data_dependent"] + u["always_on"] == u["channels"] for u in usage
    )
    kept = sum(r["mean_kept_macs"] for r in report["layers"])
    total = kept + 1_997_568 + 240_640
    assert total / 703_560_448 == pytest.approx(summary["flops_ratio"], rel=1e-9)
    for name in ("layers.csv", "channel_usage.csv", "channel_usage.png"):
        assert (out / name).stat().st_size > 0


def test_dense_only_trained_checkpoint_is_refused(tmp_path) -> None:
    backbone = create_backbone("dg_resnet18", stem="cifar")
    run = _save_run(
        tmp_path, "vicreg", {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    )
    with pytest.raises(UsageError, match=r"method='vicreg', which never trains gates"):
        load_backbone(run)


def test_wrong_architecture_checkpoint_is_refused(tmp_path) -> None:
    from torchvision.models import resnet18

    run = _save_run(
        tmp_path,
        "vicreg_dual_gating",
        {f"backbone.{k}": v for k, v in resnet18().state_dict().items()},
    )
    with pytest.raises(UsageError, match="holds no gates, so it is not a gated dg_resnet backbone"):
        load_backbone(run)


def test_mismatches_name_the_kwarg_and_both_values(tmp_path) -> None:
    path = tmp_path / "w16.pt"
    torch.save(create_backbone("dg_resnet34", stem="imagenet", width=16).state_dict(), path)
    cases = [
        (
            "dg_resnet18",
            {"stem": "imagenet", "width": 16},
            r"backbone='dg_resnet18' \(--backbone\)"
            r".* holds backbone='dg_resnet34'; allowed values: --backbone dg_resnet34",
        ),
        ("dg_resnet34", {"width": 16}, r"stem='cifar' \(the default\) .* holds stem='imagenet'"),
        (
            "dg_resnet34",
            {"stem": "imagenet", "width": 8},
            r"width=8 \(--width\) .* holds width=16; allowed values: --width 16$",
        ),
    ]
    for name, kwargs, message in cases:
        with pytest.raises(UsageError, match=message):
            load_backbone(path, name, kwargs)
    loaded = load_backbone(path, "dg_resnet34", {"stem": "imagenet", "width": 16})
    assert loaded.backbone.conv1.out_channels == 16 and loaded.method is None


def test_plain_state_dict_reads_its_dual_bn_scope_and_loads_the_gated_branch(tmp_path) -> None:
    # a VICReg-Gating backbone (one BN set, only the gated branch trained): no option sets the
    # scope, so it is read off the keys, and the gated branch is the one to load
    backbone = create_backbone("dg_resnet18", dual_bn_scope="none", branch="gated", width=8)
    backbone.trained_steps[1] = 5
    torch.save(backbone.state_dict(), tmp_path / "gating.pt")
    loaded = load_backbone(tmp_path / "gating.pt", "dg_resnet18", {"width": 8})
    assert loaded.backbone.dual_bn_scope == "none" and loaded.backbone.branch == "gated"
    for name, value in backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[name], value)


def test_a_run_without_gated_training_is_named(tmp_path) -> None:
    backbone = create_backbone("dg_resnet18", stem="cifar")
    backbone.trained_steps[0] = 3  # dense only
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    run = _save_run(tmp_path, "vicreg_dual_gating", state)
    args = json.loads((run / "args.json").read_text())
    args["backbone"]["kwargs"]["branch"] = "gated"
    (run / "args.json").write_text(json.dumps(args))
    with pytest.raises(UsageError, match=r"branch='gated' was never trained"):
        load_backbone(run)


def test_wrong_split_is_refused(gated_run, split_dir, tmp_path, capsys) -> None:
    run, _ = gated_run
    args = [
        "cost-report",
        "--checkpoint",
        str(run),
        "--dataset",
        "cifar_jpg",
        "--out",
        str(tmp_path / "r"),
    ]
    (split_dir / "class4").rename(tmp_path / "moved")
    assert main(args + ["--data", str(split_dir)]) == 2
    assert "has 4 classes, but the checkpoint was trained with data.num_classes=5" in (
        capsys.readouterr().err
    )
    assert main(args + ["--data", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_eval_transforms_mirror_solo_learn() -> None:
    image = Image.new("RGB", (64, 48))
    cifar = Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy())
    plain = transforms.Compose([transforms.ToTensor(), transforms.Normalize(*CIFAR_STATS)])
    assert torch.equal(eval_transform("cifar10")(cifar), plain(cifar))  # solo-learn's T_val
    assert eval_transform("cifar10")(image).shape == (3, 32, 32)  # the size is the dataset's
    assert eval_transform("stl10")(image).shape == (3, 96, 96)
    assert eval_transform("custom")(image).shape == (3, 224, 224)
    with pytest.raises(UsageError, match="dataset='mnist' is invalid"):
        eval_transform("mnist")


@pytest.mark.parametrize(
    ("option", "run_args", "expected"),
    [
        ("stl10", {"data": {"dataset": "cifar10"}}, ("stl10", "--dataset")),
        (
            None,
            {"data": {"dataset": "cifar100"}},
            ("cifar100", "args.json data.dataset='cifar100'"),
        ),
        (
            None,
            {"data": {"dataset": "custom", "custom_pipeline": "cifar10"}},
            ("cifar10", "args.json data.dataset='custom' with data.custom_pipeline='cifar10'"),
        ),
        (
            None,
            {"data": {"dataset": "custom"}, "augmentations": [{"crop_size": 32}]},
            ("cifar_jpg", "args.json data.dataset='custom' with crop_size=32"),
        ),
        (
            None,
            {"data": {"dataset": "custom"}, "augmentations": [{"crop_size": 224}]},
            ("custom", "args.json data.dataset='custom' with crop_size=224"),
        ),
    ],
)
def test_evaluation_dataset_comes_from_the_option_or_args_json(option, run_args, expected) -> None:
    assert evaluation_dataset(option, run_args, "ckpt") == expected


@pytest.mark.parametrize(
    ("run_args", "message"),
    [
        ({}, r"--dataset is required: checkpoint 'ckpt' has no args.json beside it"),
        (
            {"data": {"dataset": "custom"}, "augmentations": [{"crop_size": 96}]},
            r"--dataset is required: .* custom data at crop_size=96",
        ),
        ({"data": {"dataset": "mnist"}}, r"data.dataset \(args.json\)='mnist' is invalid"),
    ],
)
def test_evaluation_dataset_refuses_to_guess(run_args, message) -> None:
    with pytest.raises(UsageError, match=message):
        evaluation_dataset(None, run_args, "ckpt")


def test_cost_report_reads_the_input_size_from_args_json(gated_run, split_dir, tmp_path) -> None:
    run, _ = gated_run  # data.dataset custom, as the cpu protocol's runs
    args = json.loads((run / "args.json").read_text())
    args["augmentations"] = [{"crop_size": 32, "num_crops": 2}]
    (run / "args.json").write_text(json.dumps(args))
    argv = ["cost-report", "--checkpoint", str(run), "--data", str(split_dir)]
    assert main([*argv, "--num-workers", "0", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "cost_report.json").read_text())
    assert report["summary"]["input_hw"] == [32, 32]
    assert report["provenance"]["dataset"] == "cifar_jpg"
    assert (
        report["provenance"]["dataset_source"]
        == "args.json data.dataset='custom' with crop_size=32"
    )


def test_cost_report_of_a_plain_state_dict_costs_the_dataset_input_size(
    split_dir, tmp_path
) -> None:
    # 32-px images through the CIFAR-stem ResNet-18: 703,560,448 dense MACs (the paper's
    # figure), not the 28.2 G of the same network at 224 px
    torch.save(create_backbone("dg_resnet18").state_dict(), tmp_path / "r18.pt")
    argv = ["cost-report", "--checkpoint", str(tmp_path / "r18.pt"), "--backbone", "dg_resnet18"]
    argv += ["--data", str(split_dir), "--num-workers", "0", "--out", str(tmp_path / "out")]
    assert main([*argv, "--dataset", "cifar10"]) == 0
    summary = json.loads((tmp_path / "out" / "cost_report.json").read_text())["summary"]
    assert summary["input_hw"] == [32, 32] and summary["dense_macs"] == 703_560_448


def test_umap_of_both_branches(gated_run, split_dir, tmp_path) -> None:
    run, _ = gated_run
    png = tmp_path / "umap.png"
    status = main(
        [
            "umap",
            "--checkpoint",
            str(run),
            "--data",
            str(split_dir),
            "--dataset",
            "cifar_jpg",
            "--out",
            str(png),
        ]
    )
    assert status == 0
    assert png.stat().st_size > 0
