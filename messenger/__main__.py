"""`python -m messenger` runs the command line."""

import sys

from messenger.cli import main

sys.exit(main())
