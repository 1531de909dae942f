"""The grid's tables (``table.csv``, ``table_mean.csv``, ``table.md``) and its figure.

Rows are read back from the stage records under ``<dir>/runs/<run>/``, one row per trained branch,
so a table can combine runs of several invocations (and the published records of earlier ones).
``table.csv`` has one row per run and branch, with the torch version and accelerator it ran on.
Runs of the same :data:`ROW_KEY` are one row of ``table_mean.csv`` and ``table.md`` (the mean
and the sample standard deviation (n - 1) over the seeds, and their number) only when their
recorded configs (solo-learn's ``args.json`` of the pre-training and of the branch's linear
probe) differ in nothing but :func:`free_key` keys: the seed, the accelerator and devices, and
paths. A group whose configs differ otherwise is split into one row per config, labelled with
the differing keys (``config``); a run without a recorded config is never averaged with another.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

from dualgate_solo.method_registry import METHODS
from experiments.runner.identity import RESUME_KEY, differing_keys, flatten
from experiments.runner.protocols import BASELINE, VARIANTS, Run
from experiments.runner.stages import stage_result

COLUMNS = (
    "run",
    "seed",
    "accelerator",
    "torch",
    "method",
    "width",
    "variant",
    "t_d",
    "branch",
    "linear_top1",
    "knn_top1_k1",
    "knn_top1_k20",
    "flops_reduction_pct",
    "macs_m",
    "args_json",
)
#: the columns averaged over seeds
METRICS = ("linear_top1", "knn_top1_k1", "knn_top1_k20", "flops_reduction_pct", "macs_m")
#: what identifies a row of the mean table
ROW_KEY = ("method", "width", "variant", "t_d", "branch")
#: ``args.json`` keys runs of one mean +- std group may differ in: the seed, where they ran, and
#: labels (the run name, whose fingerprint is of compared keys; the logger version solo-learn
#: records as ``wandb_run_id``; the runner's config hash, which covers paths and seed); paths
#: are recognised by :data:`PATH_KEYS`
FREE_KEYS = ("seed", "accelerator", "devices", "num_nodes", "name", "wandb_run_id", RESUME_KEY)
#: last components of ``args.json`` keys that hold paths
PATH_KEYS = (
    "train_path",
    "val_path",
    "dir",
    "pretrained_feature_extractor",
    "resume_from_checkpoint",
)
#: how many differing keys a split group's label names
LABEL_KEYS = 6
NO_ARGS_JSON = (
    "args.json `no`: no solo-learn args.json was published for the run; its "
    "`runs/<run>/provenance.json` says where the row comes from."
)


SPLIT = (
    "config: runs of one method, variant, t_d and network whose args.json differ in more than "
    "the seed, the accelerator/devices and paths are separate rows, each labelled with its values "
    "of the keys that differ (`linear.`: the linear probe's args.json)."
)


def _stages(run: Run, branches: tuple[str, ...] | list[str]) -> list[str]:
    """The stages whose records make the rows of ``branches``: pre-training, cost (gated runs),
    each branch's linear probe and k-NN."""
    stages = ["pretrain", *(["cost"] if run.gated else [])]
    return stages + [f"{kind}-{b}" for b in branches for kind in ("linear", "knn")]


def missing_stages(run_dir: Path) -> list[str]:
    """The stages of the run in ``run_dir`` without a record."""
    run = Run.from_name(run_dir.name)
    stages = _stages(run, run.branches)
    return [s for s in stages if not (run_dir / f"{s}.json").is_file()]


def free_key(key: str) -> bool:
    """Whether runs averaged together may differ in the flat ``args.json`` key ``key``
    (:data:`FREE_KEYS`, :data:`PATH_KEYS`; a linear probe's keys are prefixed ``linear.``)."""
    key = key.removeprefix("linear.")
    return key in FREE_KEYS or key.rpartition(".")[2] in PATH_KEYS


def _found(tree: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere inside the JSON value ``tree``."""
    if isinstance(tree, dict):
        here = [tree[key]] if key in tree else []
        return here + [v for value in tree.values() for v in _found(value, key)]
    if isinstance(tree, list):
        return [v for value in tree for v in _found(value, key)]
    return []


def _ran_on(records: list[dict[str, Any]], run_dir: Path, args: dict[str, Any]) -> dict[str, str]:
    """``{"torch", "accelerator"}`` of a row: the torch versions its stage records name (else the
    run's ``provenance.json``), and ``args.json``'s accelerator (else ``gpu``/``cpu`` by the GPU
    the records name)."""
    provenance = run_dir / "provenance.json"
    sources = [*records, *([json.loads(provenance.read_text())] if provenance.is_file() else [])]
    torch = next((found for s in sources if (found := _found(s, "torch"))), [])
    gpus = next((found for s in sources if (found := _found(s, "gpu"))), [])
    accelerator = args.get("accelerator") or "+".join(
        dict.fromkeys("gpu" if gpu else "cpu" for gpu in gpus)
    )
    return {"torch": "+".join(dict.fromkeys(torch)), "accelerator": accelerator}


def run_rows(run_dir: Path, missing: list[str]) -> list[dict[str, Any]]:
    """One row per trained branch of the run in ``run_dir`` whose stages all have records;
    ``missing``: :func:`missing_stages` of the run. ``config`` (not a column): the flat
    ``args.json`` of the pre-training and, prefixed ``linear.``, of the branch's linear probe;
    ``None`` without the pre-training's."""
    run = Run.from_name(run_dir.name)
    if "pretrain" in missing or "cost" in missing:
        return []
    branches = [b for b in run.branches if not {f"linear-{b}", f"knn-{b}"} & set(missing)]
    stages = _stages(run, branches)
    records = {s: json.loads((run_dir / f"{s}.json").read_text()) for s in stages}
    result = {s: stage_result(record) for s, record in records.items()}
    macs_file = run_dir / "macs.json"
    macs = stage_result(json.loads(macs_file.read_text())) if macs_file.is_file() else {}
    args_json = _args_json(run_dir, "args.json", result["pretrain"])
    args = json.loads(args_json.read_text()) if args_json else {}
    seed = run.seed if run.seed is not None else args.get("seed")
    rows = []
    for branch in branches:
        linear_json = _args_json(run_dir, f"linear-{branch}.args.json", result[f"linear-{branch}"])
        linear = json.loads(linear_json.read_text()) if linear_json else {}
        made = [records[s] for s in ("pretrain", f"linear-{branch}", f"knn-{branch}")]
        rows.append(
            {
                "run": run_dir.name,
                "seed": "" if seed is None else seed,
                **_ran_on(made, run_dir, args),
                "method": run.method,
                "width": run.width or "",
                "variant": run.variant,
                "t_d": "" if run.target_density is None else run.target_density,
                "branch": branch,
                **result[f"linear-{branch}"],
                **result[f"knn-{branch}"],
                "flops_reduction_pct": _reduction(result, macs, branch),
                "macs_m": _macs(result, macs, branch),
                "args_json": "yes" if args_json else "no",
                "config": {**flatten(args), **flatten(linear, "linear")} if args else None,
            }
        )
    return rows


def _reduction(result: dict[str, Any], macs: dict[str, int], network: str) -> float:
    """FLOPs R. [%] of ``network`` against the run's own full network: the gated branch's
    from the cost report, a slimmable width's from its MACs, 0 for a dense network."""
    if network == "gated":
        return 100 * result["cost"]["flops_reduction"]
    full = macs.get("macs_w1")
    return 100 * (1 - macs[f"macs_{network}"] / full) if full else 0.0


def _macs(result: dict[str, Any], macs: dict[str, int], network: str) -> float | str:
    """Per-image MACs in millions (the gated branch's expected ones); ``""`` if unrecorded."""
    if network == "gated" and "macs_dense" in macs:
        return macs["macs_dense"] * result["cost"]["flops_ratio"] / 1e6
    value = macs.get(f"macs_{network}")
    return "" if value is None else value / 1e6


def _args_json(run_dir: Path, published: str, result: dict[str, Any]) -> Path | None:
    """A published ``args.json`` (``published``) next to the records, or the one the stage's
    ``result`` names."""
    named = result.get("args_json")
    for path in (run_dir / published, Path(named) if named else None):
        if path is not None and path.is_file():
            return path
    return None


def _order(run: Run) -> tuple:
    methods = [*METHODS, BASELINE]
    variant = list(VARIANTS).index(run.variant)
    seed = -1 if run.seed is None else run.seed
    return (
        methods.index(run.method),
        run.target_density or 0.0,
        variant,
        -(run.width or 1e9),
        seed,
    )


def collect_rows(runs_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of every evaluated branch under ``runs_dir`` in grid order, and the runs with
    missing stages as ``"<run> (missing: <stage>, ...)"``."""
    rows, unfinished = [], []
    for run_dir in sorted(runs_dir.iterdir(), key=lambda d: _order(Run.from_name(d.name))):
        missing = missing_stages(run_dir)
        rows += run_rows(run_dir, missing)
        if missing:
            unfinished.append(f"{run_dir.name} (missing: {', '.join(missing)})")
    return rows, unfinished


def config_groups(members: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``members`` (one :data:`ROW_KEY`) in groups whose configs differ only in free keys
    (first-seen order); a member without a config is a group of its own."""
    groups: list[list[dict[str, Any]]] = []
    for row in members:
        home = next(
            (
                group
                for group in groups
                if row["config"] is not None
                and group[0]["config"] is not None
                and not _differing(group[0]["config"], row["config"])
            ),
            None,
        )
        if home is None:
            groups.append([row])
        else:
            home.append(row)
    return groups


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in differing_keys(a, b) if not free_key(k)]


def config_labels(groups: list[list[dict[str, Any]]]) -> list[str]:
    """A short label per group of a split :data:`ROW_KEY`: its values of the keys in which the
    groups' configs differ (``absent`` where it has none); ``""`` for an unsplit one."""
    if len(groups) == 1:
        return [""]
    configs = [g[0]["config"] for g in groups]
    known = [c for c in configs if c is not None]
    keys = sorted({k for a in known for b in known for k in _differing(a, b)})
    labels = []
    for config in configs:
        if config is None:
            labels.append("config unrecorded")
            continue
        shown = [f"{k}={config.get(k, 'absent')}" for k in keys[:LABEL_KEYS]]
        more = [f"+{len(keys) - LABEL_KEYS} more"] if len(keys) > LABEL_KEYS else []
        labels.append(", ".join(shown + more))
    return labels


def _joined(members: list[dict[str, Any]], column: str) -> str:
    return "+".join(dict.fromkeys(m[column] for m in members if m[column]))


def mean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per :data:`ROW_KEY` and config (:func:`config_groups`; first-seen order):
    ``<metric>`` the mean over its runs, ``<metric>_std`` the sample standard deviation
    (``None`` for one run), ``seeds`` the number of runs, ``config`` what sets a split group
    apart, ``torch`` and ``accelerator`` what its runs ran on, ``args_json`` ``yes`` only if
    every run has one. An unrecorded MAC count stays ``""``."""
    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        keyed.setdefault(tuple(row[k] for k in ROW_KEY), []).append(row)
    means = []
    for same_key in keyed.values():
        groups = config_groups(same_key)
        for members, label in zip(groups, config_labels(groups)):
            mean = {k: members[0][k] for k in ROW_KEY}
            for metric in METRICS:
                values = [m[metric] for m in members]
                if "" in values:
                    mean[metric], mean[f"{metric}_std"] = "", None
                    continue
                mean[metric] = statistics.fmean(values)
                mean[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
            mean["seeds"] = len(members)
            mean["config"] = label
            mean["torch"] = _joined(members, "torch")
            mean["accelerator"] = _joined(members, "accelerator")
            mean["args_json"] = "yes" if all(m["args_json"] == "yes" for m in members) else "no"
            means.append(mean)
    return means


MEAN_COLUMNS = (
    *ROW_KEY,
    "config",
    "seeds",
    "accelerator",
    "torch",
    *(c for m in METRICS for c in (m, f"{m}_std")),
    "args_json",
)


def write_table(
    rows: list[dict[str, Any]], out: Path, title: str, unfinished: list[str] = ()
) -> None:
    """``table.csv`` (per run), ``table_mean.csv`` and ``table.md`` (over seeds, ending with the
    ``unfinished`` runs of :func:`collect_rows`) and ``accuracy_vs_flops.png`` in ``out``."""
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    means = mean_rows(rows)
    with open(out / "table_mean.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, MEAN_COLUMNS)
        writer.writeheader()
        writer.writerows(means)
    header = (
        "| method | variant | t_d | network | config | seeds | ran on | torch | linear top-1 "
        "| k-NN top-1 (k=1) | k-NN top-1 (k=20) | FLOPs R. [%] | MACs [M] | args.json |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['method']}{_width_tag(r)} | {r['variant']} | {r['t_d']} | {r['branch']} "
        f"| {r['config']} | {r['seeds']} | {r['accelerator']} | {r['torch']} "
        f"| {_fmt(r, 'linear_top1')} "
        f"| {_fmt(r, 'knn_top1_k1')} "
        f"| {_fmt(r, 'knn_top1_k20')} | {_fmt(r, 'flops_reduction_pct')} "
        f"| {_fmt(r, 'macs_m')} | {r['args_json']} |\n"
        for r in means
    )
    spread = (
        "\nWith several seeds: mean ± sample standard deviation over the seeds "
        "(`table.csv` has every run).\n"
        if any(r["seeds"] > 1 for r in means)
        else ""
    )
    footnote = f"\n{NO_ARGS_JSON}\n" if any(r["args_json"] == "no" for r in means) else ""
    if any(r["config"] for r in means):
        footnote += f"\n{SPLIT}\n"
    if unfinished:
        footnote += "\nNot (fully) evaluated, rows absent: " + "; ".join(unfinished) + ".\n"
    (out / "table.md").write_text(f"{title}\n\n{header}{body}{spread}{footnote}")
    plot(means, out / "accuracy_vs_flops.png", title)


def _fmt(row: dict[str, Any], metric: str) -> str:
    """``mean`` or ``mean ± std`` with two decimals; ``""`` stays empty."""
    value, std = row[metric], row.get(f"{metric}_std")
    if value == "":
        return ""
    return f"{value:.2f}" if std is None else f"{value:.2f} ± {std:.2f}"


def _width_tag(row: dict[str, Any]) -> str:
    return f" (width {row['width']})" if row.get("width") else ""


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Linear top-1 against FLOPs R., one marker per (method, variant, branch) of the mean rows,
    with the standard deviation over seeds as error bars where there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["method"], r["variant"], r["branch"]) for r in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, marker in zip(groups, "osD^vP*X<>"):
        points = [r for r in rows if (r["method"], r["variant"], r["branch"]) == group]
        ax.errorbar(
            [r["flops_reduction_pct"] for r in points],
            [r["linear_top1"] for r in points],
            yerr=[r.get("linear_top1_std") or 0.0 for r in points],
            marker=marker,
            linestyle="none",
            capsize=3,
            label="{} {} ({})".format(*group),
        )
    ax.set_xlabel("FLOPs R. [%] (0 = dense)")
    ax.set_ylabel("linear top-1 [%]")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
