"""`downshift statusline`: one line for Claude Code's status bar, from the call log, after every message.

Claude Code runs the command with its status-line JSON on stdin (`session_id`, `model`, `workspace`, `cost`,
...) and shows the first line printed. This prints the active preset, the model that served this session's
last call, the session's cost and what it saved against the premium preset, today's spend, and a warning
mark when the session's tool calls fail often or a budget is near.

Installed, it runs under `python -I -S` on Linux: standard library only, nothing else from the `app`
package, no site-packages (see statusline_install.command). It runs after every message, so it is a hot read: plain sqlite3 on the log opened read-only, a handful of
indexed look-ups on the rollup tables the writer keeps (tasks by key, task_totals, usage_slots by slot),
and no SQLAlchemy, no Qt, no config validation. It never fails the agent: any problem prints a short
line and the exit status is 0.
"""

from __future__ import annotations

import _socket  # socket.py would pull in selectors and more: a connect is all this needs
import os
import sqlite3
import sys
import time

TYPE_CHECKING = False  # typing, pathlib, collections.abc: ~10 ms of imports for annotations only
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TextIO

FAILURE_WARN = 0.25  # a session's share of failed tool calls that earns the mark...
FAILURE_MIN_CALLS = 4  # ...once it has made at least this many
BUDGET_NEAR = 0.8  # share of a budget's limit spent that earns the mark
WARN = "⚠"


class Status:
    """The figures of one line (a plain class: `dataclasses` alone costs 5 ms of import on this path)."""

    def __init__(self, preset: str | None = None, note: str | None = None) -> None:
        self.preset = preset
        self.model: str | None = None  # provider/model that served the session's last call
        self.session_cost: float | None = None
        self.session_savings: float | None = None
        self.today: float | None = None
        self.tool_calls = 0
        self.tool_failures = 0
        self.warnings: list[str] = []
        self.note = note  # why figures are missing (no log yet, log unreadable)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _user_dir(kind: str) -> str:
    """Downshift's config or data folder. On Linux the XDG rule directly (platformdirs costs 5 ms to import,
    a tenth of the budget); elsewhere platformdirs through app.paths."""
    if sys.platform.startswith("linux"):
        var, default = (
            ("XDG_CONFIG_HOME", ".config") if kind == "config" else ("XDG_DATA_HOME", ".local/share")
        )
        base = os.environ.get(var, "").strip()
        root = base if base and os.path.isabs(base) else os.path.join(os.path.expanduser("~"), default)
        return os.path.join(root, "downshift")
    from app import paths

    return str(paths.config_dir() if kind == "config" else paths.data_dir())


# ----------------------------------------------------------------------------------------------- inputs


def read_input(stream: TextIO) -> dict[str, Any]:
    """What the line needs from Claude Code's JSON: its `session_id` ({} when there is none). Read with a
    string search, not `json` (which costs 8 ms of imports here: `re`, `enum`, ...); a value with escapes,
    which a session id never has, goes through `json` after all."""
    try:
        text = stream.read()
    except (OSError, UnicodeDecodeError):
        return {}
    session = _session_id(text)
    return {"session_id": session} if session else {}


def _session_id(text: str) -> str | None:
    at = text.find('"session_id"')
    if at < 0:
        return None
    i, n = at + len('"session_id"'), len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != ":":
        return None
    i += 1
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n or text[i] != '"':
        return None
    end = text.find('"', i + 1)
    value = text[i + 1 : end] if end > 0 else ""
    if "\\" in value:
        try:
            import json

            data = json.loads(text)
        except ValueError:
            return None
        found = data.get("session_id") if isinstance(data, dict) else None
        return found if isinstance(found, str) and found else None
    return value or None


_CACHE_VERSION = "v1"


def _config(env: Mapping[str, str]) -> dict[str, Any]:
    """The few settings the line uses, in the config file's shape: [routing] active, [proxy] host and port,
    [ui] database, [[budgets]]. Parsing TOML costs 15 ms of imports here (`tomllib` pulls in `re` and
    `typing`), so they are cached in the data folder as plain lines, keyed by the file's path, size and
    mtime, and parsed again only when the file changes."""
    chosen = env.get("DOWNSHIFT_CONFIG")
    path = os.path.expanduser(chosen) if chosen else os.path.join(_user_dir("config"), "config.toml")
    try:
        st = os.stat(path)
    except OSError:
        return {}
    stamp = f"{_CACHE_VERSION}\t{path}\t{st.st_mtime_ns}\t{st.st_size}"
    cache = os.path.join(_user_dir("data"), "statusline.cache")
    cached = _read_cache(cache, stamp)
    if cached is not None:
        return cached
    try:
        import tomllib

        with open(path, "rb") as f:
            full = tomllib.load(f)
    except (OSError, ValueError):
        return {}
    subset = _subset(full)
    _write_cache(cache, stamp, subset)
    return subset


def _section(full: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A [table] of the config, or an empty one when it is missing or not a table."""
    value = full.get(name)
    return value if isinstance(value, dict) else {}


def _subset(full: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    routing, proxy, ui = (_section(full, k) for k in ("routing", "proxy", "ui"))
    if isinstance(routing.get("active"), str):
        out["routing"] = {"active": routing["active"]}
    out["proxy"] = {k: proxy[k] for k in ("host", "port") if isinstance(proxy.get(k), (str, int))}
    if isinstance(ui.get("database"), str):
        out["ui"] = {"database": ui["database"]}
    budgets = []
    for b in full.get("budgets") or ():
        if (
            isinstance(b, dict)
            and b.get("period") in ("day", "month")
            and isinstance(b.get("limit_usd"), (int, float))
        ):
            provider = b.get("provider") if isinstance(b.get("provider"), str) else None
            budgets.append({"period": b["period"], "limit_usd": float(b["limit_usd"]), "provider": provider})
    out["budgets"] = budgets
    return out


def _read_cache(cache: str, stamp: str) -> dict[str, Any] | None:
    try:
        with open(cache, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != stamp:
        return None
    out: dict[str, Any] = {"proxy": {}, "budgets": []}
    try:
        for line in lines[1:]:
            kind, *rest = line.split("\t")
            if kind == "preset":
                out["routing"] = {"active": rest[0]}
            elif kind == "host":
                out["proxy"]["host"] = rest[0]
            elif kind == "port":
                out["proxy"]["port"] = int(rest[0])
            elif kind == "database":
                out["ui"] = {"database": rest[0]}
            elif kind == "budget":
                out["budgets"].append(
                    {"period": rest[0], "limit_usd": float(rest[1]), "provider": rest[2] or None}
                )
    except (IndexError, ValueError):
        return None
    return out


def _write_cache(cache: str, stamp: str, subset: Mapping[str, Any]) -> None:
    lines = [stamp]
    if "routing" in subset:
        lines.append(f"preset\t{subset['routing']['active']}")
    for key in ("host", "port"):
        if key in subset["proxy"]:
            lines.append(f"{key}\t{subset['proxy'][key]}")
    if "ui" in subset:
        lines.append(f"database\t{subset['ui']['database']}")
    lines += [f"budget\t{b['period']}\t{b['limit_usd']!r}\t{b['provider'] or ''}" for b in subset["budgets"]]
    if any("\n" in line or line.count("\t") > 4 for line in lines[1:]):
        return  # a value the line format cannot hold: parse the file every time instead
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only data folder: no cache, same answer


def _db_path(env: Mapping[str, str], config: Mapping[str, Any]) -> str | None:
    """The same choice as engine.database_url: $DOWNSHIFT_DB_URL, else [ui] database, else the data dir.
    None when the log is not a SQLite file (a status line reads only those)."""
    url = env.get("DOWNSHIFT_DB_URL")
    if not url:
        chosen = (config.get("ui") or {}).get("database")
        if isinstance(chosen, str) and chosen:
            return os.path.expanduser(chosen)
        return os.path.join(_user_dir("data"), "downshift.db")
    prefix = "sqlite:///"
    return url[len(prefix) :] if url.startswith(prefix) else None


def _proxy_up(config: Mapping[str, Any]) -> bool:
    """A connect to the proxy's port: refused at once when nothing listens, so it costs well under 1 ms."""
    proxy = config.get("proxy") or {}
    host = proxy.get("host") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    port = proxy.get("port", 8765)
    if not isinstance(port, int) or port <= 0:
        return True  # port 0 (picked at start): nothing to check against
    sock = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET, _socket.SOCK_STREAM)
    try:
        sock.settimeout(0.05)
        sock.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


# ----------------------------------------------------------------------------------------------- the log


def _period_start(period: str, now: float) -> float:
    t = time.localtime(now)
    day = 1 if period == "month" else t.tm_mday
    return time.mktime((t.tm_year, t.tm_mon, day, 0, 0, 0, 0, 0, -1))


def read_status(
    db: str, session_id: str | None, config: Mapping[str, Any], now: float | None = None
) -> Status:
    now = time.time() if now is None else now
    status = Status((config.get("routing") or {}).get("active"))
    if not os.path.exists(db):
        status.note = "no calls logged yet"
        return status
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
    try:
        cur = conn.cursor()
        if session_id:
            ids = [
                r[0] for r in cur.execute("SELECT id FROM tasks WHERE key = ?", (f"session:{session_id}",))
            ]
            if ids:
                marks = ",".join("?" * len(ids))
                row = cur.execute(
                    f"SELECT SUM(cost_usd), SUM(savings_usd), SUM(tool_calls), SUM(tool_failures) FROM task_totals"
                    f" WHERE task_id IN ({marks})",
                    ids,
                ).fetchone()
                status.session_cost, status.session_savings = row[0] or 0.0, row[1] or 0.0
                status.tool_calls, status.tool_failures = int(row[2] or 0), int(row[3] or 0)
                last = cur.execute(
                    f"SELECT provider, upstream_model FROM calls WHERE task_id IN ({marks})"
                    " AND upstream_model IS NOT NULL ORDER BY started_at DESC LIMIT 1",
                    ids,
                ).fetchone()
                if last:
                    status.model = f"{last[0]}/{last[1]}" if last[0] else last[1]
        day = _period_start("day", now)
        status.today = cur.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM usage_slots WHERE slot >= ?", (day,)
        ).fetchone()[0]
        for budget in config.get("budgets") or ():
            warning = _budget_warning(cur, budget, now)
            if warning:
                status.warnings.append(warning)
    finally:
        conn.close()
    if status.tool_calls >= FAILURE_MIN_CALLS and status.tool_failures / status.tool_calls >= FAILURE_WARN:
        status.warnings.insert(0, f"tool calls failing {status.tool_failures / status.tool_calls:.0%}")
    return status


def _budget_warning(cur: sqlite3.Cursor, budget: Any, now: float) -> str | None:
    if not isinstance(budget, dict):
        return None
    period, limit = budget.get("period"), budget.get("limit_usd")
    if period not in ("day", "month") or not isinstance(limit, (int, float)) or limit <= 0:
        return None
    sql = "SELECT COALESCE(SUM(cost_usd), 0) FROM usage_slots WHERE slot >= ?"
    params: list[Any] = [_period_start(period, now)]
    if budget.get("provider"):
        sql += " AND provider = ?"
        params.append(budget["provider"])
    spent = cur.execute(sql, params).fetchone()[0]
    if spent < BUDGET_NEAR * limit:
        return None
    scope = f" {budget['provider']}" if budget.get("provider") else ""
    return f"{'daily' if period == 'day' else 'monthly'}{scope} budget {spent / limit:.0%}"


# ----------------------------------------------------------------------------------------------- output


def session_figures(
    db: str, session_id: str, config: Mapping[str, Any], now: float | None = None
) -> dict[str, Any]:
    """The line's figures as JSON (GET /downshift/session/{id}), for status bars that are not Claude Code's."""
    status = read_status(db, session_id, config, now)
    rate = status.tool_failures / status.tool_calls if status.tool_calls else None
    return {
        "session_id": session_id,
        "preset": status.preset,
        "model": status.model,
        "session_cost_usd": status.session_cost,
        "session_savings_usd": status.session_savings,
        "today_usd": status.today,
        "tool_calls": status.tool_calls,
        "tool_failures": status.tool_failures,
        "tool_failure_rate": rate,
        "warnings": status.warnings,
        "note": status.note,
        "line": render(status),
    }


def _usd(value: float) -> str:
    return f"${value:.2f}" if abs(value) >= 1 else f"${value:.3f}"


def render(status: Status) -> str:
    parts = [f"⇣ {status.preset or 'no preset'}"]
    if status.model:
        parts.append(status.model)
    if status.session_cost is not None:
        saved = f" (saved {_usd(status.session_savings)})" if status.session_savings else ""
        parts.append(f"session {_usd(status.session_cost)}{saved}")
    if status.today is not None:
        parts.append(f"today {_usd(status.today)}")
    if status.note:
        parts.append(status.note)
    line = " · ".join(parts)
    if status.warnings:
        line += f" {WARN} " + ", ".join(status.warnings)
    return line


def status_line(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, now: float | None = None
) -> str:
    env = os.environ if env is None else env
    config = _config(env)
    session = data.get("session_id")
    db = _db_path(env, config)
    if db is None:
        status = Status((config.get("routing") or {}).get("active"), "log is not a SQLite file")
    else:
        try:
            status = read_status(db, session if isinstance(session, str) else None, config, now)
        except sqlite3.Error as exc:
            status = Status((config.get("routing") or {}).get("active"), f"log unreadable ({exc})")
    if not _proxy_up(config):
        status.warnings.append("proxy not running")
    return render(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the line; whatever happens, exit 0 (a failing status command blanks Claude Code's bar)."""
    try:
        print(status_line(read_input(sys.stdin)), flush=True)
    except Exception as exc:  # noqa: BLE001 - the agent's bar must show something, never a traceback
        print(f"⇣ downshift: status unavailable ({type(exc).__name__})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
