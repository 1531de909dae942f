"""``python -m dualgate_solo <command>``: same as the ``dualgate-solo`` console script."""

import sys

from dualgate_solo.cli import main

sys.exit(main())
