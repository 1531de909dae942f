"""Shared options of the sub-commands: identical definitions, value checks, torch-free names."""

from __future__ import annotations

import argparse

import pytest

from dualgate_solo import choices
from dualgate_solo.cli import build_parser
from dualgate_solo.commands.options import check_output, fraction, integer
from dualgate_solo.validation import UsageError

SHARED = ("--checkpoint", "--backbone", "--stem", "--width", "--dataset")
READERS = ("cost-report", "umap", "export")


def _actions(command: str) -> dict[str, argparse.Action]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {opt: a for a in sub.choices[command]._actions for opt in a.option_strings}


def test_checkpoint_and_data_options_are_identical_in_every_command_that_reads_a_checkpoint():
    def signature(action):
        kind = getattr(action.type, "__qualname__", action.type)
        return action.choices, action.default, action.required, action.help, kind

    reference = _actions(READERS[0])
    for command in READERS[1:]:
        actions = _actions(command)
        for option in SHARED:
            assert signature(actions[option]) == signature(reference[option]), (command, option)
        assert actions["--data"].type is reference["--data"].type
    assert tuple(reference["--dataset"].choices) == choices.DATASETS
    assert tuple(reference["--backbone"].choices) == ("dg_resnet18", "dg_resnet34", "dg_resnet50")
    assert tuple(reference["--stem"].choices) == ("cifar", "imagenet")


def test_integer_and_fraction_types() -> None:
    assert integer(1)("3") == 3 and integer(0)("0") == 0
    for bad in ("0", "-2", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="allowed values: an integer >= 1"):
            integer(1)(bad)
    assert fraction("0") == 0.0 and fraction("1") == 1.0 and fraction("0.25") == 0.25
    for bad in ("-0.1", "1.01", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"a number in \[0, 1\]"):
            fraction(bad)


def test_check_output(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    check_output(tmp_path / "new" / "dir", directory=True)
    check_output(tmp_path / "fig.png", directory=False, suffixes=(".png",))
    with pytest.raises(UsageError, match="is a file; allowed values: a directory"):
        check_output(tmp_path / "file", directory=True)
    with pytest.raises(UsageError, match="is a directory; allowed values: a file name"):
        check_output(tmp_path, directory=False)
    with pytest.raises(UsageError, match="allowed values: a file ending in .png"):
        check_output(tmp_path / "fig.gif", directory=False, suffixes=(".png",))
    with pytest.raises(UsageError, match="lies under the file"):
        check_output(tmp_path / "file" / "sub", directory=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing created


def test_help_shows_zero_defaults(capsys) -> None:
    from dualgate_solo.cli import main

    assert main(["cost-report", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "always off (default: 0.0)" in text and "always on (default: 1.0)" in text


def test_install_hook_writes_and_removes_the_pth(tmp_path, capsys) -> None:
    from dualgate_solo.cli import main
    from dualgate_solo.solo_adapter.startup_hook import PTH_NAME

    assert main(["install-hook", "--target", str(tmp_path)]) == 0
    assert (tmp_path / PTH_NAME).is_file() and str(tmp_path / PTH_NAME) in capsys.readouterr().out
    assert main(["install-hook", "--uninstall", "--target", str(tmp_path)]) == 0
    assert not (tmp_path / PTH_NAME).exists()
