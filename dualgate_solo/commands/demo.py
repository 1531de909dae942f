"""``dualgate-solo demo``: options, their checks and the budget presets; the work is in
:mod:`dualgate_solo.demo`.

By default the budget loss tracks the target (the ``tracked`` settings: it costs the eval-style
masks, lambda = 50 and a Lagrange multiplier), so the gated branch's evaluated kept-MAC ratio r
lands within ``--tolerance`` of ``t_d``; ``--paper`` restores the paper's loss (sampled masks,
lambda = 5, no multiplier). Every option is checked before anything is imported or written, and
the outputs are staged (:mod:`dualgate_solo.output_dir`): an earlier run's folder is replaced
only with ``--overwrite``, and only once the new one is complete.

Threads: without ``--threads`` the demo takes the cores the machine leaves idle,
:func:`default_threads` = ``max(1, cores - round(1-minute load average))`` (at most the cores),
and prints the rule with the numbers it saw; on a busy machine one thread is several times faster
than one per core. This module imports no torch, so ``dualgate-solo demo --help`` is fast.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex

from dualgate_solo.choices import BUDGET_PRESETS, RATIO_SOURCES
from dualgate_solo.commands.options import add_output_options
from dualgate_solo.output_dir import interrupts_deferred, staged_output
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
        help="torch CPU threads (default: the idle cores, max(1, cores - round(1-minute load "
        "average)), printed at the start)",
    )
    data = parser.add_argument_group("data and evaluation")
    data.add_argument("--train-size", type=int, default=2000, help="embedded training images")
    data.add_argument("--test-size", type=int, default=500, help="embedded held-out images")
    data.add_argument("--knn-k", type=int, default=20, help="neighbours of the k-NN evaluation")
    add_output_options(parser, "outputs/demo", "output folder")


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
    if args.threads is None:
        resolved.threads = default_threads(*machine_load())
    else:
        check_interval("--threads", args.threads, *at_least_one)
    check_interval("--test-size", args.test_size, *at_least_one)
    if args.train_size < args.knn_k:
        raise UsageError(
            f"--train-size={args.train_size!r} is invalid; allowed values: a number in "
            f"[{args.knn_k}, inf] (the k-NN needs --knn-k={args.knn_k} training images)"
        )
    return resolved


def default_threads(cores: int, load: float) -> int:
    """Threads that leave a busy machine's running jobs their cores: the idle cores,
    ``max(1, cores - round(load))``, at most ``cores``. ``load``: the 1-minute load average."""
    return max(1, min(cores, cores - round(load)))


def machine_load() -> tuple[int, float]:
    """``(cores this process may use, 1-minute load average)``; load 0 where the OS has none."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores or 1, load


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
    with staged_output(args.out, overwrite=args.overwrite) as stage:
        if args.threads is None:  # the numbers printed are the ones the choice used
            cores, load = machine_load()
            resolved.threads = default_threads(cores, load)
            print(
                f"threads: {resolved.threads} = max(1, {cores} cores - round(load {load:.2f})) "
                "(--threads N to choose)"
            )
        with interrupts_deferred():  # a Ctrl-C inside an import leaves it half done
            from dualgate_solo.demo import run_demo
        return run_demo(resolved, command_line(resolved), stage.path)
