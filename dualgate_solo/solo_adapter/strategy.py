"""The Lightning strategy a run needs: DDP that tolerates parameters without a gradient.

SlimCLR's slow start trains only the full width for ``slow_start_epochs``: the narrower widths'
private BatchNorms (backbone and projector) and their online probes take no part in those steps'
loss (as the gates, gated BatchNorms and gated probe in Dual-Gating's ``gate_warmup_epochs``).
Lightning's plain ``strategy=ddp`` wraps the model in ``DistributedDataParallel`` with
``find_unused_parameters=False``, which then stops at the second step ("parameters that were not
used in producing the loss"). Making every parameter take part through a zero-weighted term would
not be exact: the unused parameters would get zero gradients instead of none, so the optimizer
would apply weight decay and momentum to them and the slow start would train differently from a
one-process run. So such a run selects the ``*_find_unused_parameters_true`` variant of the DDP
strategy it is given instead (:func:`select_strategy`), in its cfg: solo-learn's
``main_pretrain.py`` builds the ``Trainer`` from that cfg after the method's ``__init__`` filled it,
and ``args.json`` records the strategy that ran.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dualgate_solo.validation import UsageError

#: Lightning 2.x's DDP launchers; ``<name>_find_unused_parameters_true`` is registered for each.
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
UNUSED_SUFFIX = "_find_unused_parameters_true"
STRICT_SUFFIX = "_find_unused_parameters_false"


def process_count(cfg: DictConfig) -> int:
    """How many processes Lightning starts for ``cfg``'s ``devices`` x ``num_nodes``.

    ``devices`` as solo-learn configs write it: an int, a digit string (``"2"``), a list of
    device ids, or ``"auto"``/``-1`` (every visible GPU, 1 on the CPU).
    """
    devices = OmegaConf.select(cfg, "devices", default="auto")
    nodes = int(OmegaConf.select(cfg, "num_nodes", default=1) or 1)
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        count = len(devices)
    elif str(devices).strip().lstrip("-").isdigit() and int(devices) > 0:
        count = int(devices)
    else:
        count = _visible_accelerators(OmegaConf.select(cfg, "accelerator", default="auto"))
    return count * nodes


def _visible_accelerators(accelerator: Any) -> int:
    """Devices that ``devices=auto``/``-1`` means: the visible GPUs, or 1 on the CPU."""
    if str(accelerator) == "cpu":
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def select_strategy(cfg: DictConfig, method: str, reason: str | None) -> None:
    """Switch ``cfg.strategy`` to the DDP variant that allows unused parameters, in place.

    Args:
        cfg: the run's cfg.
        method: the method's name (for the message).
        reason: why some parameters get no gradient in some steps (e.g.
            ``"method_kwargs.slow_start_epochs=1"``); ``None`` when every parameter takes part
            in every step's loss: then ``cfg`` is left as it is.

    ``ddp``, ``ddp_spawn``, ``ddp_fork``, ``ddp_notebook`` become their
    ``*_find_unused_parameters_true`` variant; ``auto``/``null`` too when the run starts more
    than one process (Lightning would pick ``ddp``). Other strategies are left alone.

    Raises:
        UsageError: ``strategy`` is a ``*_find_unused_parameters_false`` variant, which would
            stop at the second step.
    """
    if reason is None:
        return
    strategy = OmegaConf.select(cfg, "strategy", default=None)
    if isinstance(strategy, str) and strategy.endswith(STRICT_SUFFIX):
        base = strategy[: -len(STRICT_SUFFIX)]
        raise UsageError(
            f"strategy={strategy!r} is invalid for {method} with {reason}: some parameters get "
            f"no gradient in those steps; allowed values: {base!r} or '{base}{UNUSED_SUFFIX}' "
            "(the same)"
        )
    if strategy in DDP_STRATEGIES:
        cfg.strategy = f"{strategy}{UNUSED_SUFFIX}"
    elif strategy in (None, "auto") and process_count(cfg) > 1:
        cfg.strategy = f"ddp{UNUSED_SUFFIX}"
