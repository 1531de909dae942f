"""Paper-table grid through solo-learn's unchanged scripts: pre-train, linear, k-NN, FLOPs R.

Runs VICReg, VICReg-Gating and VICReg-Dual-Gating at t_d in {0.1, 0.3, 0.5} (the gated methods
also with the budget-tracking option, ``--variants paper tracked``) through solo-learn's
``main_pretrain.py``, ``main_linear.py`` (per branch) and ``main_knn.py`` (per branch, k = 1 and
20, Euclidean), then costs every gated branch with ``dualgate-solo cost-report`` (deterministic
gates, the evaluation split). Each stage of each run writes ``<out>/runs/<run>/<stage>.json``
when it finishes, so a second invocation skips finished stages, and a killed pre-training
resumes from its newest checkpoint. Aggregates ``<out>/table.{csv,md}`` and
``<out>/accuracy_vs_flops.png``.

    SOLO_LEARN_SRC=/path/to/solo-learn python scripts/run_grid.py --protocol smoke \\
        --train /data/cifar10_jpg/train --val /data/cifar10_jpg/test --out results/grid_smoke

Protocols (config directories under ``configs/``; the README gives their cost):

- ``smoke`` = ``cpu_quick``: minutes, a check of the machinery, not a result.
- ``cpu``: CIFAR-10 JPEGs on 2 CPU cores in under 2.5 h: width-16 ResNet-18, a 500-per-class
  training subset and a 200-per-class evaluation subset (symlinked under ``<out>/data``), 5
  pre-training and 3 linear epochs, no online validation; evaluation at 32 px through
  ``DUALGATE_CUSTOM_PIPELINE``.
- ``gpu``: the paper's recipe (``cifar10``: 500 epochs, torchvision CIFAR-10).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dualgate_solo.solo.custom_pipeline import ENV_VAR

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

#: the ``tracked`` variant (README "Hitting the budget"): cost the eval-style masks, a 10x stiffer
#: quadratic budget term, and a slow Lagrange multiplier that removes what offset remains
TRACKED = [
    "method_kwargs.ratio_source=deterministic",
    "method_kwargs.lambda_flops=50",
    "method_kwargs.multiplier_lr=0.05",
]


@dataclass(frozen=True)
class Protocol:
    """Config directories, solo-learn dataset name and data scaling of one protocol."""

    configs: str
    dataset: str
    #: ``$DUALGATE_CUSTOM_PIPELINE`` for solo-learn's ``custom`` data (native-resolution evaluation)
    custom_pipeline: str | None = None
    #: images per class of the symlinked subsets (``None``: the user's folders as they are)
    train_per_class: int | None = None
    val_per_class: int | None = None
    #: validate (online linear head, FLOPs ratio) during pre-training
    online_val: bool = True
    workers: int = 2


PROTOCOLS = {
    "smoke": Protocol("cpu_quick", "custom", custom_pipeline="cifar10"),
    "cpu": Protocol(
        "cpu",
        "custom",
        custom_pipeline="cifar10",
        train_per_class=500,
        val_per_class=200,
        online_val=False,
        workers=1,
    ),
    "gpu": Protocol("cifar10", "cifar10"),
}


@dataclass(frozen=True)
class Run:
    """One pre-training of the grid."""

    method: str
    target_density: float | None
    variant: str

    @property
    def name(self) -> str:
        td = "" if self.target_density is None else f"-td{self.target_density}"
        return f"{self.method}{td}-{self.variant}"

    @property
    def branches(self) -> tuple[str, ...]:
        return {"vicreg": ("dense",), "vicreg_gating": ("gated",)}.get(
            self.method, ("dense", "gated")
        )

    def overrides(self) -> list[str]:
        """Hydra overrides: the budget, and the budget-tracking options for ``tracked``."""
        extra = (
            []
            if self.target_density is None
            else [f"method_kwargs.target_density={self.target_density}"]
        )
        return extra + (TRACKED if self.variant == "tracked" else [])


def grid(methods: list[str], densities: list[float], variants: list[str]) -> list[Run]:
    """The runs, the proposed method first (the budget option applies to VICReg-Dual-Gating)."""
    runs = []
    for method in ("vicreg_dual_gating", "vicreg_gating"):
        if method in methods:
            runs += [
                Run(method, t, v)
                for t in densities
                for v in variants
                if not (v == "tracked" and method == "vicreg_gating")
            ]
    return runs + ([Run("vicreg", None, "paper")] if "vicreg" in methods else [])


def subset_folder(source: Path, target: Path, per_class: int, seed: int = 0) -> Path:
    """``target/<class>/`` symlinks to ``per_class`` images drawn (seeded) from each class of ``source``.

    Deterministic and idempotent: the same source, count and seed give the same subset.
    """
    classes = sorted(d for d in source.iterdir() if d.is_dir())
    if not classes:
        raise SystemExit(f"{source} is not an ImageFolder (no class sub-folders)")
    rng = random.Random(seed)
    for cls in classes:
        files = sorted(f for f in cls.iterdir() if f.is_file())
        if len(files) < per_class:
            raise SystemExit(
                f"{cls} has {len(files)} images, fewer than the {per_class} per class this protocol draws"
            )
        (target / cls.name).mkdir(parents=True, exist_ok=True)
        for f in rng.sample(files, per_class):
            link = target / cls.name / f.name
            if not link.is_symlink():
                link.symlink_to(f.resolve())
    return target


class Runner:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.protocol = PROTOCOLS[args.protocol]
        self.dataset = self.protocol.dataset
        self.train, self.val = args.train, args.val
        self.workers = args.workers or self.protocol.workers
        if self.protocol.train_per_class:
            self.train = subset_folder(
                args.train, args.out / "data" / "train", self.protocol.train_per_class
            )
        if self.protocol.val_per_class:
            self.val = subset_folder(
                args.val, args.out / "data" / "val", self.protocol.val_per_class
            )
        self.solo = Path(args.solo).resolve()
        for script in ("main_pretrain.py", "main_linear.py", "main_knn.py"):
            if not (self.solo / script).is_file():
                raise SystemExit(
                    f"--solo={self.solo} is not a solo-learn checkout (no {script}); set SOLO_LEARN_SRC"
                )

    # ------------------------------------------------------------------ plumbing
    def _call(self, cmd: list[str], cwd: Path, log: Path) -> str:
        shim = [str(REPO / "tests" / "integration" / "cpu_shim")] if self.args.cpu else []
        pipeline = {ENV_VAR: self.protocol.custom_pipeline} if self.protocol.custom_pipeline else {}
        env = {
            **os.environ,
            **pipeline,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [*shim, str(self.solo), os.environ.get("PYTHONPATH", "")])
            ),
        }
        cwd.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:  # streamed: `tail -f <log>` shows the stage's own progress bar
            returncode = subprocess.run(
                cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT
            ).returncode
        if returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed (rc={returncode}); see {log}")
        return log.read_text()

    def _stage(self, run_dir: Path, stage: str, fn) -> dict:
        done = run_dir / f"{stage}.json"
        if done.is_file():
            return json.loads(done.read_text())
        result = fn()
        done.write_text(json.dumps(result, indent=2))
        return result

    def _data(self) -> list[str]:
        return [
            f"data.train_path={self.train}",
            f"data.val_path={self.val}",
            f"data.num_workers={self.workers}",
        ]

    # ------------------------------------------------------------------ stages
    def pretrain(self, run: Run, run_dir: Path) -> dict:
        ckpt_root = run_dir / "pretrain" / "trained_models"
        previous = sorted(ckpt_root.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        resume = [f"resume_from_checkpoint='{previous[-1]}'"] if previous else []
        cmd = [
            sys.executable,
            str(self.solo / "main_pretrain.py"),
            "--config-path",
            str(CONFIGS / "pretrain" / self.protocol.configs),
            "--config-name",
            run.method,
            *self._data(),
            *([] if self.protocol.online_val else ["data.val_path=null"]),
            f"checkpoint.dir={ckpt_root}",
            *run.overrides(),
            *resume,
            *self.args.pretrain_override,
        ]
        self._call(cmd, run_dir / "pretrain", run_dir / "pretrain.log")
        checkpoint = sorted(ckpt_root.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)[-1]
        return {"checkpoint": str(checkpoint), "run_dir": str(checkpoint.parent)}

    def linear(self, run: Run, run_dir: Path, checkpoint: str, branch: str) -> dict:
        cwd = run_dir / f"linear-{branch}"
        branch_override = [] if run.method == "vicreg" else [f"backbone.kwargs.branch={branch}"]
        cmd = [
            sys.executable,
            str(self.solo / "main_linear.py"),
            "--config-path",
            str(CONFIGS / "linear" / self.protocol.configs),
            "--config-name",
            run.method,
            *self._data(),
            f"checkpoint.dir={cwd / 'trained_models'}",
            f"pretrained_feature_extractor='{checkpoint}'",
            *branch_override,
            *self.args.linear_override,
        ]
        self._call(cmd, cwd, run_dir / f"linear-{branch}.log")
        metrics = sorted(cwd.glob("lightning_logs/version_*/metrics.csv"))[-1]
        rows = [r for r in csv.DictReader(metrics.open()) if r.get("val_acc1")]
        return {"linear_top1": float(rows[-1]["val_acc1"])}

    def knn(self, run: Run, run_dir: Path, pretrain_run_dir: str, branch: str) -> dict:
        if run.method == "vicreg":
            directory = Path(pretrain_run_dir)
        else:
            from dualgate_solo.solo.branch_dir import make_branch_dirs

            directory = make_branch_dirs(Path(pretrain_run_dir), [branch], out=run_dir)[branch]
        cmd = [
            sys.executable,
            "-m",
            "dualgate_solo",
            "run",
            str(self.solo / "main_knn.py"),
            "--dataset",
            self.dataset,
            "--train_data_path",
            str(self.train),
            "--val_data_path",
            str(self.val),
            "--batch_size",
            "64",
            "--num_workers",
            str(self.workers),
            "--pretrained_checkpoint_dir",
            str(directory),
            "--k",
            "1",
            "20",
            "--feature_type",
            "backbone",
            "--distance_function",
            "euclidean",
        ]
        output = self._call(cmd, run_dir / f"knn-{branch}", run_dir / f"knn-{branch}.log")
        found = dict(re.findall(r"k=(\d+), T=None\.\.\.\s*Result: acc@1=([\d.]+)", output))
        return {"knn_top1_k1": float(found["1"]), "knn_top1_k20": float(found["20"])}

    def _report(self, command: str, run_dir: Path, pretrain_run_dir: str, out: Path) -> None:
        """``dualgate-solo <command>`` (cost-report, umap) on the evaluation split, native transforms."""
        dataset = "cifar_jpg" if self.dataset == "custom" else self.dataset
        cmd = [
            sys.executable,
            "-m",
            "dualgate_solo",
            command,
            "--checkpoint",
            pretrain_run_dir,
            "--data",
            str(self.args.cost_data or self.val),
            "--dataset",
            dataset,
            "--out",
            str(out),
        ]
        self._call(cmd, run_dir, run_dir / f"{command.split('-')[0]}.log")

    def cost(self, run_dir: Path, pretrain_run_dir: str) -> dict:
        self._report("cost-report", run_dir, pretrain_run_dir, run_dir / "cost")
        summary = json.loads((run_dir / "cost" / "cost_report.json").read_text())["summary"]
        return {
            "flops_ratio": summary["flops_ratio"],
            "flops_reduction": summary["flops_reduction"],
        }

    def umap(self, run_dir: Path, pretrain_run_dir: str) -> dict:
        self._report("umap", run_dir, pretrain_run_dir, run_dir / "umap_branches.png")
        return {"figure": str(run_dir / "umap_branches.png")}

    # ------------------------------------------------------------------ driver
    def rows_for(self, run: Run) -> list[dict]:
        run_dir = self.args.out / "runs" / run.name
        run_dir.mkdir(parents=True, exist_ok=True)
        pre = self._stage(run_dir, "pretrain", lambda: self.pretrain(run, run_dir))
        cost = (
            self._stage(run_dir, "cost", lambda: self.cost(run_dir, pre["run_dir"]))
            if "gated" in run.branches
            else {}
        )
        if run.branches == ("dense", "gated"):
            self._stage(run_dir, "umap", lambda: self.umap(run_dir, pre["run_dir"]))
        rows = []
        for branch in run.branches:
            lin = self._stage(
                run_dir,
                f"linear-{branch}",
                lambda: self.linear(run, run_dir, pre["checkpoint"], branch),
            )
            knn = self._stage(
                run_dir, f"knn-{branch}", lambda: self.knn(run, run_dir, pre["run_dir"], branch)
            )
            reduction = 100 * cost["flops_reduction"] if branch == "gated" else 0.0
            rows.append(
                {
                    "method": run.method,
                    "variant": run.variant,
                    "t_d": run.target_density or "",
                    "branch": branch,
                    **lin,
                    **knn,
                    "flops_reduction_pct": reduction,
                }
            )
        return rows


def write_table(rows: list[dict], out: Path, title: str) -> None:
    """``table.csv``, ``table.md`` and ``accuracy_vs_flops.png`` from the grid rows."""
    keys = list(rows[0])
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)
    header = "| method | variant | t_d | branch | linear top-1 | k-NN top-1 (k=1) | k-NN top-1 (k=20) | FLOPs R. |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['method']} | {r['variant']} | {r['t_d']} | {r['branch']} | {r['linear_top1']:.2f} | {r['knn_top1_k1']:.2f} | "
        f"{r['knn_top1_k20']:.2f} | {r['flops_reduction_pct']:.2f} % |\n"
        for r in rows
    )
    (out / "table.md").write_text(f"{title}\n\n{header}{body}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (method, variant, branch), marker in zip(
        sorted({(r["method"], r["variant"], r["branch"]) for r in rows}), "osD^vP*X"
    ):
        pts = [
            r for r in rows if (r["method"], r["variant"], r["branch"]) == (method, variant, branch)
        ]
        ax.plot(
            [r["flops_reduction_pct"] for r in pts],
            [r["linear_top1"] for r in pts],
            marker=marker,
            linestyle="none",
            label=f"{method} {variant} ({branch})",
        )
    ax.set_xlabel("FLOPs R. [%] (0 = dense)")
    ax.set_ylabel("linear top-1 [%]")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_flops.png", dpi=120)


#: per-run artefacts worth committing (no checkpoints): cost report, channel usage, UMAP, stage results
PUBLISHED = (
    "*.json",
    "cost/cost_report.json",
    "cost/channel_usage.csv",
    "cost/channel_usage.png",
    "cost/layers.csv",
    "umap_branches.png",
)


def publish(out: Path, target: Path) -> None:
    """Copy the table, plot, provenance and each run's small artefacts from ``out`` to ``target``."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for name in ("table.md", "table.csv", "accuracy_vs_flops.png", "provenance.json"):
        shutil.copy2(out / name, target / name)
    for run_dir in sorted((out / "runs").iterdir()):
        for pattern in PUBLISHED:
            for f in run_dir.glob(pattern):
                dest = target / "runs" / run_dir.name / f.relative_to(run_dir)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument(
        "--train", type=Path, required=True, help="training ImageFolder (or dataset root for gpu)"
    )
    parser.add_argument("--val", type=Path, required=True, help="evaluation split")
    parser.add_argument(
        "--solo",
        default=os.environ.get("SOLO_LEARN_SRC", "."),
        help="solo-learn checkout (default: $SOLO_LEARN_SRC)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--methods", nargs="+", default=["vicreg", "vicreg_gating", "vicreg_dual_gating"]
    )
    parser.add_argument("--densities", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    parser.add_argument(
        "--variants", nargs="+", choices=["paper", "tracked"], default=["paper", "tracked"]
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="data-loader workers (default: the protocol's)"
    )
    parser.add_argument(
        "--cost-data",
        type=Path,
        default=None,
        help="ImageFolder of the evaluation split for the cost report (default: --val)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="CPU-only machine: load the test shim that maps main_knn.py's hard-coded CUDA to the CPU",
    )
    parser.add_argument(
        "--pretrain-override",
        nargs="*",
        default=[],
        help="extra Hydra overrides for main_pretrain.py",
    )
    parser.add_argument(
        "--linear-override", nargs="*", default=[], help="extra Hydra overrides for main_linear.py"
    )
    parser.add_argument(
        "--publish",
        type=Path,
        default=None,
        help="copy the table, figures and per-run reports (no checkpoints) here",
    )
    args = parser.parse_args()

    from dualgate_solo.provenance import provenance

    runner = Runner(args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in tqdm(grid(args.methods, args.densities, args.variants), desc="grid", unit="run"):
        rows += runner.rows_for(run)
    meta = provenance()
    (args.out / "provenance.json").write_text(json.dumps({**meta, "command": sys.argv}, indent=2))
    write_table(rows, args.out, f"protocol {args.protocol}; {meta['date']}; {meta['machine']}")
    if args.publish:
        publish(args.out, args.publish)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
