"""``python -m experiments.runner.knn_record RESULTS.json SCRIPT [ARGS...]``.

Runs solo-learn's unchanged ``main_knn.py`` (``SCRIPT``) through ``dualgate-solo run`` and
records every k-NN evaluation it makes to ``RESULTS.json``: a list of
``{"k", "T", "distance_fx", "acc1", "acc5"}``, one per parameter set in the order ``main_knn.py``
runs them (the last ``compute`` of each: torchmetrics also computes in ``forward``), rewritten
after each one. Run one ``--feature_type`` per call: the feature type is not recorded. The
results come from solo-learn's ``WeightedKNNClassifier.compute`` itself, never from the
script's printed output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def record_knn_results(path: Path) -> None:
    """Make every ``WeightedKNNClassifier.compute()`` of this process append to ``path``."""
    from solo.utils.knn import WeightedKNNClassifier

    results: dict[tuple, dict] = {}  # (k, T, distance_fx) -> its latest result
    path.write_text("[]")
    original = WeightedKNNClassifier.compute

    def compute(self):  # noqa: ANN001, ANN202
        acc1, acc5 = original(self)
        results[(self.k, self.T, self.distance_fx)] = {
            "k": self.k,
            "T": self.T,
            "distance_fx": self.distance_fx,
            "acc1": acc1,
            "acc5": acc5,
        }
        path.write_text(json.dumps(list(results.values()), indent=2))
        return acc1, acc5

    WeightedKNNClassifier.compute = compute


def top1_by_k(path: Path) -> dict[int, float]:
    """``{k: acc@1}`` from a results file (one distance function and temperature per k)."""
    return {entry["k"]: float(entry["acc1"]) for entry in json.loads(path.read_text())}


def main(argv: list[str] | None = None) -> int:
    results, script, *script_args = sys.argv[1:] if argv is None else argv
    record_knn_results(Path(results))
    from dualgate_solo.cli import main as dualgate_solo

    return dualgate_solo(["run", script, *script_args])


if __name__ == "__main__":
    sys.exit(main())
