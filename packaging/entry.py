"""The frozen application's entry point: the same command line as the `downshift` console script."""

import sys

if sys.argv[1:] == ["statusline"]:  # Claude Code runs this after every message: skip the full CLI's imports
    from app.statusline import main
else:
    from app.cli import main

raise SystemExit(main())
