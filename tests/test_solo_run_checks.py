"""What the solo-learn adapter decides before a run starts, without solo-learn: the DDP strategy
a method needs, the key paths in constructor refusals, the ``pretrained_feature_extractor``
check."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.slimmable.options import SlimCLROptions
from dualgate_solo.solo_adapter.config import unused_parameters_reason
from dualgate_solo.solo_adapter.registry import _Factory, qualify
from dualgate_solo.solo_adapter.strategy import process_count, select_strategy
from dualgate_solo.validation import UsageError

REASON = "method_kwargs.slow_start_epochs=1"


@pytest.mark.parametrize(
    ("given", "devices", "expected"),
    [
        ("ddp", "1", "ddp_find_unused_parameters_true"),
        ("ddp_spawn", 2, "ddp_spawn_find_unused_parameters_true"),
        ("ddp_find_unused_parameters_true", 2, "ddp_find_unused_parameters_true"),
        ("auto", "2", "ddp_find_unused_parameters_true"),  # Lightning would pick plain ddp
        (None, [0, 1], "ddp_find_unused_parameters_true"),
        ("auto", "1", "auto"),  # one process: no DDP at all
        ("deepspeed", 2, "deepspeed"),  # not a DDP strategy: left alone
    ],
)
def test_a_slow_start_selects_the_ddp_variant_that_allows_unused_parameters(
    given, devices, expected
) -> None:
    cfg = OmegaConf.create({"strategy": given, "devices": devices, "accelerator": "cpu"})
    select_strategy(cfg, "slimclr_vicreg", REASON)
    assert cfg.strategy == expected


def test_without_unused_parameters_the_strategy_is_left_alone() -> None:
    cfg = OmegaConf.create({"strategy": "ddp", "devices": 2})
    select_strategy(cfg, "sacl_xd", None)
    assert cfg.strategy == "ddp"


def test_an_explicit_strict_ddp_is_refused_in_one_line() -> None:
    cfg = OmegaConf.create({"strategy": "ddp_find_unused_parameters_false", "devices": 2})
    with pytest.raises(UsageError) as error:
        select_strategy(cfg, "slimclr_mocov3", REASON)
    assert str(error.value) == (
        "strategy='ddp_find_unused_parameters_false' is invalid for slimclr_mocov3 with "
        "method_kwargs.slow_start_epochs=1: some parameters get no gradient in those steps; "
        "allowed values: 'ddp' or 'ddp_find_unused_parameters_true' (the same)"
    )


@pytest.mark.parametrize(
    ("slow_start", "reason"), [(0, None), (1, REASON), (3, "method_kwargs.slow_start_epochs=3")]
)
def test_only_a_slow_start_leaves_parameters_unused(slow_start, reason) -> None:
    options = {SlimCLROptions: SlimCLROptions(slow_start_epochs=slow_start)}
    assert unused_parameters_reason(options) == reason
    assert unused_parameters_reason({}) is None  # SACL-XD, VICReg-Gating


@pytest.mark.parametrize(
    ("warmup", "reason"), [(0, None), (2, "method_kwargs.gate_warmup_epochs=2")]
)
def test_a_gate_warmup_leaves_the_gated_branch_unused(warmup, reason) -> None:
    options = {DualGatingOptions: DualGatingOptions(gate_warmup_epochs=warmup)}
    assert unused_parameters_reason(options) == reason


def test_process_count_reads_devices_as_solo_learn_configs_write_them() -> None:
    def count(**cfg) -> int:
        return process_count(OmegaConf.create(cfg))

    assert count(devices="2") == 2 and count(devices=[0, 1, 2]) == 3
    assert count(devices=2, num_nodes=4) == 8
    assert (
        count(devices="auto", accelerator="cpu") == 1 and count(devices=-1, accelerator="cpu") == 1
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        (
            "dg_resnet18",
            {"gate_mode": "foo"},
            "backbone.kwargs.gate_mode='foo' is invalid; allowed values: 'channel', 'width'",
        ),
        (
            "dg_resnet18",
            {"width_choices": [0.5]},
            "backbone.kwargs.width_choices=[0.5] is invalid with backbone.kwargs.gate_mode="
            "'channel'; allowed values: null (omit it), or set +backbone.kwargs.gate_mode=width",
        ),
        (
            "slim_resnet18",
            {"width_mult": 0.3},
            "backbone.kwargs.width_mult=0.3 is invalid; allowed values: 1, 0.75, 0.5, 0.25",
        ),
    ],
)
def test_the_solo_factory_names_the_full_key_path(name, kwargs, expected) -> None:
    with pytest.raises(UsageError) as error:
        _Factory(name)(None, **kwargs)
    assert str(error.value) == expected


def test_qualify_keeps_paths_that_are_already_full_and_adds_plus_only_to_absent_keys() -> None:
    message = "width=3 is invalid; set backbone.kwargs.stem=cifar or set gate_mode=width"
    assert qualify(message, ["width", "stem", "gate_mode"], given={"gate_mode"}) == (
        "backbone.kwargs.width=3 is invalid; set backbone.kwargs.stem=cifar or set "
        "backbone.kwargs.gate_mode=width"
    )


def test_the_factory_records_the_keys_it_was_given() -> None:
    assert _Factory("dg_resnet18")(None, width=4).config_kwargs == {"width"}


@pytest.fixture
def check_file():
    pytest.importorskip("hydra")
    from dualgate_solo.solo_adapter.feature_extractor import check_checkpoint_file

    return check_checkpoint_file


def test_a_whole_checkpoint_passes_and_a_truncated_one_is_named(check_file, tmp_path) -> None:
    whole = tmp_path / "run.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}}, whole)
    assert check_file("pretrained_feature_extractor", whole) == whole
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(UsageError) as error:
        check_file("pretrained_feature_extractor", cut)
    assert str(error.value) == (
        f"pretrained_feature_extractor='{cut}' is not a whole torch checkpoint (300 bytes, no "
        "zip end record: truncated, or not written by torch.save); allowed values: a Lightning "
        ".ckpt or a state dict saved with torch.save"
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing.ckpt", "does not exist"),
        ("folder.ckpt", "is invalid; allowed values: a file ending in .ckpt, .pt, .pth"),
        ("notes.txt", "is invalid; allowed values: a file ending in .ckpt, .pt, .pth"),
    ],
)
def test_a_missing_or_foreign_path_is_named(check_file, tmp_path, name, reason) -> None:
    (tmp_path / "folder.ckpt").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError) as error:
        check_file("pretrained_feature_extractor", tmp_path / name)
    assert str(error.value) == f"pretrained_feature_extractor='{tmp_path / name}' {reason}"
