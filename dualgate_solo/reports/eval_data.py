"""Evaluation splits as solo-learn's validation transforms see them (spec §6.3, no augmentation).

``eval_transform(dataset)`` mirrors ``solo.data.classification_dataloader.prepare_transforms``'s
``T_val`` for the dataset names solo-learn knows (CIFAR: ToTensor + Normalize; STL-10: resize
96; ImageNet-style and ``custom``: resize 256, centre-crop 224); ``image_folder_split`` reads an
ImageFolder tree (one sub-folder per class), e.g. ``cifar10_jpg/test`` of the offline data.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from dualgate_solo.validation import check_choice

CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
DATASETS = ("cifar10", "cifar100", "stl10", "imagenet", "imagenet100", "custom", "cifar_jpg")


def eval_transform(dataset: str) -> transforms.Compose:
    """Validation transform of ``dataset`` (``cifar_jpg``: CIFAR transforms on an ImageFolder copy)."""
    check_choice("dataset", dataset, DATASETS)
    if dataset in ("cifar10", "cifar100", "cifar_jpg"):
        return transforms.Compose([transforms.ToTensor(), transforms.Normalize(*CIFAR_STATS)])
    if dataset == "stl10":
        return transforms.Compose(
            [transforms.Resize((96, 96)), transforms.ToTensor(), transforms.Normalize(*CIFAR_STATS)]
        )
    return transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(*IMAGENET_STATS),
        ]
    )


def image_folder_split(
    path: str | Path, dataset: str, expected_classes: int | None = None
) -> Dataset:
    """An ImageFolder split with ``dataset``'s validation transform.

    Raises ``ValueError`` when ``path`` is not an ImageFolder tree or its class count differs from
    ``expected_classes`` (the checkpoint's ``data.num_classes``).
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(
            f"data={str(path)!r} is not a directory; expected an ImageFolder split (one sub-folder per class)"
        )
    try:
        split = datasets.ImageFolder(str(path), transform=eval_transform(dataset))
    except (FileNotFoundError, RuntimeError) as error:
        raise ValueError(f"data={str(path)!r} is not an ImageFolder split: {error}") from error
    if expected_classes is not None and len(split.classes) != expected_classes:
        raise ValueError(
            f"data={str(path)!r} has {len(split.classes)} classes, but the checkpoint was trained "
            f"with data.num_classes={expected_classes}: wrong split?"
        )
    return split


def loader(split: Dataset, batch_size: int = 256, num_workers: int = 2) -> DataLoader:
    """A deterministic (unshuffled) loader over ``split``."""
    return DataLoader(split, batch_size=batch_size, shuffle=False, num_workers=num_workers)
