"""The stages of one grid run: pre-train, cost and UMAP, then linear and k-NN per branch.

Each stage runs a solo-learn script unchanged (``main_pretrain.py``, ``main_linear.py``,
``main_knn.py``) or a ``dualgate-solo`` command in a subprocess, and is recorded by
:func:`~dualgate_solo.runner.stages.run_stage` as ``<out>/runs/<run>/<stage>.json``. A killed
pre-training resumes from its newest checkpoint.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualgate_solo.method_registry import METHODS
from dualgate_solo.runner.environment import call, stage_environment
from dualgate_solo.runner.knn_record import top1_by_k
from dualgate_solo.runner.macs import network_macs
from dualgate_solo.runner.protocols import Protocol, Run
from dualgate_solo.runner.stages import StageIdentity, run_stage
from dualgate_solo.solo.paths import config_dir

#: the k of the k-NN evaluation (Euclidean distance on backbone features)
KNN_K = (1, 20)


def _selector(run: Run, network: str) -> list[str]:
    """The override that evaluates ``network`` of a run of this package's methods."""
    if run.method not in METHODS:
        return []
    spec = METHODS[run.method]
    return [f"backbone.kwargs.{spec.selector}={spec.selector_value(network)}"]


def _newest(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern), key=lambda p: p.stat().st_mtime)


@dataclass
class GridRunner:
    """Runs the stages of grid runs under ``out/runs/<run>/``.

    Attributes:
        protocol_name, protocol: the protocol and its settings.
        solo: the solo-learn checkout (``main_*.py``).
        train, val: the training and evaluation ImageFolders (the protocol's subsets).
        out: the output directory.
        workers: data-loader workers.
        cpu: load the CUDA->CPU shim into the subprocesses.
        draw_umap: draw the UMAP figure of two-branch runs.
        cost_data: the evaluation split of the cost and UMAP reports (default ``val``).
        pretrain_overrides, linear_overrides: the user's extra Hydra overrides.
    """

    protocol_name: str
    protocol: Protocol
    solo: Path
    train: Path
    val: Path
    out: Path
    workers: int
    cpu: bool
    draw_umap: bool = True
    cost_data: Path | None = None
    pretrain_overrides: tuple[str, ...] = ()
    linear_overrides: tuple[str, ...] = ()

    def _env(self) -> dict[str, str]:
        return stage_environment(self.solo, self.cpu, self.protocol.custom_pipeline)

    def _identity(self, run: Run, config: str, overrides: list[str]) -> StageIdentity:
        return StageIdentity(
            protocol=self.protocol_name,
            run_overrides=(*run.overrides(), *self.pretrain_overrides),
            config=config,
            overrides=tuple(overrides),
        )

    def _data(self) -> list[str]:
        return [
            f"data.train_path={self.train}",
            f"data.val_path={self.val}",
            f"data.num_workers={self.workers}",
        ]

    def _hydra(
        self, script: str, kind: str, run: Run, run_dir: Path, stage: str, overrides: list[str]
    ) -> None:
        """Run solo-learn's ``script`` with ``configs/<kind>/<protocol>/<method>.yaml`` through
        :mod:`~dualgate_solo.runner.launch` (metrics in ``lightning_logs/version_*/metrics.csv``).
        """
        cmd = [
            sys.executable,
            "-m",
            "dualgate_solo.runner.launch",
            str(self.solo / script),
            "--config-path",
            str(config_dir() / kind / self.protocol.configs),
            "--config-name",
            run.method,
            *overrides,
        ]
        call(cmd, run_dir / stage, run_dir / f"{stage}.log", self._env())

    # ------------------------------------------------------------------ stages
    def pretrain(self, run: Run, run_dir: Path) -> dict[str, Any]:
        ckpt_root = run_dir / "pretrain" / "trained_models"
        overrides = [
            *self._data(),
            *([] if self.protocol.online_val else ["data.val_path=null"]),
            f"checkpoint.dir={ckpt_root}",
            *self.protocol.pretrain,
            *(self.protocol.pretrain_gated if run.gated else ()),
            *run.overrides(),
            *self.pretrain_overrides,
        ]

        def work() -> dict[str, Any]:
            previous = _newest(ckpt_root, "*.ckpt") if ckpt_root.is_dir() else []
            resume = [f"resume_from_checkpoint='{previous[-1]}'"] if previous else []
            self._hydra(
                "main_pretrain.py", "pretrain", run, run_dir, "pretrain", overrides + resume
            )
            checkpoint = _newest(ckpt_root, "*.ckpt")[-1]
            return {
                "checkpoint": str(checkpoint),
                "run_dir": str(checkpoint.parent),
                "args_json": str(checkpoint.parent / "args.json"),
                "resumed_from": previous[-1].name if previous else None,
            }

        config = f"pretrain/{self.protocol.configs}/{run.method}"
        identity = self._identity(run, config, overrides)
        return run_stage(run_dir / "pretrain.json", identity, work)

    def linear(self, run: Run, run_dir: Path, checkpoint: str, branch: str) -> dict[str, Any]:
        stage = f"linear-{branch}"
        ckpt_root = run_dir / stage / "trained_models"
        overrides = [
            *self._data(),
            f"checkpoint.dir={ckpt_root}",
            f"pretrained_feature_extractor='{checkpoint}'",
            *self.protocol.linear,
            *run.shared_overrides(),
            *_selector(run, branch),
            *self.linear_overrides,
        ]

        def work() -> dict[str, Any]:
            self._hydra("main_linear.py", "linear", run, run_dir, stage, overrides)
            metrics = sorted((run_dir / stage).glob("lightning_logs/version_*/metrics.csv"))[-1]
            rows = [r for r in csv.DictReader(metrics.open()) if r.get("val_acc1")]
            args_json = _newest(ckpt_root, "args.json")
            return {
                "linear_top1": float(rows[-1]["val_acc1"]),
                "args_json": str(args_json[-1]) if args_json else None,
            }

        config = f"linear/{self.protocol.configs}/{run.method}"
        identity = self._identity(run, config, overrides)
        return run_stage(run_dir / f"{stage}.json", identity, work)

    def knn(self, run: Run, run_dir: Path, pretrain_run_dir: str, branch: str) -> dict[str, Any]:
        stage = f"knn-{branch}"
        ours = run.method in METHODS  # main_knn.py reads the branch from the run's args.json
        eval_dir = run_dir / f"eval-{branch}" if ours else Path(pretrain_run_dir)
        arguments = [
            "--dataset",
            self.protocol.dataset,
            "--train_data_path",
            str(self.train),
            "--val_data_path",
            str(self.val),
            "--batch_size",
            "64",
            "--num_workers",
            str(self.workers),
            "--pretrained_checkpoint_dir",
            str(eval_dir),
            "--k",
            *map(str, KNN_K),
            "--feature_type",
            "backbone",
            "--distance_function",
            "euclidean",
        ]

        def work() -> dict[str, Any]:
            if ours:
                branch_dir = [*self._dualgate("branch-dir"), pretrain_run_dir]
                branch_dir += ["--branch", branch, "--out", str(run_dir)]
                call(branch_dir, run_dir, run_dir / f"{stage}-dir.log", self._env())
            results = run_dir / f"{stage}-results.json"
            cmd = [sys.executable, "-m", "dualgate_solo.runner.knn_record", str(results)]
            cmd += [str(self.solo / "main_knn.py"), *arguments]
            call(cmd, run_dir / stage, run_dir / f"{stage}.log", self._env())
            top1 = top1_by_k(results)
            return {f"knn_top1_k{k}": top1[k] for k in KNN_K}

        identity = self._identity(run, "main_knn.py", arguments)
        return run_stage(run_dir / f"{stage}.json", identity, work)

    def _dualgate(self, command: str) -> list[str]:
        return [sys.executable, "-m", "dualgate_solo", command]

    def _report(self, run: Run, run_dir: Path, command: str, pretrain_run_dir: str, out: Path):
        """``dualgate-solo <command>`` (cost-report, umap) on the evaluation split."""
        dataset = "cifar_jpg" if self.protocol.dataset == "custom" else self.protocol.dataset
        arguments = ["--checkpoint", pretrain_run_dir]
        arguments += ["--data", str(self.cost_data or self.val), "--dataset", dataset]
        arguments += ["--out", str(out)]

        def work() -> None:
            cmd = [*self._dualgate(command), *arguments]
            call(cmd, run_dir, run_dir / f"{command.split('-')[0]}.log", self._env())

        return self._identity(run, command, arguments), work

    def macs(self, run: Run, run_dir: Path, args_json: str) -> dict[str, Any]:
        """Per-image MACs of each network of the run (:func:`network_macs`, in-process)."""
        dataset = "cifar_jpg" if self.protocol.dataset == "custom" else self.protocol.dataset
        identity = self._identity(run, "macs", [dataset])

        def work() -> dict[str, Any]:
            return network_macs(Path(args_json), run.branches, dataset)

        return run_stage(run_dir / "macs.json", identity, work)

    def cost(self, run: Run, run_dir: Path, pretrain_run_dir: str) -> dict[str, Any]:
        identity, report = self._report(
            run, run_dir, "cost-report", pretrain_run_dir, run_dir / "cost"
        )

        def work() -> dict[str, Any]:
            report()
            summary = json.loads((run_dir / "cost" / "cost_report.json").read_text())["summary"]
            return {k: summary[k] for k in ("flops_ratio", "flops_reduction")}

        return run_stage(run_dir / "cost.json", identity, work)

    def umap(self, run: Run, run_dir: Path, pretrain_run_dir: str) -> dict[str, Any]:
        figure = run_dir / "umap_branches.png"
        identity, report = self._report(run, run_dir, "umap", pretrain_run_dir, figure)

        def work() -> dict[str, Any]:
            report()
            return {"figure": str(figure)}

        return run_stage(run_dir / "umap.json", identity, work)

    # ------------------------------------------------------------------ driver
    def run(self, run: Run) -> None:
        """Every stage of ``run`` (finished stages are reused)."""
        run_dir = self.out / "runs" / run.name
        run_dir.mkdir(parents=True, exist_ok=True)
        pre = self.pretrain(run, run_dir)
        self.macs(run, run_dir, pre["args_json"])
        if run.gated:
            self.cost(run, run_dir, pre["run_dir"])
            if len(run.branches) > 1 and self.draw_umap:
                self.umap(run, run_dir, pre["run_dir"])
        for branch in run.branches:
            self.linear(run, run_dir, pre["checkpoint"], branch)
            self.knn(run, run_dir, pre["run_dir"], branch)
