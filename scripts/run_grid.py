"""Entry point of the evaluation grid; the runner is :mod:`experiments.runner` (see its ``cli``).

    SOLO_LEARN_SRC=/path/to/solo-learn python scripts/run_grid.py --protocol smoke \\
        --train /data/cifar10_jpg/train --val /data/cifar10_jpg/test --out results/grid_smoke
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package, experiments/

from experiments.runner.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
