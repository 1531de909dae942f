"""What this package adds to every solo-learn run's cfg, after solo-learn's own defaults.

solo-learn passes each run's cfg through a ``add_and_assert_specific_cfg`` static method: every
pre-training method through ``BaseMethod``'s (also when ``main_knn.py``/``main_umap.py`` rebuild a
model from ``args.json``), ``main_linear.py`` through ``LinearModel``'s. :func:`install` wraps
those two so that, for every run:

* the custom-data pipeline is recorded or restored
  (:func:`~dualgate_solo.solo_adapter.custom_pipeline.record`);
* a run on one of this package's backbones has its interpolations resolved, so ``args.json``
  holds the names actually used (solo-learn writes it unresolved), e.g. a linear probe's
  ``name: ...-linear-${backbone.kwargs.branch}``.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from dualgate_solo.models import BACKBONES
from dualgate_solo.solo_adapter.custom_pipeline import record


def complete(cfg: DictConfig) -> DictConfig:
    """This package's part of a run's cfg defaults (in place); returns ``cfg``."""
    record(cfg)
    if OmegaConf.select(cfg, "backbone.name", default=None) in BACKBONES:
        OmegaConf.resolve(cfg)
    return cfg


def _wrap(cls: type) -> None:
    """Make ``cls.add_and_assert_specific_cfg`` (a static method) end with :func:`complete`."""
    solo_defaults = cls.__dict__["add_and_assert_specific_cfg"].__func__
    if getattr(solo_defaults, "completes_run_cfg", False):
        return

    def add_and_assert_specific_cfg(cfg: DictConfig) -> DictConfig:
        return complete(solo_defaults(cfg))

    add_and_assert_specific_cfg.__doc__ = solo_defaults.__doc__
    add_and_assert_specific_cfg.__wrapped__ = solo_defaults
    add_and_assert_specific_cfg.completes_run_cfg = True
    cls.add_and_assert_specific_cfg = staticmethod(add_and_assert_specific_cfg)


def install() -> None:
    """Wrap ``BaseMethod`` and ``LinearModel`` (idempotent; imports solo-learn)."""
    from solo.methods.base import BaseMethod
    from solo.methods.linear import LinearModel

    _wrap(BaseMethod)
    _wrap(LinearModel)
