"""``python -m colorize.cli ...``: the same as the ``colorize`` command."""

import sys

from . import main

sys.exit(main())
