"""Directory of the CUDA->CPU start-up shim: put :data:`SHIM_DIR` on ``PYTHONPATH``.

``sitecustomize.py`` here is imported by Python at interpreter start-up (never import it
yourself: it patches torch). Used by the grid runner's ``--cpu`` and by the integration tests.
"""

from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent
