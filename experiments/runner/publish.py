"""Copy a grid's small artefacts (no checkpoints) to a directory that is committed.

Per run: the stage records, the k-NN results, the cost report and figures, solo-learn's
``args.json`` of the pre-training (``args.json``) and of each linear probe
(``linear-<branch>.args.json``), read from the paths the stage records name, and the
pre-training's logged metrics merged into one file
(:data:`~experiments.runner.curves.METRICS_FILE`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from experiments.runner.curves import METRICS_FILE, write_merged_metrics
from experiments.runner.stages import stage_result

PUBLISHED = (
    "*.json",
    "cost/cost_report.json",
    "cost/channel_usage.csv",
    "cost/channel_usage.png",
    "cost/layers.csv",
    "umap_branches.png",
)


def _solo_args(run_dir: Path) -> dict[str, Path]:
    """``{published name: solo-learn args.json}`` named by the pre-training and linear records."""
    found = {}
    for record, name in [(run_dir / "pretrain.json", "args.json")] + [
        (p, f"{p.stem}.args.json") for p in sorted(run_dir.glob("linear-*.json"))
    ]:
        source = stage_result(json.loads(record.read_text())).get("args_json")
        if source:
            found[name] = Path(source)
    return found


def publish_runs(out: Path, target: Path, runs: list[str]) -> None:
    """Copy the artefacts of ``runs`` from ``out/runs/`` to ``target/runs/``.

    Raises:
        FileNotFoundError: a stage record names a solo-learn ``args.json`` that does not exist.
    """
    for name in runs:
        run_dir, dest_dir = out / "runs" / name, target / "runs" / name
        for pattern in PUBLISHED:
            for f in run_dir.glob(pattern):
                dest = dest_dir / f.relative_to(run_dir)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
        for published, source in _solo_args(run_dir).items():
            shutil.copy2(source, dest_dir / published)
        write_merged_metrics(run_dir, dest_dir / METRICS_FILE)
