"""Build step pyproject.toml cannot express: the wheel carries ``configs/`` as ``dualgate_solo/configs``
and the start-up hook ``dualgate_solo_hook.pth`` (see ``dualgate_solo/solo/import_hook.py``).

Editable installs skip both: they read ``configs/`` in place, and the README tells editable users
to run ``dualgate-solo install-hook`` once.
"""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithConfigsAndHook(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sys.path.insert(0, str(ROOT))
        from dualgate_solo.solo.import_hook import PTH_LINE, PTH_NAME

        build_lib = Path(self.build_lib)
        shutil.copytree(
            ROOT / "configs", build_lib / "dualgate_solo" / "configs", dirs_exist_ok=True
        )
        (build_lib / PTH_NAME).write_text(PTH_LINE)


setup(cmdclass={"build_py": BuildPyWithConfigsAndHook})
