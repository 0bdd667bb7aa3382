"""``python -m colorize ...``: the ``colorize`` command; ``accelerate launch --num_processes N -m colorize PHOTOS -o OUT``
shares the photos between N processes (`colorize.cli.photos`)."""

import sys

from .cli import main

sys.exit(main())
