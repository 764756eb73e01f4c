"""How the `downshift` commands print: aligned tables, times, money and JSON. One formatter each, so the
same figure reads the same in `stats`, `calls`, `tasks`, `executors` and the rest."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as an aligned text table; columns are (key, heading)."""
    cells = [[heading for _, heading in columns]]
    for row in rows:
        cells.append([_cell(row.get(key)) for key, _ in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return printable(str(value))


# C0 and C1 controls (escape sequences that recolour, move the cursor or retitle the terminal; newlines and
# tabs that break the table) and the bidirectional overrides that reorder what is shown
_UNPRINTABLE = {
    c: "?" for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(text: str) -> str:
    """`text` fit for a terminal: client-chosen strings (model names, labels, user agents) can hold escape
    sequences; each control character becomes '?'."""
    return text.translate(_UNPRINTABLE)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (model names and user agents are the client's
    choice) gets a leading apostrophe, which spreadsheets show as text; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def when(ts: float | None, *, seconds: bool = False) -> str:
    """Local date and time to the minute ("-" for none); to the second where events come seconds apart
    (single calls)."""
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def money(usd: float | None, estimated: int | bool = 0, *, unpriced: bool = False) -> str:
    """Dollars to four decimals ($0.0123); a non-zero amount under $0.0001 to two significant digits
    ($0.000042) rather than a false $0.0000. "~" in front when the figure rests on estimated tokens
    (`estimated`: how many of its calls, or a flag); "-" for no figure, "unpriced" for a call whose price is
    not known; "$0.0201+unpriced" for a figure that leaves out a part without a known price (a billed attempt
    before the fallback that served the call)."""
    if usd is None:
        return "unpriced" if unpriced else "-"
    return _dollars(usd, "~" if estimated else "") + ("+unpriced" if unpriced else "")


def _dollars(usd: float, guess: str) -> str:
    sign = "-" if usd < 0 else ""
    amount = abs(usd)
    if math.isnan(amount):  # no digits to count (a NaN summed on a PostgreSQL ledger): said as it is
        return f"{guess}${amount}"
    digits = 4 if amount == 0 or amount >= 0.0001 else 1 - math.floor(math.log10(amount))
    return f"{guess}{sign}${amount:.{digits}f}"


def millis(ms: float | None) -> str | None:
    """A duration in whole milliseconds for a table cell (None, shown as "-", when it was not timed)."""
    return None if ms is None else f"{ms:.0f}"


def caveats(unpriced: int, estimated: int) -> str:
    """What a cost figure leaves out or guesses, e.g. " (2 calls unpriced, 1 estimated)"; "" when nothing."""
    from app.core.pricing import caveat_text

    said = caveat_text(unpriced, estimated)
    return f" ({said})" if said else ""


def rate(value: float | None, places: int = 1) -> str:
    """A share as a percentage ("12.5%"); "-" when there is nothing to divide."""
    return "-" if value is None else f"{value:.{places}%}"


MODEL_COLUMNS = (
    ("provider", "PROVIDER"),
    ("model", "MODEL"),
    ("calls", "CALLS"),
    ("errors", "FAILED"),
    ("input_tokens", "IN TOK"),
    ("output_tokens", "OUT TOK"),
    ("cost", "COST"),
    ("tool_calls", "TOOL CALLS"),
    ("rate", "TOOL FAIL %"),
)


def models_table(models: Sequence[dict[str, Any]], rate_places: int = 1) -> str:
    """The per-model table of `stats` and the demo summary (rows from app.core.queries `summary`)."""
    rows = [
        {
            **m,
            "cost": money(m["cost_usd"], m["estimated_calls"]),
            "rate": rate(m["tool_failure_rate"], rate_places),
        }
        for m in models
    ]
    return table(rows, MODEL_COLUMNS)


def print_json(data: Any) -> None:
    """`--json` output: indented, with anything JSON lacks (datetimes) as its string."""
    print(json.dumps(data, indent=2, default=str))
