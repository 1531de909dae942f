"""The grid runner's stage identity with fake stages (no training): what invalidates a finished
stage, when a killed pre-training may resume, and the seed in the family benchmark's keys.

The solo-learn scripts and ``dualgate-solo`` commands are replaced by fakes that write what the
real ones write (checkpoint and ``args.json``, linear metrics, k-NN and cost results) and count
their calls; the runner's own logic (identities, records, resume) runs unchanged. The real
scripts run in tests/integration/test_runner.py.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from dualgate_solo.solo_adapter.paths import config_dir
from dualgate_solo.validation import UsageError
from experiments.runner import grid as grid_module
from experiments.runner.grid import GridRunner
from experiments.runner.identity import RESUME_KEY
from experiments.runner.protocols import PROTOCOLS, Run

pytest.importorskip("hydra", reason="hydra composes the stages' configs")

RUN = Run("vicreg_gating", 0.3, "tracked")
STAGES = ("pretrain", "macs", "cost", "linear-gated", "knn-gated")


class FakeStages:
    """Stand-ins for the subprocesses; ``calls`` lists the stages they ran, ``resumed`` the
    checkpoints main_pretrain.py was told to resume. Every pre-training writes the same
    checkpoint path (solo-learn's name repeats for the same config) with new weights."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.resumed: list[str | None] = []
        self.trainings = 0

    def hydra(self, runner, script, kind, run, run_dir, stage, overrides) -> None:  # noqa: ANN001
        self.calls.append(stage)
        values = dict(o.lstrip("+").split("=", 1) for o in overrides)
        ckpt_root = Path(values["checkpoint.dir"])
        if kind == "pretrain":
            self.trainings += 1
            self.resumed.append(values.get("resume_from_checkpoint"))
            version = ckpt_root / run.method / "0"
            version.mkdir(parents=True, exist_ok=True)
            (version / "run-ep=4.ckpt").write_bytes(f"weights {self.trainings}".encode())
            args = {"method": run.method, RESUME_KEY: values.get(RESUME_KEY)}
            (version / "args.json").write_text(json.dumps(args))
            return
        metrics = run_dir / stage / "lightning_logs" / "version_0" / "metrics.csv"
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_text("epoch,val_acc1\n0,30.0\n")
        ckpt_root.mkdir(parents=True, exist_ok=True)
        (ckpt_root / "args.json").write_text('{"method": "linear"}')

    def call(self, cmd, cwd, log, env) -> None:  # noqa: ANN001
        if "experiments.runner.knn_record" in cmd:
            self.calls.append("knn")
            results = [
                {"k": k, "T": None, "distance_fx": "euclidean", "acc1": 20.0} for k in (1, 20)
            ]
            Path(cmd[3]).write_text(json.dumps(results))
        elif "cost-report" in cmd:
            self.calls.append("cost")
            out = Path(cmd[cmd.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            summary = {"flops_ratio": 0.3, "flops_reduction": 0.7}
            (out / "cost_report.json").write_text(json.dumps({"summary": summary}))

    def macs(self, args_json, networks, dataset) -> dict:  # noqa: ANN001
        self.calls.append("macs")
        return {"macs_dense": 1_000_000}


@pytest.fixture
def fake(monkeypatch) -> FakeStages:
    stages = FakeStages()
    monkeypatch.setattr(GridRunner, "_hydra", lambda self, *a: stages.hydra(self, *a), raising=True)
    monkeypatch.setattr(grid_module, "call", stages.call)
    monkeypatch.setattr(grid_module, "network_macs", stages.macs)
    return stages


def _runner(tmp_path: Path, **changes) -> GridRunner:
    solo = tmp_path / "solo"
    solo.mkdir(exist_ok=True)
    for script in ("main_pretrain.py", "main_linear.py", "main_knn.py"):
        (solo / script).touch()
    fields = {
        "protocol_name": "smoke",
        "protocol": PROTOCOLS["smoke"],
        "solo": solo,
        "train": tmp_path / "train",
        "val": tmp_path / "val",
        "out": tmp_path / "out",
        "workers": 0,
        "cpu": False,
        "draw_umap": False,
    }
    return GridRunner(**{**fields, **changes})


def _records(tmp_path: Path) -> dict[str, str]:
    run_dir = tmp_path / "out" / "runs" / RUN.name
    return {stage: (run_dir / f"{stage}.json").read_text() for stage in STAGES}


def test_a_re_pretrained_run_invalidates_its_knn_linear_cost_and_macs_stages(
    tmp_path, fake
) -> None:
    runner = _runner(tmp_path)
    runner.run(RUN)
    assert fake.calls == ["pretrain", "macs", "cost", "linear-gated", "knn"]
    runner.run(RUN)
    assert len(fake.calls) == 5  # everything reused
    # re-pretrain: the record and checkpoints go, the new checkpoint has the old path
    run_dir = tmp_path / "out" / "runs" / RUN.name
    checkpoint = json.loads((run_dir / "pretrain.json").read_text())["result"]["checkpoint"]
    (run_dir / "pretrain.json").unlink()
    shutil.rmtree(run_dir / "pretrain")
    fake.calls.clear()
    runner.run(RUN)
    assert fake.calls == ["pretrain", "macs", "cost", "linear-gated", "knn"]
    record = json.loads((run_dir / "knn-gated.json").read_text())
    assert record["inputs"]["checkpoint"]["name"] == Path(checkpoint).name
    assert (
        record["inputs"]["checkpoint"]["sha256"]
        == json.loads((run_dir / "linear-gated.json").read_text())["inputs"]["checkpoint"]["sha256"]
    )


def test_a_changed_yaml_value_invalidates_the_pretrain_stage(tmp_path, fake, monkeypatch) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    monkeypatch.setattr(grid_module, "config_dir", lambda: configs)
    runner = _runner(tmp_path)
    runner.run(RUN)
    before = _records(tmp_path)
    yaml = configs / "pretrain" / "cpu_quick" / "vicreg_gating.yaml"
    yaml.write_text(yaml.read_text().replace("proj_hidden_dim: 256", "proj_hidden_dim: 128"))

    refusing = _runner(tmp_path, refuse_stale=True)
    with pytest.raises(UsageError) as error:
        refusing.run(RUN)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"stage {RUN.name}/pretrain is stale")
    assert "method_kwargs.proj_hidden_dim: 256 -> 128" in message
    assert _records(tmp_path) == before and fake.trainings == 1

    fake.calls.clear()
    runner.run(RUN)  # the default: re-run it and everything that read its checkpoint
    assert fake.calls == ["pretrain", "macs", "cost", "linear-gated", "knn"]
    assert fake.resumed == [None, None]  # a stale pre-training starts afresh
    pretrain = json.loads((tmp_path / "out" / "runs" / RUN.name / "pretrain.json").read_text())
    assert pretrain["resolved_config"]["method_kwargs.proj_hidden_dim"] == 128
    assert pretrain["environment"] == {"DUALGATE_CUSTOM_PIPELINE": "cifar10"}
    assert set(pretrain["code"]) == {"dualgate_solo", "source_sha256", "solo_learn_sha256"}


def test_the_environment_switch_and_the_linear_override_are_part_of_the_identity(
    tmp_path, fake
) -> None:
    _runner(tmp_path).run(RUN)
    other = PROTOCOLS["smoke"].__class__(**{**PROTOCOLS["smoke"].__dict__, "custom_pipeline": "x"})
    with pytest.raises(UsageError, match="DUALGATE_CUSTOM_PIPELINE: 'cifar10' -> 'x'"):
        _runner(tmp_path, protocol=other, refuse_stale=True).run(RUN)
    with pytest.raises(
        UsageError,
        match=r"linear-gated is stale: overrides .only cached \[\], only requested \['max_epochs=2",
    ):
        _runner(tmp_path, linear_overrides=("max_epochs=2",), refuse_stale=True).run(RUN)


def _killed_run(tmp_path: Path, key: str | None) -> Path:
    """A pre-training checkpoint without a stage record, its args.json holding ``key``."""
    version = tmp_path / "out" / "runs" / RUN.name / "pretrain" / "trained_models" / "x" / "0"
    version.mkdir(parents=True)
    (version / "killed-ep=2.ckpt").write_bytes(b"half trained")
    (version / "args.json").write_text(json.dumps({RESUME_KEY: key, "max_epochs": 99}))
    return version / "killed-ep=2.ckpt"


def test_resume_only_from_a_checkpoint_whose_args_json_matches_the_resolved_config(
    tmp_path, fake, capsys
) -> None:
    killed = _killed_run(tmp_path, "another config")
    with pytest.raises(UsageError) as error:
        _runner(tmp_path, refuse_stale=True).run(RUN)
    message = str(error.value)
    assert "\n" not in message and f"{RUN.name}/pretrain would not resume" in message
    assert "killed-ep=2.ckpt (its args.json: max_epochs: 99 -> 2)" in message
    assert fake.calls == []

    _runner(tmp_path).run(RUN)  # the default: pass it over and pre-train afresh
    assert fake.resumed == [None]
    assert f"not resuming {killed.name}" in capsys.readouterr().err

    # a killed pre-training of this very config (no record) resumes its checkpoint
    run_dir = tmp_path / "out" / "runs" / RUN.name
    checkpoint = json.loads((run_dir / "pretrain.json").read_text())["result"]["checkpoint"]
    (run_dir / "pretrain.json").unlink()
    _runner(tmp_path).run(RUN)
    assert fake.resumed == [None, f"'{checkpoint}'"]


def test_pretrain_overrides_name_their_own_runs(tmp_path, fake) -> None:
    from experiments.runner.protocols import grid, overrides_id

    extra = ("method_kwargs.lambda_flops=5",)
    (run,) = grid(["vicreg_gating"], [0.3], ["tracked"], pretrain_overrides=extra)
    assert run.name == f"vicreg_gating-td0.3-o{overrides_id(extra)}-tracked"
    assert Run.from_name(run.name) == run and overrides_id(()) is None
    assert overrides_id(extra) != overrides_id(("method_kwargs.lambda_flops=50",))
    _runner(tmp_path, pretrain_overrides=extra).run(run)
    _runner(tmp_path).run(RUN)
    assert sorted(p.name for p in (tmp_path / "out" / "runs").iterdir()) == sorted(
        [RUN.name, run.name]
    )
    with pytest.raises(UsageError, match="run name .* is invalid"):
        Run.from_name("vicreg_gating-td0.3-oxyz-tracked")


def test_family_accuracy_is_keyed_by_run_with_its_seed(tmp_path) -> None:
    from experiments.bench.family import accuracy_rows

    table = tmp_path / "table.csv"
    columns = ["run", "method", "width", "variant", "t_d", "branch", "linear_top1", "knn_top1_k20"]
    rows = [
        ["vicreg-paper", "vicreg", "", "paper", "", "dense", "30", "31"],
        ["vicreg-seed1-paper", "vicreg", "", "paper", "", "dense", "40", "41"],
    ]
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])
    (tmp_path / "grid" / "runs").mkdir(parents=True)
    accuracy, _ = accuracy_rows(tmp_path / "grid", table)
    assert accuracy == {
        ("vicreg-paper", "dense"): {"linear_top1": 30.0, "knn_top1_k20": 31.0},
        ("vicreg-seed1-paper", "dense"): {"linear_top1": 40.0, "knn_top1_k20": 41.0},
    }
