"""``dualgate-solo demo``: options, their checks and the budget presets; the work is in
:mod:`dualgate_solo.demo`.

By default the budget loss tracks the target (the ``tracked`` settings: it costs the eval-style
masks, lambda = 50 and a Lagrange multiplier), so the gated branch's evaluated kept-MAC ratio r
lands within ``--tolerance`` of ``t_d``; ``--paper`` restores the paper's loss (sampled masks,
lambda = 5, no multiplier). Every option is checked before anything is imported or written.
This module imports no torch, so ``dualgate-solo demo --help`` is fast.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from pathlib import Path

from dualgate_solo.choices import BUDGET_PRESETS, RATIO_SOURCES
from dualgate_solo.validation import UsageError, check_interval

#: budget-loss settings that steer the evaluated ratio to t_d (default) and the paper's (--paper)
TRACKED_BUDGET = BUDGET_PRESETS["tracked"]
PAPER_BUDGET = BUDGET_PRESETS["paper"]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except ``None`` (the budget options, whose help names their preset)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _preset_default(key: str) -> str:
    return f" (default: {TRACKED_BUDGET[key]}; {PAPER_BUDGET[key]} with --paper)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _HelpFormatter
    budget = parser.add_argument_group("budget loss")
    budget.add_argument(
        "--target-density", type=float, default=0.3, help="t_d: the kept-MAC fraction aimed at"
    )
    budget.add_argument(
        "--ratio-source",
        choices=RATIO_SOURCES,
        help="masks the budget loss costs: sampled (paper) or deterministic (eval-style)"
        + _preset_default("ratio_source"),
    )
    budget.add_argument(
        "--lambda-flops",
        type=float,
        help="lambda, weight of (r - t_d)^2" + _preset_default("lambda_flops"),
    )
    budget.add_argument(
        "--multiplier-lr",
        type=float,
        help="Lagrange multiplier step (0: fixed lambda)" + _preset_default("multiplier_lr"),
    )
    budget.add_argument(
        "--paper",
        action="store_true",
        help="the paper's budget loss (sampled masks, lambda 5, no multiplier) for the three "
        "options above that are not given",
    )
    budget.add_argument(
        "--tolerance", type=float, default=0.03, help="budget met when |r - t_d| <= tolerance"
    )
    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=int, default=200, help="optimisation steps")
    training.add_argument("--batch-size", type=int, default=64, help="images per step")
    training.add_argument(
        "--steps-per-epoch", type=int, default=10, help="steps between updates of p"
    )
    training.add_argument(
        "--lr", type=float, default=0.3, help="base lr, scaled by batch-size/256 (paper: 0.3)"
    )
    training.add_argument(
        "--width", type=int, default=16, help="ResNet-18 stem/stage-1 channels (paper: 64)"
    )
    training.add_argument("--proj-dim", type=int, default=512, help="projector width (paper: 2048)")
    training.add_argument("--seed", type=int, default=0, help="seed of data, init and sampling")
    training.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's, one per core); 1 is much faster on a "
        "machine busy with other jobs",
    )
    data = parser.add_argument_group("data and evaluation")
    data.add_argument("--train-size", type=int, default=2000, help="embedded training images")
    data.add_argument("--test-size", type=int, default=500, help="embedded held-out images")
    data.add_argument("--knn-k", type=int, default=20, help="neighbours of the k-NN evaluation")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")


def option_names() -> list[str]:
    """The ``dest`` of every demo option (the dispatcher's own entries are not among them)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return list(vars(parser.parse_args([])))


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Check every option and fill the budget options from the preset; raises ``UsageError``.

    Returns a new namespace (the full configuration recorded in ``args.json``); writes nothing.
    """
    preset = PAPER_BUDGET if args.paper else TRACKED_BUDGET
    resolved = argparse.Namespace(**{key: getattr(args, key) for key in option_names()})
    for key, value in preset.items():
        if getattr(resolved, key) is None:
            setattr(resolved, key, value)
    at_least_one = (1, math.inf)
    check_interval("--target-density", args.target_density, 0.0, 1.0, low_inclusive=False)
    check_interval("--lambda-flops", resolved.lambda_flops, 0.0, math.inf, high_inclusive=False)
    check_interval("--multiplier-lr", resolved.multiplier_lr, 0.0, math.inf, high_inclusive=False)
    check_interval("--tolerance", args.tolerance, 0.0, 1.0, low_inclusive=False)
    check_interval("--steps", args.steps, *at_least_one)
    check_interval("--batch-size", args.batch_size, 2, math.inf)  # batch statistics need 2
    check_interval("--steps-per-epoch", args.steps_per_epoch, *at_least_one)
    check_interval("--lr", args.lr, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    check_interval("--width", args.width, *at_least_one)
    check_interval("--proj-dim", args.proj_dim, *at_least_one)
    check_interval("--seed", args.seed, 0, 2**63 - 1)
    check_interval("--knn-k", args.knn_k, *at_least_one)
    if args.threads is not None:
        check_interval("--threads", args.threads, *at_least_one)
    check_interval("--test-size", args.test_size, *at_least_one)
    if args.train_size < args.knn_k:
        raise UsageError(
            f"--train-size={args.train_size!r} is invalid; allowed values: a number in "
            f"[{args.knn_k}, inf] (the k-NN needs --knn-k={args.knn_k} training images)"
        )
    check_output_folder(args.out)
    return resolved


def check_output_folder(out: Path) -> None:
    """``UsageError`` unless ``out`` is a folder, or can be created as one, that can be written."""
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out={str(out)!r} is invalid; allowed values: a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out={str(out)!r} is invalid: {str(existing)!r} is not writable")


def command_line(args: argparse.Namespace) -> str:
    """The ``dualgate-solo demo`` command that reproduces the resolved ``args`` exactly."""
    words = ["dualgate-solo", "demo"]
    for key, value in vars(args).items():
        option = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words += [option] if value else []
        elif value is not None:
            words += [option, str(value)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> dict:
    """Check the options, then train, evaluate and write the outputs; returns the summary."""
    resolved = resolve(args)
    from dualgate_solo.demo import run_demo

    return run_demo(resolved, command_line(resolved))
