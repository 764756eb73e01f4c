"""Grouping calls into tasks: one unit of agent work, so cost per finished task is a real figure.

Rules, first match wins (the key is chosen in the proxy, the task row in the log writer's thread):

1. header: `X-Downshift-Task: NAME` -> key `task:NAME`, labelled NAME;
2. session: the agent's own session id (Claude Code's `x-claude-code-session-id` / `metadata.user_id`,
   Codex's `session-id` / `thread-id`, OpenCode's `x-session-id`) -> key `session:ID`; Qwen Code, Cline's
   and Continue's CLIs and Gemini CLI send none, and their calls fall to the fingerprint rule (their system prompt and
   first user turn are byte-identical across the calls of a run);
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

import time
import zlib
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert

from app.core.records import CallRecord
from app.core.redact import redact_text
from app.core.storage.dialect import driver_cursor, is_postgres, pg
from app.core.storage.models import Task

SIDE_ROLES = frozenset({"background", "subagent"})
OUTCOMES = ("finished", "abandoned")
IDLE_KEY = "idle"
MANUAL_KEY = "manual"


def fingerprint(data: dict[str, Any], client_api: str) -> str | None:
    """`fp:` + a checksum of the system prompt and first user message; None when neither exists."""
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
    elif client_api == "gemini":  # no role is a user turn there; parts stand for content
        system = data.get("systemInstruction")
        messages = None
        for c in data.get("contents") or ():
            if isinstance(c, dict) and c.get("role") in (None, "user"):
                first_user = c.get("parts")
                break
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
    # CRC-32 plus the length: ~1 us per KB here, where blake2b took 4 (the key only has to tell apart
    # the conversations active within one idle gap, not resist anyone)
    blob = orjson.dumps([system, first_user])
    return f"fp:{zlib.crc32(blob):08x}{len(blob):x}"


LABEL_CHARS = 60
_SCAN_MESSAGES = 8  # agents put their context blocks first; the prompt is within the first few messages


def _texts(content: Any) -> list[str]:
    """The text parts of one message's content, in any of the client APIs' shapes."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return []
    return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]


def prompt_label(data: dict[str, Any], client_api: str) -> str | None:
    """A short task label cut from the first user prompt, so the Tasks page reads as work, not ids.

    Context blocks the agents prepend as user text (`<system-reminder>`, Codex's `<environment_context>`)
    are skipped. Only the first few messages are looked at: a few microseconds per call, on the event loop.
    """
    if client_api == "responses":
        messages = data.get("input")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
    elif client_api == "gemini":
        messages = [
            {"role": c.get("role") or "user", "content": c.get("parts")}
            for c in (data.get("contents") or ())[:_SCAN_MESSAGES]
            if isinstance(c, dict)
        ]
    else:
        messages = data.get("messages")
    if not isinstance(messages, list):
        return None
    for m in messages[:_SCAN_MESSAGES]:
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        for text in _texts(m.get("content")):
            text = text.lstrip()
            if not text or text.startswith("<"):
                continue
            words = text[: LABEL_CHARS * 2].split()  # only the head: a pasted file costs nothing more
            label = " ".join(words)
            if len(label) <= LABEL_CHARS:
                return label
            cut = label[: LABEL_CHARS - 1]
            return (cut.rsplit(" ", 1)[0] if " " in cut[LABEL_CHARS // 2 :] else cut) + "…"
    return None


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
        result = conn.execute(
            insert(Task).values(key=MANUAL_KEY, source="manual", label=label, started_at=now, last_at=now)
        )
        key = result.inserted_primary_key
        assert key is not None  # an INSERT's result always has it
        return int(key[0])


class TaskGrouper:
    """Runs inside the writer's transaction: finds or creates each ended call's task and sets `rec.task_id`.

    It keeps no state between batches: open tasks are read back from the database (indexed look-ups, once
    per key per batch), so an outcome set from the CLI, a restart or a rolled-back batch never leaves it
    pointing at the wrong row. Plain SQL on the driver's cursor keeps it at a few microseconds per call.
    """

    def assign(self, conn: Connection, records: list[CallRecord], idle_s: float) -> None:
        cur = driver_cursor(conn)
        sql = _PG_SQL if is_postgres(conn) else _SQLITE_SQL
        if sql is _PG_SQL:
            # Several writers share a PostgreSQL ledger: two batches with calls of one key must not both find
            # no open task and open two. A lock per key, held to the end of the transaction, taken in a
            # fixed order (no deadlock), makes the second batch wait and then see the first one's task.
            keys = sorted(
                {f"{r.member or ''}\n{r.task_key or IDLE_KEY}" for r in records if r.task_key is not None}
            )
            for key in keys:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
        batch = _Batch(cur, idle_s, sql)
        for rec in sorted(records, key=lambda r: r.started_at):
            if rec.task_key is None:  # refused before the proxy read the request: no task to speak of
                continue
            task = batch.task_for(rec)
            rec.task_id = task[0]
            batch.touch(task, rec.member or "", rec.started_at + (rec.duration_ms or 0.0) / 1000.0)
        cur.executemany(sql["touch"], [(t[1], t[0], t[1]) for _id, t in sorted(batch.touched.items())])
        cur.close()


# Tasks are per member (team mode; '' for a single user): one member's calls never join another's task.
_OPEN = "SELECT id, last_at FROM tasks WHERE outcome IS NULL AND member = ?"
_SQLITE_SQL = {
    "manual": f"{_OPEN} AND source = 'manual' ORDER BY id DESC LIMIT 1",
    "recent": f"{_OPEN} ORDER BY last_at DESC LIMIT 1",
    "by_key": f"{_OPEN} AND key = ? ORDER BY id DESC LIMIT 1",
    "insert": "INSERT INTO tasks (key, source, label, started_at, last_at, member) VALUES (?, ?, ?, ?, ?, ?)",
    "touch": "UPDATE tasks SET last_at = ? WHERE id = ? AND last_at < ?",
}
_PG_SQL = {name: pg(sql) for name, sql in _SQLITE_SQL.items()}
_PG_SQL["insert"] += " RETURNING id"  # psycopg has no lastrowid for PostgreSQL


class _Batch:
    """Open tasks as this batch sees them: [id, last_at] lists, shared so updates show everywhere. The open
    manual and most recent tasks of a member are read only for that member's loose calls (fingerprint or
    idle keys), once per batch."""

    def __init__(self, cur: Any, idle_s: float, sql: dict[str, str]) -> None:
        self.cur, self.idle_s, self.sql = cur, idle_s, sql
        self.by_key: dict[tuple[str, str], list[Any] | None] = {}
        self.touched: dict[int, list[Any]] = {}
        self.manual: dict[str, list[Any] | None] = {}
        self.recent: dict[str, list[Any] | None] = {}

    def _one(self, sql: str, params: tuple[Any, ...]) -> list[Any] | None:
        row = self.cur.execute(sql, params).fetchone()
        return None if row is None else list(row)

    def _fresh(self, task: list[Any] | None, at: float) -> bool:
        return task is not None and at - task[1] <= self.idle_s

    def task_for(self, rec: CallRecord) -> list[Any]:
        key = rec.task_key or IDLE_KEY
        member = rec.member or ""
        source = source_of(key)
        if source in ("fingerprint", IDLE_KEY):
            if member not in self.manual:
                self.manual[member] = self._one(self.sql["manual"], (member,))
                stored, touched = self._one(self.sql["recent"], (member,)), self.recent.get(member)
                if (
                    touched is None
                    or stored is not None
                    and stored[0] != touched[0]
                    and stored[1] > touched[1]
                ):
                    self.recent[member] = stored
            manual, recent = self.manual[member], self.recent[member]
            if self._fresh(manual, rec.started_at):
                return manual  # type: ignore[return-value]
            if rec.role in SIDE_ROLES and self._fresh(recent, rec.started_at):
                return recent  # type: ignore[return-value]
        if (member, key) not in self.by_key:
            self.by_key[(member, key)] = self._one(self.sql["by_key"], (member, key))
        task = self.by_key[(member, key)]
        if task is None or not self._fresh(task, rec.started_at):
            # a prompt may quote a key: the label is masked by the key patterns, once per new task
            label = key[5:] if source == "header" else redact_text(rec.task_label, [])
            self.cur.execute(self.sql["insert"], (key, source, label, rec.started_at, rec.started_at, member))
            task_id = self.cur.fetchone()[0] if self.sql is _PG_SQL else self.cur.lastrowid
            task = [task_id, rec.started_at]
            self.by_key[(member, key)] = task
        return task

    def touch(self, task: list[Any], member: str, end: float) -> None:
        if end > task[1]:
            task[1] = end
        self.touched[task[0]] = task
        recent = self.recent.get(member)
        if recent is None or task[1] >= recent[1]:
            self.recent[member] = task
