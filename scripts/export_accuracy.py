"""Entry point of the export-accuracy check; it is :mod:`dualgate_solo.bench.export_accuracy`.

    python scripts/export_accuracy.py --checkpoint trained_models/vicreg_dual_gating/<run> \\
        --train /data/cifar10_jpg/train --test /data/cifar10_jpg/test --out results/export_accuracy
"""

import sys

from dualgate_solo.bench.export_accuracy import main
from dualgate_solo.validation import report_usage_errors

if __name__ == "__main__":
    sys.exit(report_usage_errors(main, "export_accuracy.py"))
