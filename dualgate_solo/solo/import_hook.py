"""Start-up hook: register with solo-learn as soon as ``solo.methods`` is imported.

``main_knn.py`` and ``main_umap.py`` use argparse, not Hydra, so the Hydra plugin never runs there
(contract §5). A one-line ``.pth`` file in site-packages (``dualgate-solo install-hook`` writes it;
editable installs need that step, see the README) calls :func:`install` in every interpreter; it
costs one entry in ``sys.meta_path`` and imports nothing heavy until solo-learn itself is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

TRIGGER = "solo.methods"
PTH_NAME = "dualgate_solo_hook.pth"
PTH_LINE = "import dualgate_solo.solo.import_hook as _dualgate_hook; _dualgate_hook.install()\n"


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader of ``solo.methods``, then :func:`dualgate_solo.solo.register`."""

    def __init__(self, inner: importlib.abc.Loader):
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        from dualgate_solo.solo import register

        register()

    def __getattr__(self, name: str) -> Any:  # get_data, get_filename, ... of the real loader
        return getattr(self.inner, name)


class RegisterOnImport(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the loader of :data:`TRIGGER` only."""

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TRIGGER:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Activate the hook (idempotent); registers at once if ``solo.methods`` is already imported."""
    if TRIGGER in sys.modules:
        from dualgate_solo.solo import register

        register()
        return
    if not any(isinstance(finder, RegisterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, RegisterOnImport())
