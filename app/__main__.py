"""`python -m app` runs the same CLI as the `downshift` console script."""

from app.cli import main

raise SystemExit(main())
