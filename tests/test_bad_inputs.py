"""Bad input and interruption (issue 19): staged outputs, unreadable images, Ctrl-C, options that
do not apply, fast checkpoint-path errors, the demo's thread rule.

:func:`test_every_bad_input_through_the_console_script` runs ``scripts/bad_input_table.py``: every
case through the installed ``dualgate-solo``; run with ``-s`` to see its markdown table, or set
``BAD_INPUT_TABLE=<file>`` to have it written there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from script_loader import load_script

from dualgate_solo.cli import main
from dualgate_solo.commands import demo as demo_command
from dualgate_solo.output_dir import Interrupted, StagedOutput, staged_output
from dualgate_solo.reports.eval_data import image_folder_split, unreadable_reason
from dualgate_solo.validation import UsageError

REPO = Path(__file__).resolve().parents[1]


def _table_script():
    return load_script("bad_input_table")


def test_every_bad_input_through_the_console_script(tmp_path) -> None:
    table_script = _table_script()
    try:
        table_script.console_script()
    except SystemExit as missing:
        pytest.skip(str(missing))
    table, problems = table_script.run_all(tmp_path)
    print("\n" + table)
    if os.environ.get("BAD_INPUT_TABLE"):
        Path(os.environ["BAD_INPUT_TABLE"]).write_text(table + "\n")
    assert table.count("\n") == len(table_script.CASES) + 1
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", ["cost-report", "umap", "export", "slim-linear"])
def test_a_wrong_checkpoint_path_is_refused_before_torch_is_imported(command, tmp_path) -> None:
    argv = [command, "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "o")]
    argv += {"slim-linear": ["--train", "t", "--val", "v"], "export": []}.get(
        command, ["--data", "d"]
    )
    code = (
        "import sys\nfrom dualgate_solo.cli import main\n"
        f"status = main({argv!r})\n"
        "print(status, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["2", "False"]
    assert (
        done.stderr
        == f"dualgate-solo: error: --checkpoint={str(tmp_path / 'missing.ckpt')!r} does not exist\n"
    )
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ staged outputs
def test_a_failure_inside_the_stage_leaves_nothing_and_the_earlier_output_intact(tmp_path) -> None:
    earlier = tmp_path / "out"
    earlier.mkdir()
    (earlier / "summary.json").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with staged_output(earlier, overwrite=True) as stage:
            (stage.path / "summary.json").write_text("new, half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in earlier.iterdir()] == ["summary.json"]
    assert (earlier / "summary.json").read_text() == "old"
    new = tmp_path / "a" / "b" / "new"
    with pytest.raises(RuntimeError):
        with staged_output(new, overwrite=False):
            raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()  # the parents it created are gone too


def test_overwrite_replaces_the_folder_whole_only_at_the_end(tmp_path) -> None:
    earlier = tmp_path / "out"
    earlier.mkdir()
    (earlier / "model.onnx").write_text("stale")
    (earlier / "summary.json").write_text("old")
    (earlier / "summary.json").chmod(0o444)
    with pytest.raises(UsageError, match=r"--out='.*out' already exists; allowed values: a new"):
        StagedOutput(earlier, overwrite=False, directory=True)
    with staged_output(earlier, overwrite=True) as stage:
        (stage.path / "summary.json").write_text("new")
        assert (earlier / "model.onnx").read_text() == "stale"  # untouched until the end
        recorded = stage.relocate({"files": [str(stage.path / "summary.json")], "n": 3})
    assert recorded == {"files": [str(earlier / "summary.json")], "n": 3}
    assert [p.name for p in earlier.iterdir()] == ["summary.json"]
    assert (earlier / "summary.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_output_is_staged_beside_it(tmp_path) -> None:
    figure = tmp_path / "fig.png"
    figure.write_text("old")
    with staged_output(figure, overwrite=True, directory=False, suffixes=(".png",)) as stage:
        assert stage.path.name == "fig.png" and stage.path.parent != tmp_path
        stage.path.write_text("new")
    assert figure.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["fig.png"]
    with pytest.raises(UsageError, match="allowed values: a file ending in .png"):
        StagedOutput(tmp_path / "fig.gif", overwrite=False, directory=False, suffixes=(".png",))
    with pytest.raises(UsageError, match="lies under the file"):
        StagedOutput(figure / "x", overwrite=False, directory=True)


def test_ctrl_c_inside_the_stage_says_what_was_kept(tmp_path) -> None:
    with pytest.raises(Interrupted, match=r"nothing was written \(--out='.*new' not created\)"):
        with staged_output(tmp_path / "new", overwrite=False):
            raise KeyboardInterrupt
    (tmp_path / "old").mkdir()
    with pytest.raises(Interrupted, match="--out='.*old' was left as it was"):
        with staged_output(tmp_path / "old", overwrite=True):
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_ctrl_c_in_a_command_exits_130_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    import dualgate_solo.demo

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(dualgate_solo.demo, "run_demo", interrupted)
    out = tmp_path / "demo"
    assert main(["demo", "--threads", "1", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    kept = f"nothing was written (--out={str(out)!r} not created)"
    assert err == f"dualgate-solo: interrupted (Ctrl-C): {kept}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_an_unwritable_out_is_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"--out='/proc/x' cannot be written \("):
        StagedOutput(Path("/proc/x"), overwrite=False, directory=True)


def test_tilde_in_paths_is_expanded(tmp_path, monkeypatch) -> None:
    from dualgate_solo.cli import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["cost-report", "--checkpoint=~/c.pt", "--data=~/split", "--out=~/x"]
    args = build_parser("cost-report").parse_args(argv)
    assert (args.checkpoint, args.data, args.out) == (
        tmp_path / "c.pt",
        tmp_path / "split",
        tmp_path / "x",
    )


# ------------------------------------------------------------------ unreadable images
def _split(root: Path) -> Path:
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(3):
            pixels = (torch.rand(8, 8, 3) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.jpg")
    return root


def test_unreadable_images_are_named_or_skipped_with_a_count(tmp_path, capsys) -> None:
    split = _split(tmp_path / "split")
    assert unreadable_reason(str(split / "class0" / "0.jpg")) is None
    broken = split / "class1" / "2.jpg"
    broken.write_bytes(broken.read_bytes()[:100])
    (split / "class0" / "text.jpg").write_text("not a JPEG")
    assert unreadable_reason(str(split / "class0" / "text.jpg")) == (
        "not an image file PIL can identify"
    )
    assert unreadable_reason(str(broken)).startswith("OSError: ")
    with pytest.raises(UsageError, match=r"holds 2 unreadable image file\(s\) of 7, first: .*text"):
        image_folder_split(split, "cifar10")
    kept = image_folder_split(split, "cifar10", skip_unreadable=True)
    assert len(kept) == 5 and kept.targets == [0, 0, 0, 1, 1]
    assert "--skip-unreadable: left out 2 of 7 files" in capsys.readouterr().out
    assert kept[4][0].shape == (3, 32, 32)


def test_a_split_of_nothing_but_unreadable_files_is_refused(tmp_path) -> None:
    (tmp_path / "split" / "a").mkdir(parents=True)
    (tmp_path / "split" / "a" / "x.png").write_text("text")
    with pytest.raises(UsageError, match="holds no readable image"):
        image_folder_split(tmp_path / "split", "cifar10", skip_unreadable=True)


# ------------------------------------------------------------------ the demo's threads
@pytest.mark.parametrize(
    ("cores", "load", "threads"),
    [(2, 0.0, 2), (2, 1.4, 1), (2, 4.9, 1), (8, 2.4, 6), (8, 2.6, 5), (4, 0.3, 4), (1, 0.0, 1)],
)
def test_default_threads_leave_busy_cores_alone(cores, load, threads) -> None:
    assert demo_command.default_threads(cores, load) == threads


def test_the_demo_prints_its_thread_rule_and_an_explicit_value_wins(
    tmp_path, monkeypatch, capsys
) -> None:
    import dualgate_solo.demo

    seen = {}
    monkeypatch.setattr(demo_command, "machine_load", lambda: (2, 3.7))
    monkeypatch.setattr(
        dualgate_solo.demo, "run_demo", lambda args, command, folder: seen.update(vars(args))
    )
    assert main(["demo", "--out", str(tmp_path / "a")]) == 0
    assert seen["threads"] == 1
    assert capsys.readouterr().out == (
        "threads: 1 = max(1, 2 cores - round(load 3.70)) (--threads N to choose)\n"
    )
    assert main(["demo", "--threads", "3", "--out", str(tmp_path / "b")]) == 0
    assert seen["threads"] == 3 and capsys.readouterr().out == ""


def test_demo_records_the_threads_it_chose(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(demo_command, "machine_load", lambda: (4, 1.0))
    parser = argparse.ArgumentParser()
    demo_command.add_arguments(parser)
    resolved = demo_command.resolve(parser.parse_args([]))
    assert resolved.threads == 3 and "--threads 3" in demo_command.command_line(resolved)
