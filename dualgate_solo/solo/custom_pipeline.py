"""Opt-in: give solo-learn's ``custom`` (ImageFolder) data the pipeline of a named dataset.

solo-learn 1.0.6 transforms ``data.dataset: custom`` for main_pretrain's online validation,
``main_linear.py`` and ``main_knn.py`` with ``build_custom_pipeline()``: RandomResizedCrop 224 /
Resize 256 + CenterCrop 224, ImageNet statistics; no config key changes it. For CIFAR stored as
32-px JPEGs (``../shared/data``) that evaluates a network pre-trained at 32 px on 7x upsampled
images: a train/test resolution mismatch that costs accuracy and 49x the MACs.
solo-learn's docstring asks users to re-write that function for other data; setting
``DUALGATE_CUSTOM_PIPELINE=cifar10`` (or another name below) does so, returning solo-learn's own
pipeline for that dataset (for CIFAR: RandomResizedCrop 32 + flip / ToTensor, CIFAR mean/std).
Unset, solo-learn behaves as shipped. Applied by :func:`dualgate_solo.solo.register`.
"""

from __future__ import annotations

import os

ENV_VAR = "DUALGATE_CUSTOM_PIPELINE"
ALLOWED = ("cifar10", "cifar100", "stl10", "imagenet100", "imagenet")


def requested_pipeline() -> str | None:
    """The dataset named by ``$DUALGATE_CUSTOM_PIPELINE``, ``None`` when unset; raises on other names."""
    name = os.environ.get(ENV_VAR, "").strip()
    if not name:
        return None
    if name not in ALLOWED:
        raise ValueError(
            f"{ENV_VAR}={name!r} is not a solo-learn dataset pipeline; allowed: {', '.join(ALLOWED)} (or unset)"
        )
    return name


def install_custom_pipeline() -> None:
    """Replace ``solo.data.classification_dataloader.build_custom_pipeline`` when the variable is set."""
    name = requested_pipeline()
    if name is None:
        return
    from solo.data import classification_dataloader as loader

    original = getattr(loader.build_custom_pipeline, "shipped", loader.build_custom_pipeline)

    def build_custom_pipeline() -> dict:
        # prepare_transforms builds every dataset's pipeline, custom included: restore solo-learn's
        # own builder while it runs, then pick the named dataset's train/val transforms.
        loader.build_custom_pipeline = original
        try:
            train, val = loader.prepare_transforms(name)
        finally:
            loader.build_custom_pipeline = build_custom_pipeline
        return {"T_train": train, "T_val": val}

    build_custom_pipeline.shipped = original
    build_custom_pipeline.__doc__ = (
        f"solo-learn's {name!r} pipeline for custom data (set by ${ENV_VAR})."
    )
    loader.build_custom_pipeline = build_custom_pipeline
