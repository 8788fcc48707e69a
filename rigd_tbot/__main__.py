"""`python -m rigd_tbot` is `tbot`."""

import sys

from rigd_tbot.cli import main

sys.exit(main())
