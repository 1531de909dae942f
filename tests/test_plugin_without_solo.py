"""The solo-learn plugin's pieces that need no solo-learn: hook, branch dirs, configs, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from model_utils import fake_solo_methods

from dualgate_solo.cli import main
from dualgate_solo.solo_adapter.branch_dir import make_branch_dirs
from dualgate_solo.solo_adapter.paths import config_dir
from dualgate_solo.solo_adapter.startup_hook import PTH_LINE, PTH_NAME
from dualgate_solo.solo_adapter.startup_hook_files import install_hook, uninstall_hook

CONFIGS = config_dir()


def test_pth_hook_registers_right_after_the_trigger_module_is_imported(tmp_path) -> None:
    """A fake ``solo.methods`` stands in for solo-learn; ``site`` processes the real .pth file."""
    hook_dir = install_hook(tmp_path / "site").parent
    fake = fake_solo_methods(tmp_path / "fake", "METHODS = {}\n")
    script = (
        "import site, sys; site.addsitedir(sys.argv[1]); sys.path.insert(0, sys.argv[2])\n"
        "import dualgate_solo.solo_adapter as plugin\n"
        "plugin.register = lambda: print('registered', 'solo.methods' in sys.modules)\n"
        "assert 'torch' not in sys.modules, 'the hook must not import heavy modules'\n"
        "import solo.methods\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(hook_dir), str(fake)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "registered True"


def test_install_hook_writes_one_import_line_and_uninstalls(tmp_path, capsys) -> None:
    main(["install-hook", "--target", str(tmp_path)])
    assert (tmp_path / PTH_NAME).read_text() == PTH_LINE and PTH_LINE.startswith("import ")
    uninstall_hook(tmp_path)
    assert not (tmp_path / PTH_NAME).exists()


def _fake_run(tmp_path: Path, method: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text(
        json.dumps(
            {"method": method, "backbone": {"name": "dg_resnet18", "kwargs": {"branch": "dense"}}}
        )
    )
    torch.save({"state_dict": {}}, run / "last-ep=1.ckpt")
    return run


def test_branch_dirs_hold_the_checkpoint_and_an_args_json_naming_the_branch(
    tmp_path, capsys
) -> None:
    run = _fake_run(tmp_path, "vicreg_dual_gating")
    main(["branch-dir", str(run)])
    assert "--pretrained_checkpoint_dir" in capsys.readouterr().out
    for branch in ("dense", "gated"):
        target = run / f"eval-{branch}"
        assert [p.name for p in target.glob("*.ckpt")] == ["last-ep=1.ckpt"]
        assert (target / "last-ep=1.ckpt").resolve() == (run / "last-ep=1.ckpt").resolve()
        assert (
            json.loads((target / "args.json").read_text())["backbone"]["kwargs"]["branch"] == branch
        )
    assert (
        json.loads((run / "args.json").read_text())["backbone"]["kwargs"]["branch"] == "dense"
    )  # untouched


def test_branch_dirs_refuse_untrained_branches_and_other_methods(tmp_path) -> None:
    run = _fake_run(tmp_path, "vicreg_gating")
    with pytest.raises(ValueError, match="branch='dense' is invalid; allowed values: 'gated'"):
        make_branch_dirs(run, ["dense"])
    (run / "args.json").write_text(
        json.dumps({"method": "vicreg", "backbone": {"name": "resnet18"}})
    )
    with pytest.raises(
        ValueError,
        match=r"method \(args.json\)='vicreg' is invalid; "
        r"allowed values: 'vicreg_dual_gating', 'vicreg_gating'",
    ):
        make_branch_dirs(run)
    with pytest.raises(ValueError, match="has no args.json"):
        make_branch_dirs(tmp_path)


PRETRAIN = sorted((CONFIGS / "pretrain").glob("*/*.yaml"))
LINEAR = sorted((CONFIGS / "linear").glob("*/*.yaml"))


@pytest.mark.parametrize(
    "path", PRETRAIN + LINEAR, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}"
)
def test_every_shipped_config_composes(path: Path) -> None:
    with initialize_config_dir(config_dir=str(path.parent), version_base="1.2"):
        cfg = compose(config_name=path.stem)
    assert cfg.strategy in ("auto", "ddp") and (
        isinstance(cfg.devices, str) or list(cfg.devices) == [0]
    )
    if path.parent.parent.name == "pretrain":
        assert len(cfg.augmentations) == 2 and all(a.num_crops == 1 for a in cfg.augmentations)
    if cfg.backbone.name.startswith(
        "dg_"
    ):  # dual BNs for Dual-Gating only (VICReg on dg_resnet18: one set)
        assert cfg.backbone.kwargs.dual_bn_scope == (
            "block" if path.stem == "vicreg_dual_gating" else "none"
        )


def test_config_dir_command_prints_the_configs(capsys) -> None:
    main(["config-dir"])
    assert (
        Path(capsys.readouterr().out.strip()) == CONFIGS
        and (CONFIGS / "pretrain" / "cifar10" / "vicreg_dual_gating.yaml").is_file()
    )


def test_custom_pipeline_requests_are_checked_by_name_and_must_agree(monkeypatch) -> None:
    from omegaconf import OmegaConf

    from dualgate_solo.solo_adapter.custom_pipeline import ENV_VAR, requests, resolve

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve(requests()) == "custom"  # nothing asked: solo-learn's own builder
    monkeypatch.setenv(ENV_VAR, "cifar10")
    assert resolve(requests()) == "cifar10"
    cfg = OmegaConf.create({"data": {"dataset": "custom", "custom_pipeline": "cifar10"}})
    assert resolve(requests(cfg)) == "cifar10"  # two sources that agree
    cfg.data.custom_pipeline = "stl10"
    with pytest.raises(ValueError, match=rf"data.custom_pipeline='stl10', \${ENV_VAR}='cifar10'"):
        resolve(requests(cfg))
    monkeypatch.setenv(ENV_VAR, "cifar")
    with pytest.raises(
        ValueError, match=rf"^\${ENV_VAR}='cifar' is invalid; allowed values: 'custom', 'cifar10'"
    ):
        resolve(requests())


def test_default_stem_and_run_fingerprint_without_solo() -> None:
    from dualgate_solo.solo_adapter.config import default_stem, run_fingerprint

    assert [default_stem(s) for s in (32, 64, 65, 96, 224)] == ["cifar"] * 2 + ["imagenet"] * 3
    kwargs = {"lambda_flops": 5.0, "target_density": 0.1}
    backbone = {"stem": "cifar", "width": 8, "branch": "dense"}
    base = run_fingerprint(kwargs, "dg_resnet18", backbone)
    assert re.fullmatch("[0-9a-f]{8}", base)
    assert run_fingerprint(dict(reversed(kwargs.items())), "dg_resnet18", backbone) == base
    assert run_fingerprint(kwargs, "dg_resnet18", {**backbone, "branch": "gated"}) == base
    assert run_fingerprint({**kwargs, "lambda_flops": 50.0}, "dg_resnet18", backbone) != base
    assert run_fingerprint(kwargs, "dg_resnet34", backbone) != base
    assert run_fingerprint(kwargs, "dg_resnet18", {**backbone, "width": 16}) != base
