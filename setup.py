"""Build step pyproject.toml cannot express: the wheel carries ``configs/`` as
``dualgate_solo/configs`` and the start-up hook at the top of site-packages:
``dualgate_solo_hook.pth`` plus ``dualgate_solo_hook.py``, a copy of
``dualgate_solo/solo_adapter/startup_hook.py``. Being in the wheel, they are listed in its
``RECORD``, so ``pip uninstall dualgate-solo`` removes them.

Editable installs skip both: they read ``configs/`` in place, and ``dualgate-solo install-hook``
writes the hook (see ``dualgate_solo/solo_adapter/startup_hook_files.py``).
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
HOOK_SOURCE = ROOT / "dualgate_solo" / "solo_adapter" / "startup_hook.py"


def _hook_module():
    """``startup_hook`` loaded from its file alone (standalone; the package is not built yet)."""
    spec = importlib.util.spec_from_file_location("_dualgate_solo_hook_build", HOOK_SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithConfigsAndHook(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        hook = _hook_module()
        build_lib = Path(self.build_lib)
        shutil.copytree(
            ROOT / "configs", build_lib / "dualgate_solo" / "configs", dirs_exist_ok=True
        )
        shutil.copyfile(HOOK_SOURCE, build_lib / f"{hook.MODULE_NAME}.py")
        (build_lib / hook.PTH_NAME).write_text(hook.PTH_LINE)


setup(cmdclass={"build_py": BuildPyWithConfigsAndHook})
