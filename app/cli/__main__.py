"""`python -m app.cli`: the CLI, as when it was the module app/cli.py (`python -m app` is the documented way)."""

import sys

from app.cli.main import main

if __name__ == "__main__":  # imported (tests walking the package), it runs nothing
    sys.exit(main())
