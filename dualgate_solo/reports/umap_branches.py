"""UMAP of the dense and the gated branch side by side, from one checkpoint (paper Fig. 2).

Both branches embed the same images (deterministic gates); umap-learn projects each branch's
features to 2-D and the two scatter plots, coloured by class, share one figure. solo-learn's
``OfflineUMAP``/``AutoUMAP`` plot one branch at a time (``main_umap.py`` per branch directory);
this puts both in one picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dualgate_solo.models import GatedResNet
from dualgate_solo.reports.eval_data import DATASETS


@torch.no_grad()
def branch_features(
    backbone: GatedResNet, batches, max_samples: int | None = None, device: str = "cpu"
):
    """Features ``{branch: [N, D]}`` of both branches and labels ``[N]`` for the same images."""
    backbone.eval()
    feats, labels, seen = {"dense": [], "gated": []}, [], 0
    for images, targets in batches:
        images = images.to(device)
        dual = backbone.forward_dual(images)
        feats["dense"].append(dual.dense.feats.cpu())
        feats["gated"].append(dual.gated.feats.cpu())
        labels.append(targets)
        seen += images.shape[0]
        if max_samples is not None and seen >= max_samples:
            break
    stacked = {k: torch.cat(v)[:max_samples].numpy() for k, v in feats.items()}
    return stacked, torch.cat(labels)[:max_samples].numpy()


def plot_umap_branches(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    png_path: Path,
    seed: int = 0,
    class_names=None,
) -> dict[str, np.ndarray]:
    """Fit one 2-D UMAP per branch and save the side-by-side scatter; returns the embeddings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import umap

    embeddings = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, branch in zip(axes, ("dense", "gated")):
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(labels) - 1))
        embeddings[branch] = reducer.fit_transform(features[branch])
        scatter = ax.scatter(*embeddings[branch].T, c=labels, cmap="tab10", s=4, alpha=0.8)
        ax.set_title(f"{branch} branch")
        ax.set_xticks([]), ax.set_yticks([])
    handles, _ = scatter.legend_elements()
    names = class_names or [str(c) for c in sorted(set(labels.tolist()))]
    fig.legend(handles, names, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return embeddings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="a .ckpt/.pt file or a solo-learn run directory"
    )
    parser.add_argument("--data", required=True, type=Path, help="ImageFolder split")
    parser.add_argument("--dataset", choices=DATASETS, default=None)
    parser.add_argument("--max-samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("outputs/umap_branches.png"))


def run(args: argparse.Namespace) -> None:
    from dualgate_solo.checkpoint import load_backbone
    from dualgate_solo.reports.eval_data import image_folder_split, loader

    loaded = load_backbone(args.checkpoint)
    data_cfg = loaded.args.get("data", {})
    split = image_folder_split(
        args.data, args.dataset or data_cfg.get("dataset") or "custom", data_cfg.get("num_classes")
    )
    # a fixed-seed subset spread over all classes rather than the first classes of the folder
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[
        : args.max_samples
    ]
    subset = torch.utils.data.Subset(split, index.tolist())
    features, labels = branch_features(
        loaded.backbone.to(args.device),
        loader(subset, args.batch_size),
        args.max_samples,
        args.device,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_umap_branches(features, labels, args.out, class_names=split.classes)
    print(f"UMAP of both branches ({len(labels)} images) -> {args.out}")
