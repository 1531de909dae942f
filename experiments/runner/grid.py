"""The stages of one grid run: pre-train, cost and UMAP, then linear and k-NN per branch.

Each stage runs a solo-learn script unchanged (``main_pretrain.py``, ``main_linear.py``,
``main_knn.py``) or a ``dualgate-solo`` command in a subprocess, and is recorded by
:func:`~experiments.runner.stages.run_stage` as ``<out>/runs/<run>/<stage>.json`` with its
identity: the Hydra stages' resolved config, ``$DUALGATE_CUSTOM_PIPELINE``, the code, and for
every stage after pre-training the content of the checkpoint and ``args.json`` it reads, so a
re-trained network re-runs every evaluation of it.

A killed pre-training (no record) resumes from its newest checkpoint whose ``args.json`` holds
the current run's :data:`RESUME_KEY` (the hash of its resolved config and environment switches,
which the runner adds to every pre-training's config); other checkpoints are never resumed. A
pre-training whose record is stale starts afresh.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dualgate_solo.method_registry import METHODS
from dualgate_solo.solo_adapter.paths import config_dir
from dualgate_solo.validation import UsageError
from experiments.runner.environment import call, identity_switches, stage_environment
from experiments.runner.identity import (
    RESUME_KEY,
    canonical_sha256,
    code_identity,
    compose,
    describe_differences,
    differing_keys,
    file_identity,
    flatten,
    sha256_text,
)
from experiments.runner.knn_record import top1_by_k
from experiments.runner.macs import network_macs
from experiments.runner.protocols import Protocol, Run
from experiments.runner.stages import StageIdentity, run_stage

#: the k of the k-NN evaluation (Euclidean distance on backbone features)
KNN_K = (1, 20)
#: ``args.json`` keys solo-learn or this package rewrite at start (lr scaled by the batch size,
#: the run name's fingerprint), left out when naming what differs from a checkpoint's config
REWRITTEN = ("name", "optimizer.lr", "optimizer.classifier_lr", RESUME_KEY)


def _selector(run: Run, network: str) -> list[str]:
    """The override that evaluates ``network`` of a run of this package's methods."""
    if run.method not in METHODS:
        return []
    spec = METHODS[run.method]
    return [f"backbone.kwargs.{spec.selector}={spec.selector_value(network)}"]


def _newest(root: Path, pattern: str) -> list[Path]:
    """The files matching ``pattern`` under ``root``, oldest first (by modification time)."""
    return sorted(root.rglob(pattern), key=lambda p: p.stat().st_mtime) if root.is_dir() else []


def _inputs(pretrained: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The content identity of the checkpoint and ``args.json`` a pre-training record names."""
    return {
        "checkpoint": file_identity(pretrained["checkpoint"]),
        "args_json": file_identity(pretrained["args_json"]),
    }


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
        refuse_stale: stop at a stale stage record (or a checkpoint of another config) instead
            of re-running it.
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
    refuse_stale: bool = False

    def _env(self) -> dict[str, str]:
        return stage_environment(self.solo, self.cpu, self.protocol.custom_pipeline)

    def _identity(
        self, run: Run, config: str, overrides: list[str], inputs: dict | None = None
    ) -> StageIdentity:
        """The identity of a stage that runs ``config`` (a script or command) with
        ``overrides``, reading the files ``inputs``."""
        return StageIdentity(
            protocol=self.protocol_name,
            run_overrides=(*run.overrides(), *self.pretrain_overrides),
            config=config,
            overrides=tuple(overrides),
            environment=identity_switches(self._env()),
            inputs=inputs or {},
            code=code_identity(self.solo),
        )

    def _hydra_identity(
        self, run: Run, kind: str, overrides: list[str], inputs: dict | None = None
    ) -> StageIdentity:
        """:meth:`_identity` of a Hydra stage, with its resolved config (``kind``: ``pretrain``
        or ``linear``)."""
        directory = config_dir() / kind / self.protocol.configs
        text, flat = compose(directory, run.method, overrides, f"--{kind}-override")
        config = f"{kind}/{self.protocol.configs}/{run.method}"
        identity = self._identity(run, config, overrides, inputs)
        return replace(identity, config_sha256=sha256_text(text), resolved_config=flat)

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
        :mod:`~experiments.runner.launch` (metrics in ``lightning_logs/version_*/metrics.csv``).
        """
        cmd = [
            sys.executable,
            "-m",
            "experiments.runner.launch",
            str(self.solo / script),
            "--config-path",
            str(config_dir() / kind / self.protocol.configs),
            "--config-name",
            run.method,
            *overrides,
        ]
        call(cmd, run_dir / stage, run_dir / f"{stage}.log", self._env())

    # ------------------------------------------------------------------ stages
    def _resumable(self, ckpt_root: Path, key: str, resolved: dict[str, Any], stage: str):
        """The newest checkpoint under ``ckpt_root`` whose ``args.json`` records ``key`` as its
        :data:`RESUME_KEY`, or ``None``; says on stderr which checkpoints it passes over.

        Raises:
            UsageError: with :attr:`refuse_stale`, there are checkpoints but none of this config.
        """
        passed = []
        for checkpoint in reversed(_newest(ckpt_root, "*.ckpt")):
            args_json = checkpoint.parent / "args.json"
            args = json.loads(args_json.read_text()) if args_json.is_file() else {}
            if args.get(RESUME_KEY) == key:
                return checkpoint
            made = flatten(args)
            shared = set(made) & set(resolved)  # solo-learn adds defaults to args.json
            keys = [k for k in differing_keys(made, resolved, REWRITTEN) if k in shared]
            changed = describe_differences(keys, made, resolved) or f"{RESUME_KEY} differs"
            passed.append(f"{checkpoint.name} (its args.json: {changed})")
        if passed and self.refuse_stale:
            raise UsageError(
                f"stage {stage} would not resume: no checkpoint of this config, only "
                f"{passed[0]}; drop --refuse-stale to pre-train afresh"
            )
        for line in passed:
            print(f"{stage}: not resuming {line}", file=sys.stderr)
        return None

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
        identity = self._hydra_identity(run, "pretrain", overrides)
        key = canonical_sha256([identity.config_sha256, identity.environment])
        record = run_dir / "pretrain.json"
        resume_allowed = not record.is_file()  # a stale record's run starts afresh

        def work() -> dict[str, Any]:
            stage = f"{run_dir.name}/pretrain"
            previous = (
                self._resumable(ckpt_root, key, identity.resolved_config, stage)
                if resume_allowed
                else None
            )
            resume = [f"resume_from_checkpoint='{previous}'"] if previous else []
            tagged = [*overrides, f"++{RESUME_KEY}={key}", *resume]
            self._hydra("main_pretrain.py", "pretrain", run, run_dir, "pretrain", tagged)
            checkpoint = _newest(ckpt_root, "*.ckpt")[-1]
            return {
                "checkpoint": str(checkpoint),
                "run_dir": str(checkpoint.parent),
                "args_json": str(checkpoint.parent / "args.json"),
                "resumed_from": previous.name if previous else None,
            }

        return run_stage(record, identity, work, self.refuse_stale)

    def linear(
        self, run: Run, run_dir: Path, pretrained: dict[str, Any], branch: str
    ) -> dict[str, Any]:
        stage = f"linear-{branch}"
        ckpt_root = run_dir / stage / "trained_models"
        overrides = [
            *self._data(),
            f"checkpoint.dir={ckpt_root}",
            f"pretrained_feature_extractor='{pretrained['checkpoint']}'",
            *self.protocol.linear,
            *run.shared_overrides(),
            *_selector(run, branch),
            *self.linear_overrides,
        ]

        def work() -> dict[str, Any]:
            self._hydra("main_linear.py", "linear", run, run_dir, stage, overrides)
            metrics = _newest(run_dir / stage / "lightning_logs", "metrics.csv")[-1]
            rows = [r for r in csv.DictReader(metrics.open()) if r.get("val_acc1")]
            args_json = _newest(ckpt_root, "args.json")
            return {
                "linear_top1": float(rows[-1]["val_acc1"]),
                "args_json": str(args_json[-1]) if args_json else None,
            }

        identity = self._hydra_identity(run, "linear", overrides, _inputs(pretrained))
        return run_stage(run_dir / f"{stage}.json", identity, work, self.refuse_stale)

    def knn(
        self, run: Run, run_dir: Path, pretrained: dict[str, Any], branch: str
    ) -> dict[str, Any]:
        stage = f"knn-{branch}"
        ours = run.method in METHODS  # main_knn.py reads the branch from the run's args.json
        eval_dir = run_dir / f"eval-{branch}" if ours else Path(pretrained["run_dir"])
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
                branch_dir = [*self._dualgate("branch-dir"), pretrained["run_dir"]]
                branch_dir += ["--branch", branch, "--out", str(run_dir)]
                call(branch_dir, run_dir, run_dir / f"{stage}-dir.log", self._env())
            results = run_dir / f"{stage}-results.json"
            cmd = [sys.executable, "-m", "experiments.runner.knn_record", str(results)]
            cmd += [str(self.solo / "main_knn.py"), *arguments]
            call(cmd, run_dir / stage, run_dir / f"{stage}.log", self._env())
            top1 = top1_by_k(results)
            return {f"knn_top1_k{k}": top1[k] for k in KNN_K}

        identity = self._identity(run, "main_knn.py", arguments, _inputs(pretrained))
        return run_stage(run_dir / f"{stage}.json", identity, work, self.refuse_stale)

    def _dualgate(self, command: str) -> list[str]:
        return [sys.executable, "-m", "dualgate_solo", command]

    def _report(self, run: Run, run_dir: Path, command: str, pretrained: dict[str, Any], out: Path):
        """``dualgate-solo <command>`` (cost-report, umap) on the evaluation split."""
        dataset = "cifar_jpg" if self.protocol.dataset == "custom" else self.protocol.dataset
        arguments = ["--checkpoint", pretrained["run_dir"]]
        arguments += ["--data", str(self.cost_data or self.val), "--dataset", dataset]
        arguments += ["--out", str(out)]

        def work() -> None:
            cmd = [*self._dualgate(command), *arguments]
            call(cmd, run_dir, run_dir / f"{command.split('-')[0]}.log", self._env())

        return self._identity(run, command, arguments, _inputs(pretrained)), work

    def macs(self, run: Run, run_dir: Path, pretrained: dict[str, Any]) -> dict[str, Any]:
        """Per-image MACs of each network of the run (:func:`network_macs`, in-process)."""
        dataset = "cifar_jpg" if self.protocol.dataset == "custom" else self.protocol.dataset
        identity = self._identity(run, "macs", [dataset], _inputs(pretrained))

        def work() -> dict[str, Any]:
            return network_macs(Path(pretrained["args_json"]), run.branches, dataset)

        return run_stage(run_dir / "macs.json", identity, work, self.refuse_stale)

    def cost(self, run: Run, run_dir: Path, pretrained: dict[str, Any]) -> dict[str, Any]:
        identity, report = self._report(run, run_dir, "cost-report", pretrained, run_dir / "cost")

        def work() -> dict[str, Any]:
            report()
            summary = json.loads((run_dir / "cost" / "cost_report.json").read_text())["summary"]
            return {k: summary[k] for k in ("flops_ratio", "flops_reduction")}

        return run_stage(run_dir / "cost.json", identity, work, self.refuse_stale)

    def umap(self, run: Run, run_dir: Path, pretrained: dict[str, Any]) -> dict[str, Any]:
        figure = run_dir / "umap_branches.png"
        identity, report = self._report(run, run_dir, "umap", pretrained, figure)

        def work() -> dict[str, Any]:
            report()
            return {"figure": str(figure)}

        return run_stage(run_dir / "umap.json", identity, work, self.refuse_stale)

    # ------------------------------------------------------------------ driver
    def run(self, run: Run) -> None:
        """Every stage of ``run`` (finished stages are reused)."""
        run_dir = self.out / "runs" / run.name
        run_dir.mkdir(parents=True, exist_ok=True)
        pre = self.pretrain(run, run_dir)
        self.macs(run, run_dir, pre)
        if run.gated:
            self.cost(run, run_dir, pre)
            if len(run.branches) > 1 and self.draw_umap:
                self.umap(run, run_dir, pre)
        for branch in run.branches:
            self.linear(run, run_dir, pre, branch)
            self.knn(run, run_dir, pre, branch)
