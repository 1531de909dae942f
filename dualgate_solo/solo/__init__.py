"""solo-learn 1.0.6 integration: methods ``vicreg_dual_gating`` and ``vicreg_gating``.

Nothing here imports solo-learn or torch at import time; :func:`register` does, when called by
the Hydra plugin (``hydra_plugins/dualgate_solo_plugin``), by the start-up import hook
(:mod:`dualgate_solo.solo.import_hook`) or by user code.
"""

from __future__ import annotations


def register() -> None:
    """Add the methods to ``solo.methods.METHODS`` and the backbones to ``BaseMethod._BACKBONES``."""
    from dualgate_solo.solo.registry import register as _register

    _register()


__all__ = ["register"]
