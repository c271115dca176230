"""Entry point: `python launch.py` serves the page and the API; `models`, `ask`, `doc`,
`compare` and `sessions` script the same chat service and store (see cli/).

Bad input prints one line on stderr and exits with status 2."""

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
