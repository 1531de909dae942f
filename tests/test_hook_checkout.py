"""Real installs in throw-away virtual environments: the suite tests this checkout even with a wheel
of the package installed, and ``pip uninstall`` removes the start-up hook of a wheel install and
the one ``install_hook`` wrote for an editable install.

The environments are created ``--without-pip`` (this interpreter's pip installs into them with
``--python``); where they need this environment's packages (torch, pytest, setuptools), a ``.pth``
adds its site-packages after their own, as ``--system-site-packages`` would for a base Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import dualgate_solo
from dualgate_solo.solo_adapter.startup_hook_files import hook_files

CHECKOUT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md", "dualgate_solo", "hydra_plugins")
PROBE = "tests/test_hook_checkout.py::test_dualgate_solo_is_imported_from_this_checkout"
PARENT_SITE = "_parent_site.pth"


def test_dualgate_solo_is_imported_from_this_checkout() -> None:
    """The probe the environments below run; here it checks this very session."""
    assert Path(dualgate_solo.__file__).resolve() == CHECKOUT / "dualgate_solo" / "__init__.py"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run without PYTHONPATH, as a user in a fresh shell would."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def _ok(args: list[str], cwd: Path) -> str:
    result = _run(args, cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _pip(python: Path, *args: str) -> None:
    _ok([sys.executable, "-m", "pip", "--python", str(python), *args, "-q"], CHECKOUT)


def _venv(root: Path, parent_site: bool) -> tuple[Path, Path]:
    """A new environment at ``root``; returns its python and its site-packages."""
    _ok([sys.executable, "-m", "venv", "--without-pip", str(root)], root.parent)
    paths = {"base": str(root), "platbase": str(root)}
    site = Path(sysconfig.get_path("purelib", vars=paths))
    python = Path(sysconfig.get_path("scripts", vars=paths)) / Path(sys.executable).name
    if parent_site:
        parent = sysconfig.get_paths()["purelib"]
        (site / PARENT_SITE).write_text(f"import site; site.addsitedir({parent!r})\n")
    return python, site


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the files a build reads (building in place would write into the checkout), with
    the lab folders beside them as in a checkout."""
    copy = tmp_path_factory.mktemp("project")
    for name in (*PROJECT_FILES, "configs", "experiments", "scripts"):
        source = CHECKOUT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    return copy


@pytest.fixture(scope="module")
def wheel(project, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    _ok([*build, "--no-index", "-q", str(project), "-w", str(out)], project)
    (wheel,) = out.glob("dualgate_solo-*.whl")
    return wheel


def test_the_wheel_holds_the_library_not_the_lab(wheel) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "dualgate_solo/method_registry.py" in names
    assert any(n.startswith("dualgate_solo/configs/pretrain/") for n in names)
    top = {n.split("/")[0] for n in names if not n.startswith("dualgate_solo-")}
    hook = {path.name for path in hook_files(Path("."))[:2]}  # the start-up hook's .pth and module
    assert top == {"dualgate_solo", "hydra_plugins", *hook}, sorted(top)
    lab = [n for n in names if any(part in n.split("/") for part in ("bench", "runner", "results"))]
    assert lab == []


def test_the_suite_imports_this_checkout_with_a_wheel_installed(wheel, tmp_path) -> None:
    python, site = _venv(tmp_path / "env", parent_site=True)
    _pip(python, "install", "--no-deps", "--no-index", str(wheel))
    # Outside the checkout the wheel's copy is the one found, and start-up imported none of it.
    probe = (
        "import json, sys\n"
        "at_start = 'dualgate_solo' in sys.modules\n"
        "hook = any(getattr(f, 'dualgate_solo_hook', False) for f in sys.meta_path)\n"
        "import dualgate_solo\n"
        "print(json.dumps([at_start, hook, dualgate_solo.__file__]))\n"
    )
    at_start, hook, elsewhere = json.loads(_ok([str(python), "-c", probe], tmp_path))
    assert (at_start, hook) == (False, True)
    assert Path(elsewhere) == site / "dualgate_solo" / "__init__.py"

    pytest_args = ["-q", "-p", "no:cacheprovider", PROBE]
    # `python -m pytest` (the checkout is sys.path[0]) and a bare `pytest` (it is not: pytest's
    # `pythonpath` setting puts it there) both test the checkout.
    assert "1 passed" in _ok([str(python), "-m", "pytest", *pytest_args], CHECKOUT)
    bare = "import sys; sys.path.remove(''); import pytest; sys.exit(pytest.main(sys.argv[1:]))"
    assert "1 passed" in _ok([str(python), "-c", bare, *pytest_args], CHECKOUT)
    # Without that setting the wheel's copy is imported and conftest.py stops the session.
    refused = _run([str(python), "-c", bare, "-o", "pythonpath=", *pytest_args], CHECKOUT)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"dualgate_solo was imported from {site / 'dualgate_solo'}, not from the checkout" in (
        refused.stdout + refused.stderr
    )


def _leftovers(site: Path) -> list[Path]:
    return [path for path in hook_files(site) if path.exists()]


def test_pip_uninstall_removes_the_hook_a_wheel_installed(wheel, tmp_path) -> None:
    python, site = _venv(tmp_path / "env", parent_site=False)
    _pip(python, "install", "--no-deps", "--no-index", str(wheel))
    assert _leftovers(site) == hook_files(site)
    record = next(site.glob("dualgate_solo-*.dist-info")) / "RECORD"
    assert "dualgate_solo_hook.pth," in record.read_text()
    _pip(python, "uninstall", "--yes", "dualgate-solo")
    assert _leftovers(site) == []


def test_pip_uninstall_removes_the_hook_install_hook_wrote_for_an_editable_install(
    project, tmp_path
) -> None:
    python, site = _venv(tmp_path / "env", parent_site=True)  # setuptools, to build
    editable = ["install", "--no-deps", "--no-index", "--no-build-isolation", "--ignore-installed"]
    _pip(python, *editable, "--editable", str(project))
    assert _leftovers(site) == []  # an editable install ships no hook
    write = (
        "import dualgate_solo\n"
        "from dualgate_solo.solo_adapter.startup_hook_files import install_hook\n"
        "print(dualgate_solo.__file__); install_hook()\n"
    )
    imported = _ok([str(python), "-c", write], tmp_path).strip()
    assert Path(imported) == project / "dualgate_solo" / "__init__.py"
    assert _leftovers(site) == hook_files(site)
    (site / PARENT_SITE).unlink()  # pip uninstall must see this environment only
    _pip(python, "uninstall", "--yes", "dualgate-solo")
    assert _leftovers(site) == []
    assert not list(site.glob("__editable__*dualgate_solo*"))
