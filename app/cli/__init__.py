"""The `downshift` command line (console script `app.cli:main`). With no command it starts the desktop app;
every other command is headless and loads no Qt.

- main: the parser and the dispatch, with one-line errors;
- format: tables, times, money and JSON, shared by every command;
- args, context: argument types, and what a command opens (config, secrets, call log);
- serve, doctor, agents, hooks, settings, log, prices, analytics, executors, team, demo: the commands;
- gui: the one door into the Qt layer (the window, and the demo's window).
"""

from app.cli.main import main

__all__ = ["main"]
