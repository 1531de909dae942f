"""Entry point of the training-step benchmark; the benchmark is :mod:`experiments.bench.step`.

SOLO_LEARN_SRC=/path/to/solo-learn python scripts/bench_step.py --batch-size 64 --steps 5
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package, experiments/

from dualgate_solo.validation import report_usage_errors  # noqa: E402
from experiments.bench.step import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(report_usage_errors(main, "bench_step.py"))
