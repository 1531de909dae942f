"""Gate statistics of the gated branch over a dataset, with deterministic (eval) gates.

Shared by the cost report / channel-usage figure (paper Fig. 1) and
by the static-prune exporter: per-channel on-rates per block, and the per-sample kept-MAC ratio r
whose complement is the paper's "FLOPs R.".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dualgate_solo.flops import CostTable
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.validation import check_interval


@dataclass
class GateStatistics:
    """Accumulated gate behaviour of one backbone on one image split.

    Attributes:
        block_names: ``"layer<s>.<i>"`` per gated block.
        on_counts: per block, how many samples had each channel on, ``[C_b]`` (int64).
        num_samples: images seen.
        ratio_sum, ratio_sq_sum: sum and sum of squares of per-sample r (float64 scalars).
        block_macs_sum: per-block sum over samples of conv MACs (gate excluded) ``[n_blocks]``.
        costs: static MAC figures at the split's image size.
    """

    block_names: tuple[str, ...]
    on_counts: list[Tensor]
    num_samples: int
    ratio_sum: float
    ratio_sq_sum: float
    block_macs_sum: Tensor
    costs: CostTable

    @property
    def on_rates(self) -> list[Tensor]:
        """Per block, the fraction of samples in which each channel was on, ``[C_b]`` float64."""
        return [c.double() / self.num_samples for c in self.on_counts]

    @property
    def mean_ratio(self) -> float:
        """Sample-weighted mean kept-MAC ratio r over the split."""
        return self.ratio_sum / self.num_samples

    @property
    def std_ratio(self) -> float:
        """Population standard deviation of per-sample r."""
        var = self.ratio_sq_sum / self.num_samples - self.mean_ratio**2
        return max(var, 0.0) ** 0.5

    @property
    def flops_reduction(self) -> float:
        """The paper's FLOPs R. = 1 - mean r."""
        return 1.0 - self.mean_ratio

    @property
    def layer_densities(self) -> list[float]:
        """Per block, the mean fraction of gated channels that are on."""
        return [float(rate.mean()) for rate in self.on_rates]


def channel_categories(
    on_rate: Tensor, off_below: float = 0.0, on_above: float = 1.0
) -> dict[str, Tensor]:
    """Split a block's channels into always-off, always-on and data-dependent (paper Fig. 1).

    Args:
        on_rate: per-channel on-rate ``[C]`` in [0, 1].
        off_below: a channel with ``rate <= off_below`` counts as always off (0: never on).
        on_above: a channel with ``rate >= on_above`` counts as always on (1: never off).

    Returns:
        Boolean masks ``[C]`` under ``"always_off"``, ``"always_on"``, ``"data_dependent"``.
    """
    check_interval("off_below", off_below, 0.0, 1.0)
    check_interval("on_above", on_above, 0.0, 1.0)
    if off_below >= on_above:
        raise ValueError(f"off_below={off_below} must be smaller than on_above={on_above}")
    always_off = on_rate <= off_below
    always_on = on_rate >= on_above
    return {
        "always_off": always_off,
        "always_on": always_on,
        "data_dependent": ~(always_off | always_on),
    }


@torch.no_grad()
def collect_gate_statistics(
    backbone: GatedResNet,
    batches: Iterable,
    device: str | torch.device = "cpu",
    max_batches: int | None = None,
    progress: bool = True,
) -> GateStatistics:
    """Run the gated branch in eval mode over ``batches`` and accumulate :class:`GateStatistics`.

    Args:
        backbone: a :class:`GatedResNet` (its train/eval state is restored afterwards).
        batches: iterable of image tensors ``[B, 3, H, W]`` or ``(images, labels)`` tuples.
        device: where to run.
        max_batches: stop after this many batches (``None``: all).
        progress: show a tqdm bar.
    """
    was_training = backbone.training
    backbone.eval()
    on_counts: list[Tensor] | None = None
    names: tuple[str, ...] = ()
    num_samples, ratio_sum, ratio_sq_sum = 0, 0.0, 0.0
    block_macs_sum = None
    costs = None
    try:
        for i, batch in enumerate(tqdm(batches, desc="gate statistics", disable=not progress)):
            if max_batches is not None and i >= max_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            out = backbone.forward_branch(images.to(device), "gated")
            if on_counts is None:
                on_counts = [torch.zeros(m.shape[1], dtype=torch.int64) for m in out.masks]
                names = tuple(b.name for b in out.costs.blocks)
                block_macs_sum = torch.zeros(out.block_macs.shape[1], dtype=torch.float64)
                costs = out.costs
            elif out.costs != costs:
                raise ValueError(
                    f"images of size {tuple(images.shape[-2:])} differ from the first batch's "
                    f"{costs.input_hw}; the split must have one image size"
                )
            for counts, mask in zip(on_counts, out.masks):
                counts += mask.sum(0).to(torch.int64).cpu()
            ratio = out.ratio.cpu()
            ratio_sum += float(ratio.sum())
            ratio_sq_sum += float((ratio**2).sum())
            block_macs_sum += out.block_macs.sum(0).cpu()
            num_samples += images.shape[0]
    finally:
        backbone.train(was_training)
    if on_counts is None:
        raise ValueError("batches is empty: no image was seen, so no gate statistics exist")
    return GateStatistics(
        names, on_counts, num_samples, ratio_sum, ratio_sq_sum, block_macs_sum, costs
    )
