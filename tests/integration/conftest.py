"""Integration tests against a real solo-learn 1.0.6 (commit 9187ea3).

They run when solo-learn is importable: installed (``pip install -r requirements-solo.txt``) or a
checkout named by ``SOLO_LEARN_SRC``. The script tests also need ``SOLO_LEARN_SRC``, because
solo-learn's ``main_*.py`` are not part of its package. Otherwise they are skipped with the reason,
unless ``DUALGATE_REQUIRE_SOLO=1`` (CI sets it): then a missing solo-learn or checkout stops the
session at collection, so a run cannot pass with the integration tests skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from model_utils import write_shape_folders

from dualgate_solo.solo_adapter.startup_hook_files import install_hook
from experiments.runner.cpu_shim import SHIM_DIR

REPO = Path(__file__).resolve().parents[2]
NOISE = ("Warning", "warn(", "register_model", "custom_fwd", "pkg_resources")


def solo_source() -> Path | None:
    src = os.environ.get("SOLO_LEARN_SRC")
    return Path(src).resolve() if src else None


def _solo_importable() -> str | None:
    """``None`` when solo-learn imports, else the reason to skip."""
    src = solo_source()
    if src is not None and str(src) not in sys.path:
        sys.path.insert(0, str(src))
    try:
        import solo.methods  # noqa: F401
    except ImportError as error:
        return (
            f"solo-learn is not importable ({error}); install it with "
            "`pip install -r requirements-solo.txt` "
            "or set SOLO_LEARN_SRC=<solo-learn checkout at 9187ea3>"
        )
    return None


SKIP_REASON = _solo_importable()
REQUIRE_ENV_VAR = "DUALGATE_REQUIRE_SOLO"


def _missing_requirement() -> str | None:
    """Why the integration tests cannot run here, when they are required; else ``None``."""
    if os.environ.get(REQUIRE_ENV_VAR) != "1":
        return None
    src = solo_source()
    if SKIP_REASON:
        return SKIP_REASON
    if src is None or not (src / "main_pretrain.py").is_file():
        return f"SOLO_LEARN_SRC={src} is not a solo-learn checkout with main_pretrain.py"
    return None


def pytest_collection_modifyitems(config, items) -> None:
    missing = _missing_requirement()
    if missing and any("integration" in item.nodeid for item in items):
        raise pytest.UsageError(f"{REQUIRE_ENV_VAR}=1 but {missing}")
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.solo)
            if SKIP_REASON:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def solo_src() -> Path:
    src = solo_source()
    if src is None or not (src / "main_pretrain.py").is_file():
        pytest.skip(
            "solo-learn's scripts are not installed with its package: set SOLO_LEARN_SRC=<checkout>"
        )
    return src


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory) -> tuple[Path, Path]:
    """Train/val ImageFolders: 6 classes of coloured shapes, 16 + 8 images each, 32 px PNGs."""
    root = write_shape_folders(tmp_path_factory.mktemp("images"), "val", ".png")
    return root / "train", root / "val"


def run_script(
    script: Path,
    args: list[str],
    cwd: Path,
    shim: bool = False,
    hook_dir: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run a solo-learn script unchanged in a fresh interpreter; ``shim`` maps CUDA to the CPU."""
    paths = ([str(SHIM_DIR)] if shim else []) + [
        str(script.parent),
        os.environ.get("PYTHONPATH", ""),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "HYDRA_FULL_ERROR": "1",
    }
    env.pop("DUALGATE_HOOK_DIR", None)
    if hook_dir is not None:
        env["DUALGATE_HOOK_DIR"] = str(hook_dir)
    result = subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        tail = "\n".join(
            line for line in result.stderr.splitlines() if not any(n in line for n in NOISE)
        )[-4000:]
        raise AssertionError(f"{script.name} failed (rc={result.returncode}):\n{tail}")
    return result


@pytest.fixture(scope="session")
def hook_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("site")
    install_hook(directory)
    return directory
