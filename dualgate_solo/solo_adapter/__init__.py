"""solo-learn 1.0.6 integration: the methods of :data:`dualgate_solo.method_registry.METHODS`.

Nothing here imports solo-learn or torch at import time; :func:`register` does, when called by
the Hydra plugin (``hydra_plugins/dualgate_solo_plugin``), by the start-up import hook
(:mod:`dualgate_solo.solo_adapter.startup_hook`) or by user code.
"""

from __future__ import annotations


def register() -> None:
    """Plug the methods and backbones into solo-learn (see
    :mod:`dualgate_solo.solo_adapter.registry`)."""
    from dualgate_solo.solo_adapter.registry import register as _register

    _register()


__all__ = ["register"]
