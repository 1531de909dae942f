"""Shared fixtures for the core tests (CPU, no solo-learn), and the checkout-under-test guard.

The guard: the session stops at once unless ``dualgate_solo`` was imported from the checkout these
tests live in. An installed copy (wheel or another checkout's editable install) would otherwise
be tested in silence. ``tests/test_hook_checkout.py`` proves the guard holds with a wheel installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dualgate_solo
from dualgate_solo.models import GatedResNet, create_backbone

CHECKOUT = Path(__file__).resolve().parents[1]


def imported_package_dir() -> Path:
    """The directory ``dualgate_solo`` was imported from in this interpreter."""
    return Path(dualgate_solo.__file__).resolve().parent


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
