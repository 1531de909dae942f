"""The one registry of this package's pre-training methods.

Each method is one :class:`MethodSpec`: its registry name, the solo-learn class that trains it,
the networks it trains (primary first: the gated methods' branches, the slimmable methods'
widths), the backbones and ``backbone.kwargs.dual_bn_scope`` values it accepts and the
dataclasses whose fields are its ``method_kwargs``. Config checks, solo-learn
registration, checkpoint loading, the grid runner and the reports all read :data:`METHODS`;
adding a method is adding one entry.

``method_kwargs`` defaults are the dataclasses' field defaults (the paper's recipe), so there is
exactly one place per default. Importing this module needs torch but not solo-learn: the
solo-learn class is named by an import path and loaded only by :meth:`MethodSpec.solo_class`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from dualgate_solo.choices import BACKBONE_DEPTHS, SLIM_BACKBONE_DEPTHS
from dualgate_solo.gated.budget import BudgetOptions
from dualgate_solo.gated.options import DualGatingOptions
from dualgate_solo.slimmable.options import (
    BarlowOptions,
    EmbeddingDistillOptions,
    MoCoV3Options,
    SACLOptions,
    SlimCLROptions,
)
from dualgate_solo.validation import UsageError, check_choice, check_integer, check_interval


def width_label(width_mult: float) -> str:
    """The name of a slimmable network's width in metrics and directories: ``w1``, ``w0.5``."""
    return f"w{float(width_mult):g}"


def label_width(label: str) -> float:
    """Inverse of :func:`width_label`."""
    return float(label[1:])


@dataclass(frozen=True)
class VICRegOptions:
    """VICReg part of the objective (Bardes et al., ICLR 2022), solo-learn's conventions.

    ``L = sim * MSE(z1, z2) + var * (v(z1) + v(z2)) + cov * (c(z1) + c(z2))`` on projector
    outputs ``z [N, proj_output_dim]``.
    """

    proj_hidden_dim: int = 2048
    proj_output_dim: int = 2048
    sim_loss_weight: float = 25.0
    var_loss_weight: float = 25.0
    cov_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("proj_hidden_dim", "proj_output_dim"):
            check_integer(name, getattr(self, name), 1)
        for name in ("sim_loss_weight", "var_loss_weight", "cov_loss_weight"):
            check_interval(name, getattr(self, name), 0.0, math.inf)

    def weighted(self, loss_fn: Callable[..., Any]) -> Callable[..., Any]:
        """``loss_fn(z1, z2)`` with these weights: ``loss_fn`` takes ``sim_loss_weight``,
        ``var_loss_weight`` and ``cov_loss_weight`` keywords, as solo-learn's
        ``vicreg_loss_func`` and :func:`dualgate_solo.losses.vicreg.vicreg_loss` do."""
        return partial(
            loss_fn,
            sim_loss_weight=self.sim_loss_weight,
            var_loss_weight=self.var_loss_weight,
            cov_loss_weight=self.cov_loss_weight,
        )


@dataclass(frozen=True)
class MethodSpec:
    """Everything the package knows about one pre-training method.

    Attributes:
        name: the registry name (solo-learn's ``method:``).
        display: the short name tables and plots print (e.g. ``Dual-Gating``).
        summary: one line for help texts and tables.
        solo_class: ``"module:Class"`` of the solo-learn ``BaseMethod`` subclass (needs solo-learn).
        branches: the networks it trains and the grid evaluates, the primary one (solo-learn's
            own ``val_acc1``, ``val_knn_acc1``) first: gated-ResNet branches (``dense``,
            ``gated``) or slimmable widths (:func:`width_label`, e.g. ``w1``, ``w0.5``).
        dual_bn_scopes: the ``backbone.kwargs.dual_bn_scope`` values it accepts (the first is
            the default); empty for the slimmable backbones.
        kwargs_types: the dataclasses whose fields together are its ``method_kwargs``.
        backbones: the ``backbone.name`` values it trains.
        selector: the ``backbone.kwargs`` key that picks the network ``forward(x)`` returns
            (``branch`` or ``width_mult``), i.e. what the unchanged scripts evaluate.
        primary_narrowest: a slimmable method whose primary network is its narrowest width
            (SACL-XD deploys the slim network) rather than the full one.
    """

    name: str
    display: str
    summary: str
    solo_class: str
    branches: tuple[str, ...]
    dual_bn_scopes: tuple[str, ...]
    kwargs_types: tuple[type, ...]
    backbones: tuple[str, ...] = tuple(BACKBONE_DEPTHS)
    selector: str = "branch"
    primary_narrowest: bool = False

    @property
    def primary_branch(self) -> str:
        return self.branches[0]

    @property
    def trains_gates(self) -> bool:
        return "gated" in self.branches

    @property
    def slimmable(self) -> bool:
        """Whether it trains a slimmable backbone (networks are widths, not branches)."""
        return self.selector == "width_mult"

    def selector_value(self, network: str) -> str | float:
        """The ``backbone.kwargs.<selector>`` value that evaluates ``network``."""
        return label_width(network) if self.slimmable else network

    def method_defaults(self) -> dict[str, Any]:
        """``method_kwargs`` defaults: the field defaults of :attr:`kwargs_types`, in order."""
        return {f.name: f.default for kind in self.kwargs_types for f in dataclasses.fields(kind)}

    def backbone_defaults(self) -> dict[str, Any]:
        """``backbone.kwargs`` defaults of a gated method: the primary branch and the first
        allowed scope (a slimmable method's width kwargs depend on its options: filled by
        :func:`dualgate_solo.solo_adapter.config.configure_run`).

        Both gated methods train either gate mode. ``gate_mode`` (default ``channel``, the
        paper) and ``width_choices`` are deliberately not filled in: the backbone's own defaults
        apply, so a channel-mode run's ``args.json`` and run name stay what they were, and a
        width-mode run (``+backbone.kwargs.gate_mode=width``) records the key it was given."""
        if self.slimmable:
            return {}
        return {"branch": self.primary_branch, "dual_bn_scope": self.dual_bn_scopes[0]}

    def parse_method_kwargs(self, method_kwargs: Mapping[str, Any]) -> dict[type, Any]:
        """Validated dataclass instances from ``method_kwargs`` (missing keys take the defaults).

        Raises:
            UsageError: an unknown key, a ``null`` value, or a value its dataclass refuses; the
                message names ``method_kwargs.<key>`` and the allowed values.
        """
        defaults = self.method_defaults()
        for key, value in method_kwargs.items():
            check_choice(f"method_kwargs key of {self.name}", key, defaults)
            if value is None:
                raise UsageError(
                    f"method_kwargs.{key}=None is invalid; allowed values: a value like the "
                    f"default {defaults[key]!r} (omit the key for the default)"
                )
        values = {**defaults, **method_kwargs}
        parsed = {}
        for kind in self.kwargs_types:
            fields = {f.name: values[f.name] for f in dataclasses.fields(kind)}
            try:
                parsed[kind] = kind(**fields)
            except UsageError as error:
                raise UsageError(f"method_kwargs.{error}") from None
        return parsed

    def solo_class_object(self) -> type:
        """The solo-learn class (imports solo-learn)."""
        module, _, attr = self.solo_class.partition(":")
        return getattr(importlib.import_module(module), attr)


#: name -> spec, for every method this package adds to solo-learn.
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            name="vicreg_dual_gating",
            display="Dual-Gating",
            summary="VICReg-Dual-Gating (BMVC 2023): a dense and a gated branch over shared convs",
            solo_class="dualgate_solo.gated.solo_methods:VICRegDualGating",
            branches=("dense", "gated"),
            dual_bn_scopes=("block", "backbone", "all"),
            kwargs_types=(VICRegOptions, BudgetOptions, DualGatingOptions),
        ),
        MethodSpec(
            name="vicreg_gating",
            display="VICReg-Gating",
            summary="VICReg-Gating (IMVIP 2022): both views through the gated network",
            solo_class="dualgate_solo.gated.solo_methods:VICRegGating",
            branches=("gated",),
            dual_bn_scopes=("none",),
            kwargs_types=(VICRegOptions, BudgetOptions),
        ),
        MethodSpec(
            name="slimclr_vicreg",
            display="SlimCLR-VICReg",
            summary="SlimCLR (IJCV 2024) over VICReg: every width of a slimmable ResNet",
            solo_class="dualgate_solo.slimmable.solo_methods:SlimCLRVICReg",
            branches=("w1", "w0.5", "w0.25"),
            dual_bn_scopes=(),
            kwargs_types=(VICRegOptions, SlimCLROptions, EmbeddingDistillOptions),
            backbones=tuple(SLIM_BACKBONE_DEPTHS),
            selector="width_mult",
        ),
        MethodSpec(
            name="slimclr_mocov3",
            display="SlimCLR-MoCo v3",
            summary="SlimCLR (IJCV 2024) over MoCo v3: every width against full-width targets",
            solo_class="dualgate_solo.slimmable.solo_methods:SlimCLRMoCoV3",
            branches=("w1", "w0.5", "w0.25"),
            dual_bn_scopes=(),
            kwargs_types=(MoCoV3Options, SlimCLROptions),
            backbones=tuple(SLIM_BACKBONE_DEPTHS),
            selector="width_mult",
        ),
        MethodSpec(
            name="sacl_xd",
            display="SACL-XD",
            summary="SACL-XD (NeurIPS 2023): host and slimmed network, cross-distillation",
            solo_class="dualgate_solo.slimmable.solo_methods:SACLXD",
            branches=("w0.5", "w1"),
            dual_bn_scopes=(),
            kwargs_types=(BarlowOptions, SACLOptions),
            backbones=tuple(SLIM_BACKBONE_DEPTHS),
            selector="width_mult",
            primary_narrowest=True,
        ),
    )
}


def get_method(name: str) -> MethodSpec:
    """The spec of ``name``; :class:`UsageError` naming the registered methods otherwise."""
    return METHODS[check_choice("method", name, METHODS)]


def trained_branches(
    method: str, backbone_kwargs: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """Networks a run of ``method`` trained, primary first.

    The spec's branches; for a slimmable method whose ``backbone_kwargs`` (``args.json``) are
    given, every width of its ``width_mult_list``, widest first (narrowest first for a method
    that deploys its narrowest width); ``("dense",)`` for any method of solo-learn's own (e.g.
    ``vicreg`` on a ``dg_resnet*`` backbone).
    """
    if method not in METHODS:
        return ("dense",)
    spec = METHODS[method]
    widths = (backbone_kwargs or {}).get("width_mult_list")
    if not spec.slimmable or widths is None:
        return spec.branches
    labels = tuple(width_label(w) for w in widths)
    return labels[::-1] if spec.primary_narrowest else labels
