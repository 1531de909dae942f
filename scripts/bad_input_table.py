"""Every bad input of the reviews (issues 10 and 19) through the ``dualgate-solo`` console script.

    python scripts/bad_input_table.py [--markdown table.md] [--only WORD]

Builds tiny inputs in a temporary folder (untrained checkpoints of a channel-gated, a width-gated
and a slimmable backbone, small ImageFolder splits, one with a text file named ``*.jpg``, one
with a truncated JPEG among good ones, earlier outputs), runs every case of :data:`CASES` as a
user would (the console script, one process each; Ctrl-C as SIGINT to its process group) and
checks it: the exit status; for a refusal exactly one stderr line holding the expected words
(option, value, what is allowed), nothing written and every earlier output byte-for-byte as it
was, no staging folder left behind. Prints the markdown table ``case | exit | line | s`` and
exits 1 when any case is wrong. ``tests/test_bad_inputs.py`` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROG = "dualgate-solo"
W16 = ["--checkpoint", "w16.pt", "--backbone", "dg_resnet18", "--width", "16"]
WIDTH_GATED = ["--checkpoint", "wg.pt", "--backbone", "dg_resnet18", "--width", "16"]
CIFAR = ["--dataset", "cifar10"]
SPLIT = ["--data", "split"]
FAST_EXPORT = ["--synthetic-size", "8", "--batch-size", "8", "--num-workers", "0"]
TINY_DEMO = [
    "--steps", "2", "--batch-size", "8", "--train-size", "20", "--test-size", "10",
    "--width", "4", "--proj-dim", "8", "--knn-k", "3", "--threads", "1",
]  # fmt: skip
ENDLESS_DEMO = ["--steps", "1000000", "--width", "4", "--proj-dim", "8", "--threads", "1"]


@dataclasses.dataclass
class Case:
    """One command line and what must come of it.

    Attributes:
        name: what a user did (the table's first column).
        argv: arguments after ``dualgate-solo``, paths relative to the input folder.
        status: expected exit status (2: refused, 130: Ctrl-C, 0: works).
        words: text the stderr line (status 2/130) or stdout (status 0) must contain.
        absent: paths that must not exist afterwards.
        kept: earlier outputs that must be unchanged afterwards.
        check: a further check of the input folder afterwards; returns what is wrong.
        interrupt: send Ctrl-C once the command has staged its output.
    """

    name: str
    argv: list[str]
    status: int
    words: list[str]
    absent: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    check: Callable[[Path], list[str]] | None = None
    interrupt: bool = False


def refused(name: str, argv: list[str], words: list[str]) -> Case:
    """A case the command must refuse in one line (exit 2) without creating its ``--out``."""
    out = argv[argv.index("--out") + 1] if "--out" in argv else None
    return Case(name, argv, 2, words, absent=(out,) if out else ())


def _names(folder: str, expected: set[str]) -> Callable[[Path], list[str]]:
    """A check: ``folder`` holds exactly the files ``expected``."""

    def check(root: Path) -> list[str]:
        found = {p.name for p in (root / folder).iterdir()}
        return [] if found == expected else [f"{folder} holds {sorted(found)}"]

    return check


def _home_out(root: Path) -> list[str]:
    wrong = [] if (root / "home" / "x" / "export_summary.json").is_file() else ["home/x missing"]
    return wrong + (["./~ was created"] if (root / "~").exists() else [])


CASES: list[Case] = [
    # --- issue 19: unreadable images in --data
    refused(
        "cost-report, a text file named *.jpg in --data",
        ["cost-report", *W16, *CIFAR, "--data", "textjpg", "--out", "o"],
        ["--data='textjpg'", "fake.jpg", "not an image file", "--skip-unreadable"],
    ),
    refused(
        "cost-report, one truncated JPEG among good ones",
        ["cost-report", *W16, *CIFAR, "--data", "corrupt", "--out", "o"],
        ["--data='corrupt'", "1 unreadable image file(s) of 20", "broken.jpg", "OSError"],
    ),
    refused(
        "export, a text file named *.jpg in --data",
        ["export", *W16, *CIFAR, "--data", "textjpg", "--out", "o"],
        ["--data='textjpg'", "fake.jpg", "not an image file"],
    ),
    refused(
        "umap, one truncated JPEG among good ones",
        ["umap", *W16, *CIFAR, "--data", "corrupt", "--out", "u.png"],
        ["--data='corrupt'", "broken.jpg", "OSError"],
    ),
    Case(
        "cost-report --skip-unreadable (works, says how many)",
        ["cost-report", *W16, *CIFAR, "--data", "corrupt", "--skip-unreadable"]
        + ["--num-workers", "0", "--out", "skipped"],
        0,
        ["left out 1 of 20 files", "broken.jpg", "19 images"],
        check=_names(
            "skipped", {"cost_report.json", "layers.csv", "channel_usage.csv", "channel_usage.png"}
        ),
    ),
    # --- issue 19: --out
    Case(
        "demo --out /proc/x (refused before training)",
        ["demo", *TINY_DEMO, "--out", "/proc/x"],
        2,
        ["--out='/proc/x'", "cannot be written", "allowed values"],
    ),
    Case(
        "demo --out <an earlier run>",
        ["demo", *TINY_DEMO, "--out", "earlier_demo"],
        2,
        ["--out='earlier_demo' already exists", "--overwrite"],
        kept=("earlier_demo",),
    ),
    Case(
        "demo --out <earlier run with a read-only summary.json> --overwrite (replaced whole)",
        ["demo", *TINY_DEMO, "--out", "readonly_demo", "--overwrite"],
        0,
        ["wrote metrics.csv, args.json, budget.png, summary.json to readonly_demo"],
        check=_names("readonly_demo", {"metrics.csv", "args.json", "budget.png", "summary.json"}),
    ),
    Case(
        "export into an earlier export folder with other --formats",
        [
            "export",
            *W16,
            *CIFAR,
            *FAST_EXPORT,
            "--formats",
            "state_dict",
            "--out",
            "earlier_export",
        ],
        2,
        ["--out='earlier_export' already exists", "--overwrite"],
        kept=("earlier_export",),
    ),
    Case(
        "the same with --overwrite (no stale model.ts left)",
        ["export", *W16, *CIFAR, *FAST_EXPORT, "--formats", "state_dict"]
        + ["--out", "overwritten_export", "--overwrite"],
        0,
        ["static export at 32x32 px", "-> overwritten_export"],
        check=_names(
            "overwritten_export", {"weights.pt", "spec.json", "plan.json", "export_summary.json"}
        ),
    ),
    Case(
        "export --out=~/x (HOME=<inputs>/home)",
        ["export", *W16, *CIFAR, *FAST_EXPORT, "--formats", "state_dict", "--out=~/x"],
        0,
        ["/home/x"],
        check=_home_out,
    ),
    # --- issue 19: Ctrl-C
    Case(
        "Ctrl-C during the demo",
        ["demo", *ENDLESS_DEMO, "--out", "interrupted"],
        130,
        ["interrupted (Ctrl-C)", "nothing was written", "--out='interrupted' not created"],
        absent=("interrupted",),
        interrupt=True,
    ),
    Case(
        "Ctrl-C during demo --overwrite of an earlier run",
        ["demo", *ENDLESS_DEMO, "--out", "earlier_demo", "--overwrite"],
        130,
        ["interrupted (Ctrl-C)", "--out='earlier_demo' was left as it was"],
        kept=("earlier_demo",),
        interrupt=True,
    ),
    # --- issue 19: options that do not apply to the checkpoint
    refused(
        "width-gated export --on-threshold",
        ["export", *WIDTH_GATED, *CIFAR, *FAST_EXPORT, "--on-threshold", "0.9", "--out", "o"],
        ["--on-threshold=0.9 is invalid", "wg.pt", "width-gated", "allowed values: 1.0"],
    ),
    refused(
        "width-gated export --off-threshold",
        ["export", *WIDTH_GATED, *CIFAR, *FAST_EXPORT, "--off-threshold", "0.1", "--out", "o"],
        ["--off-threshold=0.1 is invalid", "width-gated", "allowed values: 0.0"],
    ),
    refused(
        "width-gated export --formats state_dict",
        ["export", *WIDTH_GATED, *CIFAR, *FAST_EXPORT, "--formats", "state_dict", "--out", "o"],
        ["--formats=['state_dict'] is invalid", "width-gated", "torchscript, onnx"],
    ),
    refused(
        "slimmable export --data /nonexistent",
        ["export", "--checkpoint", "slim_run", "--data", "/nonexistent", "--out", "o"],
        ["--data='/nonexistent' is invalid", "slim_run", "slimmable", "leave it out"],
    ),
    refused(
        "slimmable export --policy hybrid",
        ["export", "--checkpoint", "slim_run", "--policy", "hybrid", "--out", "o"],
        ["--policy='hybrid' is invalid", "slimmable", "allowed values: 'static'"],
    ),
    # --- issue 19: checkpoint-path errors come before torch (see the seconds column)
    refused(
        "cost-report --checkpoint <missing>",
        ["cost-report", "--checkpoint", "missing.pt", *SPLIT, "--out", "o"],
        ["--checkpoint='missing.pt' does not exist"],
    ),
    refused(
        "export --checkpoint <missing>",
        ["export", "--checkpoint", "missing.pt", "--out", "o"],
        ["--checkpoint='missing.pt' does not exist"],
    ),
    refused(
        "umap --checkpoint <a .txt file>",
        ["umap", "--checkpoint", "notes.txt", *SPLIT, "--out", "u.png"],
        ["--checkpoint='notes.txt' is invalid", ".ckpt, .pt, .pth"],
    ),
    # --- issue 10 (the product review), kept
    Case("mac-table --size 0", ["mac-table", "--size", "0"], 2, ["--size", "'0'", "integer >= 1"]),
    refused(
        "a plain state dict without --backbone",
        ["cost-report", "--checkpoint", "w16.pt", *SPLIT, "--out", "o"],
        ["--backbone is required", "w16.pt", "no args.json", "dg_resnet18"],
    ),
    refused(
        "random bytes as --checkpoint",
        ["cost-report", "--checkpoint", "garbage.pt", "--backbone", "dg_resnet18", *SPLIT]
        + ["--out", "o"],
        ["--checkpoint=", "garbage.pt", "not a PyTorch checkpoint"],
    ),
    refused(
        "a zip that is no checkpoint",
        ["cost-report", "--checkpoint", "zip.pt", "--backbone", "dg_resnet18", *SPLIT]
        + ["--out", "o"],
        ["--checkpoint=", "zip.pt", "not a PyTorch checkpoint"],
    ),
    refused(
        "a pickled Namespace as --checkpoint",
        ["export", "--checkpoint", "objects.pt", "--backbone", "dg_resnet18", "--out", "o"],
        ["--checkpoint=", "objects.pt", "argparse.Namespace", "not a state dict"],
    ),
    refused(
        "width 16 checkpoint read at the default width",
        ["cost-report", "--checkpoint", "w16.pt", "--backbone", "dg_resnet18", *CIFAR, *SPLIT]
        + ["--out", "o"],
        ["width=64 (the default)", "w16.pt", "width=16", "--width 16"],
    ),
    refused(
        "umap --width 32 of a width-16 checkpoint",
        ["umap", *W16[:4], "--width", "32", *CIFAR, *SPLIT, "--out", "u.png"],
        ["width=32 (--width)", "w16.pt", "width=16", "--width 16"],
    ),
    refused(
        "export --dataset bogus",
        ["export", *W16, "--dataset", "bogus", "--out", "o"],
        ["--dataset", "'bogus'", "'cifar10'"],
    ),
    refused(
        "a plain state dict without --dataset",
        ["cost-report", *W16, *SPLIT, "--out", "o"],
        ["--dataset is required", "w16.pt", "cifar10"],
    ),
    Case(
        "cost-report of a width-16 state dict (works)",
        ["cost-report", *W16, *CIFAR, *SPLIT, "--num-workers", "0", "--out", "cost"],
        0,
        ["20 images at 32x32 px", "-> cost"],
    ),
    Case(
        "umap of a width-16 state dict (works)",
        ["umap", *W16, *CIFAR, *SPLIT, "--num-workers", "0", "--out", "u_ok.png"],
        0,
        ["UMAP of both branches", "-> u_ok.png"],
    ),
]


def make_inputs(root: Path) -> Path:
    """The checkpoints, splits and earlier outputs the cases read, under ``root``."""
    import argparse as argparse_module
    import zipfile

    import torch
    from PIL import Image

    from dualgate_solo.models import create_backbone

    torch.manual_seed(0)
    torch.save(create_backbone("dg_resnet18", stem="cifar", width=16).state_dict(), root / "w16.pt")
    width_gated = create_backbone("dg_resnet18", stem="cifar", width=16, gate_mode="width")
    torch.save(width_gated.state_dict(), root / "wg.pt")
    slim_kwargs = {"stem": "cifar", "width": 4, "width_mult_list": [1.0, 0.5], "width_mult": 0.5}
    slim = create_backbone("slim_resnet18", **slim_kwargs)
    slim.trained_steps.fill_(1)
    (root / "slim_run").mkdir()
    state = {f"backbone.{k}": v for k, v in slim.state_dict().items()}
    torch.save({"state_dict": state}, root / "slim_run" / "last.ckpt")
    slim_args = {
        "method": "slimclr_vicreg",
        "backbone": {"name": "slim_resnet18", "kwargs": slim_kwargs},
        "data": {"dataset": "cifar10"},
    }
    (root / "slim_run" / "args.json").write_text(json.dumps(slim_args))
    (root / "garbage.pt").write_bytes(bytes(range(256)) * 16)
    with zipfile.ZipFile(root / "zip.pt", "w") as archive:
        archive.writestr("notes/readme.txt", "a zip, not a torch checkpoint")
    torch.save({"args": argparse_module.Namespace(lr=0.1)}, root / "objects.pt")
    (root / "notes.txt").write_text("not a checkpoint")
    gen = torch.Generator().manual_seed(0)
    for split, suffix in (("split", ".png"), ("corrupt", ".jpg"), ("textjpg", ".png")):
        for c in range(5):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(4):
                pixels = (torch.rand(32, 32, 3, generator=gen) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / f"class{c}" / f"{i}{suffix}")
    broken = root / "corrupt" / "class2" / "broken.jpg"
    (root / "corrupt" / "class2" / "3.jpg").rename(broken)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    (root / "textjpg" / "class0" / "fake.jpg").write_text("just text, named like a JPEG")
    for name in ("earlier_demo", "readonly_demo"):
        (root / name).mkdir()
        (root / name / "summary.json").write_text('{"earlier": true}\n')
        (root / name / "stale.txt").write_text("from an earlier run\n")
    (root / "readonly_demo" / "summary.json").chmod(0o444)
    for name in ("earlier_export", "overwritten_export"):
        (root / name).mkdir()
        for file in ("model.ts", "model.onnx", "export_summary.json"):
            (root / name / file).write_text(f"{file} of an earlier prune plan\n")
    (root / "home").mkdir()
    return root


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or ``path`` itself) -> its bytes."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def console_script() -> str:
    """The installed ``dualgate-solo`` entry point (next to this Python first)."""
    beside = Path(sys.executable).parent / PROG
    found = str(beside) if beside.is_file() else shutil.which(PROG)
    if found is None:
        raise SystemExit(f"the {PROG} console script is not installed: pip install -e .")
    return found


def run_case(case: Case, root: Path, script: str) -> tuple[int, str, float, list[str]]:
    """Run ``case`` in ``root``: ``(exit status, the line shown, seconds, what is wrong)``."""
    env = {k: v for k, v in os.environ.items() if k != "DUALGATE_DEBUG"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HOME=str(root / "home"))
    env.update(TQDM_DISABLE="1", PYTHONWARNINGS="ignore")
    before = {path: snapshot(root / path) for path in case.kept}
    start = time.perf_counter()
    process = subprocess.Popen(
        [script, *case.argv],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Ctrl-C as a terminal delivers it, also when this runs as a background job (whose
        # children inherit SIGINT ignored, and Python then never raises KeyboardInterrupt)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    if case.interrupt:
        _interrupt_when_staged(process, root / case.argv[case.argv.index("--out") + 1])
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += "\n(killed: still running after 600 s)"
    seconds = time.perf_counter() - start
    status, lines = process.returncode, stderr.splitlines()
    wrong = [] if status == case.status else [f"exit {status}, expected {case.status}"]
    if case.status == 0:
        shown = next((line for line in stdout.splitlines() if case.words[0] in line), "")
        wrong += [f"stdout lacks {w!r}" for w in case.words if w not in stdout]
    else:
        shown = lines[0] if lines else ""
        prefix = f"{PROG}: " + ("error: " if case.status == 2 else "interrupted (Ctrl-C): ")
        if len(lines) != 1 or not shown.startswith(prefix):
            wrong.append(f"{len(lines)} stderr lines, expected one starting {prefix!r}")
        wrong += [f"line lacks {w!r}" for w in case.words if w not in shown]
    wrong += [f"{p} exists" for p in case.absent if (root / p).exists()]
    wrong += [f"{p} changed" for p in case.kept if snapshot(root / p) != before[p]]
    wrong += case.check(root) if case.check else []
    if wrong:
        wrong.append(f"stdout: {stdout[-1500:]}\nstderr: {stderr[-3000:]}")
    return status, shown, seconds, wrong


def _interrupt_when_staged(process: subprocess.Popen, out: Path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) two seconds after the command
    has staged ``out`` (it is importing torch or training then), or after 120 s."""
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(f".{out.name}.partial-*")) and time.monotonic() < deadline:
        if process.poll() is not None:
            return
        time.sleep(0.1)
    time.sleep(2.0)
    os.killpg(process.pid, signal.SIGINT)


def markdown(rows: list[tuple[Case, int, str, float]]) -> str:
    """The table ``case | exit | line | s``."""

    def cell(text: str) -> str:
        return "`" + text.replace("|", "\\|") + "`" if text else "-"

    body = [
        f"| {case.name} ({cell(PROG + ' ' + ' '.join(case.argv))}) | {status} | {cell(line)} "
        f"| {seconds:.1f} |"
        for case, status, line, seconds in rows
    ]
    return "\n".join(["| case | exit | line | s |", "|---|---|---|---|", *body])


def run_all(root: Path, only: str = "", jobs: int = 3) -> tuple[str, list[str]]:
    """Build the inputs under ``root`` and run the cases (those naming ``only``), ``jobs`` at a
    time: the markdown table and the problems found (a staging folder left behind included)."""
    make_inputs(root)
    script = console_script()
    cases = [case for case in CASES if only in case.name]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda case: run_case(case, root, script), cases))
    rows = [
        (case, status, line, seconds) for case, (status, line, seconds, _) in zip(cases, results)
    ]
    problems = [f"{c.name}: " + "; ".join(r[3]) for c, r in zip(cases, results) if r[3]]
    leftovers = [*root.rglob(".*.partial-*"), *root.rglob(".*.old-*")]
    problems += [f"staging folder left behind: {p.relative_to(root)}" for p in leftovers]
    return markdown(rows), problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--jobs", type=int, default=3, help="cases run at the same time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bad_inputs-") as folder:
        table, problems = run_all(Path(folder), args.only, args.jobs)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
