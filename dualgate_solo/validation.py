"""Argument checks raising ``UsageError`` (a ``ValueError``) naming the option and allowed values.

Every public constructor and config reader of the package goes through these helpers, so a typo
in a YAML file or a keyword argument fails before any computation starts, with a message of the
form ``"<option>='<value>' is invalid; allowed values: ..."``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any


class UsageError(ValueError):
    """A user-facing input error: bad option, config key or file. Its message is one line.

    The command line prints ``dualgate-solo: error: <message>`` and exits 2 for it, without a
    traceback; every other exception is a bug and keeps its traceback.
    """


def report_usage_errors(main: Callable[[], object], prog: str) -> int:
    """Run a script's ``main()``; its exit status (what it returns if an int, else 0), or 2 with
    ``<prog>: error: <message>`` as the one line on stderr when it raises a :class:`UsageError`."""
    try:
        status = main()
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0


def check_choice(option: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else ``UsageError`` naming ``option``."""
    allowed = tuple(allowed)
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise UsageError(f"{option}={value!r} is invalid; allowed values: {names}")
    return value


def check_interval(
    option: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """``float(value)`` if it lies in the interval, else ``UsageError`` naming ``option``.

    Args:
        option: the config key or keyword shown in the message, e.g. ``"gating.target_density"``.
        value: the value to check; anything ``float()`` accepts.
        low, high: interval bounds (use ``float("inf")`` for an open end).
        low_inclusive, high_inclusive: whether the bounds themselves are allowed.
    """
    left = "[" if low_inclusive else "("
    right = "]" if high_inclusive else ")"
    interval = f"{left}{low}, {high}{right}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"{option}={value!r} is invalid; allowed values: a number in {interval}"
        ) from None
    above = number >= low if low_inclusive else number > low
    below = number <= high if high_inclusive else number < high
    if not (above and below) or number != number:  # the last test rejects NaN
        raise UsageError(f"{option}={value!r} is invalid; allowed values: a number in {interval}")
    return number


def check_integer(option: str, value: Any, low: int) -> int:
    """``value`` if it is an integer (not a bool) ``>= low``, else ``UsageError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{option}={value!r} is invalid; allowed values: an integer >= {low}")
    return value
