"""Weighted k-NN top-1 accuracy on frozen features.

Euclidean distance with weights ``1 / (distance + 1e-5)``, as solo-learn's ``WeightedKNNClassifier``
(``k = 1`` reproduces the paper's released k-NN JSONs, ``k = 20`` is the online monitor).

Shapes: ``train_feats [N, D]``, ``train_labels [N]``, ``test_feats [M, D]``, ``test_labels [M]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def knn_top1(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    k: int = 20,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy (in %) of a distance-weighted k-NN vote."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train_feats.shape[0])
    correct = 0
    for start in range(0, test_feats.shape[0], chunk_size):
        queries = test_feats[start : start + chunk_size]
        distances = torch.cdist(queries.float(), train_feats.float())
        nearest, index = distances.topk(k, dim=1, largest=False)
        votes = torch.zeros(queries.shape[0], num_classes, dtype=torch.float64)
        votes.scatter_add_(1, train_labels[index].long(), (1.0 / (nearest + 1e-5)).double())
        correct += int((votes.argmax(1) == test_labels[start : start + chunk_size]).sum())
    return 100.0 * correct / test_feats.shape[0]
