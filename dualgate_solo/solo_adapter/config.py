"""Fill and check the cfg of a solo-learn run of one of this package's methods, in place.

Everything comes from the method's :class:`~dualgate_solo.method_registry.MethodSpec`: the
``method_kwargs`` defaults and their validation (:meth:`MethodSpec.parse_method_kwargs`, the one
place that builds the method's option dataclasses), the ``backbone.kwargs`` defaults and the
``dual_bn_scope``/``branch`` values the method allows. The filled values are written into the cfg
(solo-learn's convention), so they land in ``args.json`` and a later ``main_knn.py`` or
``main_umap.py`` rebuilds exactly the trained model. Every bad value raises :class:`UsageError`
naming the key and the allowed values before the backbone is built.

Run identity: solo-learn's ``AutoResumer`` resumes the newest checkpoint whose ``name`` (and a few
other keys, not ``method_kwargs``) match. :func:`configure_run` therefore appends to ``name`` a
fingerprint of everything in ``method_kwargs`` and ``backbone`` that changes training
(:func:`run_fingerprint`), so runs that differ in any of them never resume each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dualgate_solo.choices import DEFAULT_WIDTH_MULTS
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.method_registry import MethodSpec
from dualgate_solo.slimmable.layers import check_width, check_width_list
from dualgate_solo.slimmable.options import SACLOptions, SlimCLROptions
from dualgate_solo.solo_adapter.strategy import select_strategy
from dualgate_solo.validation import UsageError, check_choice

#: Training crops up to this size (px) get the ``cifar`` stem by default.
SMALL_CROP = 64
#: ``backbone.kwargs`` that select the evaluated network only: no part of the run's identity.
EVALUATION_ONLY_KWARGS = ("branch", "width_mult")


def default_stem(crop_size: int) -> str:
    """The stem for training crops of ``crop_size`` px.

    ``cifar`` (3x3/1 conv, no max-pool) up to :data:`SMALL_CROP` px, ``imagenet`` (7x7/2 conv +
    3x3/2 max-pool) above: the ImageNet stem divides the resolution by 4, so a 32-px crop would
    reach layer1 as 8x8 maps and layer4 as 1x1.
    """
    return "cifar" if crop_size <= SMALL_CROP else "imagenet"


def training_crop_size(cfg: DictConfig) -> int:
    """The largest ``crop_size`` of ``cfg.augmentations`` (solo-learn's per-pipeline crops)."""
    sizes = [aug.crop_size for aug in OmegaConf.select(cfg, "augmentations", default=None) or []]
    if not sizes:
        raise UsageError(
            "backbone.kwargs.stem=None cannot be derived: the cfg has no augmentations with a "
            "crop_size; allowed values: 'cifar', 'imagenet'"
        )
    return max(sizes)


def run_fingerprint(
    method_kwargs: Mapping[str, Any], backbone_name: str, backbone_kwargs: Mapping[str, Any]
) -> str:
    """8 hex digits of SHA-1 over the filled ``method_kwargs`` and the backbone (name, kwargs).

    Stable across processes and Python versions (sorted JSON); ``backbone.kwargs.branch`` is left
    out, because it only picks the branch that ``forward`` returns after training.
    """
    payload = {
        "method_kwargs": dict(method_kwargs),
        "backbone": {
            "name": backbone_name,
            "kwargs": {k: v for k, v in backbone_kwargs.items() if k not in EVALUATION_ONLY_KWARGS},
        },
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _filled_kwargs(spec: MethodSpec, options: dict[type, Any]) -> dict[str, Any]:
    """``method_kwargs`` from the parsed options, in the spec's order; ints in float fields
    become floats, so ``lambda_flops=5`` and ``lambda_flops=5.0`` are one run."""
    defaults = spec.method_defaults()
    values = {
        f.name: getattr(options[kind], f.name)
        for kind in spec.kwargs_types
        for f in dataclasses.fields(kind)
    }
    return {key: _as_default_type(value, defaults[key]) for key, value in values.items()}


def _as_default_type(value: Any, default: Any) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return float(value) if isinstance(default, float) and is_int else value


def _resolve_options(cfg: DictConfig, options: dict[type, Any]) -> None:
    """Replace options whose default depends on the run: SlimCLR's ``slow_start_epochs=-1``
    becomes half of ``max_epochs``. Refuse a Dual-Gating gate warm-up that leaves the gated
    branch untrained (``gate_warmup_epochs >= max_epochs``)."""
    max_epochs = int(OmegaConf.select(cfg, "max_epochs", default=0) or 0)
    slim = options.get(SlimCLROptions)
    if slim is not None and slim.slow_start_epochs == -1:
        options[SlimCLROptions] = dataclasses.replace(slim, slow_start_epochs=max_epochs // 2)
    dual = options.get(DualGatingOptions)
    if dual is not None and dual.gate_warmup_epochs and dual.gate_warmup_epochs >= max_epochs:
        raise UsageError(
            f"method_kwargs.gate_warmup_epochs={dual.gate_warmup_epochs} is invalid with "
            f"max_epochs={max_epochs}; allowed values: 0 to {max(max_epochs - 1, 0)} (the gated "
            "branch must train after the warm-up)"
        )


def unused_parameters_reason(options: dict[type, Any]) -> str | None:
    """Why some trained parameters get no gradient in some steps, or ``None``: SlimCLR's slow
    start leaves the narrower widths' BatchNorms and probes out of the loss, Dual-Gating's gate
    warm-up the gates, the gated BatchNorms and the gated probe."""
    slim = options.get(SlimCLROptions)
    if slim is not None and slim.slow_start_epochs > 0:
        return f"method_kwargs.slow_start_epochs={slim.slow_start_epochs}"
    dual = options.get(DualGatingOptions)
    if dual is not None and dual.gate_warmup_epochs > 0:
        return f"method_kwargs.gate_warmup_epochs={dual.gate_warmup_epochs}"
    return None


def _fill_slim_backbone(backbone_kwargs: DictConfig, options: dict[type, Any]) -> None:
    """Width list and evaluated width of a slimmable backbone; SACL-XD derives both from
    ``host_width`` (the list is ``[1.0, 1 / host_width]``, the slim network is evaluated)."""
    sacl = options.get(SACLOptions)
    if sacl is not None:
        widths = [1.0, sacl.slim_width]
        given = backbone_kwargs.get("width_mult_list")
        if given is not None and [float(w) for w in given] != widths:
            raise UsageError(
                f"backbone.kwargs.width_mult_list={list(given)} is invalid for sacl_xd with "
                f"method_kwargs.host_width={sacl.host_width:g}; allowed values: {widths} "
                "(or leave it out)"
            )
        backbone_kwargs.width_mult_list = widths
        if backbone_kwargs.get("width_mult") is None:
            backbone_kwargs.width_mult = sacl.slim_width
    if backbone_kwargs.get("width_mult_list") is None:
        backbone_kwargs.width_mult_list = list(DEFAULT_WIDTH_MULTS)
    widths = check_width_list(
        "backbone.kwargs.width_mult_list", list(backbone_kwargs.width_mult_list)
    )
    backbone_kwargs.width_mult_list = list(widths)
    if backbone_kwargs.get("width_mult") is None:
        backbone_kwargs.width_mult = 1.0
    check_width("backbone.kwargs.width_mult", backbone_kwargs.width_mult, widths)


def configure_run(cfg: DictConfig, spec: MethodSpec) -> dict[type, Any]:
    """Fill and check ``cfg`` for ``spec``'s method in place; returns its parsed options.

    Fills ``method_kwargs`` (every key, from the spec's dataclasses; run-dependent defaults such
    as SlimCLR's ``slow_start_epochs`` as numbers) and ``backbone.kwargs`` (``branch`` and
    ``dual_bn_scope``, or ``width_mult`` and ``width_mult_list``, and ``stem``, the last from the
    training crop size), selects the DDP strategy the method needs
    (:func:`~dualgate_solo.solo_adapter.strategy.select_strategy`), resolves
    interpolations such as ``name: ...-td${method_kwargs.target_density}`` (solo-learn writes
    ``args.json`` unresolved) and appends :func:`run_fingerprint` to ``name`` (idempotent:
    a cfg read back from ``args.json`` keeps its name).

    Returns:
        ``{dataclass: instance}`` for each of ``spec.kwargs_types``.

    Raises:
        UsageError: an unknown, ``null`` or invalid ``method_kwargs`` value, a backbone the
            method does not train, a ``dual_bn_scope``, ``branch``, width list or width the
            method does not support, or small crops.
    """
    given = OmegaConf.select(cfg, "method_kwargs", default=None)
    given = OmegaConf.to_container(given, resolve=True) if given is not None else {}
    options = spec.parse_method_kwargs(given)
    _resolve_options(cfg, options)
    cfg.method_kwargs = _filled_kwargs(spec, options)
    select_strategy(cfg, spec.name, unused_parameters_reason(options))

    check_choice("backbone.name", OmegaConf.select(cfg, "backbone.name"), spec.backbones)
    if OmegaConf.select(cfg, "backbone.kwargs", default=None) is None:
        cfg.backbone.kwargs = {}
    backbone_kwargs = cfg.backbone.kwargs
    if spec.slimmable:
        _fill_slim_backbone(backbone_kwargs, options)
    else:
        for key, value in spec.backbone_defaults().items():
            if backbone_kwargs.get(key) is None:
                backbone_kwargs[key] = value
    if backbone_kwargs.get("stem") is None:
        backbone_kwargs.stem = default_stem(training_crop_size(cfg))
    if not spec.slimmable:
        check_choice(
            "backbone.kwargs.dual_bn_scope", backbone_kwargs.dual_bn_scope, spec.dual_bn_scopes
        )
        check_choice("backbone.kwargs.branch", backbone_kwargs.branch, spec.branches)

    small_crops = OmegaConf.select(cfg, "data.num_small_crops", default=0)
    if small_crops:
        raise UsageError(
            f"data.num_small_crops={small_crops} is invalid for {spec.name}; allowed values: 0 "
            "(two large views, one per pipeline of augmentations)"
        )

    OmegaConf.resolve(cfg)
    fingerprint = run_fingerprint(
        cfg.method_kwargs,
        cfg.backbone.name,
        OmegaConf.to_container(backbone_kwargs, resolve=True),
    )
    name = OmegaConf.select(cfg, "name", default=None) or spec.name
    if not name.endswith(f"-{fingerprint}"):
        cfg.name = f"{name}-{fingerprint}"
    return options
