"""Wall-clock timing and MAC counting of forward calls (CPU or any synchronous device)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def timed(fn: Callable, x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``fn(x)`` per call, ``repeats`` times after ``warmup`` calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(1e3 * (time.perf_counter() - start))
    return times


def round_robin(
    fns: list[Callable],
    x: torch.Tensor | list[torch.Tensor],
    warmup: int,
    repeats: int,
    sync: Callable[[], None] = lambda: None,
) -> list[list[float]]:
    """Milliseconds per call of each of ``fns`` on ``x``, timed one call of each per round.

    Load from other processes then hits every callable alike. Each callable is warmed up
    ``warmup`` times first; returns ``repeats`` timings per callable, in the order of ``fns``.
    ``x`` may be a list of inputs: round ``i`` (and warm-up call ``i``) gives every callable
    ``x[i % len(x)]``, so no callable is timed on one input only. ``sync`` runs before each clock
    reading (``torch.cuda.synchronize`` for a GPU).
    """
    inputs = x if isinstance(x, list) else [x]
    times: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for fn in fns:
            for i in range(warmup):
                fn(inputs[i % len(inputs)])
        for r in range(repeats):
            xr = inputs[r % len(inputs)]
            for i, fn in enumerate(fns):
                sync()
                start = time.perf_counter()
                fn(xr)
                sync()
                times[i].append(1e3 * (time.perf_counter() - start))
    return times


def count_macs(module: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Mean conv MACs per image over ``inputs`` (each ``[B, 3, H, W]``, any ``B``), from
    FlopCounterMode over ``module``'s own run on them."""
    total, images = 0, 0
    for x in inputs:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(x)
        total += counter.get_total_flops() // 2
        images += x.shape[0]
    return total / images
