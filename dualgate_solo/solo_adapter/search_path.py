"""Hydra ``SearchPathPlugin`` that makes the package's configs findable by every Hydra app.

With it, ``main_pretrain.py --config-name pretrain/cifar10/vicreg_dual_gating`` works without
``--config-path``, and the configs' shared pieces (``/dualgate/...``) resolve from any primary
config directory.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from dualgate_solo.solo_adapter.paths import config_dir


class DualGateSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="dualgate-solo", path=f"file://{config_dir()}")
