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

    The baseline has neither budget nor variant options (``target_density=None``, ``"paper"``).
    """

    method: str
    target_density: float | None
    variant: str

    @property
    def name(self) -> str:
        """The run directory's name, e.g. ``vicreg_gating-td0.3-tracked`` or ``vicreg-paper``."""
        td = "" if self.target_density is None else f"-td{self.target_density}"
        return f"{self.method}{td}-{self.variant}"

    @classmethod
    def from_name(cls, name: str) -> Run:
        """The run a directory name stands for (inverse of :attr:`name`).

        Raises:
            UsageError: ``name`` is not ``<method>[-td<t_d>]-<variant>`` of a known method.
        """
        allowed = "<method>[-td<t_d>]-<variant>"
        method, *budget, variant = name.split("-") if "-" in name else (name, "")
        if len(budget) > 1 or (budget and not budget[0].startswith("td")):
            raise UsageError(f"run name {name!r} is invalid; allowed: {allowed}")
        check_choice(f"method of run {name!r}", method, [*METHODS, BASELINE])
        check_choice(f"variant of run {name!r}", variant, VARIANTS)
        try:
            target_density = float(budget[0][2:]) if budget else None
        except ValueError:
            raise UsageError(f"run name {name!r} is invalid; allowed: {allowed}") from None
        return cls(method, target_density, variant)

    @property
    def branches(self) -> tuple[str, ...]:
        """The backbone branches the run trains (and the grid evaluates), primary first."""
        return trained_branches(self.method)

    @property
    def gated(self) -> bool:
        """Whether the run trains gates (has a FLOPs cost to report)."""
        return "gated" in self.branches

    def overrides(self) -> list[str]:
        """Hydra overrides that make this run: its budget and its variant's options."""
        if self.target_density is None:
            return []
        return [f"method_kwargs.target_density={self.target_density}", *VARIANTS[self.variant]]


def grid(methods: list[str], densities: list[float], variants: list[str]) -> list[Run]:
    """The runs in registry order (the proposed method first), then the baseline.

    Every gated method of ``methods`` runs at every ``t_d`` of ``densities`` in every variant of
    ``variants``; :data:`BASELINE` runs once.
    """
    runs = [
        Run(method, t_d, variant)
        for method in METHODS
        if method in methods
        for t_d in densities
        for variant in variants
    ]
    return runs + ([Run(BASELINE, None, "paper")] if BASELINE in methods else [])
