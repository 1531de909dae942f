"""Entry point of the export-accuracy check; it is :mod:`experiments.bench.export_accuracy`.

    python scripts/export_accuracy.py --checkpoint trained_models/vicreg_dual_gating/<run> \\
        --train /data/cifar10_jpg/train --test /data/cifar10_jpg/test --out results/export_accuracy
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package, experiments/

from dualgate_solo.validation import report_usage_errors  # noqa: E402
from experiments.bench.export_accuracy import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(report_usage_errors(main, "export_accuracy.py"))
