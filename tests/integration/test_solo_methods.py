"""In-process checks of the solo-learn integration: registration, configs, cfg errors, load guards,
run names, custom-data pipeline."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from dualgate_solo.method_registry import METHODS

PRETRAIN = REPO / "configs" / "pretrain"
PRETRAIN_CONFIGS = sorted(
    p.relative_to(PRETRAIN).with_suffix("") for p in PRETRAIN.glob("*/*.yaml")
)


@pytest.fixture(scope="module")
def solo():
    import solo.methods

    from dualgate_solo.solo_adapter import register

    register()
    register()  # idempotent
    return solo


@pytest.fixture(scope="module", autouse=True)
def train_dir(tmp_path_factory):
    """An ImageFolder-shaped directory: solo-learn counts its sub-folders as ``custom`` classes."""
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


def test_register_adds_every_registered_method_and_backbone_once(solo) -> None:
    from solo.methods.base import BaseMethod

    from dualgate_solo.method_registry import METHODS
    from dualgate_solo.solo_adapter.load_guard import GuardedFactory

    assert {name: solo.methods.METHODS[name] for name in METHODS} == {
        name: spec.solo_class_object() for name, spec in METHODS.items()
    }
    assert {"dg_resnet18", "dg_resnet34", "dg_resnet50"} <= set(BaseMethod._BACKBONES)
    resnet18 = BaseMethod._BACKBONES["resnet18"]
    assert isinstance(resnet18, GuardedFactory)
    assert not isinstance(resnet18.factory, GuardedFactory)  # wrapped once over two register()s
    # the package's own backbones check checkpoints themselves: never wrapped, also not by the
    # second register() (start-up hook + ``dualgate-solo run``), which used to refuse their own
    # checkpoints as foreign
    from dualgate_solo.models import BACKBONES

    assert not any(isinstance(BaseMethod._BACKBONES[n], GuardedFactory) for n in BACKBONES)


@pytest.mark.parametrize("config", PRETRAIN_CONFIGS, ids=str)
def test_every_pretrain_config_composes_and_builds(solo, config) -> None:
    cfg = _compose(config)
    assert cfg.data.num_large_crops == 2 and cfg.data.num_small_crops == 0
    if "cpu_quick" not in str(config) and cfg.data.dataset in ("cifar10", "stl10", "imagenet100"):
        # the paper's recipe: peak lr 0.3 x 512/256, LARS eta 0.02, 500 epochs
        assert (
            cfg.optimizer.lr == pytest.approx(0.6)
            and cfg.optimizer.kwargs.eta == 0.02
            and cfg.max_epochs == 500
        )
    blur = [aug.gaussian_blur.prob for aug in cfg.augmentations]
    assert blur == ([0.0, 0.2] if cfg.data.dataset == "cifar100" else [0.0, 0.0])
    explicit_stem = OmegaConf.select(cfg, "backbone.kwargs.stem")
    model = solo.methods.METHODS[cfg.method](cfg)
    if config.parent.name == "cpu":  # one deployed network for every method of the cpu protocol
        deployed = model.backbone.conv1.weight.shape[0]
        if cfg.backbone.name.startswith("slim"):  # the width the method deploys (SACL-XD: slim)
            deployed = round(deployed * cfg.backbone.kwargs.width_mult)
        assert (deployed, cfg.backbone.kwargs.stem, model.backbone.depth) == (16, "cifar", 18)
    if cfg.method in METHODS:
        assert "${" not in cfg.name
        if METHODS[cfg.method].trains_gates:
            assert f"-td{cfg.method_kwargs.target_density}-" in cfg.name
        crop = max(aug.crop_size for aug in cfg.augmentations)
        assert model.backbone.stem == explicit_stem or (
            model.backbone.stem == ("cifar" if crop <= 64 else "imagenet")
        )


@pytest.mark.parametrize("t_d", [0.1, 0.3, 0.5])
def test_target_density_is_selectable_from_the_command_line(solo, t_d) -> None:
    cfg = _compose(
        PRETRAIN_CONFIGS[0].parent / "vicreg_dual_gating", f"method_kwargs.target_density={t_d}"
    )
    model = solo.methods.METHODS[cfg.method](cfg)
    assert model.budget.target_density == t_d and f"-td{t_d}-" in cfg.name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+method_kwargs.target_densty=0.3",
            r"method_kwargs key of vicreg_dual_gating='target_densty' is invalid; "
            r"allowed values: .*target_density",
        ),
        ("method_kwargs.target_density=1.5", r"target_density=1.5 is invalid"),
        (
            "method_kwargs.bound_target=cubic",
            r"bound_target='cubic' is invalid; allowed values: 'sqrt', 'linear'",
        ),
        (
            "backbone.kwargs.dual_bn_scope=none",
            r"backbone.kwargs.dual_bn_scope='none' is invalid; "
            r"allowed values: 'block', 'backbone', 'all'",
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


def test_gate_warmup_trains_only_the_dense_branch_then_starts_the_clock(solo, monkeypatch) -> None:
    warmup = "method_kwargs.gate_warmup_epochs=1"
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating", warmup)
    model = solo.methods.METHODS[cfg.method](cfg)
    model.log_dict = lambda *args, **kwargs: None  # no trainer attached
    views = [torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)]
    gated = {n for n, _ in model.named_parameters() if ".gate." in n or ".gated." in n}
    gated |= {"extra_classifiers.gated.weight", "extra_classifiers.gated.bias"}  # its probe
    for epoch, untouched, validated in ((0, gated, ["dense"]), (1, set(), ["dense", "gated"])):
        monkeypatch.setattr(type(model), "current_epoch", property(lambda self, e=epoch: e))
        model.zero_grad(set_to_none=True)
        model.on_train_epoch_start()
        model.training_step([torch.arange(8), views, torch.arange(8) % 6], 0).backward()
        assert {n for n, p in model.named_parameters() if p.grad is None} == untouched
        assert model.validated_networks() == validated
        assert float(model.anneal_p) == 1.0  # epoch 1 is the annealing clock's epoch 0


def test_a_gate_warmup_as_long_as_the_run_is_refused(solo) -> None:
    warmup = "method_kwargs.gate_warmup_epochs=2"
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating", warmup)  # max_epochs 2
    message = r"^method_kwargs.gate_warmup_epochs=2 is invalid with max_epochs=2; allowed values: 0"
    with pytest.raises(ValueError, match=message):
        solo.methods.METHODS[cfg.method](cfg)


@pytest.mark.parametrize(
    ("overrides", "stem"),
    [
        ((), "cifar"),  # custom data, 32-px crops: the 3x3 stem (not the ImageNet one)
        (("augmentations.0.crop_size=96", "augmentations.1.crop_size=96"), "imagenet"),
        (("augmentations.0.crop_size=64", "augmentations.1.crop_size=64"), "cifar"),
        (("backbone.kwargs.stem=imagenet",), "imagenet"),  # explicit beats the crop size
    ],
)
def test_default_stem_follows_the_training_crop_size(solo, overrides, stem) -> None:
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating", *overrides)
    assert cfg.data.dataset == "custom"
    model = solo.methods.METHODS[cfg.method](cfg)
    assert model.backbone.stem == stem and cfg.backbone.kwargs.stem == stem


def test_null_method_kwarg_fails_instead_of_taking_the_default(solo) -> None:
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating", "method_kwargs.lambda_flops=null")
    with pytest.raises(ValueError, match=r"^method_kwargs.lambda_flops=None is invalid"):
        solo.methods.METHODS[cfg.method](cfg)


@pytest.mark.parametrize("method", list(METHODS))
def test_method_configs_hold_exactly_the_registry_defaults(method) -> None:
    from dualgate_solo.method_registry import get_method

    spec = get_method(method)
    node = OmegaConf.load(REPO / "configs" / "dualgate" / "method" / f"{method}.yaml")
    assert OmegaConf.to_container(node.method_kwargs) == spec.method_defaults()
    kwargs = node.backbone.kwargs
    assert {k: kwargs[k] for k in spec.backbone_defaults()} == spec.backbone_defaults()


def test_run_names_carry_a_fingerprint_of_every_training_option(solo) -> None:
    """Each override changes the name; ``branch`` and the spelling of a float do not."""
    config = PRETRAIN / "cpu_quick" / "vicreg_dual_gating"

    def name(*overrides: str) -> str:
        cfg = _compose(config, *overrides)
        solo.methods.METHODS[cfg.method](cfg)
        return cfg.name

    base = name()
    assert base.startswith("vicreg_dual_gating-cpu_quick-td0.1-") and len(base.split("-")[-1]) == 8
    changed = [
        name(o)
        for o in (
            "method_kwargs.lambda_flops=10",
            "method_kwargs.ratio_source=deterministic",
            "method_kwargs.multiplier_lr=0.05",
            "method_kwargs.symmetric=True",
            "method_kwargs.proj_output_dim=128",
            "backbone.kwargs.width=16",
            "backbone.kwargs.stem=imagenet",
            "backbone.kwargs.dual_bn_scope=backbone",
        )
    ]
    assert len({base, *changed}) == 1 + len(changed)
    assert name("backbone.kwargs.branch=gated") == base
    assert name("method_kwargs.lambda_flops=5") == base  # 5 and 5.0 are one run


def test_a_cfg_read_back_from_args_json_keeps_its_name(solo) -> None:
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_dual_gating")
    solo.methods.METHODS[cfg.method](cfg)
    saved = OmegaConf.create(OmegaConf.to_container(cfg))
    saved.backbone.kwargs.branch = "gated"  # what `dualgate-solo branch-dir` writes
    solo.methods.METHODS[saved.method](saved)
    assert saved.name == cfg.name


def _gated_state(**kwargs) -> dict:
    from dualgate_solo.models import create_backbone

    backbone = create_backbone("dg_resnet18", **kwargs)
    backbone.trained_steps += torch.tensor([8, 8])
    return backbone.state_dict()


def test_solo_learns_own_backbones_refuse_a_gated_checkpoint(solo) -> None:
    """main_linear.py's loading: factory, fc removed, non-strict load of the backbone's tensors."""
    from solo.methods.base import BaseMethod

    from dualgate_solo.validation import UsageError

    backbone = BaseMethod._BACKBONES["resnet18"](method="vicreg")
    backbone.fc = torch.nn.Identity()
    state = _gated_state(stem="imagenet", width=64, dual_bn_scope="block")
    # loadable by name and shape: conv1 (1) + bn1 (5) + two convs in each of 8 blocks (16) = 22
    expected = (
        "checkpoint is a dg_resnet18 (stem='imagenet', width=64, dual_bn_scope='block') "
        "checkpoint (trained branches: dense, gated, as vicreg_dual_gating trains); "
        f"backbone.name=resnet18 would load 22 of its {len(state)} tensors and leave the rest at "
        "random initialisation; use backbone.name=dg_resnet18 backbone.kwargs.stem=imagenet "
        "backbone.kwargs.width=64 backbone.kwargs.dual_bn_scope=block "
        "backbone.kwargs.branch=<dense|gated>"
    )
    with pytest.raises(UsageError) as error:
        backbone.load_state_dict(state, strict=False)
    assert str(error.value) == expected
    # its own checkpoints still load, non-strictly as before
    plain = BaseMethod._BACKBONES["resnet18"](method="vicreg")
    assert plain.load_state_dict(backbone.state_dict(), strict=False).missing_keys == [
        "fc.weight",
        "fc.bias",
    ]


def test_width_and_stem_mismatches_name_the_kwarg_to_set(solo) -> None:
    from solo.methods.base import BaseMethod

    state = _gated_state(stem="cifar", width=8)
    for kwargs, setting in (
        ({"stem": "cifar", "width": 16}, "set backbone.kwargs.width=8"),
        ({"stem": "imagenet", "width": 8}, "set backbone.kwargs.stem=cifar"),
    ):
        backbone = BaseMethod._BACKBONES["dg_resnet18"](method="vicreg_dual_gating", **kwargs)
        with pytest.raises(
            ValueError, match=f"checkpoint does not match the backbone: .*; {setting}$"
        ):
            backbone.load_state_dict(state, strict=False)


@pytest.fixture
def pipeline_state(solo, monkeypatch):
    """Fresh custom-pipeline state: no recorded run, variable unset; the builder restored after."""
    from solo.data import classification_dataloader as loader

    from dualgate_solo.solo_adapter import custom_pipeline

    shipped = getattr(loader.build_custom_pipeline, "shipped", loader.build_custom_pipeline)
    monkeypatch.delenv(custom_pipeline.ENV_VAR, raising=False)
    monkeypatch.setattr(custom_pipeline, "_run_requests", None)
    yield loader, custom_pipeline
    loader.build_custom_pipeline = shipped
    custom_pipeline.install_custom_pipeline()


def _val_transform(loader, dataset: str = "custom") -> str:
    return repr(loader.prepare_transforms(dataset)[1])


def test_custom_pipeline_is_solo_learns_own_unless_asked(pipeline_state, monkeypatch) -> None:
    loader, custom_pipeline = pipeline_state
    assert "CenterCrop(size=(224, 224))" in _val_transform(loader)
    monkeypatch.setenv(custom_pipeline.ENV_VAR, "cifar10")
    custom, cifar = loader.prepare_transforms("custom"), loader.prepare_transforms("cifar10")
    assert [repr(t) for t in custom] == [repr(t) for t in cifar]
    assert "Resize" not in repr(custom[1]) and "0.4914" in repr(custom[1])
    assert loader.prepare_transforms("imagenet") is not None  # no recursion through the builder


def test_custom_pipeline_is_recorded_in_the_run_cfg_and_restored(solo, pipeline_state) -> None:
    loader, custom_pipeline = pipeline_state
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg")  # solo-learn's own method, cifar_jpg data
    solo.methods.METHODS[cfg.method](cfg)
    assert cfg.data.custom_pipeline == "cifar10" and "0.4914" in _val_transform(loader)
    # a later process (main_knn) rebuilds the model from args.json: the record is restored
    custom_pipeline._run_requests = None
    custom_pipeline.record(OmegaConf.create(OmegaConf.to_container(cfg)))
    assert "0.4914" in _val_transform(loader)
    # nothing asked: solo-learn's own builder, recorded as such
    unasked = _compose(PRETRAIN / "cpu_quick" / "vicreg", "data.custom_pipeline=null")
    custom_pipeline.record(unasked)
    assert unasked.data.custom_pipeline == "custom"
    assert "CenterCrop(size=(224, 224))" in _val_transform(loader)


def _normalize(transform) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from torchvision import transforms

    steps = [t for t in transform.transforms if isinstance(t, transforms.Normalize)]
    assert len(steps) == 1, transform
    return tuple(map(float, steps[0].mean)), tuple(map(float, steps[0].std))


def test_pretraining_crops_normalize_like_the_evaluation_pipeline(solo, pipeline_state) -> None:
    from solo.data.pretrain_dataloader import build_transform_pipeline

    loader, _ = pipeline_state
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg")  # custom data, custom_pipeline cifar10
    solo.methods.METHODS[cfg.method](cfg)
    evaluation = _normalize(loader.prepare_transforms("custom")[1])
    assert evaluation == _normalize(loader.prepare_transforms("cifar10")[1])
    assert evaluation[0] == pytest.approx((0.4914, 0.4822, 0.4465))  # solo-learn's CIFAR stats
    for crop in cfg.augmentations:
        assert _normalize(build_transform_pipeline(cfg.data.dataset, crop)) == evaluation
    # a crop's own statistics are kept; solo-learn's 224-px custom pipeline adds none (ImageNet's)
    own = _compose(PRETRAIN / "cpu_quick" / "vicreg", "++augmentations.0.mean=[0.5,0.5,0.5]")
    solo.methods.METHODS[own.method](own)
    assert list(own.augmentations[0].mean) == [0.5, 0.5, 0.5]
    assert list(own.augmentations[1].mean) == list(evaluation[0])
    shipped = _compose(PRETRAIN / "cpu_quick" / "vicreg", "data.custom_pipeline=custom")
    solo.methods.METHODS[shipped.method](shipped)
    assert all(crop.get("mean") is None for crop in shipped.augmentations)


def test_linear_probe_inherits_the_pretraining_runs_pipeline(pipeline_state, tmp_path) -> None:
    _, custom_pipeline = pipeline_state
    (tmp_path / "args.json").write_text('{"data": {"custom_pipeline": "stl10"}}')
    cfg = OmegaConf.create(
        {"data": {"dataset": "custom"}, "pretrained_feature_extractor": str(tmp_path / "a.ckpt")}
    )
    custom_pipeline.record(cfg)
    assert cfg.data.custom_pipeline == "stl10" and custom_pipeline.active_pipeline() == "stl10"


def test_bad_or_conflicting_pipeline_fails_only_runs_on_custom_data(
    solo, pipeline_state, monkeypatch
) -> None:
    from dualgate_solo.solo_adapter import register
    from dualgate_solo.validation import UsageError

    loader, custom_pipeline = pipeline_state
    env = custom_pipeline.ENV_VAR
    monkeypatch.setenv(env, "cifar")
    register()  # importing and registering never read the choice
    cfg = _compose(PRETRAIN / "cifar10" / "vicreg_dual_gating")
    solo.methods.METHODS[cfg.method](cfg)  # a run on a built-in dataset
    assert "0.4914" in _val_transform(loader, "cifar10")  # builds the custom pipeline too
    _, refused = loader.prepare_transforms("custom")
    with pytest.raises(UsageError, match=rf"^\${env}='cifar' is invalid; allowed values: 'custom'"):
        refused(Image.new("RGB", (32, 32)))
    monkeypatch.setenv(env, "imagenet")
    cfg = _compose(PRETRAIN / "cpu_quick" / "vicreg_gating")  # cifar_jpg: custom_pipeline cifar10
    with pytest.raises(
        UsageError, match=rf"data.custom_pipeline='cifar10', \${env}='imagenet'; allowed"
    ):
        solo.methods.METHODS[cfg.method](cfg)


def test_a_method_name_solo_learn_already_has_is_refused_in_one_line(solo, monkeypatch) -> None:
    from dualgate_solo.solo_adapter import register
    from dualgate_solo.validation import UsageError

    class Other:
        pass

    monkeypatch.setitem(solo.methods.METHODS, "vicreg_gating", Other)
    with pytest.raises(UsageError, match="'vicreg_gating' is already registered in solo-learn by"):
        register()
    assert solo.methods.METHODS["vicreg_gating"] is Other  # theirs is left in place
