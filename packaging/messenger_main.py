"""Entry point of the packaged application: the same command line as `messenger`."""

import sys

from messenger.cli import main

if __name__ == "__main__":
    sys.exit(main())
