"""The log writer's batching: a quick call is one insert, a long call gets an `in_flight` row once it has run
for `start_row_after` seconds (crash evidence), `flush()` writes a row for every call it knows."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from app.core.records import Attempt, CallRecord, ToolCallResult
from app.core.storage.db import open_database
from app.core.storage.writer import LogWriter

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)


def outcomes(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT call_id, outcome FROM calls")).all())


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_quick_call_never_gets_a_start_row_long_call_does(db_url: str) -> None:
    engine = open_database(db_url)
    writer = LogWriter(engine, interval=0.01)
    writer.start_row_after = 0.4
    batches: list[int] = []
    writer.hooks.append(lambda conn, ends: batches.append(len(ends)))
    quick = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
    writer.started(quick)
    time.sleep(0.1)  # several writer ticks: the start alone writes nothing
    assert outcomes(engine) == {} and batches == []
    quick.finish("ok", 200)
    writer.finished(quick)
    wait_for(lambda: outcomes(engine) == {quick.call_id: "ok"})
    assert batches == [1]  # one transaction for the whole call

    slow = CallRecord(client_api="anthropic", endpoint="/v1/messages")
    writer.started(slow)
    time.sleep(0.15)
    assert slow.call_id not in outcomes(engine)
    wait_for(lambda: outcomes(engine).get(slow.call_id) == "in_flight")  # no flush: the writer's own timer
    slow.tool_calls.append(ToolCallResult("toolu_1", "read_file", "ok"))
    slow.finish("ok", 200)
    writer.finished(slow)
    assert writer.flush()
    assert outcomes(engine) == {quick.call_id: "ok", slow.call_id: "ok"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT call_id, tool_call_id FROM tool_calls")).all() == [
            (slow.call_id, "toolu_1")
        ]
    assert writer._running == {}
    writer.close()
    engine.dispose()


def test_flush_writes_a_start_row_for_every_running_call(db_url: str) -> None:
    url = db_url
    engine = open_database(url)
    writer = LogWriter(engine, interval=0.05)
    writer.machine = "box-1"  # on a shared PostgreSQL ledger only this machine's next start marks its calls
    running = [CallRecord(client_api="openai", endpoint="/v1/chat/completions") for _ in range(3)]
    for rec in running:
        writer.started(rec)
    assert writer.flush()
    assert outcomes(engine) == {r.call_id: "in_flight" for r in running}
    running[0].finish("cancelled", 499)
    writer.finished(running[0])
    writer.close()
    engine.dispose()
    engine = open_database(url, machine="box-1")  # the process "died" with two calls running
    assert outcomes(engine) == {
        running[0].call_id: "cancelled",
        running[1].call_id: "interrupted",
        running[2].call_id: "interrupted",
    }
    engine.dispose()


def test_handing_over_never_blocks_and_the_bound_counts_drops(db_url: str) -> None:
    engine = open_database(db_url)
    writer = LogWriter(engine, interval=10.0, max_pending=5)  # the writer sleeps: nothing is drained
    time.sleep(0.05)
    recs = [CallRecord(client_api="openai", endpoint="/x") for _ in range(8)]
    for r in recs:
        r.finish("ok", 200)
        writer.finished(r)
    assert writer.pending == 5 and writer.stats.dropped == 3
    writer.started(CallRecord(client_api="openai", endpoint="/x"))
    assert writer.stats.skipped_starts == 1
    assert writer.flush()  # wakes the writer at once
    assert len(outcomes(engine)) == 5
    writer.close()
    engine.dispose()


def test_a_broken_hook_or_record_costs_only_what_it_must(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook's bug: the batch is written without the hook. A record that cannot be written (a bug, not the
    database): its batch is counted as dropped, the writer forgets those calls and keeps writing the next."""
    engine = open_database(db_url)
    writer = LogWriter(engine, interval=0.01)
    broken_hook = [True]

    def hook(conn, ends) -> None:  # type: ignore[no-untyped-def]
        if broken_hook[0]:
            raise RuntimeError("hook bug")

    writer.hooks.append(hook)
    first = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
    writer.started(first)
    first.finish("ok", 200)
    writer.finished(first)
    writer.failed_results([("toolu_x", "exit code 1")])
    assert writer.flush()
    assert outcomes(engine) == {first.call_id: "ok"}
    assert "a call log hook failed" in caplog.text

    broken_hook[0] = False
    bad = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
    bad.attempts.append(Attempt(target=object()))  # type: ignore[arg-type]  # not JSON: the row cannot be built
    writer.started(bad)
    bad.finish("error", 502)
    writer.finished(bad)
    assert writer.flush()
    assert writer.stats.dropped == 1 and writer._running == {}
    assert "could not be written and is dropped" in caplog.text

    after = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
    after.finish("ok", 200)
    writer.finished(after)
    assert writer.flush()
    assert outcomes(engine) == {first.call_id: "ok", after.call_id: "ok"}
    assert writer.stats.written == 2
    writer.close()
    engine.dispose()
