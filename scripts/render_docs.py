"""Regenerate every results table and quoted number in README.md and docs/*.md from results/.

Lab code, not part of the package. Two kinds of markers, both citing the files they read:

* a block::

      <!-- results: NAME results/a.csv [results/b.json ...] -->
      | generated table |
      <!-- /results -->

  is replaced by ``BLOCKS[NAME](*files)``;
* an inline number ``<!-- v: results/a.json key/0/sub [FORMAT] -->0.305<!-- /v -->``
  (JSON: a ``/``-separated key path, list items by index; CSV: ``col=value&col=value/column``,
  which must match one row; ``A~B``: A minus B) is replaced by the value, formatted with
  ``FORMAT`` (a ``format()`` spec, optionally prefixed ``%`` to multiply by 100 first; ``len``:
  a list's length; default: the value as written).

``python scripts/render_docs.py`` rewrites the pages; ``--check`` rewrites nothing and exits 1,
naming each marker whose text differs from what its files give (tests/test_docs_numbers.py runs
it). Renaming a column of ``results/grid_cpu/table*.{md,csv}`` or of
``results/family_cpu/family.csv`` needs the matching change here.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results: (\S+)((?: \S+)*) -->\n)(.*?)(<!-- /results -->)", re.DOTALL)
INLINE = re.compile(r"(<!-- v: (\S+) (\S+)(?: (\S+))? -->)(.*?)(<!-- /v -->)")


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]


# ---------------------------------------------------------------------------- reading files


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _one(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise ValueError(f"{len(found)} rows match {match}")
    return found[0]


def value(path: Path, selector: str) -> object:
    """The value ``selector`` picks out of the JSON or CSV file ``path``; ``A~B``: the value of
    ``A`` minus that of ``B`` (e.g. the gap between two table rows)."""
    if "~" in selector:
        first, second = selector.split("~")
        return float(value(path, first)) - float(value(path, second))  # type: ignore[arg-type]
    if path.suffix == ".csv":
        where, _, column = selector.rpartition("/")
        match = dict(pair.split("=", 1) for pair in where.split("&")) if where else {}
        return _one(_rows(path), **match)[column]
    data: object = json.loads(path.read_text())
    for key in selector.split("/"):
        data = data[int(key)] if isinstance(data, list) else data[key]  # type: ignore[index]
    return data


def fmt(raw: object, spec: str | None) -> str:
    if spec is None:
        return str(raw)
    if spec == "len":
        return str(len(raw))  # type: ignore[arg-type]
    scale = 1.0
    if spec.startswith("%"):
        scale, spec = 100.0, spec[1:]
    text = format(float(raw) * scale, spec)  # type: ignore[arg-type]
    return text[1:] if re.fullmatch(r"-[0.]+", text) else text  # no "-0.00"


def _num(text: str, digits: int = 2) -> str:
    return "" if text == "" else f"{float(text):.{digits}f}"


def _pm(row: dict[str, str], column: str, digits: int = 2) -> str:
    mean, std = row[column], row.get(f"{column}_std", "")
    return _num(mean, digits) + (f" ± {float(std):.{digits}f}" if std else "")


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    line = "|" + "|".join(align or "---" for _ in header) + "|" if align else None
    out = ["| " + " | ".join(header) + " |", line or "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- blocks


def md_table(path: Path) -> str:
    """The table lines of a generated markdown file (e.g. ``results/grid_cpu/table.md``)."""
    return "".join(f"{line}\n" for line in path.read_text().splitlines() if line.startswith("|"))


#: the grid rows of the README's headline table: (method, variant, t_d, branch)
HEADLINE = (
    ("vicreg", "paper", "", "dense"),
    ("vicreg_dual_gating", "tracked", "0.3", "dense"),
    ("vicreg_dual_gating", "tracked", "0.3", "gated"),
    ("vicreg_dual_gating", "tracked_width", "0.3", "gated"),
    ("vicreg_gating", "tracked", "0.3", "gated"),
    ("slimclr_mocov3", "paper", "", "w0.5"),
    ("vicreg", "paper", "", "dense@8"),
)


def _all(rows: list[dict[str, str]], **match: str) -> list[dict[str, str]]:
    """Every row matching ``match`` (several where the table split a seed group by config)."""
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if not found:
        raise ValueError(f"no row matches {match}")
    return found


def headline(path: Path) -> str:
    """A few rows of ``table_mean.csv``: VICReg, the t_d 0.3 gated methods, one slimmable (each
    config of a split seed group)."""
    rows = _rows(path)
    out = []
    for method, variant, t_d, branch in HEADLINE:
        branch, _, width = branch.partition("@")
        name = method + (f" (width {width})" if width else "")
        for row in _all(rows, method=method, variant=variant, t_d=t_d, branch=branch, width=width):
            out.append(
                [
                    f"`{name}`",
                    variant,
                    t_d or "–",
                    branch,
                    row["config"],
                    row["seeds"],
                    f"{row['accelerator']}, torch {row['torch']}",
                    _pm(row, "linear_top1"),
                    _pm(row, "knn_top1_k20"),
                    _pm(row, "flops_reduction_pct"),
                ]
            )
    header = ["method", "variant", "t_d", "network", "config", "seeds", "ran on", "linear top-1"]
    return _table([*header, "k-NN@20", "FLOPs R. [%]"], out)


def width_mode(path: Path) -> str:
    """Width-gated vs channel-gated ``tracked`` Dual-Gating per t_d, from ``table_mean.csv``."""
    rows = _rows(path)
    out = []
    for t_d in ("0.1", "0.3", "0.5"):
        cells = [t_d]
        for variant in ("tracked_width", "tracked"):
            entries = []
            for r in _all(
                rows, method="vicreg_dual_gating", variant=variant, t_d=t_d, branch="gated"
            ):
                accuracy = " / ".join(
                    _pm(r, c) for c in ("linear_top1", "knn_top1_k1", "knn_top1_k20")
                )
                seeds = f"{r['seeds']} seed{'s' if r['seeds'] != '1' else ''}"
                split = f"; {r['config']}" if r["config"] else ""
                entries.append(f"{accuracy} ({_pm(r, 'flops_reduction_pct')} %, {seeds}{split})")
            cells.append("<br>".join(entries))
        dense = [
            _pm(r, "linear_top1")
            for v in ("tracked_width", "tracked")
            for r in _all(rows, method="vicreg_dual_gating", variant=v, t_d=t_d, branch="dense")
        ]
        cells.append(" / ".join(dense) + " linear")
        out.append(cells)
    header = [
        "t_d",
        "width-gated branch: linear / k-NN@1 / k-NN@20 (FLOPs R.)",
        "channel-gated `tracked`",
        "its dense branch (width / channel)",
    ]
    return _table(header, out)


def family(path: Path) -> str:
    """One row per network of ``results/family_cpu/family.csv``. A static export's accuracy is
    not shown: the file carries the masked branch's, and the export's features differ from it
    (``max_abs_diff_vs_source``), so that accuracy is not the export's."""
    rows = _rows(path)
    out = []
    for r in rows:
        static = r["kind"] == "static_export"
        acc = ("–", "–") if static else (_num(r["linear_top1"]), _num(r["knn_top1_k20"]))
        network = r["network"] if r["network"] not in ("dense", "gated") else r["kind"]
        out.append(
            [
                f"{r['family']} ({r['run']})",
                network,
                _num(str(float(r["macs_per_image"]) / 1e6)),
                _num(r["latency_b1_ms"]),
                _num(r["latency_b64_ms"]),
                *acc,
                ""
                if not r["max_abs_diff_vs_source"]
                else f"{float(r['max_abs_diff_vs_source']):.2g}",
            ]
        )
    header = ["family (run)", "network", "MACs [M]", "batch 1 [ms]", "batch 64 [ms]"]
    return _table([*header, "linear top-1", "k-NN@20", "max abs diff vs trained network"], out)


def demo(default: Path, paper: Path) -> str:
    """The two committed demo runs, from their ``summary.json``."""
    out = []
    for path in (default, paper):
        s = json.loads(path.read_text())
        met = "met" if s["budget_met"] else "missed"
        command = s["command"].split(" --")[0] + (" --paper" if "--paper" in s["command"] else "")
        out.append(
            [
                f"`{command}`",
                f"{s['target_density']}",
                f"{s['eval_flops_ratio']:.3f} ± {s['eval_flops_ratio_std']:.3f}",
                f"{s['budget_error']:.3f} ({met}, tolerance {s['tolerance']})",
                f"{s['knn_top1_dense']} / {s['knn_top1_gated']} %",
                f"{s['total_seconds']:.0f} s, {s['torch_threads']} thread"
                f"{'s' if s['torch_threads'] != 1 else ''}, "
                f"load {s['load_average'][0]}",
            ]
        )
    header = ["run", "t_d", "kept MACs r (eval)", "\\|r − t_d\\|", "k-NN@20 dense / gated"]
    return _table([*header, "wall-clock"], out)


PASSES = {
    "vicreg": "2 dense",
    "vicreg_dual_gating": "1 dense + 1 gated",
    "slimclr_vicreg": "2 × widths 1, 0.75, 0.5, 0.25",
    "slimclr_mocov3": "the same + 2 momentum (no grad)",
    "sacl_xd": "host + slim, + 2 frozen (no grad); the host has 4× the MACs",
}


def bench_step(path: Path) -> str:
    """``results/bench_step/bench_step.csv``: step time, memory, passes per step."""
    rows = _rows(path)
    base = float(_one(rows, method="vicreg")["median_step_s"])
    out = [
        [
            r["method"] + (" (solo-learn)" if r["method"] == "vicreg" else ""),
            f"{float(r['median_step_s']):.2f} s",
            f"{float(r['median_step_s']) / base:.2f}",
            f"{float(r['peak_mem_mib']):.0f} MiB",
            f"{float(r['saved_for_backward_mib']):.0f} MiB",
            PASSES.get(r["method"], ""),
        ]
        for r in rows
    ]
    header = ["", "median step", "× VICReg", "peak memory (RSS growth)", "saved for backward"]
    return _table([*header, "backbone passes per step"], out)


def gpu_short(path: Path) -> str:
    """The online metrics of the last epoch of each run of a ``gpu_short`` summary."""
    s = json.loads(path.read_text())
    out = []
    for name, run in s["runs"].items():
        f = run.get("final", {})
        nan = run.get("status") != "ok" or not f or any(math.isnan(x) for x in f.values())
        dense = ("diverged (NaN loss)", "–")
        if not nan:
            dense = (f"{f['val_acc1']:.2f}", f"{f['val_knn_acc1']:.2f}")
        gated = (
            (f"{f['val_gated_acc1']:.2f}", f"{f['val_gated_knn_acc1']:.2f}")
            if "val_gated_acc1" in f
            else ("–", "–")
        )
        ratio = f"{f['val_flops_ratio']:.3f}" if "val_flops_ratio" in f else "–"
        out.append([f"`{name}`", str(run.get("epochs_done", "")), *dense, *gated, ratio])
    header = ["run", "epochs", "dense linear", "dense k-NN@20", "gated linear", "gated k-NN@20"]
    return _table([*header, "gated FLOPs ratio"], out)


#: the latency table's rows: (variant, runtime, label)
LATENCY_ROWS = (
    ("dense", "onnxruntime", "dense"),
    ("dense", "eager_cl", "dense"),
    ("routed", "onnxruntime", "width-routed"),
    ("routed", "eager_cl", "width-routed"),
    ("mean_width", "onnxruntime", "mean_width plain"),
    ("mean_width", "compile_cl", "mean_width plain"),
)
RUNTIMES = {
    "onnxruntime": "ONNX Runtime",
    "eager": "eager",
    "eager_cl": "eager channels-last",
    "compile": "torch.compile",
    "compile_cl": "compile channels-last",
}


def latency(path: Path) -> str:
    """Median ms per forward at batch 1 / 8 / 64 of a ``bench_latency.py`` run's ``latency.csv``
    (with, after the dense rows, realized speed-up in the same runtime and realized/theoretical)."""
    rows = _rows(path)
    out = []
    for variant, runtime, label in LATENCY_ROWS:
        cells, theory = [], []
        for batch in ("1", "8", "64"):
            r = _one(rows, variant=variant, runtime=runtime, batch=batch)
            ms = f"{float(r['median_ms']):.2f}"
            if variant != "dense":
                same = float(r["realized_speedup_same_runtime"])
                ms += f" ({same:.2f}x, {float(r['realized_over_theoretical']):.2f})"
            cells.append(ms)
            theory.append(f"{float(r['theoretical_speedup']):.2f}x")
        out.append([label, RUNTIMES[runtime], *cells, " / ".join(theory)])
    header = ["network", "runtime", "batch 1 ms (realized, realized/theoretical)", "batch 8"]
    return _table([*header, "batch 64", "theoretical b1 / b8 / b64"], out)


BLOCKS: dict[str, Callable[..., str]] = {
    "latency": latency,
    "table": md_table,
    "headline": headline,
    "width_mode": width_mode,
    "family": family,
    "demo": demo,
    "bench_step": bench_step,
    "gpu_short": gpu_short,
}


# ---------------------------------------------------------------------------- rendering


def render(text: str, root: Path = ROOT) -> str:
    def block(m: re.Match) -> str:
        files = [root / p for p in m.group(3).split()]
        try:
            table = BLOCKS[m.group(2)](*files)
        except (KeyError, IndexError, ValueError, OSError) as error:
            raise ValueError(f"{m.group(1).strip()}: {error!r}") from error
        return m.group(1) + table + m.group(5)

    def inline(m: re.Match) -> str:
        try:
            number = fmt(value(root / m.group(2), m.group(3)), m.group(4))
        except (KeyError, IndexError, ValueError, OSError) as error:
            raise ValueError(f"{m.group(1)}: {error!r}") from error
        return m.group(1) + number + m.group(6)

    return INLINE.sub(inline, BLOCK.sub(block, text))


def differences(root: Path = ROOT) -> list[str]:
    """One line per marker whose text differs from what its files give."""
    found = []
    for page in pages(root):
        text = page.read_text()
        for pattern in (BLOCK, INLINE):
            for m in pattern.finditer(text):
                if render(m.group(0), root) != m.group(0):
                    line = text.count("\n", 0, m.start()) + 1
                    found.append(f"{page.relative_to(root)}:{line}: {m.group(1).strip()}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    if args.check:
        found = differences()
        for line in found:
            print(f"differs from its files: {line}", file=sys.stderr)
        return 1 if found else 0
    for page in pages():
        text = page.read_text()
        new = render(text)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
