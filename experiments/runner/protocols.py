"""Protocols (config directories, data scaling), budget variants and the runs of the grid.

Method names and their trained branches come from :mod:`dualgate_solo.method_registry`; the
baseline :data:`BASELINE` is solo-learn's own VICReg on the dense network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from dualgate_solo.choices import BUDGET_PRESETS
from dualgate_solo.method_registry import METHODS, trained_branches
from dualgate_solo.validation import UsageError, check_choice

#: solo-learn's own method that the grid runs as the dense baseline (no budget, no variants)
BASELINE = "vicreg"


def _override(key: str, value: object) -> str:
    return f"method_kwargs.{key}={value if isinstance(value, str) else format(value, 'g')}"


#: budget variant -> the Hydra overrides it adds to a gated run: ``paper`` keeps the defaults,
#: ``tracked`` sets :data:`BUDGET_PRESETS` ``["tracked"]`` (docs/design.md, "Hitting the budget").
VARIANTS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "tracked": tuple(_override(k, v) for k, v in BUDGET_PRESETS["tracked"].items()),
    "tracked_symmetric": (
        *(_override(k, v) for k, v in BUDGET_PRESETS["tracked"].items()),
        "method_kwargs.symmetric=True",
    ),
}
#: the paper's budget with the dense branch's own VICReg term on the two views (weight 1), and
#: the same with a stop-gradient at the dense side of the gated-dense term (``DualGatingOptions``)
VARIANTS["paper_dense_pair"] = ("method_kwargs.dense_pair_weight=1",)
VARIANTS["paper_dense_pair_sg"] = (
    *VARIANTS["paper_dense_pair"],
    "method_kwargs.detach_dense_target=True",
)
#: ``paper_dense_pair_sg`` whose gated passes send no gradient into the shared weights
#: (``DualGatingOptions.gated_grad_scale=0``): the shared weights train on the dense VICReg term
#: alone, the gated branch learns its gates and BNs
VARIANTS["paper_dense_pair_sg_s0"] = (
    *VARIANTS["paper_dense_pair_sg"],
    "method_kwargs.gated_grad_scale=0",
)
#: the paper's budget with both views through both branches (``DualGatingOptions.symmetric``)
VARIANTS["symmetric"] = ("method_kwargs.symmetric=True",)
#: the paper's form after the official code's gate warm-up: one epoch of the dense branch alone
#: (``DualGatingOptions.gate_warmup_epochs``; the official 10 of 500 epochs is 2 %, one epoch is
#: 2.5 % of ``cpu_long`` and 20 % of ``cpu``)
VARIANTS["paper_gate_warmup"] = ("method_kwargs.gate_warmup_epochs=1",)
#: variants that change only which training step runs when, not the step itself (the gate
#: warm-up's steps are two dense passes, then the paper's): the step benchmark skips them
SCHEDULE_VARIANTS = ("paper_gate_warmup",)
#: variants that also change the backbone (which the linear probe must repeat): ``tracked_width``
#: is ``tracked`` with width gates (one prefix width per block and input)
VARIANT_BACKBONE: dict[str, tuple[str, ...]] = {
    "tracked_width": ("+backbone.kwargs.gate_mode=width",),
}
VARIANTS["tracked_width"] = VARIANTS["tracked"]


@dataclass(frozen=True)
class Protocol:
    """Config directories, solo-learn dataset name and data scaling of one protocol."""

    configs: str
    dataset: str
    #: ``$DUALGATE_CUSTOM_PIPELINE`` for solo-learn's ``custom`` data (native-resolution evaluation)
    custom_pipeline: str | None = None
    #: images per class of the symlinked subsets (``None``: the user's folders as they are)
    train_per_class: int | None = None
    val_per_class: int | None = None
    #: validate (online linear head, FLOPs ratio) during pre-training
    online_val: bool = True
    workers: int = 2
    #: Hydra overrides the protocol adds to its configs: every pre-training, the pre-training of
    #: gated methods (their budget options), every linear probe
    pretrain: tuple[str, ...] = ()
    pretrain_gated: tuple[str, ...] = ()
    linear: tuple[str, ...] = ()
    #: also draw the UMAP of both branches of two-branch runs
    umap: bool = True


PROTOCOLS = {
    "smoke": Protocol("cpu_quick", "custom", custom_pipeline="cifar10"),
    "cpu": Protocol(
        "cpu",
        "custom",
        custom_pipeline="cifar10",
        train_per_class=500,
        val_per_class=200,
        online_val=False,
        workers=1,
    ),
    "gpu": Protocol("cifar10", "cifar10"),
}
#: ``cpu_long``: the ``cpu`` protocol 8x longer (40 epochs, 1,560 steps), validated every epoch
#: (online k-NN, k = 20, Euclidean, and linear head of every trained network: learning curves),
#: the gates' annealing ``p = exp(-alpha * epoch)`` stretched to 40 epochs as ``alpha = 0.02``
#: spans the paper's 500 (the ``cpu`` configs' 2.0 spans 5), and a 10-epoch linear probe (steps at
#: 60 % and 80 %) long enough to converge on the frozen features.
PROTOCOLS["cpu_long"] = replace(
    PROTOCOLS["cpu"],
    online_val=True,
    pretrain=(
        "max_epochs=40",
        "knn_eval.enabled=True",
        "++knn_eval.k=20",
        "++knn_eval.distance_func=euclidean",
    ),
    pretrain_gated=("method_kwargs.anneal_alpha=0.25",),
    linear=("max_epochs=10", "scheduler.lr_decay_steps=[6,8]"),
    umap=False,
)


@dataclass(frozen=True)
class Run:
    """One pre-training of the grid: a method, its budget ``t_d`` and its budget variant.

    Methods without gates have neither budget nor variant options (``target_density=None``,
    ``"paper"``). ``width`` overrides ``backbone.kwargs.width`` (the baseline trained directly at
    a smaller width). ``seed`` overrides solo-learn's ``seed`` of pre-training and linear probe
    (``None``: the config's, solo-learn's default 5); runs that differ only in ``seed`` are one
    table row (mean and standard deviation) when their recorded configs agree. ``overrides_id``:
    :func:`overrides_id` of the user's ``--pretrain-override`` list (``None``: none), so a run
    made with other overrides is another run directory.
    """

    method: str
    target_density: float | None
    variant: str
    width: int | None = None
    seed: int | None = None
    overrides_id: str | None = None

    @property
    def name(self) -> str:
        """The run directory's name, e.g. ``vicreg_gating-td0.3-tracked``, ``vicreg-paper``,
        ``vicreg-width8-paper``, ``vicreg-seed1-paper`` or ``vicreg-o1a2b3c4d-paper``."""
        td = "" if self.target_density is None else f"-td{self.target_density}"
        width = "" if self.width is None else f"-width{self.width}"
        seed = "" if self.seed is None else f"-seed{self.seed}"
        extra = "" if self.overrides_id is None else f"-o{self.overrides_id}"
        return f"{self.method}{td}{width}{seed}{extra}-{self.variant}"

    @classmethod
    def from_name(cls, name: str) -> Run:
        """The run a directory name stands for (inverse of :attr:`name`).

        Raises:
            UsageError: ``name`` is not ``<method>[-td<t_d>][-width<w>][-seed<s>][-o<id>]-
                <variant>`` of a known method.
        """
        allowed = "<method>[-td<t_d>][-width<w>][-seed<s>][-o<id>]-<variant>"
        method, *tokens, variant = name.split("-") if "-" in name else (name, "")
        check_choice(f"method of run {name!r}", method, [*METHODS, BASELINE])
        check_choice(f"variant of run {name!r}", variant, VARIANTS)
        fields = {
            prefix: [t[len(prefix) :] for t in tokens if t.startswith(prefix)]
            for prefix in ("td", "width", "seed", "o")
        }
        if any(len(v) > 1 for v in fields.values()) or sum(map(len, fields.values())) != len(
            tokens
        ):
            raise UsageError(f"run name {name!r} is invalid; allowed: {allowed}")
        try:
            target_density = float(fields["td"][0]) if fields["td"] else None
            width = int(fields["width"][0]) if fields["width"] else None
            seed = int(fields["seed"][0]) if fields["seed"] else None
            extra = fields["o"][0] if fields["o"] else None
            if extra is not None:
                int(extra, 16)
        except ValueError:
            raise UsageError(f"run name {name!r} is invalid; allowed: {allowed}") from None
        return cls(method, target_density, variant, width, seed, extra)

    @property
    def branches(self) -> tuple[str, ...]:
        """The backbone branches the run trains (and the grid evaluates), primary first."""
        return trained_branches(self.method)

    @property
    def gated(self) -> bool:
        """Whether the run trains gates (has a FLOPs cost to report)."""
        return "gated" in self.branches

    def shared_overrides(self) -> list[str]:
        """Overrides that the linear probe repeats: the backbone's width and gate mode, the
        seed."""
        width = [] if self.width is None else [f"backbone.kwargs.width={self.width}"]
        backbone = [*width, *VARIANT_BACKBONE.get(self.variant, ())]
        return backbone + ([] if self.seed is None else [f"++seed={self.seed}"])

    def overrides(self) -> list[str]:
        """Hydra overrides that make this run: its backbone, seed, budget and variant's options."""
        if self.target_density is None:
            return self.shared_overrides()
        return [
            *self.shared_overrides(),
            f"method_kwargs.target_density={self.target_density}",
            *VARIANTS[self.variant],
        ]


def variant_options(variant: str) -> set[str]:
    """The ``method_kwargs`` keys the variant sets."""
    prefix = "method_kwargs."
    return {o[len(prefix) :].split("=")[0] for o in VARIANTS[variant] if o.startswith(prefix)}


def takes_variant(method: str, variant: str) -> bool:
    """Whether ``method`` has every option ``variant`` sets (a variant that sets an option only
    some methods have, e.g. ``dense_pair_weight``, runs for those alone); read from the
    registry's ``method_kwargs`` defaults."""
    return variant_options(variant) <= set(METHODS[method].method_defaults())


def method_variants(method: str) -> tuple[str, ...]:
    """The variants of ``method`` that not every gated method takes (the options that are its
    own), in :data:`VARIANTS` order."""
    gated = [m for m, spec in METHODS.items() if spec.trains_gates]
    return tuple(
        v
        for v in VARIANTS
        if takes_variant(method, v) and not all(takes_variant(m, v) for m in gated)
    )


def overrides_id(overrides: tuple[str, ...] | list[str]) -> str | None:
    """The first 8 hex digits of the SHA-256 of the override list (in order), ``None`` for
    none: the ``-o<id>`` of the run names of a grid made with ``--pretrain-override``."""
    if not overrides:
        return None
    return hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]


def grid(
    methods: list[str],
    densities: list[float],
    variants: list[str],
    baseline_widths: tuple[int, ...] = (),
    seeds: tuple[int | None, ...] = (None,),
    pretrain_overrides: tuple[str, ...] = (),
) -> list[Run]:
    """The runs in registry order (the proposed method first), then the baseline, each once per
    seed of ``seeds`` (``None``: the config's seed), named with the
    :func:`overrides_id` of ``pretrain_overrides``.

    Every gated method of ``methods`` runs at every ``t_d`` of ``densities`` in every variant of
    ``variants`` that it takes (:func:`takes_variant`); the other
    methods and :data:`BASELINE` run once, the baseline also once per width of
    ``baseline_widths`` (the small network trained directly).
    """
    runs = []
    for method in METHODS:
        if method not in methods:
            continue
        if METHODS[method].trains_gates:
            runs += [
                Run(method, t_d, v)
                for t_d in densities
                for v in variants
                if takes_variant(method, v)
            ]
        else:
            runs.append(Run(method, None, "paper"))
    if BASELINE in methods:
        runs += [Run(BASELINE, None, "paper", w) for w in (None, *baseline_widths)]
    extra = overrides_id(pretrain_overrides)
    return [replace(run, seed=seed, overrides_id=extra) for run in runs for seed in seeds]
