"""A small embedded image dataset, generated on the fly: no download, deterministic per seed.

Ten classes = five shapes (disk, square, triangle, ring, cross) x two colour families (warm,
cool), drawn at random positions and sizes on a noisy background; 32x32 RGB in [0, 1]. It is a
smoke-scale stand-in for CIFAR-10 used by ``dualgate-solo demo`` and the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_CLASSES = 10
SHAPES = ("disk", "square", "triangle", "ring", "cross")


def _shape_masks(kind: Tensor, cx: Tensor, cy: Tensor, radius: Tensor, size: int) -> Tensor:
    """Boolean masks ``[N, size, size]`` of each sample's shape."""
    grid = torch.arange(size, dtype=torch.float32)
    y, x = grid[None, :, None], grid[None, None, :]
    dx, dy = x - cx[:, None, None], y - cy[:, None, None]
    r = radius[:, None, None]
    dist = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack(
        [
            dist <= r,
            (dx.abs() <= r * 0.8) & (dy.abs() <= r * 0.8),
            (dy <= r * 0.7) & (dy >= -r * 0.7) & (dx.abs() <= (dy + r * 0.7) * 0.6),
            (dist <= r) & (dist >= r * 0.55),
            ((dx.abs() <= r * 0.3) & (dy.abs() <= r)) | ((dy.abs() <= r * 0.3) & (dx.abs() <= r)),
        ]
    )
    return masks[kind, torch.arange(kind.shape[0])]


def synthetic_shapes(num_samples: int, seed: int = 0, size: int = 32) -> tuple[Tensor, Tensor]:
    """Images ``[N, 3, size, size]`` in [0, 1] and labels ``[N]`` (int64, 0-9)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_CLASSES, (num_samples,), generator=gen)
    kind, warm = labels % len(SHAPES), labels // len(SHAPES)
    radius = size * (0.18 + 0.14 * torch.rand(num_samples, generator=gen))
    cx = radius + (size - 2 * radius) * torch.rand(num_samples, generator=gen)
    cy = radius + (size - 2 * radius) * torch.rand(num_samples, generator=gen)
    masks = _shape_masks(kind, cx, cy, radius, size)
    base = torch.where(
        warm[:, None] == 1, torch.tensor([0.85, 0.35, 0.15]), torch.tensor([0.15, 0.4, 0.85])
    )
    colour = (base + 0.15 * torch.randn(num_samples, 3, generator=gen)).clamp(0, 1)
    background = 0.5 + 0.15 * torch.randn(num_samples, 3, 1, 1, generator=gen)
    images = background + 0.08 * torch.randn(num_samples, 3, size, size, generator=gen)
    images = torch.where(masks[:, None], colour[:, :, None, None], images)
    return images.clamp(0, 1), labels


def augment(images: Tensor, gen: torch.Generator | None = None) -> Tensor:
    """Light SSL views of ``images [N, 3, H, W]``: pad-4 crop, h-flip, colour jitter."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, 3, h, w + 8)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, 3, h, w)
    out = cropped.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.where(flip[:, None, None, None], out.flip(3), out)
    brightness = 1 + 0.4 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    contrast = 1 + 0.4 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean * brightness).clamp(0, 1)
