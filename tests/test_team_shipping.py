"""Shape 1: each developer's proxy ships its finished calls to the team's PostgreSQL, batched, off the hot path,
through an outbox in the local log that survives outages and restarts, exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import text

from app.core.analytics.rollup import slot_of
from app.core.engine import Core
from app.core.storage.db import open_database
from app.testing.ledger_load import make_record
from app.testing.pgserver import PgServer, find_bin_dir
from app.testing.ports import free_port
from tests.analytics_support import user


def _config(path: Path, base: str, member: str, ledger: str) -> Path:
    path.write_text(base + f'\n[team]\nmember = "{member}"\nledger = "{ledger}"\n')
    return path


def _ledger_counts(url: str) -> tuple[dict[str, int], dict[str, int], int, int]:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            calls = dict(conn.execute(text("SELECT member, count(*) FROM calls GROUP BY member")).all())
            slots = {
                m: int(n)
                for m, n in conn.execute(text("SELECT member, sum(calls) FROM usage_slots GROUP BY member"))
            }
            distinct = conn.execute(text("SELECT count(DISTINCT call_id) FROM calls")).scalar()
            tasks = conn.execute(text("SELECT coalesce(sum(calls), 0) FROM task_totals")).scalar()
    finally:
        engine.dispose()
    return calls, slots, int(distinct or 0), int(tasks or 0)


@pytest.fixture
def own_pg(pg_server):  # type: ignore[no-untyped-def]
    """A server of this test's own: it is stopped and restarted mid-test."""
    assert pg_server is not None and find_bin_dir() is not None
    server = PgServer().start()
    yield server
    server.close()


@pytest.mark.timeout(120)
def test_ledger_outage_under_load_every_call_arrives_once(
    own_pg: PgServer, tmp_path: Path, config_path: Path
) -> None:
    ledger = own_pg.create_database()
    base = config_path.read_text()
    t0 = slot_of(time.time()) - 1800.0
    cores = {
        m: Core(_config(tmp_path / f"{m}.toml", base, m, ledger), f"sqlite:///{tmp_path / m}.db")
        for m in ("ann", "bob")
    }
    for core in cores.values():
        core.start_team_shipping()
    handed: dict[str, list[str]] = {m: [] for m in cores}
    stop_load = threading.Event()

    def load(member: str, writer_no: int) -> None:
        i = 0
        while not stop_load.is_set():
            rec = make_record(writer_no, i, t0, member)
            cores[member].writer.finished(rec)  # what the proxy does when a call ends: nothing more
            handed[member].append(rec.call_id)
            i += 1
            time.sleep(0.004)

    threads = [threading.Thread(target=load, args=(m, n)) for n, m in enumerate(cores)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    own_pg.stop("fast")  # the team's database goes away under load
    time.sleep(1.0)
    # ann's proxy restarts during the outage: its waiting calls are on disk, not in memory
    stop_load.set()
    for t in threads:
        t.join()
    waiting = cores["ann"].shipper.pending()  # type: ignore[union-attr]
    deadline = time.monotonic() + 15  # the shipping process reports the outage once it has tried the ledger
    while cores["ann"].shipper.stats.outage_since is None and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.05)
    assert waiting > 0 and cores["ann"].shipper.stats.outage_since is not None  # type: ignore[union-attr]
    cores["ann"].close()
    cores["ann"] = Core(tmp_path / "ann.toml", f"sqlite:///{tmp_path / 'ann'}.db")
    cores["ann"].start_team_shipping()
    assert cores["ann"].shipper.pending() >= waiting  # type: ignore[union-attr]
    own_pg.resume()
    for core in cores.values():
        assert core.shipper.wait_empty(60)  # type: ignore[union-attr]
    calls, slots, distinct, in_tasks = _ledger_counts(ledger)
    want = {m: len(ids) for m, ids in handed.items()}
    assert calls == want and slots == want  # every call once, the team totals exact
    assert distinct == sum(want.values()) == in_tasks
    for core in cores.values():
        core.close()


def test_a_batch_sent_again_after_a_lost_acknowledgement_adds_nothing(
    pg_server, tmp_path: Path, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ledger = pg_server.create_database()
    core = Core(
        _config(tmp_path / "c.toml", config_path.read_text(), "ann", ledger), f"sqlite:///{tmp_path / 'c.db'}"
    )
    core.start_team_shipping()
    shipper = core.shipper
    assert shipper is not None
    recs = [make_record(0, i, slot_of(time.time()) - 900, "ann") for i in range(40)]
    for rec in recs:
        core.writer.finished(rec)
    assert core.writer.flush() and shipper.wait_empty()
    before = _ledger_counts(ledger)
    # as if the ledger had committed but the answer never came back: the same outbox rows again
    with core.db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (call_id, payload, created_at) VALUES (?, ?, ?)",
            [(r.call_id, _payload(r), time.time()) for r in recs[:25]],
        )
    assert shipper.wait_empty()
    assert _ledger_counts(ledger) == before == ({"ann": 40}, {"ann": 40}, 40, 40)
    assert shipper.stats.shipped == 40 and shipper.stats.skipped == 25
    core.close()


def test_the_ledger_gets_the_estimated_counts_and_the_executor_totals_the_local_log_has(
    pg_server, tmp_path: Path, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """What main added to the totals since team mode was built travels too: estimated calls per slot and
    task, and the scorecard's totals by prompt size, so the ledger's figures equal the local log's."""
    from app.core.queries import dashboard
    from app.core.queries.executors import scorecard

    ledger = pg_server.create_database()
    core = Core(
        _config(tmp_path / "c.toml", config_path.read_text(), "ann", ledger), f"sqlite:///{tmp_path / 'c.db'}"
    )
    core.start_team_shipping()
    assert core.shipper is not None
    recs = [make_record(0, i, slot_of(time.time()) - 900, "ann") for i in range(30)]
    for rec in recs[::3]:
        rec.usage_estimated, rec.cost_source = True, "estimated"
    for rec in recs:
        core.writer.finished(rec)
    assert core.writer.flush() and core.shipper.wait_empty()
    engine = open_database(ledger)
    try:
        local, shipped = (dashboard.tiles(db, since=0) for db in (core.db, engine))
        assert shipped["estimated_calls"] == local["estimated_calls"] == 10
        assert (shipped["calls"], shipped["spend_range"]) == (
            local["calls"],
            pytest.approx(local["spend_range"]),
        )

        def card(db):  # type: ignore[no-untyped-def]
            return {
                m["target"]: [(b["calls"], b["failed"]) for b in m["buckets"]]
                for m in scorecard(db, since=0)["models"]
            }

        assert card(engine) == card(core.db) and sum(c for b in card(engine).values() for c, _f in b) == 30
    finally:
        engine.dispose()
        core.close()


def _payload(rec) -> bytes:  # type: ignore[no-untyped-def]
    from app.core.team_ship import payload

    return payload(rec)


def test_the_outbox_is_bounded_and_counts_what_it_drops(tmp_path: Path, config_path: Path) -> None:
    core = Core(
        _config(
            tmp_path / "c.toml",
            config_path.read_text(),
            "ann",
            f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        ),
        f"sqlite:///{tmp_path / 'c.db'}",
    )
    core.start_team_shipping()
    shipper = core.shipper
    assert shipper is not None
    shipper.max_rows = 30
    for i in range(50):
        core.writer.finished(make_record(0, i, time.time() - 60, "ann"))
    assert core.writer.flush()
    assert shipper.pending() == 30 and shipper.stats.dropped == 20
    with core.db.connect() as conn:
        kept = [
            orjson.loads(p)["row"]["call_id"]
            for (p,) in conn.exec_driver_sql("SELECT payload FROM outbox ORDER BY id")
        ]
        assert (
            conn.exec_driver_sql("SELECT count(*) FROM calls").scalar() == 50
        )  # the local log keeps everything
    assert kept == [f"w0-{i}" for i in range(20, 50)]  # the oldest went first
    core.close()


def test_a_real_proxy_ships_its_calls_without_their_bodies(
    pg_server, tmp_path: Path, mock, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from app.proxy.server import ProxyThread
    from tests.conftest import PROVIDER_KEY

    ledger = pg_server.create_database()
    path = _config(config_path, config_path.read_text() + "\n[logging]\nstore_bodies = true\n", "ann", ledger)
    core = Core(path, f"sqlite:///{tmp_path / 'p.db'}")
    core.set_provider_key("cheapco", PROVIDER_KEY)
    with ProxyThread(core, port=0) as proxy:
        for i in range(3):
            r = httpx.post(
                f"{proxy.url}/v1/chat/completions",
                json={"model": "default", "messages": user(f"hi {i}")},
                headers={"Authorization": f"Bearer {core.token()}"},
                timeout=20,
            )
            assert r.status_code == 200
        time.sleep(0.3)
        assert core.writer.flush() and core.shipper is not None and core.shipper.wait_empty()
    engine = open_database(ledger)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT member, machine, outcome, request_body, response_body, task_id FROM calls")
        ).all()
    engine.dispose()
    with core.db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM calls WHERE request_body IS NOT NULL").scalar() == 3
    assert len(rows) == 3 and all(
        r[0] == "ann" and r[1] and r[2] == "ok" and r[3] is None and r[4] is None and r[5] is not None
        for r in rows
    )
    core.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_shipping_proxy_processes_fill_one_ledger_exactly(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two developers' `downshift serve` processes, each with its own local log, ship to one ledger while their
    agents call them concurrently: the ledger's totals equal the calls each answered, per member."""
    import signal

    from app.testing.mock_upstream import MockUpstream
    from bench.soak import TOKEN
    from tests.test_team_gateway import serve

    ledger = pg_server.create_database()
    open_database(ledger).dispose()
    answered: dict[str, int] = {}
    with MockUpstream() as mock:
        procs = {
            m: serve(
                tmp_path,
                m,
                mock.base_url,
                f"sqlite:///{tmp_path / m}.db",
                f'member = "{m}"\nledger = "{ledger}"\n',
            )
            for m in ("ann", "bob")
        }

        def agent(member: str) -> None:
            url = procs[member][1]
            with httpx.Client(timeout=20) as client:
                n = 0
                for i in range(120):
                    r = client.post(
                        f"{url}/v1/chat/completions",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        json={"model": "default", "messages": user(f"{member} {i}")},
                    )
                    n += r.status_code == 200
            answered[member] = n

        threads = [threading.Thread(target=agent, args=(m,)) for m in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        deadline = time.monotonic() + 30
        while _ledger_counts(ledger)[0] != answered and time.monotonic() < deadline:
            time.sleep(0.2)
        for proc, _url in procs.values():
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    calls, slots, distinct, in_tasks = _ledger_counts(ledger)
    assert answered == {"ann": 120, "bob": 120}
    assert calls == answered and slots == answered and distinct == in_tasks == 240


def test_shipping_runs_in_a_process_of_its_own_and_restarts_if_it_dies(
    pg_server, tmp_path: Path, config_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The batch work (parse, group, send) holds the interpreter's lock while it runs: in the proxy's process it
    delayed the event loop (p90 +1 ms at 850 calls/s). None of it may run here; the rows still all arrive."""
    import os
    import signal

    from app.core.team_ship import TeamShipper

    here: list[int] = []
    monkeypatch.setattr(TeamShipper, "ship_once", lambda self: here.append(1) or 0)
    ledger = pg_server.create_database()
    core = Core(
        _config(tmp_path / "c.toml", config_path.read_text(), "ann", ledger), f"sqlite:///{tmp_path / 'c.db'}"
    )
    core.start_team_shipping()
    shipper = core.shipper
    assert shipper is not None and shipper._proc is not None and shipper._proc.pid != os.getpid()
    t0 = slot_of(time.time()) - 900
    for i in range(20):
        core.writer.finished(make_record(0, i, t0, "ann"))
    assert core.writer.flush() and shipper.wait_empty(60)
    first = shipper._proc
    os.kill(first.pid, signal.SIGKILL)  # the shipping process dies: the proxy starts another
    for i in range(20, 35):
        core.writer.finished(make_record(0, i, t0, "ann"))
    assert core.writer.flush()
    deadline = time.monotonic() + 30
    while shipper._proc is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shipper.wait_empty(60)
    assert _ledger_counts(ledger)[0] == {"ann": 35} and shipper.stats.shipped == 35
    assert here == []  # nothing shipped from the proxy's own process
    proc = shipper._proc
    core.close()
    assert proc.poll() is not None  # and it ends with the proxy
