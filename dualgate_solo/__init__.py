"""dualgate-solo: VICReg-Dual-Gating (Krishna et al., BMVC 2023) and VICReg-Gating for solo-learn.

Importing the package has no side effects beyond registering the ``dg_resnet*`` backbones with
timm when :mod:`dualgate_solo.models` is imported. solo-learn is imported lazily, only by
:func:`register` and the integration modules.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
