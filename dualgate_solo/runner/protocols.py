"""Protocols (config directories, data scaling), budget variants and the runs of the grid.

Method names and their trained branches come from :mod:`dualgate_solo.method_registry`; the
baseline :data:`BASELINE` is solo-learn's own VICReg on the dense network.
"""

from __future__ import annotations

from dataclasses import dataclass

from dualgate_solo.choices import BUDGET_PRESETS
from dualgate_solo.method_registry import METHODS, trained_branches
from dualgate_solo.validation import UsageError, check_choice

#: solo-learn's own method that the grid runs as the dense baseline (no budget, no variants)
BASELINE = "vicreg"


def _override(key: str, value: object) -> str:
    return f"method_kwargs.{key}={value if isinstance(value, str) else format(value, 'g')}"


#: budget variant -> the Hydra overrides it adds to a gated run: ``paper`` keeps the defaults,
#: ``tracked`` sets :data:`BUDGET_PRESETS` ``["tracked"]`` (README "Hitting the budget").
VARIANTS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "tracked": tuple(_override(k, v) for k, v in BUDGET_PRESETS["tracked"].items()),
}


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


@dataclass(frozen=True)
class Run:
    """One pre-training of the grid: a method, its budget ``t_d`` and its budget variant.

    Methods without gates have neither budget nor variant options (``target_density=None``,
    ``"paper"``). ``width`` overrides ``backbone.kwargs.width`` (the baseline trained directly at
    a smaller width).
    """

    method: str
    target_density: float | None
    variant: str
    width: int | None = None

    @property
    def name(self) -> str:
        """The run directory's name, e.g. ``vicreg_gating-td0.3-tracked``, ``vicreg-paper`` or
        ``vicreg-width8-paper``."""
        td = "" if self.target_density is None else f"-td{self.target_density}"
        width = "" if self.width is None else f"-width{self.width}"
        return f"{self.method}{td}{width}-{self.variant}"

    @classmethod
    def from_name(cls, name: str) -> Run:
        """The run a directory name stands for (inverse of :attr:`name`).

        Raises:
            UsageError: ``name`` is not ``<method>[-td<t_d>][-width<w>]-<variant>`` of a known
                method.
        """
        allowed = "<method>[-td<t_d>][-width<w>]-<variant>"
        method, *tokens, variant = name.split("-") if "-" in name else (name, "")
        check_choice(f"method of run {name!r}", method, [*METHODS, BASELINE])
        check_choice(f"variant of run {name!r}", variant, VARIANTS)
        budget = [t[2:] for t in tokens if t.startswith("td")]
        widths = [t[5:] for t in tokens if t.startswith("width")]
        if len(budget) > 1 or len(widths) > 1 or len(budget) + len(widths) != len(tokens):
            raise UsageError(f"run name {name!r} is invalid; allowed: {allowed}")
        try:
            target_density = float(budget[0]) if budget else None
            width = int(widths[0]) if widths else None
        except ValueError:
            raise UsageError(f"run name {name!r} is invalid; allowed: {allowed}") from None
        return cls(method, target_density, variant, width)

    @property
    def branches(self) -> tuple[str, ...]:
        """The backbone branches the run trains (and the grid evaluates), primary first."""
        return trained_branches(self.method)

    @property
    def gated(self) -> bool:
        """Whether the run trains gates (has a FLOPs cost to report)."""
        return "gated" in self.branches

    def backbone_overrides(self) -> list[str]:
        """Overrides of the backbone, which the linear probe must repeat."""
        return [] if self.width is None else [f"backbone.kwargs.width={self.width}"]

    def overrides(self) -> list[str]:
        """Hydra overrides that make this run: its backbone, budget and variant's options."""
        if self.target_density is None:
            return self.backbone_overrides()
        return [
            *self.backbone_overrides(),
            f"method_kwargs.target_density={self.target_density}",
            *VARIANTS[self.variant],
        ]


def grid(
    methods: list[str],
    densities: list[float],
    variants: list[str],
    baseline_widths: tuple[int, ...] = (),
) -> list[Run]:
    """The runs in registry order (the proposed method first), then the baseline.

    Every gated method of ``methods`` runs at every ``t_d`` of ``densities`` in every variant of
    ``variants``; the other methods and :data:`BASELINE` run once, the baseline also once per
    width of ``baseline_widths`` (the small network trained directly).
    """
    runs = []
    for method in METHODS:
        if method not in methods:
            continue
        if METHODS[method].trains_gates:
            runs += [Run(method, t_d, v) for t_d in densities for v in variants]
        else:
            runs.append(Run(method, None, "paper"))
    if BASELINE in methods:
        runs += [Run(BASELINE, None, "paper", w) for w in (None, *baseline_widths)]
    return runs
