"""The frozen application's entry point: the same command line as the `downshift` console script."""

import sys

# app.doctor.QT_PROBE_ARG: the doctor's Qt check, in a process of its own
if sys.argv[1:2] == ["--doctor-qt-probe"]:
    from app.doctor import QT_PROBE

    sys.argv[1:2] = []
    exec(QT_PROBE)  # noqa: S102 - our own constant: the bundle has no `python -c` to run it with
    raise SystemExit(0)

if sys.argv[1:] == ["statusline"]:  # Claude Code runs this after every message: skip the full CLI's imports
    from app.statusline import main
elif sys.argv[1:] == ["__team-ship-process"]:  # the team ledger's shipping process (app.core.team_ship)
    from app.core.team_ship import child_main as main
else:
    from app.cli import main

raise SystemExit(main())
