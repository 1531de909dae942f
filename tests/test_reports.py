"""Cost report, channel usage and UMAP on a tiny checkpoint and ImageFolder split."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from dualgate_solo.checkpoint import load_backbone
from dualgate_solo.cli import main
from dualgate_solo.gate_stats import collect_gate_statistics
from dualgate_solo.models import create_backbone
from dualgate_solo.reports.eval_data import eval_transform, image_folder_split

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
    main(
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
    with pytest.raises(ValueError, match=r"method='vicreg', which never trains gates"):
        load_backbone(run)


def test_wrong_architecture_checkpoint_is_refused(tmp_path) -> None:
    from torchvision.models import resnet18

    run = _save_run(
        tmp_path,
        "vicreg_dual_gating",
        {f"backbone.{k}": v for k, v in resnet18().state_dict().items()},
    )
    with pytest.raises(ValueError, match="does not hold a dg_resnet18"):
        load_backbone(run)


def test_wrong_split_is_refused(gated_run, split_dir, tmp_path) -> None:
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
    with pytest.raises(
        ValueError, match=r"has 4 classes, but the checkpoint was trained with data.num_classes=5"
    ):
        (split_dir / "class4").rename(tmp_path / "moved")
        main(args + ["--data", str(split_dir)])
    with pytest.raises(ValueError, match="is not a directory"):
        main(args + ["--data", str(tmp_path / "missing")])
    assert not (tmp_path / "r").exists()


def test_eval_transforms_mirror_solo_learn() -> None:
    image = Image.new("RGB", (64, 48))
    assert eval_transform("cifar10")(Image.new("RGB", (32, 32))).shape == (3, 32, 32)
    assert eval_transform("stl10")(image).shape == (3, 96, 96)
    assert eval_transform("custom")(image).shape == (3, 224, 224)
    with pytest.raises(ValueError, match="dataset='mnist' is invalid"):
        eval_transform("mnist")


def test_umap_of_both_branches(gated_run, split_dir, tmp_path) -> None:
    run, _ = gated_run
    png = tmp_path / "umap.png"
    main(
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
    assert png.stat().st_size > 0
