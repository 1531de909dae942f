"""Copy a grid's small artefacts (no checkpoints) to a directory that is committed.

Per run: the stage records, the k-NN results, the cost report and figures, solo-learn's
``args.json`` of the pre-training (``args.json``) and of each linear probe
(``linear-<branch>.args.json``), read from the paths the stage records name, and the
pre-training's logged metrics merged into one file
(:data:`~experiments.runner.curves.METRICS_FILE`). Those files keep solo-learn's and Lightning's
formats, so the run's ``sources.json`` (:func:`~experiments.sources.write_sources`) ties
each to the stamped stage record that wrote it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dualgate_solo.validation import UsageError
from experiments.runner.curves import METRICS_FILE, write_merged_metrics
from experiments.runner.stages import stage_result
from experiments.sources import RAW_OUTPUTS, find_stamp, write_sources

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


def written_by(run_dir: Path) -> dict[str, str]:
    """``{file: stage record}`` for the files in ``run_dir`` that keep another tool's format:
    ``args.json`` and the metrics (pre-training), ``linear-<branch>.args.json`` (that probe),
    ``knn-<branch>-results.json`` (that k-NN stage)."""
    found = {}
    for name in ("args.json", METRICS_FILE):
        if (run_dir / name).is_file():
            found[name] = "pretrain.json"
    for path in sorted(run_dir.glob("linear-*.args.json")):
        found[path.name] = path.name.removesuffix(".args.json") + ".json"
    for path in sorted(run_dir.glob("knn-*-results.json")):
        found[path.name] = path.name.removesuffix("-results.json") + ".json"
    return found


def _unstamped_records(run_dir: Path) -> list[str]:
    """The stage records of ``run_dir`` that hold no commit and dirty flag."""
    records = [p for p in sorted(run_dir.glob("*.json")) if not p.name.endswith(RAW_OUTPUTS)]
    return [p.name for p in records if find_stamp(json.loads(p.read_text())) is None]


def publish_runs(out: Path, target: Path, runs: list[str]) -> None:
    """Copy the artefacts of ``runs`` from ``out/runs/`` to ``target/runs/``, with a
    ``sources.json`` per run (:func:`written_by`).

    Raises:
        UsageError: a run's stage records hold no commit and dirty flag (it ran from no git
            checkout); nothing is copied then.
        FileNotFoundError: a stage record names a solo-learn ``args.json`` that does not exist.
    """
    for name in runs:
        unstamped = _unstamped_records(out / "runs" / name)
        if unstamped:
            raise UsageError(
                f"--publish={str(target)!r}: run {name} has stage records without a commit and "
                f"dirty flag ({', '.join(unstamped)}); allowed: runs made from a git checkout "
                "of dualgate-solo"
            )
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
        write_sources(dest_dir, written_by(dest_dir))
