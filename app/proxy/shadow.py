"""Shadow runs: a sampled share of the loop's calls also goes to a candidate model, for evaluation only.

A preset's `shadow = { target = "provider/model", share = 0.1, max_usd_per_day = 2.0 }` (off unless set).
After a loop call's answer has gone to the agent, `offer` decides in a few microseconds whether to shadow it
(the share, today's cap, one shadow in flight per task, room in a bounded queue) and hands it to a worker
thread; it never waits and never raises, so the served call and its agent see nothing of it. Under load
the queue fills and further samples are dropped, not delayed. The workers send the same request, as the
upstream got it, to the candidate (translated when it speaks the other API), whole rather than streamed,
judge its tool calls with the same checks as served calls (`app.core.toolcheck`), compare them with the
served answer (valid or not, same tools chosen, arguments valid against the declared schemas, latency,
cost) and store a row in `shadow_calls`, never in `calls`: no spend total, budget, task or savings figure
counts a shadow call; its cost is shown apart as evaluation spend.

It sends the user's code to another provider, so it is plain about it: the Presets page and the tray say
when it is on (`app.core.shadow_info`), and it stops for the day once that day's shadow calls cost
`max_usd_per_day` (the call that crosses the cap completes) or one of them has no known price (a cap
cannot be kept on spend it cannot count).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from app.core import toolcheck
from app.core.config import Config, Provider, Shadow
from app.core.records import CallRecord

if TYPE_CHECKING:
    from app.core.engine import Core

log = logging.getLogger(__name__)

LOOP_ROLE = "default"
WORKERS = 2  # shadow calls in flight at most, whatever the number of tasks
QUEUE_MAX = 8  # samples waiting for a worker; beyond this they are dropped
TIMEOUT_S = 120.0  # a shadow call slower than this (or the provider's first_byte timeout) is a timeout
IDLE_EXIT_S = 30.0  # a worker with nothing to do for this long ends (a new sample starts it again)


@dataclass(slots=True)
class ShadowJob:
    """What a shadow run needs, copied off the served call so nothing is shared with the proxy after `offer`."""

    call_id: str
    started_at: float
    preset: str
    task: str
    served_provider: str | None
    served_model: str | None
    served_api: str
    served_latency_ms: float | None
    served_cost_usd: float | None
    served_tools: list[tuple[str, str]]  # (name, kind) of each served tool call
    prompt_tokens: int
    upstream_body: dict[str, Any]
    shadow: Shadow
    provider: Provider
    config: Config


def _today() -> tuple[int, int]:
    t = time.localtime()
    return t.tm_year, t.tm_yday


def _midnight() -> float:
    return datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class ShadowRunner:
    def __init__(
        self,
        core: Core,
        *,
        rng: random.Random | None = None,
        workers: int = WORKERS,
        queue_max: int = QUEUE_MAX,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.core = core
        self.rng = rng or random.Random()
        self.workers, self.timeout_s = workers, timeout_s
        self.stats: Counter[str] = Counter()
        self._queue: queue.Queue[ShadowJob] = queue.Queue(queue_max)
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # tasks with a shadow queued or in flight
        self._threads: list[threading.Thread] = []
        self._capped: dict[str, tuple[int, int]] = {}  # preset -> the day its shadow runs stopped
        self._spent: dict[
            str, tuple[tuple[int, int], float]
        ] = {}  # preset -> (day, evaluation spend that day)
        self._running = 0

    # ------------------------------------------------------------------ proxy side: never waits, never raises

    def offer(self, rec: CallRecord, upstream_body: dict[str, Any], served_api: str, config: Config) -> bool:
        """Queue a shadow run of this served call if its preset shadows and the sample, cap and bounds allow."""
        preset = config.presets.get(rec.preset or "")
        shadow = preset.shadow if preset is not None else None
        if shadow is None or rec.role != LOOP_ROLE or rec.escalated or rec.outcome != "ok":
            return False
        try:
            return self._offer(rec, upstream_body, served_api, config, shadow)
        except Exception:  # a bug here must cost the served call nothing
            log.exception("could not offer call %s for a shadow run", rec.call_id)
            return False

    def _offer(
        self, rec: CallRecord, body: dict[str, Any], served_api: str, config: Config, shadow: Shadow
    ) -> bool:
        stats = self.stats
        stats["eligible"] += 1
        if self.rng.random() >= shadow.share:
            return False
        stats["sampled"] += 1
        preset = rec.preset or ""
        if self._capped.get(preset) == _today():
            stats["dropped_cap"] += 1
            return False
        provider = config.providers.get(shadow.target.provider)
        if provider is None:
            return False
        task = rec.task_key or rec.session_key or rec.call_id
        with self._lock:
            if task in self._busy:
                stats["dropped_busy"] += 1
                return False
            job = ShadowJob(
                rec.call_id,
                rec.started_at,
                preset,
                task,
                rec.provider,
                rec.upstream_model,
                served_api,
                rec.duration_ms,
                rec.cost_usd,
                [(t.name, t.kind) for t in rec.tool_calls],
                rec.input_tokens + rec.cache_read_tokens + rec.cache_write_tokens + rec.cache_write_1h_tokens,
                body,
                shadow,
                provider,
                config,
            )
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                stats["dropped_queue"] += 1
                return False
            self._busy.add(task)
            stats["queued"] += 1
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) < min(self.workers, self._queue.qsize() + self._running):
                thread = threading.Thread(target=self._work, name="downshift-shadow", daemon=True)
                self._threads.append(thread)
                thread.start()
        return True

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        import httpx

        with httpx.Client() as http:
            while True:
                try:
                    job = self._queue.get(timeout=IDLE_EXIT_S)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._threads = [t for t in self._threads if t is not threading.current_thread()]
                            return
                    continue
                with self._lock:
                    self._running += 1
                try:
                    self._run(job, http)
                except Exception:
                    log.exception("shadow run of call %s failed", job.call_id)
                    self.stats["failed"] += 1
                finally:
                    with self._lock:
                        self._running -= 1
                        self._busy.discard(job.task)
                    self._queue.task_done()

    def _run(self, job: ShadowJob, http: Any) -> None:
        if not self._within_cap(job):
            self.stats["dropped_cap"] += 1
            return
        row = self.shadow_call(job, http)
        cost = row["cost_usd"]
        self._add_spend(
            job, cost, unpriced=cost is None and row["outcome"] == "ok" and not job.provider.local
        )
        self._store(row)
        self.stats["sent"] += 1
        self.stats[f"outcome_{row['outcome']}"] += 1

    def shadow_call(self, job: ShadowJob, http: Any) -> dict[str, Any]:
        """Send the job to its candidate, judge and compare the answer; the `shadow_calls` row."""
        import httpx

        from app.core.provider_models import auth_headers
        from app.core.redact import redact_text
        from app.core.usage import normalize_anthropic, normalize_openai
        from app.proxy.adapters import Context, adapter_for
        from app.proxy.errors import upstream_error_message
        from app.proxy.observe import observer_for

        provider, target = job.provider, job.shadow.target
        row: dict[str, Any] = {
            "call_id": job.call_id,
            "started_at": time.time(),
            "preset": job.preset,
            "served_provider": job.served_provider,
            "served_model": job.served_model,
            "provider": target.provider,
            "model": target.model,
            "prompt_tokens": job.prompt_tokens,
            "outcome": "error",
            "status": None,
            "error_kind": None,
            "error_message": None,
            "latency_ms": None,
            "served_latency_ms": job.served_latency_ms,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cost_usd": None,
            "cost_source": None,
            "served_cost_usd": job.served_cost_usd,
            "tool_calls": 0,
            "tool_failures": 0,
            "served_tool_calls": len(job.served_tools),
            "served_tool_failures": sum(k not in toolcheck.NOT_FAILURES for _, k in job.served_tools),
            "valid": None,
            "served_valid": all(k in toolcheck.NOT_FAILURES for _, k in job.served_tools),
            "same_tool": None,
            "args_valid": None,
            "served_tool": job.served_tools[0][0] if job.served_tools else None,
            "shadow_tool": None,
            "detail": None,
        }
        adapter = adapter_for(job.served_api, provider.api)
        if adapter is None:
            row.update(
                error_kind="unsupported",
                error_message=f"cannot send a {job.served_api} request to {provider.api}",
            )
            return row
        served = {k: v for k, v in job.upstream_body.items() if k != "stream_options"}
        served["stream"] = False
        body = adapter.prepare(served, target.model, provider, Context(requested_model=target.model))
        body.pop("stream_options", None)
        body["stream"] = False
        key = self.core.provider_key(provider.name)
        headers = {"Content-Type": "application/json", **auth_headers(provider, key)}
        timeout = httpx.Timeout(
            min(provider.timeouts.first_byte, self.timeout_s), connect=provider.timeouts.connect
        )
        started = time.perf_counter()
        try:
            resp = http.post(
                provider.base_url + adapter.upstream_path,
                content=orjson.dumps(body),
                headers=headers,
                timeout=timeout,
            )
        except httpx.TimeoutException as exc:
            row.update(
                outcome="timeout",
                error_kind="timeout",
                error_message=f"no answer in time ({type(exc).__name__})",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
            return row
        except httpx.HTTPError as exc:
            row.update(
                error_kind="connect",
                error_message=redact_text(str(exc), [key or ""]),
                latency_ms=(time.perf_counter() - started) * 1000,
            )
            return row
        row["latency_ms"] = (time.perf_counter() - started) * 1000
        row["status"] = resp.status_code
        if resp.status_code >= 400:
            row.update(
                error_kind=f"upstream_{resp.status_code}",
                error_message=redact_text(upstream_error_message(resp.content), [key or ""]),
            )
            return row
        try:
            data = orjson.loads(resp.content)
            if type(data) is not dict:
                raise TypeError("not an object")
            observer = observer_for(provider.api)
            observer.on_response(data)
        except (orjson.JSONDecodeError, TypeError, AttributeError, KeyError) as exc:
            row.update(
                error_kind="bad_upstream_json",
                error_message=f"an answer Downshift cannot read ({type(exc).__name__})",
            )
            return row
        from app.core.pricing import price_call

        if provider.api == "anthropic":
            usage = normalize_anthropic(observer.usage or {})
            declared = toolcheck.declared_anthropic(body)
        else:
            usage = normalize_openai(observer.usage or {}, provider.kind)
            declared = toolcheck.declared_openai(body)
        priced = price_call(usage, job.config, provider, target.model)
        checks = toolcheck.check_calls(
            declared, [toolcheck.ToolCall(i, n, a) for i, n, a in observer.tool_calls()], observer.text
        )
        row.update(
            outcome="ok",
            input_tokens=usage.input,
            output_tokens=usage.output,
            cache_read_tokens=usage.cache_read,
            cost_usd=priced.cost,
            cost_source=priced.source,
        )
        row.update(compare(job.served_tools, [(c.name, c.kind) for c in checks]))
        bad = [c for c in checks if c.kind not in toolcheck.NOT_FAILURES]
        if bad:
            row["detail"] = f"{bad[0].kind}: {bad[0].name}: {bad[0].detail}"[:500]
        return row

    # ------------------------------------------------------------------ the daily cap

    def _spent_today(self, preset: str) -> float:
        day = _today()
        got = self._spent.get(preset)
        if got is None or got[0] != day:
            from sqlalchemy import text

            with self.core.db.connect() as conn:
                spent = (
                    conn.execute(
                        text(
                            "SELECT coalesce(sum(cost_usd), 0.0) FROM shadow_calls WHERE preset = :p AND started_at >= :m"
                        ),
                        {"p": preset, "m": _midnight()},
                    ).scalar()
                    or 0.0
                )
            got = (day, float(spent))
            self._spent[preset] = got
        return got[1]

    def _within_cap(self, job: ShadowJob) -> bool:
        if self._capped.get(job.preset) == _today():
            return False
        if self._spent_today(job.preset) >= job.shadow.max_usd_per_day:
            self._stop_for_today(
                job, f"today's shadow calls reached the cap of ${job.shadow.max_usd_per_day:.2f}"
            )
            return False
        return True

    def _add_spend(self, job: ShadowJob, cost: float | None, *, unpriced: bool) -> None:
        day, spent = _today(), self._spent_today(job.preset) + (cost or 0.0)
        self._spent[job.preset] = (day, spent)
        if unpriced:
            self._stop_for_today(
                job, f"{job.shadow.target} has no known price, so the daily cap cannot be kept"
            )
        elif spent >= job.shadow.max_usd_per_day:
            self._stop_for_today(
                job, f"today's shadow calls cost ${spent:.2f}, the cap is ${job.shadow.max_usd_per_day:.2f}"
            )

    def _stop_for_today(self, job: ShadowJob, why: str) -> None:
        if self._capped.get(job.preset) == _today():
            return
        self._capped[job.preset] = _today()
        message = (
            f"Shadow runs of preset '{job.preset}' to {job.shadow.target} stopped until tomorrow: {why}."
        )
        log.warning(message)
        self.core.events.emit("notice", ("Shadow runs stopped for today", message))

    def capped_today(self, preset: str) -> bool:
        return self._capped.get(preset) == _today()

    # ------------------------------------------------------------------ storage and shutdown

    def _store(self, row: dict[str, Any]) -> None:
        from sqlalchemy import insert

        from app.core.storage.models import ShadowCall

        with self.core.db.begin() as conn:
            conn.execute(insert(ShadowCall).values(**row))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until every queued shadow run is done (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy:
                    return True
            time.sleep(0.01)
        return False


def compare(served: list[tuple[str, str]], shadow: list[tuple[str, str]]) -> dict[str, Any]:
    """How a shadow answer's tool calls ((name, kind) each) compare with the served answer's.

    valid: none of the shadow's tool calls failed the checks; same_tool: both chose the same tools (as a
    multiset of names; None when neither called one); args_valid: the shadow's arguments parsed and fit the
    declared schemas (None when it made no call)."""
    names = sorted(n for n, _ in shadow)
    served_names = sorted(n for n, _ in served)
    return {
        "tool_calls": len(shadow),
        "tool_failures": sum(k not in toolcheck.NOT_FAILURES for _, k in shadow),
        "valid": all(k in toolcheck.NOT_FAILURES for _, k in shadow),
        "same_tool": None if not names and not served_names else names == served_names,
        "args_valid": None if not shadow else all(k not in ("invalid_json", "schema") for _, k in shadow),
        "shadow_tool": shadow[0][0] if shadow else None,
    }
