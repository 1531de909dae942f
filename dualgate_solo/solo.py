"""Alias of :mod:`dualgate_solo.solo_adapter` under its former name ``dualgate_solo.solo``.

Start-up hooks that ``dualgate-solo install-hook`` wrote before the rename are copies of the hook
module that call ``from dualgate_solo.solo import register``; they keep working until the hook is
written again. New code imports :mod:`dualgate_solo.solo_adapter`.
"""

from dualgate_solo.solo_adapter import register

__all__ = ["register"]
