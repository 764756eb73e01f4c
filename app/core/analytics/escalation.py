"""Automatic escalation: a task whose cheap loop model keeps botching tool calls moves to a stronger role.

Rule (a preset's `escalate = {threshold, window, role}`): for each task (by its key: header, session or
fingerprint) the proxy keeps, in memory, the last `window` calls of the loop (role `default`, not already
escalated) that emitted at least one tool call, each with its emitted and failed tool-call counts; a
failed tool result reported in a later request adds a failure to the call that emitted it (unless that
call had already failed validation). Once the window is full and failed / emitted is above `threshold`,
the task's later loop calls go to `role` for the rest of the task (logged with `escalated = true`).
A call after the idle gap starts the task afresh. Memory is bounded: the least recently active tasks go first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from app.core.config import Escalation
from app.core.records import CallRecord
from app.core.toolcheck import NOT_FAILURES

log = logging.getLogger(__name__)

LOOP_ROLE = "default"


@dataclass(slots=True)
class _Entry:
    emitted: int
    failed: int
    pending: list[str]  # ids of valid tool calls whose result may still come back failed


@dataclass(slots=True)
class _TaskWindow:
    last_at: float
    entries: deque[_Entry] = field(default_factory=deque)
    by_id: dict[str, _Entry] = field(default_factory=dict)
    escalated: bool = False


class EscalationTracker:
    def __init__(self, max_tasks: int = 10_000) -> None:
        self._tasks: OrderedDict[str, _TaskWindow] = OrderedDict()
        self._max = max_tasks

    def is_escalated(self, key: str, now: float, idle_s: float) -> bool:
        state = self._tasks.get(key)
        return state is not None and state.escalated and now - state.last_at <= idle_s

    def observe(self, rec: CallRecord, esc: Escalation, idle_s: float) -> None:
        """Fold a finished call into its task's window; may mark the task escalated."""
        key = rec.task_key
        if not key:
            return
        now = rec.started_at
        state = self._tasks.get(key)
        if state is None or now - state.last_at > idle_s:
            state = _TaskWindow(now)
            self._tasks[key] = state
            if len(self._tasks) > self._max:
                self._tasks.popitem(last=False)
        else:
            self._tasks.move_to_end(key)
            state.last_at = max(state.last_at, now)
        for tcid, _reason in rec.failed_results:
            entry = state.by_id.pop(tcid, None)
            if entry is not None:
                entry.failed += 1
        if rec.role == LOOP_ROLE and not rec.escalated and rec.tool_calls:
            ok_ids = [t.tool_call_id for t in rec.tool_calls if t.kind in NOT_FAILURES and t.tool_call_id]
            entry = _Entry(len(rec.tool_calls), rec.tool_failures, ok_ids)
            state.entries.append(entry)
            for tcid in ok_ids:
                state.by_id[tcid] = entry
            while len(state.entries) > max(1, esc.window):
                for tcid in state.entries.popleft().pending:
                    state.by_id.pop(tcid, None)
        if state.escalated or len(state.entries) < max(1, esc.window):
            return
        emitted = sum(e.emitted for e in state.entries)
        failed = sum(e.failed for e in state.entries)
        if emitted and failed / emitted > esc.threshold:
            state.escalated = True
            log.warning(
                "task %s escalated to role %r: %d of its last %d tool calls failed",
                key,
                esc.role,
                failed,
                emitted,
            )
