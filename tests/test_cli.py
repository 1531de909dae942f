"""The command-line dispatcher: one-line errors, --debug, fast help, the MAC table."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dualgate_solo.cli import SUBCOMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def test_mac_table_prints_paper_total(capsys) -> None:
    argv = ["mac-table", "--backbone", "dg_resnet18", "--stem", "imagenet", "--size", "224"]
    assert main(argv) == 0
    assert "dense total 1,813,561,344" in capsys.readouterr().out


def test_mac_table_width_scales_the_dense_total(capsys) -> None:
    # conv MACs scale with C_in * C_out: width 16 = 64 / 4 gives 1/16 of the block MACs and 1/4
    # of the stem conv (3 input channels, 34 x 34 x 64 x 27 = 1,997,568 MACs at width 64)
    assert main(["mac-table", "--width", "16"]) == 0
    dense = (703_560_448 - 1_997_568) // 16 + 1_997_568 // 4
    assert dense == 44_347_072 and f"dense total {dense:,}" in capsys.readouterr().out


def test_a_usage_error_is_one_line_with_status_2(tmp_path, capsys) -> None:
    missing = tmp_path / "missing.pt"
    argv = ["cost-report", "--checkpoint", str(missing), "--data", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"dualgate-solo: error: --checkpoint={str(missing)!r} does not exist\n"
    assert not (tmp_path / "out").exists()


def test_bad_arguments_are_one_line_with_status_2(capsys) -> None:
    assert main(["mac-table", "--stem", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dualgate-solo: error: argument --stem:")
    assert "'tiny'" in err and "'cifar', 'imagenet'" in err
    assert main(["no-such-command"]) == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["flag-before", "flag-after", "env"])
def test_debug_shows_the_traceback(where, tmp_path, monkeypatch, capsys) -> None:
    argv = ["cost-report", "--checkpoint", str(tmp_path / "x.pt"), "--data", str(tmp_path)]
    if where == "flag-before":
        argv = ["--debug", *argv]
    elif where == "flag-after":
        argv = [*argv, "--debug"]
    else:
        monkeypatch.setenv("DUALGATE_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "UsageError" in err
    assert err.splitlines()[-1].startswith("dualgate-solo: error: --checkpoint=")


def test_help_exits_0_and_shows_defaults(capsys) -> None:
    assert main(["cost-report", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: 256)" in text and "(default: outputs/cost_report)" in text
    for option in ("--checkpoint", "--backbone", "--stem", "--width", "--dataset", "--data"):
        assert option in text


@pytest.mark.parametrize(("command", "module"), [(name, module) for name, module, _ in SUBCOMMANDS])
def test_help_imports_no_torch(command, module) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this checkout")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dualgate_solo", command, "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "dualgate_solo.cli" in imported  # the import-time listing is there, and ours
    assert not [name for name in imported if name.split(".")[0] == "torch"]
