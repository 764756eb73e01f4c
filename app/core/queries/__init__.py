"""The one query layer over the call log, shared by the CLI, the GUI and exports.

Every function takes an Engine and returns plain dicts/lists (JSON-ready), so the CLI's `--json` output,
the GUI's models and the exports all see the same figures. Modules: `calls` (listing, filtering,
export), `dashboard` (tiles and charts), `tasks` (tasks and cost per task).
"""

from app.core.queries.calls import EXPORT_COLUMNS, iter_calls, parse_since, recent_calls, summary

__all__ = ["EXPORT_COLUMNS", "iter_calls", "parse_since", "recent_calls", "summary"]
