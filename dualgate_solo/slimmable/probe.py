"""Switchable linear probe of a slimmable backbone (SlimCLR, Zhao et al., IJCV 2024).

The backbone is frozen and kept in eval mode, so every width runs with its own, frozen BatchNorm
statistics. Each probed width ``w`` gets its own independent ``nn.Linear(F(w), num_classes)``
(a single weight-shared slimmable classifier is what SlimCLR argues against), and all heads
train together on the sum of their losses, with in-place distillation from the full width:

    L = CE(l_1, y) + sum_{w < 1} 1/2 * (CE(l_w, y) + H(softmax(sg(l_1)), l_w)),
    H(p, l) = -1/N sum_n sum_k p_nk log softmax(l_n)_k,

where ``l_w [N, K]`` are width ``w``'s logits and ``sg`` stops the gradient (the full-width head
learns from the labels only). Without the full width among the probed ones every head gets plain
cross-entropy.

The backbone runs once per split (:func:`extract_features`, every width per batch); the heads
then train on the cached features (:func:`train_probe`), so a probe of many epochs costs one
backbone pass. Framework-free: torch only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder
from tqdm.auto import tqdm

from dualgate_solo.method_registry import width_label
from dualgate_solo.slimmable.resnet import SlimResNet

#: weight of each narrower width's (CE + distillation) pair
NARROW_WEIGHT = 0.5


class ProbeLoss(NamedTuple):
    """``total`` (scalar, what is minimised) and ``per_width`` (each head's term, same order)."""

    total: Tensor
    per_width: list[Tensor]


class WidthFeatures(NamedTuple):
    """A split's cached features: ``feats[i] [N, F(widths[i])]`` and ``labels [N]``."""

    feats: list[Tensor]
    labels: Tensor


class WidthEval(NamedTuple):
    """One head on a split: ``top1`` (%) and ``loss`` (mean cross-entropy)."""

    top1: float
    loss: float


def trained_widths(backbone: SlimResNet) -> tuple[float, ...]:
    """Widths of ``width_mult_list`` that ran in training (all of them when nothing was counted,
    e.g. a state dict saved before training)."""
    steps = backbone.trained_steps.tolist()
    if not any(steps):
        return backbone.widths
    return tuple(w for w, n in zip(backbone.widths, steps) if n > 0)


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """``-1/N sum_n sum_k p_nk log softmax(logits_n)_k`` for ``logits, target_probs [N, K]``."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def switchable_probe_loss(
    logits: Sequence[Tensor], labels: Tensor, widths: Sequence[float]
) -> ProbeLoss:
    """The probe objective of the module docstring.

    Args:
        logits: ``[N, K]`` per head, in the order of ``widths``.
        labels: ``[N]`` class indices.
        widths: the heads' width multipliers; the full width (1.0), if present, is the teacher.
    """
    if 1.0 not in widths:
        per_width = [F.cross_entropy(logit, labels) for logit in logits]
        return ProbeLoss(torch.stack(per_width).sum(), per_width)
    teacher = F.softmax(logits[list(widths).index(1.0)].detach(), dim=1)
    per_width = [
        F.cross_entropy(logit, labels)
        if w == 1.0
        else NARROW_WEIGHT * (F.cross_entropy(logit, labels) + soft_cross_entropy(logit, teacher))
        for logit, w in zip(logits, widths)
    ]
    return ProbeLoss(torch.stack(per_width).sum(), per_width)


def describe_objective(widths: Sequence[float]) -> str:
    """One line saying which form of :func:`switchable_probe_loss` ``widths`` train with."""
    if 1.0 not in widths:
        return "plain CE for every width (1.0 is not probed, so no in-place distillation)"
    return (
        f"full width: CE; other widths: {NARROW_WEIGHT:g} * (CE + soft-CE to the detached "
        "softmax of the full-width head)"
    )


class SwitchableLinearProbe(nn.Module):
    """One independent ``nn.Linear(F(w), num_classes)`` per probed width.

    ``forward(feats)`` maps ``feats[i] [N, F(widths[i])]`` to logits ``[N, num_classes]`` each.
    """

    def __init__(self, backbone: SlimResNet, widths: Sequence[float], num_classes: int):
        super().__init__()
        self.widths = tuple(widths)
        self.heads = nn.ModuleList(
            nn.Linear(backbone.features_at(w), num_classes) for w in self.widths
        )

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        return [head(f) for head, f in zip(self.heads, feats)]


def per_class_subset(split: ImageFolder, per_class: int | None) -> ImageFolder | Subset:
    """The first ``per_class`` images of every class, in the split's (sorted) file order; the
    whole split for ``None``. Classes with fewer images keep all of theirs."""
    if per_class is None:
        return split
    taken: dict[int, int] = {}
    indices = []
    for index, label in enumerate(split.targets):
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            indices.append(index)
    return Subset(split, indices)


@torch.no_grad()
def extract_features(
    backbone: SlimResNet,
    batches: DataLoader,
    widths: Sequence[float],
    device: str | torch.device = "cpu",
    desc: str = "features",
) -> WidthFeatures:
    """Every width's pooled features of every image, the backbone frozen in eval mode.

    Returns features on the CPU, ``[N, F(w)]`` per width in the order of ``widths``.
    """
    backbone.eval()
    feats: list[list[Tensor]] = [[] for _ in widths]
    labels = []
    for images, targets in tqdm(batches, desc=desc, unit="batch"):
        outputs = backbone.forward_widths(images.to(device), widths)
        for store, output in zip(feats, outputs):
            store.append(output.feats.cpu())
        labels.append(targets)
    return WidthFeatures([torch.cat(f) for f in feats], torch.cat(labels))


def train_probe(
    probe: SwitchableLinearProbe,
    train: WidthFeatures,
    epochs: int = 30,
    lr: float = 0.1,
    batch_size: int = 256,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Train every head together on cached features: SGD with momentum, the learning rate
    cosine-annealed from ``lr`` to 0 over all steps, shuffled mini-batches (``seed``).

    Returns each head's loss term (:func:`switchable_probe_loss`) averaged over the last epoch.
    """
    probe.to(device).train()
    feats = [f.to(device) for f in train.feats]
    labels = train.labels.to(device)
    optimizer = torch.optim.SGD(
        probe.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    last_epoch = [0.0] * len(probe.widths)
    bar = tqdm(range(epochs), desc="linear heads", unit="epoch")
    for _ in bar:
        sums = torch.zeros(len(probe.widths))
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            batch = batch.to(device)
            loss = switchable_probe_loss(
                probe([f[batch] for f in feats]), labels[batch], probe.widths
            )
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            schedule.step()
            sums += torch.stack(loss.per_width).detach().cpu() * len(batch)
        last_epoch = (sums / len(labels)).tolist()
        bar.set_postfix(
            {width_label(w): f"{v:.3f}" for w, v in zip(probe.widths, last_epoch)}, refresh=False
        )
    return last_epoch


@torch.no_grad()
def evaluate_probe(
    probe: SwitchableLinearProbe, split: WidthFeatures, device: str | torch.device = "cpu"
) -> list[WidthEval]:
    """Top-1 (%) and mean cross-entropy of every head on cached features."""
    probe.to(device).eval()
    labels = split.labels.to(device)
    results = []
    for logits in probe([f.to(device) for f in split.feats]):
        top1 = 100.0 * int((logits.argmax(1) == labels).sum()) / len(labels)
        results.append(WidthEval(top1, F.cross_entropy(logits, labels).item()))
    return results
