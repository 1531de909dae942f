"""Shared fixtures for the core tests (CPU, no solo-learn)."""

from __future__ import annotations

import pytest
import torch

from dualgate_solo.models import GatedResNet, create_backbone


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def r18_cifar() -> GatedResNet:
    return create_backbone("dg_resnet18", stem="cifar")
