"""In-process checks of the solo-learn methods: registration, every shipped config, cfg errors, groups."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

PRETRAIN = REPO / "configs" / "pretrain"
PRETRAIN_CONFIGS = sorted(
    p.relative_to(PRETRAIN).with_suffix("") for p in PRETRAIN.glob("*/*.yaml")
)


@pytest.fixture(scope="module")
def solo():
    import solo.methods

    from dualgate_solo.solo import register

    register()
    register()  # idempotent
    return solo


@pytest.fixture(scope="module", autouse=True)
def train_dir(tmp_path_factory):
    """An ImageFolder-shaped directory: solo-learn counts its sub-folders as classes for ``custom``."""
    global TRAIN_DIR
    TRAIN_DIR = tmp_path_factory.mktemp("train")
    for label in range(6):
        (TRAIN_DIR / f"class{label}").mkdir()


def _compose(config, *overrides: str):
    from solo.args.pretrain import parse_cfg

    with initialize_config_dir(config_dir=str(PRETRAIN / config.parent), version_base="1.2"):
        cfg = compose(
            config_name=config.name, overrides=[f"data.train_path={TRAIN_DIR}", *overrides]
        )
    OmegaConf.set_struct(cfg, False)
    return parse_cfg(cfg)


def test_register_adds_methods_and_backbones_once(solo) -> None:
    from solo.methods.base import BaseMethod

    from dualgate_solo.solo.methods import VICRegDualGating, VICRegGating

    assert solo.methods.METHODS["vicreg_dual_gating"] is VICRegDualGating
    assert solo.methods.METHODS["vicreg_gating"] is VICRegGating
    assert {"dg_resnet18", "dg_resnet34", "dg_resnet50"} <= set(BaseMethod._BACKBONES)


@pytest.mark.parametrize("config", PRETRAIN_CONFIGS, ids=str)
def test_every_pretrain_config_composes_and_builds(solo, config) -> None:
    cfg = _compose(config)
    assert cfg.data.num_large_crops == 2 and cfg.data.num_small_crops == 0
    if "cpu_quick" not in str(config) and cfg.data.dataset in ("cifar10", "stl10", "imagenet100"):
        # the paper's recipe (spec §6.1, D4): peak lr 0.3 x 512/256, LARS eta 0.02, 500 epochs
        assert (
            cfg.optimizer.lr == pytest.approx(0.6)
            and cfg.optimizer.kwargs.eta == 0.02
            and cfg.max_epochs == 500
        )
    blur = [aug.gaussian_blur.prob for aug in cfg.augmentations]
    assert blur == ([0.0, 0.2] if cfg.data.dataset == "cifar100" else [0.0, 0.0])
    if config.parent.name == "cpu":  # one backbone for the three methods of the cpu protocol
        assert (cfg.backbone.name, cfg.backbone.kwargs.width, cfg.backbone.kwargs.stem) == (
            "dg_resnet18",
            16,
            "cifar",
        )
    explicit_stem = OmegaConf.select(cfg, "backbone.kwargs.stem")
    model = solo.methods.METHODS[cfg.method](cfg)
    if cfg.method != "vicreg":
        assert "${" not in cfg.name and f"td{cfg.method_kwargs.target_density}" in cfg.name
        expected_stem = explicit_stem or (
            "cifar" if cfg.data.dataset in ("cifar10", "cifar100") else "imagenet"
        )
        assert model.backbone.stem == expected_stem


@pytest.mark.parametrize("t_d", [0.1, 0.3, 0.5])
def test_target_density_is_selectable_from_the_command_line(solo, t_d) -> None:
    cfg = _compose(
        PRETRAIN_CONFIGS[0].parent / "vicreg_dual_gating", f"method_kwargs.target_density={t_d}"
    )
    model = solo.methods.METHODS[cfg.method](cfg)
    assert model.budget.target_density == t_d and cfg.name.endswith(f"td{t_d}")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+method_kwargs.target_densty=0.3",
            r"method_kwargs key of vicreg_dual_gating='target_densty' is invalid; allowed values: .*target_density",
        ),
        ("method_kwargs.target_density=1.5", r"target_density=1.5 is invalid"),
        (
            "method_kwargs.bound_target=cubic",
            r"bound_target='cubic' is invalid; allowed values: 'sqrt', 'linear'",
        ),
        (
            "backbone.kwargs.dual_bn_scope=none",
            r"backbone.kwargs.dual_bn_scope='none' is invalid; allowed values: 'block', 'backbone', 'all'",
        ),
        (
            "backbone.name=resnet18",
            r"backbone.name='resnet18' is invalid; allowed values: 'dg_resnet18'",
        ),
        ("+backbone.kwargs.widht=8", r"backbone.kwargs key='widht' is invalid"),
    ],
)
def test_invalid_config_fails_before_training_naming_the_key(solo, override, message) -> None:
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating", override)
    with pytest.raises(ValueError, match=message):
        solo.methods.METHODS[cfg.method](cfg)


def test_gating_baseline_refuses_dual_bn_and_the_dense_branch(solo) -> None:
    for override, key in (
        ("backbone.kwargs.dual_bn_scope=block", "dual_bn_scope"),
        ("backbone.kwargs.branch=dense", "branch"),
    ):
        cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_gating", override)
        with pytest.raises(ValueError, match=f"backbone.kwargs.{key}="):
            solo.methods.METHODS[cfg.method](cfg)


def test_gates_get_weight_decay_zero_and_every_parameter_is_in_one_group(solo) -> None:
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating")
    model = solo.methods.METHODS[cfg.method](cfg)
    groups = {g["name"]: list(g["params"]) for g in model.learnable_params}
    wd = {g["name"]: g.get("weight_decay") for g in model.learnable_params}
    gate_ids = {id(p) for n, p in model.backbone.named_parameters() if ".gate." in n}
    assert {id(p) for p in groups["gates"]} == gate_ids and wd["gates"] == 0.0
    assert not gate_ids & {id(p) for p in groups["backbone"]}
    grouped = [id(p) for params in groups.values() for p in params]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())


def test_training_step_gives_every_parameter_a_gradient(solo) -> None:
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating", "method_kwargs.symmetric=True")
    model = solo.methods.METHODS[cfg.method](cfg)
    model.log_dict = lambda *args, **kwargs: None  # no trainer attached
    model.on_train_epoch_start()
    views = [torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)]
    loss = model.training_step([torch.arange(8), views, torch.arange(8) % 6], 0)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing and torch.isfinite(loss)
    assert float(model.anneal_p) == pytest.approx(math.exp(-0.02 * model.current_epoch))


def test_custom_pipeline_variable_gives_custom_data_the_named_datasets_transforms(
    solo, monkeypatch
) -> None:
    """Unset: solo-learn's 224-px custom pipeline; ``cifar10``: exactly solo-learn's CIFAR pipeline."""
    from solo.data import classification_dataloader as loader

    from dualgate_solo.solo import register
    from dualgate_solo.solo.custom_pipeline import ENV_VAR

    shipped = loader.build_custom_pipeline
    monkeypatch.delenv(ENV_VAR, raising=False)
    register()
    assert loader.build_custom_pipeline is shipped and "CenterCrop(size=(224, 224))" in repr(
        loader.prepare_transforms("custom")[1]
    )
    try:
        monkeypatch.setenv(ENV_VAR, "cifar10")
        register()
        register()  # idempotent: still one level of replacement
        assert loader.build_custom_pipeline.shipped is shipped
        custom, cifar = loader.prepare_transforms("custom"), loader.prepare_transforms("cifar10")
        assert [repr(t) for t in custom] == [repr(t) for t in cifar]
        assert "Resize" not in repr(custom[1]) and "0.4914" in repr(custom[1])
        assert (
            loader.prepare_transforms("imagenet") is not None
        )  # builds every pipeline without recursing
    finally:
        loader.build_custom_pipeline = shipped
