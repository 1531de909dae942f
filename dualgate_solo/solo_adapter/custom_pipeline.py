"""Which of solo-learn's pipelines transforms ``data.dataset: custom`` (ImageFolder) data.

solo-learn 1.0.6 transforms custom data for main_pretrain's online validation, ``main_linear.py``,
``main_knn.py`` and ``main_umap.py`` with ``build_custom_pipeline()``: RandomResizedCrop 224 /
Resize 256 + CenterCrop 224, ImageNet statistics; no config key changes it. For CIFAR stored as
32-px JPEGs that evaluates a network pre-trained at 32 px on 7x upsampled images: a train/test
resolution mismatch that costs accuracy and 49x the MACs.

This module makes the choice a config key, ``data.custom_pipeline``: one of :data:`ALLOWED`,
``custom`` being solo-learn's own builder as shipped and any other name that dataset's pipeline in
solo-learn (``cifar10``: RandomResizedCrop 32 + flip / ToTensor, CIFAR mean and std). A run asks
for one in its config or with the environment variable ``DUALGATE_CUSTOM_PIPELINE``; a linear
probe also inherits the pre-training run's choice (the ``args.json`` beside
``pretrained_feature_extractor``). Every run on custom data records the pipeline it uses in its
cfg, hence in its ``args.json`` (``custom`` when nothing was asked), and ``main_knn.py`` /
``main_umap.py`` restore it from the ``args.json`` they load.

Requests that disagree, or a name not in :data:`ALLOWED`, raise :class:`UsageError` naming every
source, but only in a run that transforms custom data: at cfg time when the run's own dataset is
``custom``, otherwise when the first custom image is transformed (solo-learn builds every
dataset's pipeline, custom included, whatever the dataset). Importing solo-learn, and runs on its
built-in datasets, are never affected. :func:`record` runs on every run's cfg (see
:mod:`dualgate_solo.solo_adapter.run_cfg`); :func:`install_custom_pipeline` replaces solo-learn's
builder.

Pre-training normalizes like evaluation: solo-learn's pre-training transforms normalize ``custom``
data with each crop's ``mean``/``std`` keys, ImageNet's statistics when they are absent, whatever
the evaluation pipeline. On custom data with a named pipeline, :func:`record` fills the absent keys
of every ``augmentations`` entry with the ``Normalize`` statistics of that pipeline's evaluation
transforms (:func:`evaluation_normalization`); values a run sets itself are kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dualgate_solo.choices import CUSTOM_PIPELINE_ENV_VAR
from dualgate_solo.validation import UsageError, check_choice

ENV_VAR = CUSTOM_PIPELINE_ENV_VAR
CONFIG_KEY = "data.custom_pipeline"
#: ``custom``: solo-learn's own ``build_custom_pipeline`` (224 px); others: that dataset's pipeline.
ALLOWED = ("custom", "cifar10", "cifar100", "stl10", "imagenet100", "imagenet")
SHIPPED = "custom"

#: (source, value) pairs of the current run, set by :func:`record`; ``None``: no run recorded yet.
_run_requests: list[tuple[str, Any]] | None = None


def _pretraining_request(cfg: DictConfig) -> list[tuple[str, Any]]:
    """The choice recorded by the pre-training run of a linear probe's checkpoint, if any."""
    checkpoint = OmegaConf.select(cfg, "pretrained_feature_extractor", default=None)
    if not isinstance(checkpoint, str):
        return []
    args_file = Path(checkpoint).parent / "args.json"
    if not args_file.is_file():
        return []
    value = json.loads(args_file.read_text()).get("data", {}).get("custom_pipeline")
    return [(f"{CONFIG_KEY} of the pre-training run ({args_file})", value)] if value else []


def _env_request() -> list[tuple[str, Any]]:
    value = os.environ.get(ENV_VAR, "").strip()
    return [(f"${ENV_VAR}", value)] if value else []


def requests(cfg: DictConfig | None = None) -> list[tuple[str, Any]]:
    """Every (source, value) that asks for a pipeline: the cfg key, the variable, the pre-training
    run's record (for a linear probe)."""
    found = []
    if cfg is not None:
        value = OmegaConf.select(cfg, CONFIG_KEY, default=None)
        if value is not None:
            found.append((CONFIG_KEY, value))
    found += _env_request()
    if cfg is not None:
        found += _pretraining_request(cfg)
    return found


def resolve(found: list[tuple[str, Any]]) -> str:
    """The one pipeline ``found`` asks for (:data:`SHIPPED` when none).

    Raises:
        UsageError: a value not in :data:`ALLOWED`, or sources asking for different pipelines.
    """
    for source, value in found:
        check_choice(source, value, ALLOWED)
    if len({value for _, value in found}) > 1:
        asked = ", ".join(f"{source}={value!r}" for source, value in found)
        raise UsageError(
            f"the custom-data pipeline is asked for inconsistently: {asked}; allowed values: one "
            f"of {', '.join(ALLOWED)} from all of them (unset ${ENV_VAR} to use the recorded one)"
        )
    return found[0][1] if found else SHIPPED


def record(cfg: DictConfig) -> None:
    """Remember ``cfg``'s requests for this process; on custom data, resolve and record the choice.

    Called after solo-learn's own cfg defaults of every method and linear probe, i.e. in
    main_pretrain/main_linear with the run's cfg and in main_knn/main_umap with the loaded
    ``args.json``.
    """
    global _run_requests
    _run_requests = requests(cfg)
    if OmegaConf.select(cfg, "data.dataset", default=None) == "custom":
        name = cfg.data.custom_pipeline = resolve(_run_requests)
        if name != SHIPPED:
            normalize_crops_like_evaluation(cfg, *evaluation_normalization(name))


def normalize_crops_like_evaluation(
    cfg: DictConfig, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    """Set ``mean``/``std`` of every pre-training crop in ``cfg.augmentations`` that has none."""
    for crop in OmegaConf.select(cfg, "augmentations", default=None) or ():
        with open_dict(crop):
            for key, value in (("mean", mean), ("std", std)):
                if crop.get(key) is None:
                    crop[key] = list(value)


def _solo_transforms(name: str) -> tuple[Any, Any]:
    """solo-learn's (train, val) classification transforms of dataset ``name``.

    ``prepare_transforms`` builds every dataset's pipeline, custom included: solo-learn's own
    custom builder is restored while it runs.
    """
    from solo.data import classification_dataloader as loader

    installed = loader.build_custom_pipeline
    loader.build_custom_pipeline = getattr(installed, "shipped", installed)
    try:
        return loader.prepare_transforms(name)
    finally:
        loader.build_custom_pipeline = installed


def evaluation_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of the ``Normalize`` in solo-learn's evaluation transforms of ``name``."""
    from torchvision import transforms

    _, val = _solo_transforms(name)
    for step in val.transforms:
        if isinstance(step, transforms.Normalize):
            return tuple(map(float, step.mean)), tuple(map(float, step.std))
    raise RuntimeError(f"solo-learn's {name} evaluation transforms have no Normalize: {val}")


def active_pipeline() -> str:
    """The pipeline for custom data in this process: the recorded run's, else the variable's."""
    return resolve(_run_requests if _run_requests is not None else _env_request())


class RefusedPipeline:
    """Stands in for custom-data transforms that cannot be built: raises on first use.

    solo-learn builds the custom pipeline even for runs on its own datasets, which must not fail.
    """

    def __init__(self, message: str):
        self.message = message

    def __call__(self, image: Any) -> Any:
        raise UsageError(self.message)

    def __repr__(self) -> str:
        return f"RefusedPipeline({self.message!r})"


def install_custom_pipeline() -> None:
    """Replace ``solo.data.classification_dataloader.build_custom_pipeline`` (idempotent)."""
    from solo.data import classification_dataloader as loader

    original = getattr(loader.build_custom_pipeline, "shipped", loader.build_custom_pipeline)

    def build_custom_pipeline() -> dict:
        try:
            name = active_pipeline()
        except UsageError as error:
            refused = RefusedPipeline(str(error))
            return {"T_train": refused, "T_val": refused}
        if name == SHIPPED:
            return original()
        train, val = _solo_transforms(name)
        return {"T_train": train, "T_val": val}

    build_custom_pipeline.shipped = original
    build_custom_pipeline.__doc__ = (
        f"solo-learn's pipeline named by {CONFIG_KEY} / ${ENV_VAR} (dualgate_solo)."
    )
    loader.build_custom_pipeline = build_custom_pipeline
