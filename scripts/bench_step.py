"""Entry point of the training-step benchmark; the benchmark is :mod:`dualgate_solo.bench.step`.

SOLO_LEARN_SRC=/path/to/solo-learn python scripts/bench_step.py --batch-size 64 --steps 5
"""

import sys

from dualgate_solo.bench.step import main
from dualgate_solo.validation import report_usage_errors

if __name__ == "__main__":
    sys.exit(report_usage_errors(main, "bench_step.py"))
