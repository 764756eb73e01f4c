"""`python -m app` runs the same CLI as the `downshift` console script."""

import sys

if sys.argv[1:] == ["statusline"]:  # the status-bar hot path: skip the full CLI's imports
    from app.statusline import main
else:
    from app.cli import main

raise SystemExit(main())
