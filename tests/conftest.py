"""Shared fixtures for the core tests (CPU, no solo-learn), and the checkout-under-test guard.

The guard: the session stops at once unless ``dualgate_solo`` was imported from the checkout these
tests live in. An installed copy (wheel or another checkout's editable install) would otherwise
be tested in silence. ``tests/test_hook_checkout.py`` proves the guard holds with a wheel installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import dualgate_solo
from dualgate_solo.models import GatedResNet, create_backbone

CHECKOUT = Path(__file__).resolve().parents[1]


def imported_package_dir() -> Path:
    """The directory ``dualgate_solo`` was imported from in this interpreter."""
    return Path(dualgate_solo.__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n N``) each of the N workers, and every process it starts, gets
    ``cpu_count // N`` threads, so the workers share the cores instead of each taking all."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_sessionstart(session: pytest.Session) -> None:
    expected = CHECKOUT / "dualgate_solo"
    if imported_package_dir() != expected:
        pytest.exit(
            f"dualgate_solo was imported from {imported_package_dir()}, not from the checkout "
            f"under test ({expected}): run `python -m pytest` from {CHECKOUT}; if that does not "
            "help, a .pth file or sitecustomize imports the installed copy at start-up",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def r18_cifar() -> GatedResNet:
    return create_backbone("dg_resnet18", stem="cifar")
