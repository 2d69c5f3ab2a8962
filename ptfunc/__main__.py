"""``python -m ptfunc``: the command line (see :mod:`ptfunc.cli`)."""

import sys

from .cli import main

sys.exit(main())
