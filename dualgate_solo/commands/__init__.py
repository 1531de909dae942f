"""The ``dualgate-solo`` sub-commands, one module each.

Every module exposes ``add_arguments(parser)`` and ``run(args)`` and imports torch and the heavy
modules only inside ``run``, so ``dualgate-solo <command> --help`` never imports torch. The
command table is :data:`dualgate_solo.cli.SUBCOMMANDS`; shared options are in :mod:`.options`.
"""
