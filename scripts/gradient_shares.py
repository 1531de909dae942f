"""Entry point of the gradient-share analysis, :mod:`experiments.analysis.gradient_share_report`.

    python scripts/gradient_shares.py --checkpoint /runs/cpu-lr0.3/runs/<run> \\
        --at-init --out results/dense_parity/gradient_shares
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package, experiments/

from dualgate_solo.validation import report_usage_errors  # noqa: E402
from experiments.analysis.gradient_share_report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(report_usage_errors(main, "gradient_shares.py"))
