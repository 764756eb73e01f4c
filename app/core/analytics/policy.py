"""The proxy's per-call policy: task key, budgets and escalation before routing; running totals after.

`before` and `after` run on the proxy's event loop for every call and stay in memory (a few
microseconds); `writer_hook` runs in the log writer's thread, inside its transaction, and does the
database side: task rows, slot and task totals, and the occasional retention prune.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from app.core.analytics.budgets import BudgetGuard
from app.core.analytics.escalation import LOOP_ROLE, EscalationTracker
from app.core.analytics.retention import RetentionClock
from app.core.analytics.rollup import BatchTotals, attribute_failed_results
from app.core.analytics.tasks import TaskGrouper, fingerprint, prompt_label
from app.core.config import Config
from app.core.records import CallRecord
from app.core.routing import RoutingError, route

if TYPE_CHECKING:
    from app.core.engine import Core

log = logging.getLogger(__name__)


class CallPolicy:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.escalation = EscalationTracker()
        self.budgets = BudgetGuard(core)
        self.budgets.load(core.config, time.time())
        self._grouper = TaskGrouper()
        self._retention = RetentionClock()

    # ------------------------------------------------------------------ hot path (proxy event loop)

    def before(self, rec: CallRecord, data: dict[str, Any], config: Config) -> str | None:
        """Set the task key, enforce block budgets, and return the role to force when the task escalated."""
        rec.task_key = rec.session_key or fingerprint(data, rec.client_api) or ""
        if not rec.task_key.startswith("task:"):  # a header-named task is labelled with its name
            rec.task_label = prompt_label(data, rec.client_api)
        forced = self._escalation_role(rec, config)
        self.budgets.check(
            config, rec.started_at, lambda: self._provider(config, rec.requested_model, forced), rec.member
        )
        return forced

    def _escalation_role(self, rec: CallRecord, config: Config) -> str | None:
        preset = config.active_preset
        esc = preset.escalate if preset is not None else None
        if esc is None or not rec.task_key:
            return None
        if not self.escalation.is_escalated(rec.task_key, rec.started_at, config.task_idle_minutes * 60):
            return None
        try:  # only the loop escalates: side calls and explicit targets keep their route
            natural = route(config, rec.requested_model)
        except RoutingError:
            return None
        if natural.role != LOOP_ROLE:
            return None
        rec.escalated = True
        return esc.role

    @staticmethod
    def _provider(config: Config, model: str | None, forced: str | None) -> str | None:
        try:
            return route(config, model, force_role=forced).targets[0].provider
        except RoutingError:
            return None

    def after(self, rec: CallRecord) -> None:
        """Fold the finished call into budget totals and its task's escalation window."""
        config = self.core.config
        self.budgets.add(rec, config)
        preset = config.active_preset
        if preset is not None and preset.escalate is not None:
            self.escalation.observe(rec, preset.escalate, config.task_idle_minutes * 60)

    # ------------------------------------------------------------------ writer thread

    def writer_hook(self, conn: Connection, ends: Sequence[CallRecord]) -> None:
        """Tasks and totals for a batch of ended calls, before the writer inserts their rows."""
        if not ends:
            return
        config = self.core.config
        records = list(ends)
        self._grouper.assign(conn, records, config.task_idle_minutes * 60)
        totals = BatchTotals()
        for rec in records:
            totals.add_call(rec)
        attribute_failed_results(conn, records, totals)
        totals.write(conn)
        self._retention.maybe_run(conn, config.retention_days, time.time())
