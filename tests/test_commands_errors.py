"""More bad inputs, run in-process through :func:`dualgate_solo.cli.main` (faster).

Each user error must exit with status 2, print exactly one line on stderr (``dualgate-solo:
error: ...``, no traceback) naming the option and the value, and write nothing (its ``--out`` is
not created). The product review's inputs (issue 10) and issue 19's run through the console
script in ``tests/test_bad_inputs.py`` (``scripts/bad_input_table.py``, with its markdown table).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dualgate_solo.cli import main
from dualgate_solo.flops import check_input_hw
from dualgate_solo.models import create_backbone
from dualgate_solo.validation import UsageError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A width-16 state dict, a run that trained no gates, a file and a 5-class ImageFolder."""
    root = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    # the cpu protocol's backbone (width 16, CIFAR stem, per-block dual BN) as a plain state dict
    torch.save(create_backbone("dg_resnet18", stem="cifar", width=16).state_dict(), root / "w16.pt")
    run = root / "vicreg_run"
    run.mkdir()
    (run / "args.json").write_text('{"method": "vicreg", "backbone": {"name": "dg_resnet18"}}')
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, run / "last.ckpt")
    (root / "a_file").write_text("not a directory")
    gen = torch.Generator().manual_seed(0)
    for c in range(5):
        (root / "split" / f"class{c}").mkdir(parents=True)
        for i in range(4):
            pixels = (torch.rand(32, 32, 3, generator=gen) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / "split" / f"class{c}" / f"{i}.png")
    return root


W16 = ["--checkpoint", "w16.pt", "--backbone", "dg_resnet18", "--width", "16"]
SPLIT = ["--data", "split"]

#: Bad inputs, run in-process through :func:`dualgate_solo.cli.main`.
MORE: list[tuple[list[str], str | None, list[str]]] = [
    (["mac-table", "--width", "0"], None, ["--width", "'0'", "integer >= 1"]),
    (
        ["cost-report", *W16, "--stem", "imagenet", "--dataset", "cifar10", *SPLIT],
        "out",
        ["stem='imagenet' (--stem)", "stem='cifar'", "--stem cifar"],
    ),
    (
        ["cost-report", *W16[:2], "--backbone", "dg_resnet34", "--width", "16"]
        + ["--dataset", "cifar10", *SPLIT],
        "out",
        ["backbone='dg_resnet34' (--backbone)", "backbone='dg_resnet18'"],
    ),
    (["umap", *W16, *SPLIT], "umap.png", ["--dataset is required", "w16.pt", "cifar10"]),
    (["export", *W16], "out", ["--dataset is required", "w16.pt", "cifar10"]),
    (
        ["export", "--checkpoint", "vicreg_run"],
        "out",
        ["method='vicreg'", "never trains gates", "vicreg_dual_gating"],
    ),
    (["cost-report", *W16, *SPLIT, "--batch-size", "0"], "out", ["--batch-size", "'0'"]),
    (["cost-report", *W16, *SPLIT, "--off-below", "1.5"], "out", ["--off-below", "'1.5'"]),
    (
        ["cost-report", *W16, *SPLIT, "--off-below", "0.6", "--on-above", "0.4"],
        "out",
        ["--off-below=0.6", "--on-above=0.4"],
    ),
    (["cost-report", *W16, *SPLIT, "--device", "gpu7"], "out", ["--device='gpu7'", "cpu"]),
    (
        ["cost-report", *W16, "--dataset", "cifar10", "--data", "missing"],
        "out",
        ["--data=", "missing", "ImageFolder"],
    ),
    (["cost-report", *W16, "--dataset", "cifar10", *SPLIT], "a_file/out", ["--out=", "a_file"]),
    (["umap", *W16, *SPLIT, "--max-samples", "3"], "umap.png", ["--max-samples", "'3'"]),
    (["umap", *W16, "--dataset", "cifar10", *SPLIT], "umap.txt", ["--out=", "umap.txt", ".png"]),
    (["export", *W16, "--recalibrate-batches", "-1"], "out", ["--recalibrate-batches", "'-1'"]),
    (["export", *W16, "--synthetic-size", "0"], "out", ["--synthetic-size", "'0'"]),
    (["export", *W16, "--off-threshold", "2"], "out", ["--off-threshold", "'2'"]),
    (["export", *W16, "--formats", "tflite"], "out", ["--formats", "'tflite'", "'onnx'"]),
    (
        ["export", *W16, "--skip-unreadable"],
        "out",
        ["--skip-unreadable=True is invalid without --data", "leave it out"],
    ),
    (
        ["export", *W16, *SPLIT, "--synthetic-size", "64"],
        "out",
        ["--synthetic-size=64 is invalid with --data", "allowed values: 512"],
    ),
    (
        ["branch-dir", "vicreg_run"],
        "eval",
        ["method (args.json)='vicreg'", "vicreg_dual_gating"],
    ),
    (["install-hook", "--target", "a_file"], None, ["--target=", "a_file", "directory"]),
    (["run", "missing_script.py"], None, ["SCRIPT=", "missing_script.py"]),
]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m dualgate_solo argv`` in ``cwd`` with this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "DUALGATE_DEBUG"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "dualgate_solo", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _problems(
    argv: list[str], out: str | None, words: list[str], status: int, stderr: str, root: Path
) -> list[str]:
    """What is wrong with a user error's outcome (expected: 2, one line naming ``words``, no
    ``--out``)."""
    lines = stderr.splitlines()
    wrong = [] if status == 2 else [f"exit {status}"]
    if len(lines) != 1 or not lines[0].startswith("dualgate-solo: error: "):
        wrong.append(f"{len(lines)} stderr lines")
    wrong += [f"missing {w!r}" for w in words if w not in (lines or [""])[0]]
    if "Traceback" in stderr or "weights_only" in stderr:
        wrong.append("traceback or torch advice")
    if out and (root / out).exists():
        wrong.append(f"{out} was written")
    return [f"{' '.join(argv)}: {', '.join(wrong)}\n{stderr[-2000:]}"] if wrong else []


@pytest.mark.parametrize(("argv", "out", "words"), MORE, ids=[" ".join(c[0][:3]) for c in MORE])
def test_more_bad_inputs_fail_in_one_line_and_write_nothing(
    argv, out, words, files, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(files)
    monkeypatch.delenv("DUALGATE_DEBUG", raising=False)
    full = [*argv, "--out", out] if out else argv
    status = main(full)
    assert not _problems(full, out, words, status, capsys.readouterr().err, files)


def test_cost_table_of_an_empty_image_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"input_hw=\(0, 0\) is invalid; allowed values"):
        check_input_hw("input_hw", (0, 0))
    assert check_input_hw("input_hw", [32, 24]) == (32, 24)
    for bad in ((32,), (32.0, 32), (True, 1), "32x32"):
        with pytest.raises(UsageError):
            check_input_hw("input_hw", bad)


def test_gated_resnet_cost_table_checks_its_input_size() -> None:
    with pytest.raises(UsageError, match=r"input_hw=\(0, 0\) is invalid"):
        create_backbone("dg_resnet18").cost_table((0, 0))
