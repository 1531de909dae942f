"""Evaluation splits as solo-learn's validation transforms see them (no augmentation).

``eval_transform(dataset)`` mirrors ``solo.data.classification_dataloader.prepare_transforms``'s
``T_val`` for the dataset names solo-learn knows (CIFAR: ToTensor + Normalize; STL-10: resize
96; ImageNet-style and ``custom``: resize 256, centre-crop 224) and fixes the image side to
:data:`~dualgate_solo.choices.DATASET_INPUT_SIZES` (a no-op on 32-px CIFAR images), so the input
size of every cost figure follows from the dataset name alone. ``image_folder_split`` reads an
ImageFolder tree (one sub-folder per class), e.g. ``cifar10_jpg/test`` of the offline data.
:func:`evaluation_dataset` decides the dataset, hence the input size, from ``--dataset`` or the
run's ``args.json``, and refuses to guess when neither says it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from dualgate_solo.choices import DATASET_INPUT_SIZES, DATASETS
from dualgate_solo.solo_adapter.custom_pipeline import CONFIG_KEY
from dualgate_solo.validation import UsageError, check_choice

CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: ``args.json`` key (under ``data``) naming the solo-learn pipeline a ``custom`` run was
#: evaluated with (``$DUALGATE_CUSTOM_PIPELINE``)
#: crop size of a ``custom`` run without a recorded pipeline -> the dataset evaluated at that size
CUSTOM_CROP_DATASETS = {32: "cifar_jpg", 224: "custom"}


def eval_transform(dataset: str) -> transforms.Compose:
    """Validation transform of ``dataset`` (``cifar_jpg``: CIFAR's, for an ImageFolder copy)."""
    check_choice("dataset", dataset, DATASETS)
    side = DATASET_INPUT_SIZES[dataset]
    if dataset in ("cifar10", "cifar100", "cifar_jpg"):
        resize, stats = [transforms.Resize(side), transforms.CenterCrop(side)], CIFAR_STATS
    elif dataset == "stl10":
        resize, stats = [transforms.Resize((side, side))], CIFAR_STATS
    else:
        resize, stats = [transforms.Resize(256), transforms.CenterCrop(side)], IMAGENET_STATS
    return transforms.Compose([*resize, transforms.ToTensor(), transforms.Normalize(*stats)])


def evaluation_dataset(
    dataset: str | None, run_args: dict[str, Any], checkpoint: str | Path
) -> tuple[str, str]:
    """The evaluation dataset of a checkpoint and where that came from: ``(name, source)``.

    ``dataset`` (the ``--dataset`` option) wins. Otherwise the run's ``args.json``: its
    ``data.dataset``; for ``custom`` data the pipeline recorded under
    ``data.custom_pipeline``, else the first augmentation's ``crop_size`` (32 px: ``cifar_jpg``,
    224 px: solo-learn's ``custom`` transform).

    Raises:
        UsageError: naming ``--dataset`` when it is needed (no ``args.json``, or a ``custom`` run
            at another crop size) or when a recorded name is not one of :data:`DATASETS`.
    """
    allowed = ", ".join(DATASETS)
    if dataset is not None:
        return check_choice("--dataset", dataset, DATASETS), "--dataset"
    data = run_args.get("data") or {}
    recorded = data.get("dataset")
    if recorded is None:
        raise UsageError(
            f"--dataset is required: checkpoint {str(checkpoint)!r} has no args.json beside it, "
            f"so its input size is unknown; allowed values: {allowed}"
        )
    if recorded != "custom":
        name = check_choice("data.dataset (args.json)", recorded, DATASETS)
        return name, f"args.json data.dataset={recorded!r}"
    pipeline = data.get(CONFIG_KEY.removeprefix("data."))
    if pipeline:
        name = check_choice(f"{CONFIG_KEY} (args.json)", pipeline, DATASETS)
        return name, f"args.json data.dataset='custom' with {CONFIG_KEY}={pipeline!r}"
    augmentations = run_args.get("augmentations") or [{}]
    crop = augmentations[0].get("crop_size")
    if crop not in CUSTOM_CROP_DATASETS:
        raise UsageError(
            f"--dataset is required: checkpoint {str(checkpoint)!r} was trained on custom data "
            f"at crop_size={crop!r}, which names no evaluation input size; allowed values: "
            f"{allowed}"
        )
    return CUSTOM_CROP_DATASETS[crop], f"args.json data.dataset='custom' with crop_size={crop}"


def unreadable_reason(path: str) -> str | None:
    """Why PIL cannot decode the image file ``path`` (``None``: it can).

    JPEGs are decoded at reduced scale (``draft``), which still reads their whole data, so a
    truncated file fails here as it would in the loader.
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", (1, 1))
            image.load()
    except UnidentifiedImageError:
        return "not an image file PIL can identify"
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'corrupt'}"
    return None


def drop_unreadable(split: datasets.ImageFolder, option: str, skip: bool) -> None:
    """Check that every image of ``split`` decodes; refuse, or (``skip``) leave out, the others.

    Raises:
        UsageError: naming ``option``, the count, the first unreadable file and its reason, when
            ``skip`` is false; or when no readable image is left.
    """
    files = [file for file, _ in split.samples]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(unreadable_reason, files))
    bad = [(file, reason) for file, reason in zip(files, reasons) if reason is not None]
    if not bad:
        return
    where = f"{option}={str(split.root)!r}"
    first = f"first: {bad[0][0]!r} ({bad[0][1]})"
    if not skip:
        raise UsageError(
            f"{where} holds {len(bad)} unreadable image file(s) of {len(files)}, {first}; "
            "allowed values: a split of readable images, or add --skip-unreadable to leave them out"
        )
    if len(bad) == len(files):
        raise UsageError(
            f"{where} holds no readable image ({first}); allowed values: a split of images"
        )
    split.samples = [s for s, reason in zip(split.samples, reasons) if reason is None]
    split.imgs, split.targets = split.samples, [label for _, label in split.samples]
    print(f"--skip-unreadable: left out {len(bad)} of {len(files)} files of {where}, {first}")


def image_folder_split(
    path: str | Path,
    dataset: str,
    expected_classes: int | None = None,
    skip_unreadable: bool = False,
) -> Dataset:
    """An ImageFolder split with ``dataset``'s validation transform, every image checked to
    decode (:func:`drop_unreadable`: refused, or left out with ``skip_unreadable``).

    Raises ``UsageError`` naming ``--data`` when ``path`` is not an ImageFolder tree, holds an
    unreadable image, or its class count differs from ``expected_classes`` (the checkpoint's
    ``data.num_classes``).
    """
    path = Path(path)
    if not path.is_dir():
        raise UsageError(
            f"--data={str(path)!r} is not a directory; allowed values: an ImageFolder split "
            "(one sub-folder of images per class)"
        )
    try:
        split = datasets.ImageFolder(str(path), transform=eval_transform(dataset))
    except (FileNotFoundError, RuntimeError) as error:
        reason = str(error).splitlines()[0]
        raise UsageError(
            f"--data={str(path)!r} is not an ImageFolder split ({reason}); allowed values: a "
            "directory with one sub-folder of images per class"
        ) from error
    drop_unreadable(split, "--data", skip_unreadable)
    if expected_classes is not None and len(split.classes) != expected_classes:
        raise UsageError(
            f"--data={str(path)!r} has {len(split.classes)} classes, but the checkpoint was "
            f"trained with data.num_classes={expected_classes}: wrong split?"
        )
    return split


def loader(split: Dataset, batch_size: int = 256, num_workers: int = 2) -> DataLoader:
    """A deterministic (unshuffled) loader over ``split``."""
    return DataLoader(split, batch_size=batch_size, shuffle=False, num_workers=num_workers)
