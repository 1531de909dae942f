"""The grid runner end to end through solo-learn's unchanged scripts (``smoke`` protocol, CPU).

One VICReg-Gating run with the ``tracked`` budget options on the small generated ImageFolders:
stage records with their overrides, identity and times, k-NN results from the recorder file, the
published ``args.json`` (holding the runner's config hash), reuse of finished stages and, with
``--refuse-stale``, refusal of a stage whose config changed; a slimmable method evaluated per
width. Fake-stage tests of what invalidates what: tests/test_runner_identity.py.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from experiments.runner import cli
from experiments.runner.identity import RESUME_KEY, file_identity
from experiments.runner.protocols import VARIANTS


def test_runner_records_publishes_reuses_and_refuses_a_stale_stage(
    solo_src, image_folders, tmp_path, capsys
) -> None:
    train, val = image_folders
    out, published = tmp_path / "out", tmp_path / "published"
    argv = [
        "--protocol",
        "smoke",
        "--cpu",
        "--train",
        str(train),
        "--val",
        str(val),
        "--solo",
        str(solo_src),
        "--out",
        str(out),
        "--methods",
        "vicreg_gating",
        "--variants",
        "tracked",
        "--densities",
        "0.3",
        "--workers",
        "0",
        "--publish",
        str(published),
    ]
    assert cli.main(argv) == 0
    run = out / "runs" / "vicreg_gating-td0.3-tracked"
    pretrain = json.loads((run / "pretrain.json").read_text())
    tracked = ["method_kwargs.target_density=0.3", *VARIANTS["tracked"]]
    assert pretrain["run_overrides"] == tracked and set(tracked) <= set(pretrain["overrides"])
    assert pretrain["config"] == "pretrain/cpu_quick/vicreg_gating"
    assert pretrain["protocol"] == "smoke" and pretrain["seconds"] > 0
    assert pretrain["started"] <= pretrain["ended"]
    assert pretrain["resolved_config"]["method_kwargs.lambda_flops"] == 50
    assert pretrain["environment"] == {"DUALGATE_CUSTOM_PIPELINE": "cifar10"}
    knn_record = json.loads((run / "knn-gated.json").read_text())
    checkpoint = Path(pretrain["result"]["checkpoint"])
    assert knn_record["inputs"]["checkpoint"] == file_identity(checkpoint)

    args = json.loads((published / "runs" / run.name / "args.json").read_text())
    assert args["method"] == "vicreg_gating" and len(args[RESUME_KEY]) == 64
    kwargs = args["method_kwargs"]
    assert (kwargs["target_density"], kwargs["lambda_flops"], kwargs["multiplier_lr"]) == (
        0.3,
        50,
        0.05,
    )
    assert kwargs["ratio_source"] == "deterministic"
    assert (published / "runs" / run.name / "linear-gated.args.json").is_file()
    sources = json.loads((published / "runs" / run.name / "sources.json").read_text())["files"]
    assert set(sources) >= {"args.json", "linear-gated.args.json", "knn-gated-results.json"}
    assert sources["args.json"]["source"] == pretrain["source"]

    # the k-NN stage reads the recorder's file, which agrees with what main_knn.py printed
    knn = json.loads((run / "knn-gated.json").read_text())["result"]
    recorded = json.loads((run / "knn-gated-results.json").read_text())
    assert [(r["k"], r["distance_fx"]) for r in recorded] == [(1, "euclidean"), (20, "euclidean")]
    assert knn == {"knn_top1_k1": recorded[0]["acc1"], "knn_top1_k20": recorded[1]["acc1"]}
    printed = re.findall(r"Result: acc@1=([\d.]+)", (run / "knn-gated.log").read_text())
    assert [float(a) for a in printed] == [r["acc1"] for r in recorded]

    row = next(line for line in (published / "table.md").read_text().splitlines() if "0.3" in line)
    assert row.startswith("| vicreg_gating | tracked | 0.3 | gated |") and row.endswith("| yes |")

    records = {p: p.read_text() for p in run.glob("*.json")}
    assert cli.main(argv) == 0  # every stage reused
    assert {p: p.read_text() for p in run.glob("*.json")} == records
    capsys.readouterr()
    assert cli.main([*argv, "--refuse-stale", "--linear-override", "max_epochs=2"]) == 2
    stderr = capsys.readouterr().err  # the grid's progress bar, then the one-line error
    error = stderr.splitlines()[-1]
    assert "Traceback" not in stderr
    assert error.startswith(f"run_grid.py: error: stage {run.name}/linear-gated is stale")
    assert "only requested ['max_epochs=2']" in error
    assert {p: p.read_text() for p in run.glob("*.json")} == records


@pytest.mark.slow  # widths are covered by test_slim_scripts; this adds the runner's bookkeeping
def test_runner_evaluates_each_width_of_a_slimmable_method(
    solo_src, image_folders, tmp_path
) -> None:
    """SACL-XD is evaluated per network (slim w0.5 and host w1), each with its MACs."""
    train, val = image_folders
    out = tmp_path / "out"
    argv = ["--protocol", "smoke", "--cpu", "--train", str(train), "--val", str(val)]
    argv += ["--solo", str(solo_src), "--out", str(out), "--workers", "0"]
    assert cli.main([*argv, "--methods", "sacl_xd"]) == 0
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [(r["method"], r["branch"]) for r in rows] == [("sacl_xd", "w0.5"), ("sacl_xd", "w1")]
    slim, host = (float(r["macs_m"]) for r in rows)
    assert host == pytest.approx(4 * slim, rel=0.02)  # half the channels of every layer
    linear = json.loads((out / "runs" / "sacl_xd-paper" / "linear-w0.5.json").read_text())
    assert "backbone.kwargs.width_mult=0.5" in linear["overrides"]
