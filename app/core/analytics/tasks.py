"""Grouping calls into tasks: one unit of agent work, so cost per finished task is a real figure.

Rules, first match wins (the key is chosen in the proxy, the task row in the log writer's thread):

1. header: `X-Downshift-Task: NAME` -> key `task:NAME`, labelled NAME;
2. session: the agent's own session id (Claude Code's `x-claude-code-session-id` / `metadata.user_id`,
   Codex's `session-id` / `thread-id`) -> key `session:ID`;
3. manual: the newest open task started by hand (`downshift task new`) takes every call that has no
   header or session id, while it is open and has been active within the idle gap;
4. side call: a call routed to the `background` or `subagent` role with no header or session id joins
   the open task that was active most recently (within the idle gap): titles, summaries, compaction
   belong to the work that caused them;
5. fingerprint: the same system prompt and first user message -> key `fp:HASH`;
6. anything else (no prompt at all) shares the key `idle`.

Whatever the key, a call starting more than `task_idle_minutes` after the task's last activity, or
after the task was given an outcome, starts a new task. Each call belongs to exactly one task, and task
totals add each call once, when the writer stores it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from app.core.records import CallRecord
from app.core.storage.models import Task

SIDE_ROLES = frozenset({"background", "subagent"})
OUTCOMES = ("finished", "abandoned")
IDLE_KEY = "idle"
MANUAL_KEY = "manual"


def fingerprint(data: dict[str, Any], client_api: str) -> str | None:
    """`fp:` + a short hash of the system prompt and first user message; None when neither exists."""
    system: Any = None
    first_user: Any = None
    if client_api == "anthropic":
        system = data.get("system")
        messages = data.get("messages")
    elif client_api == "responses":
        system = data.get("instructions")
        messages = data.get("input")
        if isinstance(messages, str):
            first_user, messages = messages, None
    else:
        messages = data.get("messages")
    for m in messages if isinstance(messages, list) else ():
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role in ("system", "developer") and system is None:
            system = m.get("content")
        elif role == "user":
            first_user = m.get("content")
            break
    if system is None and first_user is None:
        return None
    digest = hashlib.blake2b(orjson.dumps([system, first_user]), digest_size=8).hexdigest()
    return f"fp:{digest}"


def source_of(key: str) -> str:
    if key.startswith("task:"):
        return "header"
    if key.startswith("session:"):
        return "session"
    if key.startswith("fp:"):
        return "fingerprint"
    return IDLE_KEY


def new_manual_task(engine: Engine, label: str | None = None, now: float | None = None) -> int:
    """Start a task by hand; the next calls without a header or session id join it (rule 3)."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        result = conn.execute(insert(Task).values(key=MANUAL_KEY, source="manual", label=label, started_at=now, last_at=now))
        return int(result.inserted_primary_key[0])


class TaskGrouper:
    """Runs inside the writer's transaction: finds or creates each ended call's task and sets `rec.task_id`.

    It keeps no state between batches: the open task for a key is read back from the database (one indexed
    look-up per call), so an outcome set from the CLI, a restart or a rolled-back batch never leaves it
    pointing at the wrong row.
    """

    def assign(self, conn: Connection, records: list[CallRecord], idle_s: float) -> None:
        for rec in sorted(records, key=lambda r: r.started_at):
            if rec.task_key is None:  # refused before the proxy read the request: no task to speak of
                continue
            rec.task_id = self._task_for(conn, rec, idle_s)
            end = rec.started_at + (rec.duration_ms or 0.0) / 1000.0
            conn.execute(update(Task).where(Task.id == rec.task_id, Task.last_at < end).values(last_at=end))

    def _task_for(self, conn: Connection, rec: CallRecord, idle_s: float) -> int:
        key = rec.task_key or IDLE_KEY
        source = source_of(key)
        if source in ("fingerprint", IDLE_KEY):
            manual = self._open(conn, Task.source == "manual")
            if manual is not None and rec.started_at - manual[1] <= idle_s:
                return manual[0]
            if rec.role in SIDE_ROLES:
                recent = self._open(conn, None)
                if recent is not None and rec.started_at - recent[1] <= idle_s:
                    return recent[0]
        found = self._open(conn, Task.key == key)
        if found is not None and rec.started_at - found[1] <= idle_s:
            return found[0]
        label = key[5:] if source == "header" else None
        result = conn.execute(
            insert(Task).values(key=key, source=source, label=label, started_at=rec.started_at, last_at=rec.started_at)
        )
        return int(result.inserted_primary_key[0])

    @staticmethod
    def _open(conn: Connection, where: Any) -> tuple[int, float] | None:
        """The open task matching `where` (None: any) that was active last."""
        stmt = select(Task.id, Task.last_at).where(Task.outcome.is_(None))
        if where is not None:
            stmt = stmt.where(where).order_by(Task.id.desc())
        else:
            stmt = stmt.order_by(Task.last_at.desc())
        row = conn.execute(stmt.limit(1)).first()
        return None if row is None else (row[0], row[1])
