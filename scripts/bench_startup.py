"""Interpreter start-up cost of the ``.pth`` start-up hook, measured side by side.

Each arm is a throw-away ``venv --without-pip`` of the same interpreter; the arms differ only in
what their site-packages hold:

- ``none``: nothing;
- ``hook``: this checkout's hook, written by ``install_hook`` (the same files a wheel ships);
- ``previous``: the hook as of ``--previous`` (a ``.pth`` importing
  ``dualgate_solo.solo.import_hook`` from the package, its name then), rebuilt from git;
  ``--previous ''`` skips it.

Per arm: ``python -X importtime -c pass`` (``--importtime-runs`` times, medians reported) and
``--runs`` timed ``python -c pass`` runs, interleaved across the arms so that load drifts hit all
alike. Writes ``startup.json`` (machine, date, command, config, every sample), ``startup.csv`` (one
row per arm), ``startup.png`` and ``args.json`` to ``--out``.

    python scripts/bench_startup.py --runs 30
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from dualgate_solo.solo_adapter.startup_hook_files import install_hook

REPO = Path(__file__).resolve().parents[1]
#: the previous hook's files, relative to the repository, and its .pth line
PREVIOUS_FILES = (
    "dualgate_solo/__init__.py",
    "dualgate_solo/solo/__init__.py",
    "dualgate_solo/solo/import_hook.py",
)
PREVIOUS_PTH = "import dualgate_solo.solo.import_hook as _dualgate_hook; _dualgate_hook.install()\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed `python -c pass` runs per arm")
    parser.add_argument(
        "--importtime-runs", type=int, default=5, help="`-X importtime` runs per arm"
    )
    parser.add_argument(
        "--previous",
        default="0b9b290",
        help="git revision whose hook is the `previous` arm ('' to skip)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "results" / "startup_hook")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.importtime_runs < 1:
        parser.error("--runs and --importtime-runs must be >= 1")
    return args


def make_env(root: Path) -> tuple[Path, Path]:
    """A bare environment at ``root``; returns its python and its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return python, Path(site)


def add_previous_hook(site: Path, revision: str) -> None:
    for name in PREVIOUS_FILES:
        source = subprocess.run(
            ["git", "show", f"{revision}:{name}"], cwd=REPO, check=True, capture_output=True
        ).stdout
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(source)
    (site / "dualgate_solo_hook.pth").write_text(PREVIOUS_PTH)


def clean_environ() -> dict[str, str]:
    """This process's environment without ``PYTHON*`` variables (no PYTHONPATH etc.)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def importtime(python: Path, env: dict[str, str]) -> list[tuple[int, int, int, str]]:
    """``(depth, self_us, cumulative_us, module)`` per line of ``-X importtime``."""
    stderr = subprocess.run(
        [str(python), "-X", "importtime", "-c", "pass"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    entries = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        entries.append((depth, int(own), int(cumulative), name.strip()))
    return entries


def summarise_importtime(entries: list[tuple[int, int, int, str]]) -> dict:
    """Total start-up import time, ``site`` (which runs the .pth files) and the hook's share."""
    ours = [e for e in entries if e[3].startswith("dualgate_solo")]
    top = min((e[0] for e in ours), default=0)
    return {
        "total_us": sum(e[2] for e in entries if e[0] == 0),
        "site_us": sum(e[2] for e in entries if e[3] == "site"),
        "hook_us": sum(e[2] for e in ours if e[0] == top),
        "modules": sorted({e[3] for e in entries}),
    }


def describe(samples: list[float]) -> dict:
    return {
        "median": statistics.median(samples),
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "max": max(samples),
        "stdev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
    }


def machine() -> dict:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
    }


def git_revision() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def plot(arms: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(arms)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.boxplot([arms[n]["wall_ms"]["samples"] for n in names], showfliers=True)
    left.set_xticks(range(1, len(names) + 1), names)
    left.set_ylabel("wall time of `python -c pass` [ms]")
    left.set_title(f"{len(arms[names[0]]['wall_ms']['samples'])} runs per arm")
    hook_ms = [arms[n]["importtime"]["hook_us"] / 1000 for n in names]
    bars = right.bar(names, hook_ms, color=["0.6", "tab:green", "tab:red"][: len(names)])
    right.bar_label(bars, fmt="%.2f")
    right.set_ylabel("hook's import time [ms] (-X importtime)")
    right.set_title("median of -X importtime runs")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = machine()
    env = clean_environ()
    with tempfile.TemporaryDirectory() as scratch:
        pythons = {}
        for name in ("none", "hook", "previous"):
            if name == "previous" and not args.previous:
                continue
            python, site = make_env(Path(scratch) / name)
            if name == "hook":
                install_hook(site)
            elif name == "previous":
                add_previous_hook(site, args.previous)
            subprocess.run([str(python), "-c", "pass"], env=env, check=True)  # writes bytecode
            pythons[name] = python

        runs = {name: [summarise_importtime(importtime(p, env))] for name, p in pythons.items()}
        for _ in tqdm(range(args.importtime_runs - 1), desc="-X importtime"):
            for name, python in pythons.items():
                runs[name].append(summarise_importtime(importtime(python, env)))

        wall = {name: [] for name in pythons}
        order = list(pythons)
        for run in tqdm(range(args.runs), desc="python -c pass"):
            for name in order[run % len(order) :] + order[: run % len(order)]:
                start = time.perf_counter()
                subprocess.run([str(pythons[name]), "-c", "pass"], env=env, check=True)
                wall[name].append(1000 * (time.perf_counter() - start))

    baseline = set(runs["none"][0]["modules"])
    arms = {}
    for name in pythons:
        figures = {
            key: statistics.median(r[key] for r in runs[name])
            for key in ("total_us", "site_us", "hook_us")
        }
        figures["samples"] = [{k: v for k, v in r.items() if k != "modules"} for r in runs[name]]
        figures["modules_beyond_none"] = sorted(set(runs[name][0]["modules"]) - baseline)
        arms[name] = {
            "wall_ms": {**describe(wall[name]), "samples": wall[name]},
            "importtime": figures,
        }
    info["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    config = {
        "runs": args.runs,
        "importtime_runs": args.importtime_runs,
        "previous": args.previous,
        "arms": list(pythons),
        "checkout": git_revision(),
        "environments": "python -m venv --without-pip (same interpreter); PYTHON* unset",
    }
    command = " ".join(["python", *sys.argv])
    args.out.mkdir(parents=True, exist_ok=True)
    checkout = config["checkout"]
    source = {"commit": checkout.removesuffix("+dirty"), "dirty": checkout.endswith("+dirty")}
    record = {
        "date": started,
        "command": command,
        "machine": info,
        "config": config,
        "source": source,
    }
    (args.out / "args.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "startup.json").write_text(json.dumps({**record, "arms": arms}, indent=2) + "\n")
    columns = ["arm", "runs", "wall_median_ms", "wall_mean_ms", "wall_min_ms", "wall_stdev_ms"]
    columns += ["importtime_total_ms", "importtime_site_ms", "importtime_hook_ms", "extra_modules"]
    with (args.out / "startup.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for name, arm in arms.items():
            w, t = arm["wall_ms"], arm["importtime"]
            writer.writerow(
                [name, len(w["samples"])]
                + [f"{w[k]:.2f}" for k in ("median", "mean", "min", "stdev")]
                + [f"{t[k] / 1000:.3f}" for k in ("total_us", "site_us", "hook_us")]
                + [len(t["modules_beyond_none"])]
            )
    plot(arms, args.out / "startup.png")
    for name, arm in arms.items():
        print(
            f"{name:>8}: python -c pass median {arm['wall_ms']['median']:.1f} ms "
            f"(min {arm['wall_ms']['min']:.1f}); hook import "
            f"{arm['importtime']['hook_us'] / 1000:.2f} ms, "
            f"{len(arm['importtime']['modules_beyond_none'])} extra modules"
        )


if __name__ == "__main__":
    main()
