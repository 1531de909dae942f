"""Start-up hook: register with solo-learn as soon as ``solo.methods`` is imported.

solo-learn's ``main_knn.py`` and ``main_umap.py`` use argparse, not Hydra, so the Hydra plugin
never runs there. A one-line ``.pth`` file in site-packages (:data:`PTH_LINE`) imports this file
at every interpreter start as the top-level module ``dualgate_solo_hook`` (a copy of this file: a
wheel ships it, ``dualgate-solo install-hook`` writes it for editable installs) and calls
:func:`install`.

The file is standalone on purpose: it imports only :mod:`sys`, never ``dualgate_solo``, so start-up
stays as fast as without it, and ``dualgate_solo`` is found later through ``sys.path`` like any
other import (a checkout on ``sys.path`` wins over an installed copy). :func:`install` adds one
finder to ``sys.meta_path`` that answers for :data:`TRIGGER` only; when solo-learn imports it, the
real module runs first, then :func:`dualgate_solo.solo_adapter.register`. If ``dualgate_solo`` is
no longer importable (uninstalled with the hook left behind), the hook does nothing.
"""

import sys  # the only import: see the module docstring

TRIGGER = "solo.methods"
MODULE_NAME = "dualgate_solo_hook"
PTH_NAME = "dualgate_solo_hook.pth"
PTH_LINE = f"import {MODULE_NAME}; {MODULE_NAME}.install()\n"


def _register() -> None:
    """:func:`dualgate_solo.solo_adapter.register`, or nothing when the package is gone; a refusal
    (a method name solo-learn already has) is one line on stderr and exit 2."""
    try:
        from dualgate_solo.solo_adapter import register
        from dualgate_solo.validation import UsageError
    except ModuleNotFoundError as error:
        if error.name != "dualgate_solo":
            raise
        return
    try:
        register()
    except UsageError as error:
        print(f"dualgate-solo: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


class _RegisteringLoader:
    """Runs the real loader of :data:`TRIGGER`, then :func:`_register`."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        self.inner.exec_module(module)
        _register()

    def __getattr__(self, name: str):  # get_data, get_filename, ... of the real loader
        return getattr(self.inner, name)


class RegisterOnImport:
    """Meta-path finder that wraps the loader of :data:`TRIGGER` and finds nothing else."""

    #: marks the finder whichever copy of this file defined it (``install`` stays idempotent)
    dualgate_solo_hook = True

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != TRIGGER:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Activate the hook (idempotent); registers at once if ``solo.methods`` is already imported."""
    if TRIGGER in sys.modules:
        _register()
    elif not any(getattr(finder, "dualgate_solo_hook", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, RegisterOnImport())
