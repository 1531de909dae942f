"""``method_kwargs`` and ``backbone.kwargs`` defaults and checks for the solo-learn methods.

Defaults follow the paper's recipe (spec §6.1, decisions D1, D2, D5, D6, D12). They are written
into the run's cfg in place (solo-learn's convention), so they also land in ``args.json`` and a
later ``main_knn.py``/``main_umap.py`` rebuilds exactly the trained model. Every bad value raises
``ValueError`` naming the key and the allowed values before any training starts.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dualgate_solo.losses import BudgetConfig
from dualgate_solo.models import BACKBONE_DEPTHS
from dualgate_solo.validation import check_choice

#: VICReg part, shared by both methods (spec §4.1).
VICREG_DEFAULTS: dict[str, Any] = {
    "proj_hidden_dim": 2048,
    "proj_output_dim": 2048,
    "sim_loss_weight": 25.0,
    "var_loss_weight": 25.0,
    "cov_loss_weight": 1.0,
}
#: Budget loss L_G (spec §4.2-4.3); the names are :class:`BudgetConfig`'s fields.
BUDGET_DEFAULTS: dict[str, Any] = {
    "target_density": 0.1,
    "lambda_flops": 5.0,
    "gamma_bound": 1.0,
    "anneal_alpha": 0.02,
    "bound_target": "sqrt",
    "l1_count": True,
    "ratio_source": "sampled",
    "multiplier_lr": 0.0,
}
#: Per-method extras and backbone-kwarg defaults.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "vicreg_dual_gating": {**VICREG_DEFAULTS, **BUDGET_DEFAULTS, "symmetric": False},
    "vicreg_gating": {**VICREG_DEFAULTS, **BUDGET_DEFAULTS},
}
BACKBONE_DEFAULTS: dict[str, dict[str, Any]] = {
    "vicreg_dual_gating": {"branch": "dense", "dual_bn_scope": "block"},
    "vicreg_gating": {"branch": "gated", "dual_bn_scope": "none"},
}
#: ``backbone.kwargs.dual_bn_scope`` values each method accepts (Baseline-2 has one BN set, §4.6).
ALLOWED_SCOPES: dict[str, tuple[str, ...]] = {
    "vicreg_dual_gating": ("block", "backbone", "all"),
    "vicreg_gating": ("none",),
}
#: ``backbone.kwargs.branch`` values each method can evaluate (it trains only these).
ALLOWED_BRANCHES: dict[str, tuple[str, ...]] = {
    "vicreg_dual_gating": ("dense", "gated"),
    "vicreg_gating": ("gated",),
}
SMALL_IMAGE_DATASETS = ("cifar10", "cifar100")


def default_stem(dataset: str) -> str:
    """``cifar`` stem (3x3/1, D8) for 32-px datasets, ``imagenet`` otherwise (STL-10 96 px, §2.1)."""
    return "cifar" if dataset in SMALL_IMAGE_DATASETS else "imagenet"


def budget_config(method_kwargs: DictConfig) -> BudgetConfig:
    """The :class:`BudgetConfig` of filled ``method_kwargs`` (validates every budget value)."""
    return BudgetConfig(**{key: method_kwargs[key] for key in BUDGET_DEFAULTS})


def apply_method_defaults(cfg: DictConfig, method: str) -> BudgetConfig:
    """Fill and check ``cfg.method_kwargs`` / ``cfg.backbone`` for ``method`` in place; returns the budget.

    Raises:
        ValueError: an unknown ``method_kwargs`` key, a non-gated ``backbone.name``, a
            ``dual_bn_scope`` the method does not support, small crops, or an invalid budget value.
    """
    defaults = METHOD_DEFAULTS[method]
    # Resolve interpolations such as ``name: ...-td${method_kwargs.target_density}`` now: solo-learn
    # writes args.json unresolved, and its AutoResumer tells runs apart by ``name``.
    OmegaConf.resolve(cfg)
    kwargs = cfg.method_kwargs
    for key in kwargs:
        check_choice(f"method_kwargs key of {method}", key, defaults)
    for key, value in defaults.items():
        if OmegaConf.select(kwargs, key, default=None) is None:
            kwargs[key] = value

    check_choice("backbone.name", cfg.backbone.name, BACKBONE_DEPTHS)
    backbone_kwargs = cfg.backbone.kwargs
    for key, value in BACKBONE_DEFAULTS[method].items():
        backbone_kwargs.setdefault(key, value)
    if backbone_kwargs.get("stem") is None:
        backbone_kwargs.stem = default_stem(cfg.data.dataset)
    check_choice(
        "backbone.kwargs.dual_bn_scope", backbone_kwargs.dual_bn_scope, ALLOWED_SCOPES[method]
    )
    check_choice("backbone.kwargs.branch", backbone_kwargs.branch, ALLOWED_BRANCHES[method])

    if OmegaConf.select(cfg, "data.num_small_crops", default=0):
        raise ValueError(
            f"data.num_small_crops={cfg.data.num_small_crops} is invalid for {method}; allowed values: 0 "
            "(two large views: view 1 -> gated branch, view 2 -> dense branch)"
        )
    return budget_config(kwargs)
