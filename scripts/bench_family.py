"""Entry point of the family latency benchmark; the benchmark is :mod:`experiments.bench.family`.

python scripts/bench_family.py --grid GRID_OUT [--table RECORDS] [--calib-data DIR] [--quick]
"""

import os
import sys
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning (set before torch is imported; the value used is
# recorded in the JSON), as in scripts/bench_latency.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package, experiments/

from dualgate_solo.validation import report_usage_errors  # noqa: E402
from experiments.bench.family import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(report_usage_errors(main, "bench_family.py"))
