"""Hydra plugin of dualgate-solo (found by Hydra's scan of the ``hydra_plugins`` namespace).

Hydra imports this module at start-up of every Hydra app, before composing the config: it adds
the package's YAML configs to the search path and, only when solo-learn is already imported (as
in ``main_pretrain.py``/``main_linear.py`` and their DDP children), registers the methods.
It may run more than once; both actions are idempotent.
"""

import sys

from dualgate_solo.solo_adapter.search_path import DualGateSearchPathPlugin  # noqa: F401  (collected by Hydra)

if "solo" in sys.modules:
    from dualgate_solo.solo_adapter import register

    register()
