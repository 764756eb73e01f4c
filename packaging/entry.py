"""The frozen application's entry point: the same command line as the `downshift` console script."""

import sys

if sys.argv[1:] == ["statusline"]:  # Claude Code runs this after every message: skip the full CLI's imports
    from app.statusline import main
elif sys.argv[1:] == ["__team-ship-process"]:  # the team ledger's shipping process (app.core.team_ship)
    from app.core.team_ship import child_main as main
else:
    from app.cli import main

raise SystemExit(main())
