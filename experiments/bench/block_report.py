"""Where the time of one forward goes: per-part milliseconds and executed MACs of a network.

Parts, found on any of the benchmark's networks (a :class:`~dualgate_solo.export.PrunedResNet`,
the BN-folded dynamic executor, a ``GatedResNet`` branch wrapper with a ``backbone`` attribute):

* ``stem``: from the pre-hook of ``conv1`` to the forward hook of ``maxpool`` (conv, BN, ReLU,
  max-pool);
* one part per residual block (the block's name, e.g. ``layer2.0``), *without* its shortcut;
* ``<block>.shortcut``: the block's ``downsample`` (1x1 strided conv + BN), when it has one;
* ``head``: the ``head`` module (global average pooling), when the network has one;
* ``other``: the median total minus the parts (Python glue, functional pooling, hook overhead).

Times come from ``time.perf_counter`` stamps taken in forward (pre-)hooks during whole forwards
(``sync`` is called before each stamp, e.g. ``torch.cuda.synchronize``), median over repeats;
executed MACs from ``torch.utils.flop_counter.FlopCounterMode``'s running total read in the same
hooks during one forward (only convolutions and matrix products count; one MAC = 2 FLOPs). A
block's time and MACs exclude its shortcut's. ``ms_per_gmac`` = ms / (MACs of the batch / 1e9):
how efficiently a part turns MACs into time (large for small 34x34 early convs, for instance).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

#: the CSV columns of a block report
BLOCK_FIELDS = (
    "variant",
    "runtime",
    "batch",
    "part",
    "kind",
    "median_ms",
    "share",
    "macs_per_image",
    "ms_per_gmac",
)


@dataclass(frozen=True)
class Part:
    """A timed span of the forward: from ``start``'s pre-hook to ``end``'s forward hook;
    ``inner``: the name of a part nested inside (a block's shortcut), subtracted from this one."""

    name: str
    kind: str
    start: nn.Module
    end: nn.Module
    inner: str | None = None


def _block_names(root: nn.Module, n: int) -> list[str]:
    spec = getattr(root, "spec", None)
    if isinstance(spec, dict) and len(spec.get("blocks", ())) == n:
        return [entry.get("name", f"blocks.{i}") for i, entry in enumerate(spec["blocks"])]
    return list(getattr(root, "block_names", [f"blocks.{i}" for i in range(n)]))


def network_parts(model: nn.Module) -> list[Part]:
    """The parts of ``model`` (module docstring), in forward order; a network without
    ``conv1``/``maxpool``, ``named_blocks()``/``blocks`` or ``head`` simply lacks those parts."""
    root = getattr(model, "backbone", model)
    parts = []
    if isinstance(getattr(root, "conv1", None), nn.Module) and hasattr(root, "maxpool"):
        parts.append(Part("stem", "stem", root.conv1, root.maxpool))
    if hasattr(root, "named_blocks"):
        named = list(root.named_blocks())
    else:
        blocks = list(getattr(root, "blocks", ()))
        named = list(zip(_block_names(root, len(blocks)), blocks))
    for name, block in named:
        downsample = getattr(block, "downsample", None)
        shortcut = f"{name}.shortcut" if isinstance(downsample, nn.Module) else None
        parts.append(Part(name, "block", block, block, shortcut))
        if shortcut:
            parts.append(Part(shortcut, "shortcut", downsample, downsample))
    if isinstance(getattr(root, "head", None), nn.Module):
        parts.append(Part("head", "head", root.head, root.head))
    return parts


class _Stamps:
    """Forward (pre-)hooks that read ``clock()`` at the start and end of every part."""

    def __init__(self, parts: list[Part], clock: Callable[[], float]):
        self.parts, self.clock = parts, clock
        self.begin: dict[str, float] = {}
        self.spans: dict[str, float] = {}
        self.handles = []
        for part in parts:
            self.handles.append(part.start.register_forward_pre_hook(self._opener(part.name)))
            self.handles.append(part.end.register_forward_hook(self._closer(part.name)))

    def _opener(self, name: str):
        return lambda module, args: self.begin.__setitem__(name, self.clock())

    def _closer(self, name: str):
        def close(module, args, output):
            self.spans[name] = self.clock() - self.begin[name]

        return close

    def exclusive(self) -> dict[str, float]:
        """The last forward's span of every part, nested parts subtracted."""
        return {
            p.name: self.spans[p.name] - (self.spans[p.inner] if p.inner else 0.0)
            for p in self.parts
        }

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def part_macs(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Executed MACs per image of every part (nested shortcut excluded from its block) and
    ``total``, from FlopCounterMode over one forward of ``x [B, ...]``."""
    parts = network_parts(model)
    with FlopCounterMode(display=False) as counter:
        stamps = _Stamps(parts, lambda: float(counter.get_total_flops()))
        try:
            model(x)
        finally:
            stamps.remove()
        total = counter.get_total_flops()
    macs = {name: flops / 2 / x.shape[0] for name, flops in stamps.exclusive().items()}
    macs["total"] = total / 2 / x.shape[0]
    return macs


def part_times(
    model: nn.Module,
    inputs: list[torch.Tensor],
    warmup: int,
    repeats: int,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median milliseconds of every part and of the whole forward (``total``) over ``repeats``
    forwards (inputs cycled) after ``warmup``; ``other`` = total - the parts."""
    parts = network_parts(model)

    def clock() -> float:
        sync()
        return time.perf_counter()

    per_part: dict[str, list[float]] = {p.name: [] for p in parts}
    totals = []
    with torch.inference_mode():
        for i in range(warmup):
            model(inputs[i % len(inputs)])
        stamps = _Stamps(parts, clock)
        try:
            for i in range(repeats):
                start = clock()
                model(inputs[i % len(inputs)])
                totals.append(clock() - start)
                for name, seconds in stamps.exclusive().items():
                    per_part[name].append(seconds)
        finally:
            stamps.remove()
    ms = {name: 1e3 * statistics.median(v) for name, v in per_part.items()}
    ms["total"] = 1e3 * statistics.median(totals)
    ms["other"] = ms["total"] - sum(ms[p.name] for p in parts)
    return ms


def block_report(
    variant: str,
    runtime: str,
    model: nn.Module,
    inputs: list[torch.Tensor],
    warmup: int,
    repeats: int,
    sync: Callable[[], None] = lambda: None,
) -> list[dict]:
    """Rows (:data:`BLOCK_FIELDS`) of every part, ``other`` and ``total`` of ``model`` on
    ``inputs`` (one batch size); MACs are the mean over ``inputs``."""
    ms = part_times(model, inputs, warmup, repeats, sync)
    counted = [part_macs(model, x) for x in inputs]
    macs = {name: statistics.fmean(c[name] for c in counted) for name in counted[0]}
    batch = inputs[0].shape[0]
    kinds = {p.name: p.kind for p in network_parts(model)}
    rows = []
    for name in [*kinds, "other", "total"]:
        part_macs_per_image = macs.get(name, 0.0)
        if name == "other":
            part_macs_per_image = macs["total"] - sum(macs[p] for p in kinds)
        gmacs = part_macs_per_image * batch / 1e9
        rows.append(
            {
                "variant": variant,
                "runtime": runtime,
                "batch": batch,
                "part": name,
                "kind": kinds.get(name, name),
                "median_ms": ms[name],
                "share": ms[name] / ms["total"],
                "macs_per_image": part_macs_per_image,
                "ms_per_gmac": ms[name] / gmacs if gmacs > 0 else None,
            }
        )
    return rows


def plot_blocks(rows: list[dict], path, title: str) -> None:
    """Horizontal bars of ms per part, one panel per (variant, batch), parts in forward order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["variant"], r["batch"]) for r in rows))
    colors = {"stem": "C0", "block": "C1", "shortcut": "C2", "head": "C3", "other": "C7"}
    fig, axes = plt.subplots(
        1, len(groups), figsize=(3.2 * len(groups), 5.5), squeeze=False, sharey=True
    )
    for ax, (variant, batch) in zip(axes[0], groups):
        sel = [
            r
            for r in rows
            if (r["variant"], r["batch"]) == (variant, batch) and r["part"] != "total"
        ]
        total = next(
            r["median_ms"]
            for r in rows
            if (r["variant"], r["batch"], r["part"]) == (variant, batch, "total")
        )
        ax.barh(
            range(len(sel)),
            [r["median_ms"] for r in sel],
            color=[colors.get(r["kind"], "C4") for r in sel],
        )
        ax.set_yticks(range(len(sel)), [r["part"] for r in sel], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("ms")
        ax.set_title(f"{variant}, batch {batch}\ntotal {total:.2f} ms", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
