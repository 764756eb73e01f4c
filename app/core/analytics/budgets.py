"""Budgets: daily and monthly spending limits, overall or per provider, with an action when reached.

Spend is counted from local midnight (day) or the 1st of the month (month), over priced calls (unpriced
calls are not counted as $0 spent). At start the totals are read from the call log; after that each
finished call adds its cost in memory, so the check on the hot path is a few comparisons.

Actions, on the call whose cost makes spend reach the limit (spent >= limit):
- warn: a `notice` event (the tray shows it; `serve` logs it);
- switch: the config's active preset becomes `switch_to` (saved, so it survives restarts), plus a notice;
  the save runs on a thread of its own (a file write and fsync must not stall the proxy's event loop), so
  calls that start while it is being written may still use the old preset;
- block: every later call (for a provider budget: every call routed to that provider) is refused with
  HTTP 402 `budget_exceeded` in the client's API shape until the period ends or the limit is raised.
Warn and switch happen once per budget and period: a restart or a config reload that finds a budget
already reached does not repeat them. Block needs no memory: it is decided from the spend on every call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from app.core.config import Budget, Config, ConfigError
from app.core.queries.dashboard import period_start, spend_by_member, spend_by_provider
from app.core.records import CallRecord

if TYPE_CHECKING:
    from app.core.engine import Core

log = logging.getLogger(__name__)

PERIODS = ("day", "month")
BLOCK_STATUS = 402


def _next_start(period: str, start: float) -> float:
    # a day or a month later, at local midnight again (whatever DST did in between)
    return period_start(period, start + (26 * 3600 if period == "day" else 32 * 86400))


class BudgetExceeded(Exception):
    """A block budget is used up: the call is refused. The core says why; the proxy answers the client with
    HTTP `BLOCK_STATUS` and kind `KIND`, in the client's API shape (the core knows no wire formats)."""

    KIND = "budget_exceeded"

    def __init__(self, budget: Budget, message: str) -> None:
        super().__init__(message)
        self.budget = budget
        self.message = message


def describe(b: Budget) -> str:
    scope = f" for {b.provider}" if b.provider else f" of member {b.member}" if b.member else ""
    return f"{'daily' if b.period == 'day' else 'monthly'} budget of ${b.limit_usd:.2f}{scope}"


class BudgetGuard:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._start: dict[str, float] = {}
        self._end: dict[str, float] = {}
        self._spent: dict[tuple[str, str | None], float] = {}  # (period, provider or None for all) -> USD
        self._by_member: dict[tuple[str, str], float] = {}  # (period, member) -> USD (team mode)
        self._budgets: tuple[Budget, ...] = ()
        self._done: set[Budget] = set()  # warned or switched in the current period
        # one thread, saves in order; the pool starts it at the first switch only (until then it costs nothing)
        self._saver = ThreadPoolExecutor(1, thread_name_prefix="downshift-budget-switch")
        self._saving: Future[None] | None = None

    def load(self, config: Config, now: float) -> None:
        """Spend so far this day and month, read from the log (this is what survives a restart)."""
        with self.core.db.connect() as conn:
            for period in PERIODS:
                self._roll(period, now, read=lambda s, e: spend_by_provider(conn, s, e))
                if any(b.member for b in config.budgets):
                    start = self._start[period]
                    for member, usd in spend_by_member(conn, start, now + 1e-6).items():
                        self._by_member[(period, member)] = usd
        self._adopt(config)

    def _roll(
        self, period: str, now: float, read: Callable[[float, float], dict[str | None, float]] | None = None
    ) -> None:
        start = period_start(period, now)
        self._start[period], self._end[period] = start, _next_start(period, start)
        for key in [k for k in self._spent if k[0] == period]:
            del self._spent[key]
        for mkey in [k for k in self._by_member if k[0] == period]:
            del self._by_member[mkey]
        self._done = {b for b in self._done if b.period != period}
        if read is not None:
            for provider, usd in read(start, now + 1e-6).items():
                self._spent[(period, provider)] = usd

    def _adopt(self, config: Config) -> None:
        """Budgets already reached when first seen (start, reload) are not acted on again."""
        self._budgets = config.budgets
        self._done = {b for b in self._done if b in config.budgets}
        self._done.update(b for b in config.budgets if b.action != "block" and self.spent(b) >= b.limit_usd)

    def spent(self, b: Budget) -> float:
        if b.member is not None:
            return self._by_member.get((b.period, b.member), 0.0)
        return self._spent.get((b.period, b.provider), 0.0)

    def status(self) -> list[dict[str, object]]:
        """Each configured budget with its spend this period (for the GUI and `serve`'s notices)."""
        return [
            {
                "period": b.period,
                "provider": b.provider,
                "member": b.member,
                "limit_usd": b.limit_usd,
                "action": b.action,
                "switch_to": b.switch_to,
                "spent_usd": self.spent(b),
                "reached": self.spent(b) >= b.limit_usd,
                "period_start": self._start.get(b.period),
            }
            for b in self._budgets
        ]

    def _tick(self, config: Config, now: float) -> None:
        for period in PERIODS:
            if now >= self._end[period]:
                self._roll(period, now)
        if config.budgets is not self._budgets:
            self._adopt(config)

    def check(
        self, config: Config, now: float, provider: Callable[[], str | None], member: str | None = None
    ) -> None:
        """Raise BudgetExceeded when a block budget is used up; `provider` routes lazily; a member's budget
        blocks only that member's calls."""
        if not config.budgets:
            return
        self._tick(config, now)
        for b in config.budgets:
            if b.member is not None and b.member != member:
                continue
            if (
                b.action == "block"
                and self.spent(b) >= b.limit_usd
                and (b.provider is None or b.provider == provider())
            ):
                raise BudgetExceeded(
                    b,
                    f"Downshift blocked this request: the {describe(b)} is used up (${self.spent(b):.2f} spent). "
                    f"Raise limit_usd in the config's [[budgets]] or wait for the next {b.period}.",
                )

    def add(self, rec: CallRecord, config: Config) -> None:
        """Count a finished call's cost and act on the budgets it made reach their limit."""
        if not rec.cost_usd:
            return
        now = rec.started_at
        if self._start:
            self._tick(config, now)
        for period in PERIODS:
            for key in ((period, None), (period, rec.provider or "")):
                self._spent[key] = self._spent.get(key, 0.0) + rec.cost_usd
            if rec.member:
                mkey = (period, rec.member)
                self._by_member[mkey] = self._by_member.get(mkey, 0.0) + rec.cost_usd
        for b in config.budgets:
            if b.member is not None and b.member != rec.member:
                continue
            if b.action != "block" and b not in self._done and self.spent(b) >= b.limit_usd:
                self._done.add(b)
                self._act(b)

    def _act(self, b: Budget) -> None:
        message = f"The {describe(b)} is reached (${self.spent(b):.2f} spent)."
        if b.action == "switch" and b.switch_to:
            self._saving = self._saver.submit(self._switch, b.switch_to, message)
            return
        self._tell(message)

    def _switch(self, preset: str, message: str) -> None:
        """On the saver thread: make `preset` the active one in the config file, then say so."""
        store = self.core.config_store
        try:
            if store.current().active != preset:
                store.update(lambda c: c.with_active(preset))
            message += f" Switched to the {preset!r} preset."
        except (ConfigError, OSError) as exc:  # the call is already answered: report, never raise
            message += f" Could not switch to the {preset!r} preset: {exc}"
        except Exception as exc:  # a bug of ours: raised here it would sit unread in the Future
            log.exception("budget: could not switch to the %r preset", preset)
            message += f" Could not switch to the {preset!r} preset: {type(exc).__name__}: {exc}"
        self._tell(message)

    def _tell(self, message: str) -> None:
        log.warning("budget: %s", message)
        self.core.events.emit("notice", ("Budget reached", message))

    def wait_switched(self, timeout: float | None = None) -> None:
        """Until the last preset switch is saved (tests, shutdown)."""
        saving = self._saving
        if saving is not None:
            saving.result(timeout)

    def close(self) -> None:
        """Finish a switch being saved and end the saver thread."""
        self._saver.shutdown(wait=True)
