"""The start-up hook: what ``install_hook`` writes, records and removes; what the hook imports.

The end-to-end checks with real wheels, editable installs and ``pip uninstall`` are in
``test_hook_checkout.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from model_utils import fake_solo_methods

from dualgate_solo.solo_adapter import startup_hook
from dualgate_solo.solo_adapter.startup_hook_files import hook_files, install_hook, uninstall_hook

CHECKOUT = Path(__file__).resolve().parents[1]
OTHER_ROWS = "dualgate_solo/__init__.py,sha256=abc,10\ndualgate_solo-0.1.0.dist-info/RECORD,,\n"


def _fake_site(tmp_path: Path) -> tuple[Path, Path]:
    """A site directory holding an installed ``dualgate-solo``'s metadata; returns it and RECORD."""
    site = tmp_path / "site"
    record = site / "dualgate_solo-0.1.0.dist-info" / "RECORD"
    record.parent.mkdir(parents=True)
    record.write_text(OTHER_ROWS)
    return site, record


def _run(
    code: str, cwd: Path, *args: str, flags: tuple[str, ...] = (), checkout: bool = True
) -> str:
    """Run ``code`` in a fresh interpreter in ``cwd``; ``checkout``: this checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if checkout:
        env["PYTHONPATH"] = str(CHECKOUT)
    result = subprocess.run(
        [sys.executable, *flags, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_install_hook_writes_the_standalone_module_and_records_every_file(tmp_path) -> None:
    site, record = _fake_site(tmp_path)
    pth = install_hook(site)
    pth_file, module, bytecode = hook_files(site)
    assert pth == pth_file and pth.read_text() == startup_hook.PTH_LINE
    assert module.read_bytes() == Path(startup_hook.__file__).read_bytes()
    assert bytecode.parent.name == "__pycache__" and bytecode.is_file()
    rows = [line.split(",") for line in record.read_text().splitlines()]
    assert rows[:2] == [line.split(",") for line in OTHER_ROWS.splitlines()]
    expected = []
    for path in (pth_file, module, bytecode):
        data = path.read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
        expected.append([path.relative_to(site).as_posix(), f"sha256={digest}", str(len(data))])
    assert rows[2:] == expected
    assert expected[0][0] == "dualgate_solo_hook.pth"
    assert expected[2][0].startswith("__pycache__/dualgate_solo_hook.")


def test_install_twice_keeps_one_row_per_file_and_uninstall_restores_record(tmp_path) -> None:
    site, record = _fake_site(tmp_path)
    install_hook(site)
    install_hook(site)
    assert len(record.read_text().splitlines()) == 2 + 3
    assert uninstall_hook(site) == hook_files(site)
    assert not any(path.exists() for path in hook_files(site))
    assert record.read_text() == OTHER_ROWS
    assert uninstall_hook(site) == []


def test_hook_at_start_up_imports_only_itself(tmp_path) -> None:
    """``site`` processes the ``.pth`` as at start-up: one new module, one finder, no package."""
    hook_dir = install_hook(tmp_path / "site").parent
    code = (
        "import json, site, sys\n"
        "before = set(sys.modules)\n"
        "site.addsitedir(sys.argv[1])\n"
        "print(json.dumps([sorted(set(sys.modules) - before), type(sys.meta_path[0]).__name__]))\n"
    )
    new_modules, first_finder = json.loads(_run(code, tmp_path, str(hook_dir)))
    assert new_modules == ["dualgate_solo_hook"]
    assert first_finder == "RegisterOnImport"


def test_hook_left_behind_without_the_package_leaves_solo_methods_working(tmp_path) -> None:
    """``-S``: no site-packages, so ``dualgate_solo`` is not importable; the hook stays silent."""
    hook_dir = install_hook(tmp_path / "site").parent
    fake = fake_solo_methods(tmp_path / "fake", "METHODS = {'vicreg': None}\n")
    code = (
        "import sys\n"
        "sys.path[:0] = sys.argv[1:]\n"
        "import dualgate_solo_hook\n"
        "dualgate_solo_hook.install()\n"
        "dualgate_solo_hook.install()\n"
        "finders = [f for f in sys.meta_path if getattr(f, 'dualgate_solo_hook', False)]\n"
        "import solo.methods\n"
        "print(len(finders), sorted(solo.methods.METHODS), 'dualgate_solo' in sys.modules)\n"
    )
    out = _run(code, tmp_path, str(hook_dir), str(fake), flags=("-S",), checkout=False)
    assert out == "1 ['vicreg'] False"


def test_registering_loader_keeps_the_real_loaders_interface(tmp_path) -> None:
    """Tools that read ``module.__loader__`` (inspect, pkgutil) still reach the real loader."""
    fake = fake_solo_methods(tmp_path / "fake", "X = 1\n")
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import dualgate_solo.solo_adapter as plugin\n"
        "plugin.register = lambda: print('registered')\n"
        "from dualgate_solo.solo_adapter import startup_hook\n"
        "startup_hook.install()\n"
        "import solo.methods\n"
        "print(solo.methods.__loader__.get_filename('solo.methods') == solo.methods.__file__)\n"
    )
    out = _run(code, tmp_path, str(fake))
    assert out.splitlines() == ["registered", "True"]
