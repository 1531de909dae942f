"""UMAP of the dense and the gated branch side by side, from one checkpoint (paper Fig. 2).

Both branches embed the same images (deterministic gates); umap-learn projects each branch's
features to 2-D and the two scatter plots, coloured by class, share one figure. solo-learn's
``OfflineUMAP``/``AutoUMAP`` plot one branch at a time (``main_umap.py`` per branch directory);
this puts both in one picture. Command line: ``dualgate-solo umap``
(:mod:`dualgate_solo.commands.umap`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from dualgate_solo.models import GatedResNet


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
        with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded on purpose
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
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
