"""``dualgate-solo`` command line: a dispatcher over sub-command modules.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their sub-command runs, so ``dualgate-solo demo`` never imports
solo-learn. To add a sub-command, append one line to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: (name, module, one-line help)
SUBCOMMANDS: list[tuple[str, str, str]] = [
    (
        "demo",
        "dualgate_solo.demo",
        "short VICReg-Dual-Gating pre-training on the embedded dataset (no solo-learn, no download)",
    ),
    (
        "mac-table",
        "dualgate_solo.mac_table",
        "print the per-block MAC table of a gated backbone at an input size",
    ),
    (
        "cost-report",
        "dualgate_solo.reports.cost_report",
        "gated-branch kept-MAC ratio, FLOPs R., per-layer costs and channel usage of a checkpoint on a split",
    ),
    (
        "umap",
        "dualgate_solo.reports.umap_branches",
        "UMAP of the dense and gated branch side by side from one checkpoint",
    ),
    (
        "branch-dir",
        "dualgate_solo.solo.branch_dir",
        "per-branch checkpoint directories for solo-learn's main_knn.py / main_umap.py",
    ),
    (
        "install-hook",
        "dualgate_solo.solo.hook_install",
        "write the start-up .pth that registers the methods in argparse scripts (editable installs)",
    ),
    (
        "config-dir",
        "dualgate_solo.solo.paths",
        "print the directory of the solo-learn-style YAML configs (for --config-path)",
    ),
    (
        "run",
        "dualgate_solo.solo.run_script",
        "run a solo-learn script with the methods registered (fallback without the hook)",
    ),
    (
        "export",
        "dualgate_solo.export_cli",
        "static/hybrid prune export of a gated checkpoint: plain ResNet state dict + spec, TorchScript, ONNX",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="dualgate-solo",
        description="VICReg-Dual-Gating tools: demo training, MAC tables and (with solo-learn) checkpoint helpers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = argv[0] if argv else None
    for name, module, help_text in SUBCOMMANDS:
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.set_defaults(_module=module)
        if name == chosen:
            importlib.import_module(module).add_arguments(child)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    del args._module
    module.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
