"""Does the dense branch pay for the gated one? The dense-parity summary of published grid runs.

Reads the per-run records of one or more grids published by ``scripts/run_grid.py`` (each run's
``runs/<run>/`` with its stage records and solo-learn ``args.json``), groups them by protocol label,
variant and learning rate, and writes to ``--out``:

- ``sweep.csv``: one row per (protocol, variant, lr): seeds, dense/gated linear and k-NN (k=20)
  means and sample standard deviations, the gated branch's FLOPs R., and the dense network's
  gap to VICReg run at the same lr (``*_same_lr_*``, paired as below; empty without one).
- ``summary.csv``: one row per (protocol, variant), each at its own best lr (highest mean dense
  linear top-1 over the seeds every lr ran; VICReg's the same way), columns::

      protocol,variant,seeds,lr,dense_minus_vicreg_linear_mean,dense_minus_vicreg_linear_std,
      dense_minus_vicreg_knn20_mean,dense_minus_vicreg_knn20_std,gated_linear_mean,
      small_alone_linear_mean,gated_flops_reduction_pct,step_cost_vs_vicreg

  ``dense - vicreg`` is taken seed by seed when both groups hold the same seeds (mean and sample
  std of the paired differences), otherwise as the difference of the means with
  ``sqrt(s_a^2 + s_b^2)`` as its spread; VICReg's own row has zeros. ``small_alone`` is VICReg
  trained alone at the backbone width (``--baseline-widths`` runs of the same protocol and lr
  sweep, at their best lr) whose MACs are closest to the gated branch's expected MACs.
  ``step_cost_vs_vicreg`` is the median step time of the variant's ``bench_step.py`` entry over
  VICReg's, both from the same ``bench_step.csv`` (one run, same batch); empty if unmeasured.
- ``summary.md`` (the same with the small network's width and the files read) and
  ``dense_parity.png`` (the gaps with error bars; the grids' online learning curves when they
  have ``curves.csv``), ``provenance.json`` (machine, date, commit, command, inputs).

``lr`` is solo-learn's ``optimizer.lr`` as recorded in ``args.json``: the value after solo-learn's
batch-size scaling (``lr * batch_size / 256``), i.e. the peak lr that ran.

    python scripts/dense_parity.py --grid cpu=/runs/cpu-lr0.3 --grid cpu=/runs/cpu-lr0.6 \\
        --step-cost results/bench_step/bench_step.csv --out results/dense_parity
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package, experiments/

from dualgate_solo.method_registry import METHODS  # noqa: E402
from dualgate_solo.validation import UsageError, report_usage_errors  # noqa: E402
from experiments.runner.protocols import BASELINE  # noqa: E402
from experiments.runner.table import collect_rows, config_groups, config_labels  # noqa: E402

SUMMARY_COLUMNS = (
    "protocol",
    "variant",
    "seeds",
    "lr",
    "dense_minus_vicreg_linear_mean",
    "dense_minus_vicreg_linear_std",
    "dense_minus_vicreg_knn20_mean",
    "dense_minus_vicreg_knn20_std",
    "gated_linear_mean",
    "small_alone_linear_mean",
    "gated_flops_reduction_pct",
    "step_cost_vs_vicreg",
)
SWEEP_COLUMNS = (
    "protocol",
    "variant",
    "lr",
    "config",
    "seeds",
    "dense_linear_mean",
    "dense_linear_std",
    "dense_knn20_mean",
    "dense_knn20_std",
    "gated_linear_mean",
    "gated_linear_std",
    "gated_flops_reduction_pct",
    "gated_macs_m",
    "width",
    "macs_m",
    "dense_minus_vicreg_linear_same_lr_mean",
    "dense_minus_vicreg_linear_same_lr_std",
    "dense_minus_vicreg_knn20_same_lr_mean",
    "dense_minus_vicreg_knn20_same_lr_std",
)
#: methods with a dense and a gated branch over the same weights (from the registry)
TWO_BRANCH = tuple(m for m, spec in METHODS.items() if {"dense", "gated"} <= set(spec.branches))
#: grid variant of a two-branch run -> the ``bench_step.py`` entry of the committed benchmark
#: files that times its training step (budget options do not change a step: ``tracked`` times
#: as ``paper``, ``tracked_symmetric`` as ``symmetric``, ``paper_gate_warmup`` as ``paper``, whose
#: steps its own are after the warm-up, VICReg-like dense pairs before; width gates,
#: ``tracked_width``, have no entry yet)
STEP_ENTRY = {
    "paper": "vicreg_dual_gating",
    "tracked": "vicreg_dual_gating",
    "tracked_symmetric": "vicreg_dual_gating+symmetric",
    "paper_dense_pair": "vicreg_dual_gating+paper_dense_pair",
    "paper_dense_pair_sg": "vicreg_dual_gating+paper_dense_pair_sg",
    "paper_dense_pair_sg_s0": "vicreg_dual_gating+paper_dense_pair_sg_s0",
    "paper_gate_warmup": "vicreg_dual_gating",
}


def variant_name(row: dict[str, Any]) -> str:
    """``vicreg`` (width-``w`` runs: ``vicreg@w<w>``) or ``<method>:<variant>:td<t_d>``."""
    if row["method"] == BASELINE:
        return f"{BASELINE}@w{row['width']}" if row["width"] else BASELINE
    return f"{row['method']}:{row['variant']}:td{row['t_d']}"


def load_runs(label: str, grid: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """One dict per evaluated VICReg or two-branch run of ``grid`` (protocol label, variant
    name, lr, seed, and per branch ``linear``/``knn20``/``flops_reduction_pct``/``macs_m``), and
    the runs left out because they have no ``args.json`` (their lr and config cannot be
    checked). Gating and the slimmable family have no dense network over the same weights."""
    rows, _ = collect_rows(grid / "runs")
    runs: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for row in rows:
        if row["branch"] not in ("dense", "gated") or (
            row["branch"] == "gated" and row["method"] not in TWO_BRANCH
        ):
            continue  # networks without a dense counterpart: Gating, the slimmable family
        args_file = grid / "runs" / row["run"] / "args.json"
        if not args_file.is_file():
            skipped += [] if row["run"] in skipped else [row["run"]]
            continue
        run = runs.setdefault(
            row["run"],
            {
                "protocol": label,
                "variant": variant_name(row),
                "lr": json.loads(args_file.read_text())["optimizer"]["lr"],
                "seed": row["seed"],
                "width": row["width"],
                "config": row["config"],
                "source": str(grid / "runs" / row["run"]),
            },
        )
        run[row["branch"]] = {
            "linear": float(row["linear_top1"]),
            "knn20": float(row["knn_top1_k20"]),
            "flops_reduction_pct": float(row["flops_reduction_pct"]),
            "macs_m": None if row["macs_m"] == "" else float(row["macs_m"]),
        }
    return list(runs.values()), skipped


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def sweep_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, variant, lr) of ``runs`` and config: runs whose recorded configs
    differ in more than seed, accelerator and paths are split as in the grid's tables (``config``
    names what sets them apart); first-seen order, each seed once per row."""
    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        keyed.setdefault((run["protocol"], run["variant"], run["lr"]), []).append(run)
    groups = {}
    for key, same_key in keyed.items():
        split = config_groups(same_key)
        groups |= {(*key, label): members for members, label in zip(split, config_labels(split))}
    rows = []
    for (protocol, variant, lr, config), members in groups.items():
        seeds = [m["seed"] for m in members]
        if len(set(seeds)) != len(seeds):
            raise UsageError(
                f"--grid: {protocol} {variant} lr={lr} has seeds {seeds} more than once; "
                "allowed: each seed once per protocol, variant and lr"
            )
        row: dict[str, Any] = {"protocol": protocol, "variant": variant, "lr": lr}
        row["config"] = config
        row["seeds"] = len(members)
        row["members"] = members
        row["width"] = members[0]["width"]
        for branch in ("dense", "gated"):
            if branch not in members[0]:
                continue
            for metric in ("linear", "knn20"):
                values = [m[branch][metric] for m in members]
                row[f"{branch}_{metric}_mean"], row[f"{branch}_{metric}_std"] = _mean_std(values)
        dense_macs = [m["dense"]["macs_m"] for m in members]
        row["macs_m"] = statistics.fmean(dense_macs) if None not in dense_macs else None
        if "gated" in members[0]:
            row["gated_flops_reduction_pct"] = statistics.fmean(
                m["gated"]["flops_reduction_pct"] for m in members
            )
            macs = [m["gated"]["macs_m"] for m in members]
            row["gated_macs_m"] = statistics.fmean(macs) if None not in macs else None
        rows.append(row)
    return rows


def add_same_lr_gaps(rows: list[dict[str, Any]]) -> None:
    """Fill each dense row's ``dense_minus_vicreg_<metric>_same_lr_mean/std``: its gap to the
    protocol's VICReg row at the same lr and config (:func:`difference`), in place."""
    baselines = {(r["protocol"], r["lr"], r["config"]): r for r in rows if r["variant"] == BASELINE}
    for row in rows:
        base = baselines.get((row["protocol"], row["lr"], row["config"]))
        alone = row["variant"] == BASELINE or row["variant"].startswith(f"{BASELINE}@")
        if base is None or alone or "dense_linear_mean" not in row:
            continue
        for metric in ("linear", "knn20"):
            mean, std = difference(row, base, metric)
            row[f"dense_minus_vicreg_{metric}_same_lr_mean"] = mean
            row[f"dense_minus_vicreg_{metric}_same_lr_std"] = std


def best_lr(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The sweep row (lr and config) with the highest mean linear top-1 of the dense network
    (the gated one for a method without a dense network) per (protocol, variant), the means
    taken over the seeds every candidate row ran (over all its seeds when they share none), so
    one lr's lucky extra seeds do not make it the best. The first row wins a tie."""
    candidates: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        candidates.setdefault((row["protocol"], row["variant"]), []).append(row)
    best = {}
    for key, group in candidates.items():
        shared = set.intersection(*({m["seed"] for m in row["members"]} for row in group))
        best[key] = max(group, key=lambda row: _shared_seed_score(row, shared))
    return best


def _shared_seed_score(row: dict[str, Any], seeds: set) -> float:
    """Mean linear top-1 of ``row``'s dense network (else gated) over its runs of ``seeds``
    (all its runs when ``seeds`` is empty)."""
    network = "dense" if "dense" in row["members"][0] else "gated"
    members = [m for m in row["members"] if not seeds or m["seed"] in seeds]
    return statistics.fmean(m[network]["linear"] for m in members)


def difference(
    row: dict[str, Any], base: dict[str, Any], metric: str
) -> tuple[float, float | None]:
    """``row``'s dense ``metric`` minus ``base``'s: paired by seed when both hold the same seeds
    (mean, sample std of the differences), else the difference of the means with
    ``sqrt(s_a^2 + s_b^2)`` (``None`` when either spread is unknown)."""
    mine = {m["seed"]: m["dense"][metric] for m in row["members"]}
    theirs = {m["seed"]: m["dense"][metric] for m in base["members"]}
    if set(mine) == set(theirs):
        return _mean_std([mine[s] - theirs[s] for s in mine])
    mean = statistics.fmean(mine.values()) - statistics.fmean(theirs.values())
    spreads = (row.get(f"dense_{metric}_std"), base.get(f"dense_{metric}_std"))
    return mean, None if None in spreads else math.hypot(*spreads)


def step_costs(files: Sequence[Path]) -> dict[str, float]:
    """``bench_step.py`` entry -> its median step time over VICReg's in the same file (the
    first file that measures the entry wins)."""
    costs: dict[str, float] = {}
    for path in files:
        with open(path, newline="") as f:
            times = {r["method"]: float(r["median_step_s"]) for r in csv.DictReader(f)}
        if BASELINE not in times:
            raise UsageError(
                f"--step-cost={path} is invalid: no {BASELINE} row; allowed: bench_step.csv"
            )
        for entry, seconds in times.items():
            costs.setdefault(entry, seconds / times[BASELINE])
    return costs


def summary_rows(sweep: list[dict[str, Any]], costs: dict[str, float]) -> list[dict[str, Any]]:
    """:data:`SUMMARY_COLUMNS` rows (plus ``small_width``) per (protocol, variant) with a dense
    network, at its best lr, against the protocol's VICReg at VICReg's best lr."""
    best = best_lr(sweep)
    out = []
    for (protocol, variant), row in best.items():
        if variant.startswith(f"{BASELINE}@") or "dense_linear_mean" not in row:
            continue
        base = best.get((protocol, BASELINE))
        if base is None:
            raise UsageError(
                f"--grid: protocol {protocol} has no {BASELINE} run; allowed: grids that "
                f"include the {BASELINE} baseline"
            )
        lin, lin_std = difference(row, base, "linear")
        knn, knn_std = difference(row, base, "knn20")
        summary = {
            "protocol": protocol,
            "variant": variant,
            "seeds": row["seeds"],
            "lr": row["lr"],
            "dense_minus_vicreg_linear_mean": lin,
            "dense_minus_vicreg_linear_std": lin_std,
            "dense_minus_vicreg_knn20_mean": knn,
            "dense_minus_vicreg_knn20_std": knn_std,
            "gated_linear_mean": row.get("gated_linear_mean"),
            "small_alone_linear_mean": None,
            "gated_flops_reduction_pct": row.get("gated_flops_reduction_pct"),
            "step_cost_vs_vicreg": 1.0 if variant == BASELINE else None,
            "small_width": None,
            "config": row["config"],
        }
        entry = STEP_ENTRY.get(variant.split(":")[1]) if ":" in variant else None
        if entry in costs:
            summary["step_cost_vs_vicreg"] = costs[entry]
        small = _small_alone(best, protocol, row.get("gated_macs_m"))
        if small is not None:
            summary["small_alone_linear_mean"] = small["dense_linear_mean"]
            summary["small_width"] = small["width"]
        out.append(summary)
    return out


def _small_alone(
    best: dict[tuple[str, str], dict[str, Any]], protocol: str, macs: float | None
) -> dict[str, Any] | None:
    """The protocol's narrow VICReg run (at its best lr) with MACs closest to ``macs``."""
    if macs is None:
        return None
    small = [
        row
        for (p, v), row in best.items()
        if p == protocol and v.startswith(f"{BASELINE}@") and row["macs_m"] is not None
    ]
    return min(small, key=lambda r: abs(r["macs_m"] - macs), default=None)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([_cell(r.get(c)) for c in columns] for r in rows)


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:+.2f}" if std is None else f"{mean:+.2f} ± {std:.2f}"


def write_markdown(
    path: Path, summary: list[dict[str, Any]], grids: list[str], skipped: list[str]
) -> None:
    lines = [
        "Dense parity: each variant at its best lr against VICReg at its best lr "
        "(differences in top-1 points; ± sample std over seeds).",
        "",
        "| protocol | variant | config | seeds | lr | dense − VICReg linear "
        "| dense − VICReg k-NN@20 | gated linear | small alone linear (width) "
        "| gated FLOPs R. [%] | step cost vs VICReg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        small = r["small_alone_linear_mean"]
        small_cell = "" if small is None else f"{small:.4g} ({r['small_width']})"
        lines.append(
            f"| {r['protocol']} | {r['variant']} | {r['config']} | {r['seeds']} | {r['lr']:g} "
            f"| {_pm(r['dense_minus_vicreg_linear_mean'], r['dense_minus_vicreg_linear_std'])} "
            f"| {_pm(r['dense_minus_vicreg_knn20_mean'], r['dense_minus_vicreg_knn20_std'])} "
            f"| {_cell(r['gated_linear_mean'])} "
            f"| {small_cell} "
            f"| {_cell(r['gated_flops_reduction_pct'])} | {_cell(r['step_cost_vs_vicreg'])} |"
        )
    lines += ["", "Grids read: " + "; ".join(grids) + "."]
    if skipped:
        lines += ["", "Left out (no args.json): " + ", ".join(skipped) + "."]
    path.write_text("\n".join(lines) + "\n")


def plot(summary: list[dict[str, Any]], curves: dict[str, Path], path: Path) -> None:
    """Left: dense − VICReg linear and k-NN@20 per (protocol, variant) with std error bars.
    Right: online k-NN of every run's dense network against its step, per grid with curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (gaps, learning) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{r['protocol']}\n{r['variant']}" for r in summary]
    for offset, metric, name in ((-0.2, "linear", "linear"), (0.2, "knn20", "k-NN@20")):
        gaps.bar(
            [i + offset for i in range(len(summary))],
            [r[f"dense_minus_vicreg_{metric}_mean"] for r in summary],
            width=0.4,
            yerr=[r[f"dense_minus_vicreg_{metric}_std"] or 0.0 for r in summary],
            capsize=3,
            label=name,
        )
    gaps.axhline(0, color="black", linewidth=0.8)
    gaps.axhline(-1, color="grey", linestyle="--", linewidth=0.8, label="−1 point (goal)")
    gaps.set_xticks(range(len(summary)), labels, fontsize=6, rotation=60, ha="right")
    gaps.set_ylabel("dense − VICReg top-1 [points]")
    gaps.legend(fontsize=7)
    for label, curves_csv in curves.items():
        with open(curves_csv, newline="") as f:
            points: dict[str, list[tuple[int, float]]] = {}
            for r in csv.DictReader(f):
                if r["network"] == "dense" and r["knn_top1"]:
                    points.setdefault(r["run"], []).append((int(r["step"]), float(r["knn_top1"])))
        for run, xy in points.items():
            learning.plot(*zip(*xy), marker=".", label=f"{label} {run}")
    learning.set_xlabel("training step")
    learning.set_ylabel("online k-NN top-1 of the dense network [%]")
    if curves:
        learning.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dense_parity.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="PROTOCOL=DIR",
        help="a published grid (run_grid.py --publish) and the protocol label its runs count under",
    )
    parser.add_argument("--step-cost", type=Path, nargs="*", default=[], help="bench_step.csv")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def parse_grids(values: list[str]) -> list[tuple[str, Path]]:
    grids = []
    for value in values:
        label, sep, folder = value.partition("=")
        if not sep or not label or not (Path(folder) / "runs").is_dir():
            raise UsageError(
                f"--grid={value!r} is invalid; allowed: PROTOCOL=DIR with DIR/runs a folder"
            )
        grids.append((label, Path(folder)))
    return grids


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = ["scripts/dense_parity.py", *(sys.argv[1:] if argv is None else argv)]

    def run() -> int:
        from dualgate_solo.provenance import provenance

        grids = parse_grids(args.grid)
        for path in args.step_cost:
            if not path.is_file():
                raise UsageError(f"--step-cost={str(path)!r} is invalid; allowed: a file")
        runs, skipped = [], []
        for label, grid in grids:
            loaded, left_out = load_runs(label, grid)
            runs += loaded
            skipped += [f"{grid}/runs/{name}" for name in left_out]
        sweep = sweep_rows(runs)
        add_same_lr_gaps(sweep)
        summary = summary_rows(sweep, step_costs(args.step_cost))
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(args.out / "sweep.csv", SWEEP_COLUMNS, sweep)
        write_csv(args.out / "summary.csv", SUMMARY_COLUMNS, summary)
        write_markdown(
            args.out / "summary.md", summary, [f"{lab}={g}" for lab, g in grids], skipped
        )
        curves = {lab: g / "curves.csv" for lab, g in grids if (g / "curves.csv").is_file()}
        plot(summary, curves, args.out / "dense_parity.png")
        record = {
            **provenance(),
            "command": command,
            "grids": {
                f"{lab}={g}": [r["source"] for r in runs if r["protocol"] == lab]
                for lab, g in grids
            },
            "left_out_no_args_json": skipped,
            "step_cost": [str(p) for p in args.step_cost],
        }
        (args.out / "provenance.json").write_text(json.dumps(record, indent=2))
        print((args.out / "summary.md").read_text())
        return 0

    return report_usage_errors(run, "dense_parity.py")


if __name__ == "__main__":
    sys.exit(main())
