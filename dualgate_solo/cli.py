"""``dualgate-solo`` command line: a dispatcher over the modules of :mod:`dualgate_solo.commands`.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args)``; only the chosen one
is imported, and modules import torch inside ``run`` only, so ``--help`` is fast. To add a
sub-command, append one line to :data:`SUBCOMMANDS`.

Errors: a :class:`~dualgate_solo.validation.UsageError` (or a bad command line) prints one line,
``dualgate-solo: error: <message>``, on stderr and exits with status 2; ``--debug`` (or
``DUALGATE_DEBUG=1``) prints the traceback before it. Ctrl-C prints one line saying what was kept
(:class:`~dualgate_solo.output_dir.Interrupted` says it for a staged ``--out``; nothing is
half-written) and exits with status 130. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from dualgate_solo.validation import UsageError

PROG = "dualgate-solo"
DEBUG_ENV = "DUALGATE_DEBUG"
#: exit status after Ctrl-C (128 + SIGINT), as shells report it
INTERRUPTED = 130

#: (name, module, one-line help)
SUBCOMMANDS: list[tuple[str, str, str]] = [
    (
        "demo",
        "dualgate_solo.commands.demo",
        "short VICReg-Dual-Gating pre-training on embedded data (no solo-learn, no download)",
    ),
    (
        "mac-table",
        "dualgate_solo.commands.mac_table",
        "print the per-block MAC table of a gated backbone at an input size",
    ),
    (
        "cost-report",
        "dualgate_solo.commands.cost_report",
        "kept-MAC ratio, FLOPs R., per-layer costs and channel usage of a checkpoint on a split",
    ),
    (
        "umap",
        "dualgate_solo.commands.umap",
        "UMAP of the dense and gated branch side by side from one checkpoint",
    ),
    (
        "export",
        "dualgate_solo.commands.export",
        "prune a gated checkpoint into a plain network: state dict + spec, TorchScript, ONNX",
    ),
    (
        "slim-linear",
        "dualgate_solo.commands.slim_linear",
        "switchable linear probe (one head per width) of a SlimCLR / SACL-XD checkpoint",
    ),
    (
        "branch-dir",
        "dualgate_solo.commands.branch_dir",
        "per-branch checkpoint directories for solo-learn's main_knn.py / main_umap.py",
    ),
    (
        "install-hook",
        "dualgate_solo.commands.install_hook",
        "write the start-up .pth that registers the methods in solo-learn's argparse scripts",
    ),
    (
        "config-dir",
        "dualgate_solo.commands.config_dir",
        "print the directory of the solo-learn-style YAML configs (for --config-path)",
    ),
    (
        "run",
        "dualgate_solo.commands.run",
        "run a solo-learn script with the methods registered (fallback without the hook)",
    ),
]


def fail(message: str) -> NoReturn:
    """Print ``dualgate-solo: error: <message>`` on stderr and exit with status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block): see :func:`fail`."""

    def error(self, message: str) -> NoReturn:
        fail(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` for every option with a meaningful default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        quiet = (
            action.default is None or action.default is False or action.default == "==SUPPRESS=="
        )
        if quiet or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser(chosen: str | None) -> Parser:
    """The parser of every sub-command; only ``chosen``'s module is imported for its options."""
    parser = Parser(
        prog=PROG,
        description="VICReg-Dual-Gating tools: demo training, MAC tables, cost reports, UMAP, "
        "export and solo-learn helpers.",
        formatter_class=HelpFormatter,
    )
    debug_help = f"show the traceback of an error (or set {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_text in SUBCOMMANDS:
        child = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        child.set_defaults(_module=module)
        if name == chosen:
            child.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help
            )
            importlib.import_module(module).add_arguments(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns the exit status (0; 2 for a user error or bad arguments; 130
    after Ctrl-C)."""
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as interrupt:
        kept = str(interrupt) or "stopped before any staged output was begun"
        print(f"{PROG}: interrupted (Ctrl-C): {kept}", file=sys.stderr)
        return INTERRUPTED


def _dispatch(argv: list[str]) -> int:
    """:func:`main` up to Ctrl-C."""
    names = {name for name, _, _ in SUBCOMMANDS}
    chosen = next((arg for arg in argv if arg in names), None)
    try:
        args = build_parser(chosen).parse_args(argv)
    except SystemExit as done:  # --help, or a bad command line (already reported in one line)
        return done.code if isinstance(done.code, int) else 2
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    module = importlib.import_module(args._module)
    del args._module, args.debug
    try:
        module.run(args)
    except UsageError as error:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
