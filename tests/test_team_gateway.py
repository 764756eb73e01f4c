"""Shape 2, a shared team gateway: member tokens (stored hashed), revocation at the next request, a rate limit
per member, every call row carrying its member; then two real `downshift serve` instances on one PostgreSQL
under load, one of them stopped mid-way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.cli import main as cli
from app.core.members import MemberError, add_member, list_members, revoke_member
from tests.analytics_support import user

ROOT = Path(__file__).resolve().parent.parent


def _chat(url: str, token: str, content: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "default", "messages": user(content)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )


@pytest.mark.both_backends
def test_member_tokens_log_the_member_and_revocation_applies_to_the_next_request(core, proxy) -> None:  # type: ignore[no-untyped-def]
    ann = add_member(core.db, "ann")
    bob = add_member(core.db, "bob")
    assert ann.startswith("dsm-") and ann != bob
    assert _chat(proxy.url, ann).status_code == 200
    r = httpx.post(
        f"{proxy.url}/v1/messages",
        json={"model": "default", "max_tokens": 50, "messages": user("hi")},
        headers={"x-api-key": bob, "anthropic-version": "2023-06-01"},
        timeout=20,
    )
    assert r.status_code == 200
    assert _chat(proxy.url, core.token()).status_code == 200  # the gateway's own local token still works
    revoke_member(core.db, "ann")
    refused = _chat(proxy.url, ann)  # at once: no cache to wait out
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_token"
    assert "revoked" in refused.json()["error"]["message"]
    wrong = ann[:-4] + ("AAAA" if not ann.endswith("AAAA") else "BBBB")
    assert _chat(proxy.url, wrong).json()["error"]["code"] == "bad_token"
    assert _chat(proxy.url, "dsm-nonsense").status_code == 401
    core.writer.flush()
    with core.db.connect() as conn:
        rows = conn.execute(
            text("SELECT member, outcome, status, error_kind FROM calls ORDER BY started_at")
        ).all()
        stored = conn.execute(text("SELECT name, token_id, salt, token_hash FROM member_tokens")).all()
    assert [(m, o, s) for m, o, s, _ in rows] == [
        ("ann", "ok", 200),
        ("bob", "ok", 200),
        (None, "ok", 200),
    ]
    # refused member tokens are counted at the gate like every 401, never logged (no rows to flood the ledger)
    assert proxy.server.refusals.counts == {"revoked_token": 1, "bad_token": 2}
    # hashed: neither secret appears anywhere in the table
    for token in (ann, bob):
        secret = token.split("-", 2)[2]
        assert all(secret not in "".join(map(str, row)) for row in stored)
    assert [(m["name"], m["active"]) for m in list_members(core.db)] == [("ann", False), ("bob", True)]
    with pytest.raises(MemberError, match="already has a token"):
        add_member(core.db, "bob")
    again = add_member(core.db, "ann")  # a revoked member can be given a new token; the old one stays dead
    assert _chat(proxy.url, again).status_code == 200 and _chat(proxy.url, ann).status_code == 401


def test_rate_limit_per_member_token(core, proxy, config_path: Path) -> None:  # type: ignore[no-untyped-def]
    # 6 a minute: a burst of one, then one every 10 s (slow enough that a loaded machine cannot refill it)
    config_path.write_text(config_path.read_text() + "\n[team]\nrate_per_minute = 6\n")
    ann, bob = add_member(core.db, "ann"), add_member(core.db, "bob")
    codes = [_chat(proxy.url, ann).status_code for _ in range(3)]
    assert codes == [200, 429, 429]
    limited = _chat(proxy.url, ann)
    assert (
        limited.json()["error"]["code"] == "rate_limited" and 1 <= int(limited.headers["Retry-After"]) <= 10
    )
    assert _chat(proxy.url, bob).status_code == 200  # another member's budget is their own
    core.writer.flush()
    with core.db.connect() as conn:  # a rate-limited call is logged, as its member's
        limited_rows = conn.execute(
            text("SELECT member, status, error_kind FROM calls WHERE status = 429")
        ).all()
    assert limited_rows == [("ann", 429, "rate_limited")] * 3


def test_the_bucket_refills_at_the_rate_and_holds_a_burst() -> None:
    from app.core.members import RateLimiter

    limiter = RateLimiter(600)  # 10 a second, bursts of 100
    assert all(limiter.allow("ann", now=100.0) == 0 for _ in range(100))
    assert limiter.allow("ann", now=100.0) == pytest.approx(0.1)
    assert limiter.allow("ann", now=100.35) == 0 and limiter.allow("ann", now=100.35) == 0  # 3.5 tokens back
    assert limiter.allow("bob", now=100.0) == 0
    assert RateLimiter(0).allow("ann") == 0


def test_member_cli_prints_the_token_once_and_lists_without_it(core, config_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    common = ["--config", str(config_path), "--db", core.db_url]
    assert cli([*common, "member", "add", "carol"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert re.fullmatch(r"dsm-[0-9a-f]{16}-[A-Za-z0-9_-]+", token) and "shown once" in out.err
    assert cli([*common, "member", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert token.split("-", 2)[2] not in listed and json.loads(listed)[0]["name"] == "carol"
    assert cli([*common, "member", "add", "carol"]) == 1
    assert "already has a token" in capsys.readouterr().err
    assert cli([*common, "member", "revoke", "carol"]) == 0
    assert cli([*common, "member", "revoke", "nobody"]) == 1


# ----------------------------------------------------------------------------------- two gateway instances


def serve(
    workdir: Path, name: str, mock_url: str, url: str, team: str = ""
) -> tuple[subprocess.Popen[str], str]:
    """`downshift serve` in a process of its own, logging to `url`, with `team` added to its [team] table."""
    from bench.soak import KEYS, TOKEN, config_text

    home = workdir / name
    home.mkdir()
    config = home / "config.toml"
    config.write_text(config_text(mock_url) + f'\n[team]\nmachine = "{name}"\nrate_per_minute = 0\n{team}')
    env = {
        **os.environ,
        **KEYS,
        "DOWNSHIFT_TOKEN": TOKEN,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--db", url, "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"proxy on (http://\S+)", line)
    if not found:
        proc.kill()
        raise AssertionError(f"serve did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    return proc, found.group(1)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_gateway_instances_on_one_ledger_count_every_call_once_and_survive_losing_one(
    pg_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from app.core.storage.db import open_database
    from app.testing.mock_upstream import MockUpstream

    url = pg_server.create_database()
    engine = open_database(url)
    tokens = {name: add_member(engine, name) for name in ("ann", "bob", "cem")}
    with MockUpstream() as mock:
        a, a_url = serve(tmp_path, "gw-a", mock.base_url, url)
        b, b_url = serve(tmp_path, "gw-b", mock.base_url, url)
        ok: dict[str, int] = dict.fromkeys(tokens, 0)
        answered_by_b_after_stop = 0
        stopped = threading.Event()
        lock = threading.Lock()
        problems: list[str] = []

        done = threading.Event()

        def member_load(name: str) -> None:
            nonlocal answered_by_b_after_stop
            with httpx.Client(timeout=20) as client:
                i = -1
                while not done.is_set():
                    i += 1
                    # a load balancer's round robin; once gw-a is gone, everything goes to gw-b
                    base = b_url if stopped.is_set() or i % 2 else a_url
                    for attempt_base in (base, b_url):
                        try:
                            r = client.post(
                                f"{attempt_base}/v1/chat/completions",
                                json={"model": "default", "messages": user(f"{name} {i}")},
                                headers={"Authorization": f"Bearer {tokens[name]}"},
                            )
                        except httpx.TransportError:
                            continue  # gw-a went away mid-call: the balancer retries on gw-b
                        if r.status_code == 200:
                            with lock:
                                ok[name] += 1
                                answered_by_b_after_stop += stopped.is_set() and attempt_base == b_url
                            break
                        if r.status_code == 503 and attempt_base == a_url:
                            continue  # shutting down
                        problems.append(f"{name} {i}: {r.status_code} {r.text[:200]}")
                        break

        threads = [threading.Thread(target=member_load, args=(name,)) for name in tokens]
        for t in threads:
            t.start()
        time.sleep(1.5)
        a.send_signal(signal.SIGTERM)  # an instance goes away under load (a deploy, a scale-in)
        stopped.set()
        assert a.wait(30) == 0
        time.sleep(1.5)  # gw-b carries the load alone for a while
        done.set()
        for t in threads:
            t.join(120)
        assert not problems, problems[:5]
        assert answered_by_b_after_stop > 0
        # the revocation made through one instance's database applies on the other at the next request
        revoke_member(engine, "cem")
        assert _chat(b_url, tokens["cem"]).status_code == 401
        b.send_signal(signal.SIGTERM)
        assert b.wait(30) == 0
        for p in (a, b):
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
    try:
        with engine.connect() as conn:
            logged = dict(
                conn.execute(
                    text("SELECT member, count(*) FROM calls WHERE outcome = 'ok' GROUP BY member")
                ).all()
            )
            slots = dict(
                conn.execute(
                    text("SELECT member, sum(calls - errors) FROM usage_slots GROUP BY member")
                ).all()
            )
            machines = dict(conn.execute(text("SELECT machine, count(*) FROM calls GROUP BY machine")).all())
            in_flight = conn.execute(text("SELECT count(*) FROM calls WHERE outcome = 'in_flight'")).scalar()
        assert logged == ok  # every answered call has its row, once, under its member
        assert {m: int(n) for m, n in slots.items() if m} == ok  # and the team totals agree exactly
        assert set(machines) == {"gw-a", "gw-b"} and in_flight == 0
        assert all(n > 20 for n in ok.values()), ok
    finally:
        engine.dispose()
        pg_server.drop_database(url)


def test_a_member_budget_blocks_only_that_member(core, proxy, config_path: Path) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(
        config_path.read_text() + '\n[[budgets]]\nperiod = "day"\nlimit_usd = 0.000001\n'
        'action = "block"\nmember = "ann"\n'
    )
    ann, bob = add_member(core.db, "ann"), add_member(core.db, "bob")
    assert _chat(proxy.url, ann).status_code == 200  # this call's cost reaches ann's limit
    blocked = _chat(proxy.url, ann)
    assert blocked.status_code == 402 and "member ann" in blocked.json()["error"]["message"]
    assert _chat(proxy.url, bob).status_code == 200 and _chat(proxy.url, core.token()).status_code == 200
    (status,) = core.policy.budgets.status()
    assert status["member"] == "ann" and status["reached"]
    core.writer.flush()
    core.policy.budgets._by_member.clear()  # as after a restart: the member's spend is read back from the log
    core.policy.budgets.load(core.config, time.time())
    assert _chat(proxy.url, ann).status_code == 402 and _chat(proxy.url, bob).status_code == 200


def test_only_a_starting_proxy_marks_its_own_machine_s_calls_interrupted(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A CLI command opening the ledger on the gateway's host must not mark the running gateway's live calls."""
    import socket

    from app.core.engine import Core

    url = pg_server.create_database()
    gateway = Core(tmp_path / "gw.toml", url)
    with gateway.db.begin() as conn:
        for call_id, machine in (("mine", socket.gethostname()), ("theirs", "gw-2")):
            conn.execute(
                text(
                    "INSERT INTO calls (call_id, started_at, client_api, endpoint, streamed, outcome, input_tokens,"
                    " output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens,"
                    " unpriced, attempts, bytes_in, bytes_out, tool_calls, tool_failures, escalated, machine) VALUES"
                    " (:c, 1, 'openai', '/x', false, 'in_flight', 0, 0, 0, 0, 0, 0, false, 1, 0, 0, 0, 0, false, :m)"
                ),
                {"c": call_id, "m": machine},
            )
    cli_like = Core(tmp_path / "gw.toml", url)  # what `downshift stats --db ...` opens
    outcomes = "SELECT call_id, outcome FROM calls ORDER BY call_id"
    with cli_like.db.connect() as conn:
        assert conn.execute(text(outcomes)).all() == [("mine", "in_flight"), ("theirs", "in_flight")]
    gateway.serving()  # the proxy starts on this machine after a crash
    with cli_like.db.connect() as conn:
        assert conn.execute(text(outcomes)).all() == [("mine", "interrupted"), ("theirs", "in_flight")]
    cli_like.close()
    gateway.close()
    pg_server.drop_database(url)
