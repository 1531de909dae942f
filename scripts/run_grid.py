"""Entry point of the evaluation grid; the runner is :mod:`dualgate_solo.runner` (see its ``cli``).

    SOLO_LEARN_SRC=/path/to/solo-learn python scripts/run_grid.py --protocol smoke \\
        --train /data/cifar10_jpg/train --val /data/cifar10_jpg/test --out results/grid_smoke
"""

import sys

from dualgate_solo.runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
