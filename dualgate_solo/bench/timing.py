"""Wall-clock timing and MAC counting of forward calls (CPU or any synchronous device)."""

from __future__ import annotations

import statistics
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
    fns: list[Callable], x: torch.Tensor, warmup: int, repeats: int
) -> list[list[float]]:
    """Milliseconds per call of each of ``fns`` on ``x``, timed one call of each per round.

    Load from other processes then hits every callable alike. Each callable is warmed up
    ``warmup`` times first; returns ``repeats`` timings per callable, in the order of ``fns``.
    """
    times: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for fn in fns:
            for _ in range(warmup):
                fn(x)
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                start = time.perf_counter()
                fn(x)
                times[i].append(1e3 * (time.perf_counter() - start))
    return times


def count_macs(module: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Mean conv MACs per image over ``inputs`` (each ``[1, 3, H, W]``), from FlopCounterMode."""
    total = 0
    for x in inputs:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(x)
        total += counter.get_total_flops() // 2
    return total / len(inputs)


def block_breakdown(
    model: nn.Module, blocks: list[nn.Module], names: list[str], x: torch.Tensor, repeats: int
) -> dict[str, float]:
    """Median ms per block (forward hooks) plus ``rest`` (stem, pooling, bookkeeping) for one
    forward of ``x``."""
    stamps: dict[str, list[float]] = {n: [] for n in names}
    starts: dict[str, float] = {}
    handles = []
    for name, block in zip(names, blocks):
        handles.append(
            block.register_forward_pre_hook(
                lambda m, a, n=name: starts.__setitem__(n, time.perf_counter())
            )
        )
        handles.append(
            block.register_forward_hook(
                lambda m, a, o, n=name: stamps[n].append(1e3 * (time.perf_counter() - starts[n]))
            )
        )
    totals = timed(model, x, 1, repeats)
    for h in handles:
        h.remove()
    out = {n: statistics.median(v[-repeats:]) for n, v in stamps.items()}
    out["rest"] = statistics.median(totals) - sum(out.values())
    return out
