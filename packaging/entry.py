"""The frozen application's entry point: the same command line as the `downshift` console script."""

from app.cli import main

raise SystemExit(main())
