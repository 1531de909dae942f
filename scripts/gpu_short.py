"""``gpu_short``: the paper's CIFAR-10 recipe for as many epochs as fit one ~10-minute GPU command.

Runs solo-learn's unchanged ``main_pretrain.py`` twice on the full CIFAR-10 (JPEG ImageFolder,
``data.dataset: custom`` evaluated at 32 px through ``$DUALGATE_CUSTOM_PIPELINE``), on the
width-64 ResNet-18 ``dg_resnet18`` with the CIFAR stem, with the recipe of
``configs/pretrain/cifar10/`` (LARS, batch 512, lr 0.3 x 512/256 unless ``--lr``, k-NN k = 20,
Euclidean; at that lr VICReg diverged on this network, see results/gpu_short/README.md):

* ``vicreg_dual_gating-td0.3-tracked``: VICReg-Dual-Gating, t_d = 0.3, the budget-tracking options;
* ``vicreg_dual_gating-td0.3-paper``: the same with the paper's budget loss (``--runs`` picks it);
* ``vicreg``: solo-learn's VICReg on the same network run dense with one BN set (Baseline-1).

Two warm-up forms (``--schedule``): ``step`` warms up per step from solo-learn's default start lr;
``paper`` keeps the recipe's scheduler, the paper's form: per-epoch steps from lr 0.003. Either
warms up for :func:`warmup_epochs` epochs.

Online validation on the 10,000 test images after every epoch: solo-learn's linear probe and k-NN
of every trained branch, and the gated branch's FLOPs ratio. Stages, all inside one deadline:

1. install the carried wheels (``--wheels``) into a directory put first on ``PYTHONPATH``;
2. unpack the CIFAR-10 JPEG tarball (``--data``);
3. calibrate: each run for 2 epochs of a few dozen steps at a low lr (timing only): seconds of
   start-up, per step and per validation; a failed calibration retries all with :func:`fallback`;
4. choose one epoch count for both runs so that they fit ``--train-budget`` (and the deadline),
   and scale the schedule to it (:func:`warmup_epochs`, p-annealing over the whole run);
5. run them (``--runs``; default :data:`DEFAULT_RUNS`); a run stops at its first non-finite
   loss, and one that outlives the deadline is interrupted (its metrics so far are kept);
6. write ``<out>/summary.json`` and per run ``<out>/<run>/{metrics.csv,epochs.csv,args.json}``.

solo-learn logs only to wandb; this script adds a Lightning ``CSVLogger`` and a timing callback by
wrapping ``Trainer.__init__`` in the process that runs ``main_pretrain.py`` (``_launch`` mode), so
solo-learn's files stay untouched. Top-level imports are the standard library only, so the
wheel installation runs before anything imports Lightning. ``--dry-run`` runs every stage on the
CPU with tiny settings (a test runs it).

    python scripts/gpu_short.py --solo /path/to/solo-learn --data cifar10_jpg.tar.gz \\
        --wheels whl --out results/gpu_short
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the package (also when not installed) and the lab, experiments/

from dualgate_solo.choices import CUSTOM_PIPELINE_ENV_VAR  # noqa: E402  (standard library only)
from dualgate_solo.provenance import source_record  # noqa: E402  (standard library only)

CONFIGS = REPO / "configs" / "pretrain" / "cifar10"
#: solo-learn's pre-training statistics of ``cifar10`` (``pretrain_dataloader.MEANS_N_STD``); for
#: ``custom`` data it would normalise with ImageNet's, unlike its 32-px evaluation pipeline
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: p = exp(-alpha * epoch) decays over E epochs as exp(-0.02 * epoch) does over the paper's 500
PAPER_ANNEAL_SPAN = 0.02 * 500
#: the paper's (and solo-learn's) warm-up epochs; a short run warms up for at most half its epochs
PAPER_WARMUP_EPOCHS = 10
#: the calibration's lr (before solo-learn's batch scaling)
CALIBRATION_LR = 0.01
#: epoch-time estimates are inflated by this factor before choosing the epoch count
SAFETY = 1.10
#: seconds kept after the last run for the result files
POST_MARGIN_S = 10.0
#: seconds between SIGINT (Lightning's graceful stop) and SIGKILL of a run past the deadline
GRACE_S = 15.0
#: metrics first in ``epochs.csv`` (when the run logs them)
LEADING_METRICS = (
    "val_acc1",
    "val_knn_acc1",
    "val_gated_acc1",
    "val_gated_knn_acc1",
    "val_flops_ratio",
    "train_vicreg_loss",
    "train_flops_loss",
    "train_bound_loss",
    "train_flops_ratio",
    "budget_multiplier",
    "p",
)
#: the final numbers ``summary.json`` reports per run
FINAL_METRICS = LEADING_METRICS[:6] + ("train_flops_ratio",)
#: result file in ``<out>/<run>/`` -> where the run wrote it, relative to its folder
RESULT_FILES = {
    "metrics.csv": "csv/metrics.csv",
    "epochs.csv": "epochs.csv",
    "args.json": "args.json",
}


@dataclass(frozen=True)
class RunSpec:
    """One pre-training: its name (the result folder), config and Hydra overrides."""

    name: str
    config: str
    overrides: tuple[str, ...]
    #: the run takes the p-annealing rate (gated methods)
    anneals: bool


def runs(width: int) -> tuple[RunSpec, ...]:
    """The proposed method first (a run cut by the deadline is then the baseline)."""
    from experiments.runner.protocols import VARIANTS  # the ``tracked`` budget options

    stem = f"backbone.kwargs.stem=cifar backbone.kwargs.width={width}".split()
    return (
        *(
            RunSpec(
                f"vicreg_dual_gating-td0.3-{variant}",
                "vicreg_dual_gating",
                (*stem, "method_kwargs.target_density=0.3", *VARIANTS[variant]),
                anneals=True,
            )
            for variant in ("tracked", "paper")
        ),
        RunSpec(
            "vicreg",
            "vicreg",
            (
                "backbone.name=dg_resnet18",
                f"++backbone.kwargs={{stem: cifar, width: {width}, dual_bn_scope: none,"
                " branch: dense}",
            ),
            anneals=False,
        ),
    )


@dataclass(frozen=True)
class Settings:
    """Hardware and size of a session: the GPU run, or the CPU dry run."""

    accelerator: str
    devices: str
    precision: str
    batch_size: int
    workers: int
    width: int
    max_epochs: int
    train_budget_s: float
    deadline_s: float
    #: ``optimizer.lr`` before solo-learn's batch scaling (``None``: the recipe's 0.3)
    lr: float | None = None
    #: warm-up form, one of :data:`SCHEDULES`
    schedule: str = "step"

    @property
    def calibration_steps(self) -> int:
        """Steps per calibration epoch: four rounds of the loader's ``workers``."""
        return 4 * max(1, self.workers)


#: the runs made unless ``--runs`` names others
DEFAULT_RUNS = ("vicreg_dual_gating-td0.3-tracked", "vicreg")
#: warm-up form -> the scheduler overrides beside the scaled warm-up length: ``paper`` keeps the
#: recipe's per-epoch steps from 0.003 (configs/dualgate/recipe/paper.yaml)
SCHEDULES = {"step": ("scheduler.interval=step",), "paper": ()}
GPU = Settings("gpu", "[0]", "bf16-mixed", 512, 12, 64, 200, 480.0, 565.0)
DRY_RUN = Settings("cpu", "'1'", "bf16-mixed", 16, 1, 8, 2, 480.0, 900.0)
#: seconds that must be left to calibrate again with :func:`fallback` after a failed calibration
FALLBACK_MIN_LEFT_S = 300.0


def fallback(settings: Settings) -> Settings:
    """Safer settings after a failed calibration: float32, a third fewer loader workers."""
    return replace(settings, precision="32-true", workers=max(1, settings.workers * 2 // 3))


def warmup_epochs(epochs: int) -> int:
    """The paper's 10 warm-up epochs, at most half of ``epochs`` (at least 1).

    A 1-epoch warm-up (2 % of 15 epochs, the paper's fraction) to the paper's peak lr (0.6 at
    batch 512) made solo-learn's VICReg diverge within 50 steps on an H200 (results/gpu_short).
    """
    return max(1, min(PAPER_WARMUP_EPOCHS, epochs // 2))


def hydra_overrides(
    spec: RunSpec, settings: Settings, train: Path, val: Path, epochs: int
) -> list[str]:
    """``main_pretrain.py`` arguments of ``spec`` for ``epochs`` epochs (cifar10 recipe)."""
    mean, std = (f"[{','.join(map(str, v))}]" for v in (CIFAR10_MEAN, CIFAR10_STD))
    stats = [
        f"++augmentations.{i}.{k}={v}" for i in (0, 1) for k, v in (("mean", mean), ("std", std))
    ]
    schedule = [
        f"max_epochs={epochs}",
        f"scheduler.warmup_epochs={warmup_epochs(epochs)}",
        *SCHEDULES[settings.schedule],
    ]
    anneal = [f"method_kwargs.anneal_alpha={PAPER_ANNEAL_SPAN / epochs:g}"] if spec.anneals else []
    return [
        "--config-path",
        str(CONFIGS),
        "--config-name",
        spec.config,
        f"name=gpu_short-{spec.name}",
        "data.dataset=custom",
        f"data.train_path={train}",
        f"data.val_path={val}",
        "data.format=image_folder",
        f"data.num_workers={settings.workers}",
        *stats,
        f"optimizer.batch_size={settings.batch_size}",
        *([f"optimizer.lr={settings.lr}"] if settings.lr else []),
        *schedule,
        "knn_eval.enabled=True",
        "checkpoint.enabled=False",
        "auto_resume.enabled=False",
        f"accelerator={settings.accelerator}",
        f"devices={settings.devices}",
        "sync_batchnorm=False",
        f"precision={settings.precision}",
        "++performance.disable_channel_last=False",
        "++benchmark=True",
        "++num_sanity_val_steps=0",
        "++enable_progress_bar=False",
        *spec.overrides,
        *anneal,
    ]


# ----------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """Seconds measured on a 2-epoch run of a few steps per epoch (see :func:`calibrate`).

    The first epoch pays one-off costs (cuDNN autotuning, allocator growth); the second shows the
    steady state: the loader's restart until the first step, seconds per step, the validation.
    """

    startup_s: float
    one_off_s: float
    teardown_s: float
    first_step_s: float
    step_s: float
    val_s: float

    def epoch_s(self, steps_per_epoch: int) -> float:
        """Estimated steady epoch of ``steps_per_epoch`` steps and one validation."""
        return self.first_step_s + (steps_per_epoch - 1) * self.step_s + self.val_s

    @property
    def fixed_s(self) -> float:
        """Seconds a run costs besides its epochs."""
        return self.startup_s + self.one_off_s + self.teardown_s


def calibrate(timing: dict, workers: int) -> Calibration:
    """Calibration from the ``timing.json`` of a 2-epoch run (see :func:`_launch`).

    The steady step time is measured in the second epoch from the end of the first round of the
    loader's ``workers`` (they deliver batches in rounds) to the last step, so that it spans
    whole rounds.
    """
    first, second = timing["epochs"][:2]
    ends = second["step_ends"]
    start = min(max(1, workers), len(ends) - 1)
    step_s = (ends[-1] - ends[start - 1]) / (len(ends) - start) if len(ends) > 1 else 0.0
    duration = [e["end"] - e["start"] for e in (first, second)]
    return Calibration(
        startup_s=timing["train_start"] - timing["launch_time"],
        one_off_s=max(0.0, duration[0] - duration[1]),
        teardown_s=timing["exit_time"] - timing["train_end"],
        first_step_s=ends[0] - second["start"],
        step_s=step_s,
        val_s=second["val_end"] - second["val_start"],
    )


def choose_epochs(
    calibrations: list[Calibration], steps_per_epoch: int, budget_s: float, cap: int
) -> int:
    """Most epochs (1 to ``cap``) whose estimated runs, one after the other, fit ``budget_s``."""
    fixed = sum(c.fixed_s for c in calibrations)
    per_epoch = SAFETY * sum(c.epoch_s(steps_per_epoch) for c in calibrations)
    return max(1, min(cap, math.floor((budget_s - fixed) / per_epoch)))


# ----------------------------------------------------------------------------- results
def epoch_table(metrics_rows: list[dict[str, str]], timing: dict) -> list[dict[str, object]]:
    """One row per finished epoch: wall-clock, learning rate and the epoch-level metrics.

    ``metrics_rows`` are the CSVLogger's rows: step-level keys (``*_step``) are dropped, epoch means
    (``*_epoch``) lose the suffix, validation metrics are kept as logged; the last value wins.
    """
    metrics: dict[int, dict[str, float]] = {}
    for row in metrics_rows:
        if not row.get("epoch"):
            continue
        values = metrics.setdefault(int(float(row["epoch"])), {})
        for key, value in row.items():
            if value in ("", None) or key in ("epoch", "step") or key.endswith("_step"):
                continue
            values[key.removesuffix("_epoch")] = float(value)
    names = sorted({k for v in metrics.values() for k in v})
    ordered = [k for k in LEADING_METRICS if k in names] + [
        k for k in names if k not in LEADING_METRICS
    ]
    table = []
    for epoch in timing["epochs"]:
        if "end" not in epoch:
            continue
        epoch_s = epoch["end"] - epoch["start"]
        val_s = epoch.get("val_end", epoch["start"]) - epoch.get("val_start", epoch["start"])
        row: dict[str, object] = {
            "epoch": epoch["epoch"],
            "epoch_s": round(epoch_s, 3),
            "train_s": round(epoch_s - val_s, 3),
            "val_s": round(val_s, 3),
            "lr": epoch["lr"],
        }
        row.update({k: metrics.get(epoch["epoch"], {}).get(k, "") for k in ordered})
        table.append(row)
    return table


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["epoch"])
        writer.writeheader()
        writer.writerows(rows)


def run_summary(table: list[dict[str, object]], timing: dict, status: str, epochs: int) -> dict:
    """Status, wall-clock and the last epoch's numbers of one run (stopped early if it diverged)."""
    final = table[-1] if table else {}
    if "diverged_at_step" in timing:
        status = f"diverged: non-finite loss at step {timing['diverged_at_step']}, stopped"
    wall = timing.get("exit_time", time.time()) - timing["launch_time"]
    return {
        "status": status,
        "epochs_planned": epochs,
        "epochs_done": len(table),
        "wall_s": round(wall, 1),
        "startup_s": round(
            timing.get("train_start", timing["launch_time"]) - timing["launch_time"], 1
        ),
        "epoch_s_mean": round(sum(r["epoch_s"] for r in table) / len(table), 2) if table else None,
        "val_s_mean": round(sum(r["val_s"] for r in table) / len(table), 2) if table else None,
        "final": {k: final[k] for k in FINAL_METRICS if final.get(k, "") != ""},
    }


# ----------------------------------------------------------------------------- orchestration
def shm_free_gib() -> float | None:
    """Free shared memory (the loader's workers pass batches through it), ``None`` without one."""
    shm = Path("/dev/shm")
    return round(shutil.disk_usage(shm).free / 2**30, 1) if shm.is_dir() else None


class Session:
    """Stages 1-6 of the module docstring, against one deadline."""

    def __init__(self, args: argparse.Namespace, settings: Settings):
        self.args = args
        self.settings = settings
        self.started = time.time()
        self.deadline = self.started + settings.deadline_s
        self.work = args.work
        self.out = args.out
        #: where the wheels went (first on the runs' ``PYTHONPATH``), when there are any
        self.site: Path | None = None
        self.summary: dict = {
            "protocol": "gpu_short",
            "dry_run": args.dry_run,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": [sys.executable, *sys.argv],
            #: commit + dirty of the copy that ran; both null where it is no git checkout (the
            #: device's copy): then whoever publishes the folder records them from the host
            "source": source_record(),
            "settings": asdict(settings),
            "host": {"cpu_count": os.cpu_count(), "shm_free_gib": shm_free_gib()},
            "runs": {},
        }

    def log(self, message: str) -> None:
        print(f"[gpu_short {time.time() - self.started:6.1f}s] {message}", flush=True)

    def left_s(self) -> float:
        return self.deadline - time.time()

    def save_summary(self) -> None:
        self.summary["total_wall_s"] = round(time.time() - self.started, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")

    # -------------------------------------------------------------- stages 1-2
    def install_wheels(self) -> None:
        site = self.work / "site"
        wheels = sorted(self.args.wheels.glob("*.whl"))
        self.log(f"installing {len(wheels)} wheels into {site}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--no-compile",
            ]
            + ["--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)],
            check=True,
        )
        self.site = site

    def unpack_data(self) -> tuple[Path, Path]:
        target = self.work / "data"
        target.mkdir(parents=True, exist_ok=True)
        self.log(f"unpacking {self.args.data}")
        subprocess.run(["tar", "-xzf", str(self.args.data)], cwd=target, check=True)
        root = next(p.parent for p in target.rglob("train") if (p.parent / "test").is_dir())
        return root / "train", root / "test"

    # -------------------------------------------------------------- runs
    def launch(self, spec: RunSpec, run_dir: Path, overrides: list[str], timeout_s: float) -> str:
        """Run ``main_pretrain.py`` in ``run_dir`` through ``_launch``; returns the status."""
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        paths = [self.site, REPO, self.args.solo, os.environ.get("PYTHONPATH")]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(p) for p in paths if p),
            CUSTOM_PIPELINE_ENV_VAR: "cifar10",
            "HYDRA_FULL_ERROR": "1",
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "_launch", str(run_dir), spec.name]
        cmd += ["--", str(self.args.solo / "main_pretrain.py"), *overrides]
        process = subprocess.Popen(cmd, cwd=run_dir, env=env, start_new_session=True)
        try:
            rc = process.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            self.log(f"{spec.name}: past the deadline, interrupting")
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return "interrupted at the deadline"
        return "ok" if rc == 0 else f"failed (exit code {rc})"

    def calibrate_all(self, specs, train: Path, val: Path) -> dict[str, Calibration]:
        """Calibrate every run; if one fails, all again with :func:`fallback` settings (once)."""
        calibrations = self.calibrate(specs, train, val)
        if len(calibrations) == len(specs) or self.left_s() < FALLBACK_MIN_LEFT_S:
            return calibrations
        self.settings = fallback(self.settings)
        self.summary["fallback_settings"] = asdict(self.settings)
        self.log(f"a calibration failed; all runs again with {self.settings}")
        return self.calibrate(specs, train, val)

    def calibrate(self, specs, train: Path, val: Path) -> dict[str, Calibration]:
        calibrations = {}
        steps = self.settings.calibration_steps
        for spec in specs:
            run_dir = self.work / "calibration" / spec.name
            overrides = hydra_overrides(spec, self.settings, train, val, epochs=2)
            # it measures time only: a low lr keeps it finite (a 48-step ramp to 0.6 diverged)
            overrides += [f"++limit_train_batches={steps}", f"optimizer.lr={CALIBRATION_LR}"]
            self.log(f"calibrating {spec.name}: 2 epochs of {steps} steps and a validation")
            status = self.launch(spec, run_dir, overrides, self.left_s() - POST_MARGIN_S)
            timing_path = run_dir / "timing.json"
            timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
            if status == "ok" and len([e for e in timing.get("epochs", []) if "end" in e]) < 2:
                status = "stopped before its second epoch"
            if status != "ok":
                self.summary["runs"][spec.name] = {"status": f"calibration {status}"}
                self.log(f"{spec.name}: calibration {status}")
                continue
            calibrations[spec.name] = calibrate(timing, self.settings.workers)
            self.summary["runs"].pop(spec.name, None)
            self.summary.setdefault("environment", timing["environment"])
            self.log(f"{spec.name}: {calibrations[spec.name]}")
        return calibrations

    def train(self, spec: RunSpec, train: Path, val: Path, epochs: int) -> None:
        run_dir = self.work / "runs" / spec.name
        overrides = hydra_overrides(spec, self.settings, train, val, epochs)
        self.log(f"training {spec.name} for {epochs} epochs")
        status = self.launch(spec, run_dir, overrides, self.left_s() - POST_MARGIN_S)
        self.collect(spec, run_dir, status, epochs)
        self.log(f"{spec.name}: {self.summary['runs'][spec.name]['status']}")

    def collect(self, spec: RunSpec, run_dir: Path, status: str, epochs: int) -> None:
        """Copy the run's result files into ``<out>/<run>/`` and add it to the summary."""
        timing_path, metrics_path = run_dir / "timing.json", run_dir / "csv" / "metrics.csv"
        if not timing_path.is_file():
            self.summary["runs"][spec.name] = {"status": status, "epochs_planned": epochs}
            return
        timing = json.loads(timing_path.read_text())
        rows = list(csv.DictReader(metrics_path.open())) if metrics_path.is_file() else []
        table = epoch_table(rows, timing)
        write_csv(run_dir / "epochs.csv", table)
        target = self.out / spec.name
        target.mkdir(parents=True, exist_ok=True)
        for name, source in RESULT_FILES.items():
            if (run_dir / source).is_file():
                shutil.copy(run_dir / source, target / name)
        self.summary["runs"][spec.name] = run_summary(table, timing, status, epochs)

    def run(self) -> int:
        """All stages; ``summary.json`` is written whatever happens."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            return self.stages()
        except BaseException as error:
            self.summary["error"] = repr(error)
            raise
        finally:
            self.save_summary()

    def stages(self) -> int:
        if self.args.wheels:
            self.install_wheels()
        train, val = self.unpack_data()
        steps_per_epoch = sum(1 for _ in train.glob("*/*")) // self.settings.batch_size
        self.summary["data"] = {
            "train": str(train),
            "val": str(val),
            "steps_per_epoch": steps_per_epoch,
        }
        chosen = self.args.runs or DEFAULT_RUNS
        specs = [r for r in runs(self.settings.width) if r.name in chosen]
        calibrations = self.calibrate_all(specs, train, val)
        self.summary["calibration"] = {
            name: {**asdict(c), "epoch_s": round(c.epoch_s(steps_per_epoch), 2)}
            for name, c in calibrations.items()
        }
        if not calibrations:
            self.log("no run calibrated; see the log above")
            return 1
        budget = min(self.settings.train_budget_s, self.left_s() - POST_MARGIN_S)
        epochs = choose_epochs(
            list(calibrations.values()), steps_per_epoch, budget, self.settings.max_epochs
        )
        self.summary.update({"epochs": epochs, "train_budget_s": round(budget, 1)})
        self.log(f"{budget:.0f} s left for training: {epochs} epochs per run")
        for spec in specs:
            if spec.name in calibrations:
                self.train(spec, train, val, epochs)
                self.save_summary()
        ok = all(r.get("status") == "ok" for r in self.summary["runs"].values())
        self.log(json.dumps(self.summary["runs"], indent=1))
        return 0 if ok else 1


# ----------------------------------------------------------------------------- _launch
def _launch(argv: list[str]) -> None:
    """Run a solo-learn script with a CSVLogger and the timing recorder added to its Trainer.

    ``argv = [RUN_DIR, LABEL, "--", SCRIPT, *SCRIPT_ARGS]``. Writes ``RUN_DIR/csv/metrics.csv``
    (every logged metric), ``RUN_DIR/args.json`` (the run's full config) and
    ``RUN_DIR/timing.json`` (wall-clock of start-up and of every epoch, step and validation).
    """
    launch_time = time.time()
    run_dir, label, separator, script, *script_args = argv
    if separator != "--":
        raise SystemExit("usage: gpu_short.py _launch RUN_DIR LABEL -- SCRIPT [ARGS...]")
    run_dir, script = Path(run_dir), Path(script)

    import functools
    import runpy

    import lightning
    import torch
    from lightning.pytorch import Callback, Trainer
    from lightning.pytorch.loggers import CSVLogger
    from omegaconf import OmegaConf

    timing: dict = {"label": label, "command": argv, "launch_time": launch_time, "epochs": []}

    def save_timing() -> None:
        (run_dir / "timing.json.tmp").write_text(json.dumps(timing))
        (run_dir / "timing.json.tmp").replace(run_dir / "timing.json")

    def environment(trainer) -> dict:
        cuda = torch.cuda.is_available()
        import hydra
        import torchmetrics

        return {
            "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor()})",
            "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "lightning": lightning.__version__,
            "torchmetrics": torchmetrics.__version__,
            "hydra": hydra.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "precision": str(trainer.precision),
        }

    class Recorder(Callback):
        """Wall-clock of the run into ``timing.json``, the full config into ``args.json``."""

        def on_fit_start(self, trainer, pl_module) -> None:
            config = OmegaConf.to_container(pl_module.cfg, resolve=True)
            (run_dir / "args.json").write_text(json.dumps(config, indent=2))
            timing["environment"] = environment(trainer)
            timing["max_epochs"] = trainer.max_epochs
            save_timing()

        def on_train_start(self, trainer, pl_module) -> None:
            timing["train_start"] = time.time()

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            epoch = {"epoch": trainer.current_epoch, "start": time.time(), "step_ends": []}
            timing["epochs"].append(epoch)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            timing["epochs"][-1]["step_ends"].append(time.time())
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            if loss is not None and not torch.isfinite(loss).all():
                timing.setdefault("diverged_at_step", trainer.global_step)
                trainer.should_stop = True  # the rest of the run would be NaN

        def on_validation_start(self, trainer, pl_module) -> None:
            if timing["epochs"]:
                timing["epochs"][-1]["val_start"] = time.time()

        def on_validation_end(self, trainer, pl_module) -> None:
            if timing["epochs"]:
                timing["epochs"][-1]["val_end"] = time.time()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch = timing["epochs"][-1]
            epoch["end"] = time.time()
            epoch["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            shown = {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k in ("val_acc1", "val_knn_acc1", "val_gated_knn_acc1", "val_flops_ratio")
            }
            numbers = " ".join(f"{k} {v:.4g}" for k, v in shown.items())
            print(
                f"[{label}] epoch {epoch['epoch'] + 1}/{trainer.max_epochs}"
                f" {epoch['end'] - epoch['start']:.1f} s {numbers}",
                flush=True,
            )
            save_timing()

        def on_train_end(self, trainer, pl_module) -> None:
            timing["train_end"] = time.time()
            save_timing()

        def on_exception(self, trainer, pl_module, exception) -> None:
            timing["exception"] = repr(exception)
            save_timing()

    trainer_init = Trainer.__init__

    @functools.wraps(trainer_init)  # keeps the signature main_pretrain.py filters its kwargs by
    def init_with_records(self, *args, **kwargs):
        if not kwargs.get("logger"):
            kwargs["logger"] = CSVLogger(save_dir=str(run_dir), name="csv", version="")
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Recorder()]
        trainer_init(self, *args, **kwargs)

    Trainer.__init__ = init_with_records
    sys.path.insert(0, str(script.parent))
    sys.argv = [str(script), *script_args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        timing["exit_time"] = time.time()
        save_timing()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solo", type=Path, required=True, help="solo-learn 1.0.6 checkout")
    parser.add_argument(
        "--data", type=Path, required=True, help="cifar10_jpg.tar.gz (train/ and test/ folders)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the result files")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_short"), help="scratch folder")
    parser.add_argument("--wheels", type=Path, help="folder of wheels to install first (optional)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, width 8, batch 16, one worker, 2 epochs at most",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=[r.name for r in runs(GPU.width)],
        help=f"these runs (default: {' '.join(DEFAULT_RUNS)})",
    )
    parser.add_argument(
        "--lr",
        type=float,
        help="optimizer.lr before the batch scaling (default: the recipe's 0.3, peak 0.6 at 512,"
        " at which VICReg diverged on this network: results/gpu_short/README.md)",
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="step",
        help="warm-up form: per step from solo-learn's start lr, or the paper's per-epoch steps "
        "from 0.003",
    )
    parser.add_argument(
        "--train-budget", type=float, help="seconds for the training runs (default 480)"
    )
    parser.add_argument(
        "--deadline", type=float, help="seconds after which everything ends (default 565)"
    )
    args = parser.parse_args(argv)
    for name in ("solo", "data", "out", "work", "wheels"):  # the runs work in other folders
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    if not (args.solo / "main_pretrain.py").is_file():
        parser.error(f"--solo {args.solo}: no main_pretrain.py there")
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["_launch"]:
        _launch(argv[1:])
        return 0
    args = parse_args(argv)
    settings = DRY_RUN if args.dry_run else GPU
    changes = {
        "train_budget_s": args.train_budget,
        "deadline_s": args.deadline,
        "lr": args.lr,
        "schedule": args.schedule,
    }
    settings = Settings(**{**asdict(settings), **{k: v for k, v in changes.items() if v}})
    return Session(args, settings).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
