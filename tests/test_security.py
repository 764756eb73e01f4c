"""Security: loopback only by default, the token on every endpoint (and rotation without a restart), web
pages refused (DNS rebinding, foreign Origin, CORS preflight), provider keys nowhere but the keyring (not
the config, the database, the logs or any export), stored bodies redacted, private file modes."""

from __future__ import annotations

import logging
import socket
import stat
import time
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import BACKUP_KEY, PREMIUM_KEY, PROVIDER_KEY, logged_calls

from app.cli import main as cli
from app.core.config import Config, default_config, is_loopback_host, is_private_file, save_config
from app.proxy.accounting import REDACTED, redact, redact_text
from app.testing.script import Reply

KEYS = (PROVIDER_KEY, BACKUP_KEY, PREMIUM_KEY)
CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ----------------------------------------------------------------------------------------------- binding


def test_binds_loopback_by_default(proxy, core) -> None:  # type: ignore[no-untyped-def]
    assert Config().host == "127.0.0.1" and default_config().host == "127.0.0.1" and not Config().allow_remote
    assert proxy.host == "127.0.0.1"
    outside = _outside_address()
    if outside is not None:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{outside}:{proxy.port}/health", timeout=2)


def _outside_address() -> str | None:
    """An address of this machine that is not loopback (None when there is none)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_binding_elsewhere_needs_the_setting_and_warns(core, caplog) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from app.proxy.server import ProxyThread

    with pytest.raises(OSError, match="allow_remote"):
        ProxyThread(core, host="0.0.0.0", port=0).start()
    core.config_store.save(replace(core.config, allow_remote=True))
    notices: list[tuple[str, str]] = []
    core.events.subscribe("notice", notices.append)
    with caplog.at_level(logging.WARNING), ProxyThread(core, host="0.0.0.0", port=0) as proxy:
        assert proxy.port
    assert any("other machines" in r.getMessage() for r in caplog.records)
    assert notices and "other machines" in notices[0][0]


def test_loopback_names() -> None:
    for host in (
        "127.0.0.1",
        "127.5.6.7",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "app.localhost",
        "::ffff:127.0.0.1",
    ):
        assert is_loopback_host(host), host
    for host in (
        "0.0.0.0",
        "evil.example",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
        "10.0.0.1",
        "",
        "::",
    ):
        assert not is_loopback_host(host), host


# ----------------------------------------------------------------------------------------------- token

ENDPOINTS = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/chat/completions", CHAT),
    ("POST", "/v1/messages", {**CHAT, "max_tokens": 10}),
    ("POST", "/v1/messages/count_tokens", CHAT),
    ("POST", "/v1/responses", {"model": "default", "input": "hi"}),
    ("POST", "/responses", {"model": "default", "input": "hi"}),
    ("GET", "/v1/models", None),
    ("POST", "/v1/unknown", {}),
]


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
def test_token_required_on_every_endpoint(proxy, mock, token, method, path, body) -> None:  # type: ignore[no-untyped-def]
    for headers in (
        {},
        auth("ds-wrong-token-0123456789abcdef"),
        {"x-api-key": "nope"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        auth(token[:-1]),
        auth(token + "x"),
    ):
        r = httpx.request(method, f"{proxy.url}{path}", json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
    assert mock.requests == []
    r = httpx.request(method, f"{proxy.url}{path}", json=body, headers=auth(token))
    assert r.status_code == (404 if path == "/v1/unknown" else 200)
    r = httpx.request(method, f"{proxy.url}{path}", json=body, headers={"x-api-key": token})
    assert r.status_code == (404 if path == "/v1/unknown" else 200)


def test_health_needs_no_token_and_says_nothing_else(proxy) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{proxy.url}/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "paused": False}
    assert httpx.get(f"{proxy.url}/health", headers={"Host": "evil.example"}).status_code == 403


def test_token_is_compared_in_constant_time(proxy, token, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hmac

    from app.proxy import auth as gate

    calls = []
    real = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(gate.hmac, "compare_digest", spy)
    assert (
        httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=auth("ds-guess")).status_code == 401
    )
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=auth(token)).status_code == 200
    assert calls and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_rotated_token_applies_to_a_running_proxy(proxy, token, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"{proxy.url}/v1/chat/completions"
    assert httpx.post(url, json=CHAT, headers=auth(token)).status_code == 200
    assert cli(["token", "rotate"]) == 0
    assert cli(["token"]) == 0
    new = capsys.readouterr().out.strip().splitlines()[-1]
    assert new.startswith("ds-") and new != token
    assert httpx.post(url, json=CHAT, headers=auth(new)).status_code == 200  # at once, no restart
    assert httpx.post(url, json=CHAT, headers=auth(token)).status_code == 401  # and the old one is dead


def test_old_token_stops_working_without_anyone_using_the_new_one(proxy, token) -> None:  # type: ignore[no-untyped-def]
    proxy.server.gate.TOKEN_REFRESH_S = 0.2
    url = f"{proxy.url}/v1/chat/completions"
    assert httpx.post(url, json=CHAT, headers=auth(token)).status_code == 200
    assert cli(["token", "rotate"]) == 0
    deadline = time.monotonic() + 5
    while httpx.post(url, json=CHAT, headers=auth(token)).status_code == 200:
        assert time.monotonic() < deadline, "the rotated-out token still works"
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------- web pages


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8765",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
        "0.0.0.0:8765",
        "192.168.1.10",
        "[fe80::1]:8765",
    ],
)
def test_dns_rebinding_host_is_refused_before_routing(proxy, mock, token, core, host) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers={**auth(token), "Host": host})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_host"
    r = httpx.post(
        f"{proxy.url}/v1/messages", json={**CHAT, "max_tokens": 5}, headers={**auth(token), "Host": host}
    )
    assert r.status_code == 403 and r.json()["type"] == "error"
    assert httpx.get(f"{proxy.url}/v1/models", headers={**auth(token), "Host": host}).status_code == 403
    assert mock.requests == []
    assert logged_calls(core) == []  # refused requests are counted, not logged (tests/test_refusals.py)
    assert proxy.server.refusals.counts == {"forbidden_host": 3}


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "127.0.0.2", "localhost."])
def test_loopback_hosts_pass(proxy, token, host) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions", json=CHAT, headers={**auth(token), "Host": f"{host}:{proxy.port}"}
    )
    assert r.status_code == 200, r.text


def test_browser_origins_are_refused(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    url = f"{proxy.url}/v1/chat/completions"
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://127.0.0.1:{proxy.port}"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
    ):
        r = httpx.post(url, json=CHAT, headers={**auth(token), **headers})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin", headers
    r = httpx.options(
        url,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.options(url)
    assert r.status_code == 403
    assert mock.requests == []
    assert all(x["status"] == 403 for x in logged_calls(core))


def test_an_allowed_origin_gets_cors(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    core.config_store.save(replace(core.config, allowed_origins=("https://my-agent-ui.example",)))
    url = f"{proxy.url}/v1/chat/completions"
    r = httpx.options(
        url, headers={"Origin": "https://my-agent-ui.example", "Access-Control-Request-Method": "POST"}
    )
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://my-agent-ui.example"
    assert "authorization" in r.headers["access-control-allow-headers"]
    r = httpx.post(url, json=CHAT, headers={**auth(token), "Origin": "https://my-agent-ui.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://my-agent-ui.example"
    r = httpx.post(url, json=CHAT, headers={"Origin": "https://my-agent-ui.example"})
    assert r.status_code == 401  # an allowed page still needs the token


# ----------------------------------------------------------------------------------------------- keys nowhere


@pytest.fixture
def store_bodies(config_path: Path) -> Path:
    config_path.write_text(config_path.read_text() + "\n[logging]\nstore_bodies = true\n")
    return config_path


def test_provider_keys_appear_nowhere(
    store_bodies, proxy, mock, token, core, tmp_path: Path, caplog, capsys
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    url = proxy.url
    echo = "Incorrect API key provided: {key}. You can find your API key at https://example.com."
    # a provider that refuses the key and echoes it back (several do), on each API
    mock.enqueue(Reply(status=401, error=echo.format(key=PROVIDER_KEY)))
    r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(token))
    assert r.status_code == 401 and PROVIDER_KEY not in r.text  # not even to the agent
    mock.enqueue(
        Reply(
            status=403, error={"error": {"message": f"key {PROVIDER_KEY} is disabled", "key": PROVIDER_KEY}}
        )
    )
    r = httpx.post(f"{url}/v1/messages", json={**CHAT, "max_tokens": 10}, headers={"x-api-key": token})
    assert r.status_code == 403 and PROVIDER_KEY not in r.text
    core.config_store.update(lambda c: c.with_active("premium"))
    mock.enqueue(Reply(status=401, error=echo.format(key=PREMIUM_KEY)))
    r = httpx.post(f"{url}/v1/messages", json={**CHAT, "max_tokens": 10}, headers={"x-api-key": token})
    assert r.status_code == 401 and PREMIUM_KEY not in r.text
    core.config_store.update(lambda c: c.with_active("cheap"))
    # a primary failing with the key in its 500 body, then the fallback (the backup key) answering
    mock.enqueue(Reply(status=500, error=f"upstream auth {PROVIDER_KEY} broke"), Reply(text="ok"))
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(token)).status_code == 200
    # the agent pastes keys into its own conversation (a .env it read), streamed and not
    leak = f"here is my .env: OPENAI_API_KEY={PROVIDER_KEY} ANTHROPIC_API_KEY={PREMIUM_KEY} and {BACKUP_KEY} token {token}"
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": leak}],
        "metadata": {"api_key": BACKUP_KEY},
    }
    assert (
        httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth(token)).status_code == 200
    )  # echoed back
    assert (
        httpx.post(
            f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=auth(token)
        ).status_code
        == 200
    )
    assert (
        httpx.post(
            f"{url}/v1/responses", json={"model": "default", "input": leak}, headers=auth(token)
        ).status_code
        == 200
    )
    assert all(req.api_key in KEYS for req in mock.requests)  # the keys did go where they belong
    assert len(logged_calls(core)) == 7
    assert _bodies(core)

    # every export
    exports: list[str] = []
    assert (
        cli(
            [
                "export",
                "calls",
                "--format",
                "csv",
                "--out",
                str(tmp_path / "calls.csv"),
                "--config",
                str(core.config_path),
                "--db",
                core.db_url,
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "export",
                "calls",
                "--format",
                "json",
                "--out",
                str(tmp_path / "calls.json"),
                "--config",
                str(core.config_path),
                "--db",
                core.db_url,
            ]
        )
        == 0
    )
    exports += [(tmp_path / "calls.csv").read_text(), (tmp_path / "calls.json").read_text()]
    for command in (
        ["calls", "--json", "--limit", "100"],
        ["stats", "--json"],
        ["calls"],
        ["stats"],
        ["tasks", "--json"],
    ):
        assert cli([*command, "--config", str(core.config_path), "--db", core.db_url]) == 0
        exports.append(capsys.readouterr().out)
    assert "Incorrect API key provided" in exports[0]  # the errors are there, the keys are not

    core.writer.flush()
    db_path = Path(core.db_url.removeprefix("sqlite:///"))
    files = [core.config_path, db_path, db_path.with_name(db_path.name + "-wal")]
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for key in (*KEYS, token):
        for f in files:
            if f.exists():
                assert key.encode() not in f.read_bytes(), (key, f)
        assert key not in logs, key
        for i, text in enumerate(exports):
            assert key not in text, (key, i)
        for body in _bodies(core):
            assert key.encode() not in body, key
    assert any(REDACTED in b for b in _bodies(core))


def _bodies(core) -> list[bytes]:  # type: ignore[no-untyped-def]
    with core.db.connect() as conn:
        rows = conn.exec_driver_sql("SELECT request_body, response_body FROM calls").all()
    return [b for row in rows for b in row if b is not None]


def test_stored_bodies_are_redacted(store_bodies, proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    secrets = {
        "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "openrouter": "sk-or-v1-0123456789abcdef0123456789abcdef",
        "openai": "sk-proj-AbCdEfGhIjKlMnOp0123456789",
        "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "downshift": "ds-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp",
        "password": "correct-horse-battery",
        "mistral": "MiStRaLkEyWiThNoPrEfIx0123",
    }
    content = (
        f"key {secrets['anthropic']}, router {secrets['openrouter']}, OPENAI_API_KEY={secrets['openai']}\n"
        f"curl -H 'Authorization: Bearer {secrets['bearer']}' -H 'x-api-key: {secrets['mistral']}'\n"
        f"token {secrets['downshift']}\n" + orjson.dumps({"password": secrets["password"]}).decode()
    )
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": content}],
        "metadata": {"authorization": f"Bearer {secrets['bearer']}"},
    }
    mock.enqueue(Reply(text=f"I see {secrets['anthropic']} and {secrets['openrouter']}"))
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=auth(token))
    assert r.status_code == 200
    logged_calls(core)
    request_body, response_body = _bodies(core)
    for name, value in secrets.items():
        assert value.encode() not in request_body, name
        assert value.encode() not in response_body, name
    assert request_body.count(REDACTED) >= len(secrets)
    assert b'"model":"default"' in request_body  # the rest of the body is still there to read


def test_redaction_patterns() -> None:
    cases = {
        b'{"Authorization": "Bearer abcdefgh12345678"}': b'{"Authorization": "Bearer [REDACTED]"}',
        b'{"x-api-key":"short-but-secret"}': b'{"x-api-key":"[REDACTED]"}',
        b'{"api_key": "k"}': b'{"api_key": "[REDACTED]"}',
        b'"{\\"token\\": \\"abcdef123\\"}"': b'"{\\"token\\": \\"[REDACTED]\\"}"',
        b"GROQ_API_KEY=gsk_abcdefghijklmnopqrstuvwx": b"GROQ_API_KEY=[REDACTED]",
        b"use sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAA now": b"use sk-ant-[REDACTED] now",
        b"use ds-AAAAAAAAAAAAAAAAAAAAAAAAAAAA now": b"use ds-[REDACTED] now",
        b"AIzaSyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA": b"AIza[REDACTED]",
    }
    for raw, expected in cases.items():
        assert redact(raw) == expected, raw
    untouched = (
        b'{"max_tokens": 1024, "input_tokens": 3, "model": "sk-mini", "text": "the desk-top app", "token": 5}'
    )
    assert redact(untouched) == untouched
    assert redact(b"my key is plainsecretvalue99 ok", [b"plainsecretvalue99"]) == b"my key is [REDACTED] ok"
    assert redact_text("refused key abcdefgh-1234", ["abcdefgh-1234"]) == "refused key [REDACTED]"
    big = (
        b'{"messages": ['
        + b'{"role": "user", "content": "max_tokens api token"},' * 4000
        + b'"Bearer abcdefghijklmnop"]}'
    )
    assert redact(big).endswith(b'"Bearer [REDACTED]"]}')


# ----------------------------------------------------------------------------------------------- file modes


def test_config_secrets_and_database_files_are_private(tmp_path: Path, memory_keyring) -> None:  # type: ignore[no-untyped-def]
    from keyring.backends import fail

    from app.core.engine import Core
    from app.core.secrets import SecretStore

    config = tmp_path / "cfg" / "config.toml"
    store = SecretStore(tmp_path / "data" / "secrets.json", backend=fail.Keyring())
    core = Core(
        config, f"sqlite:///{tmp_path / 'data' / 'log.db'}", secrets=store
    )  # writes the default config
    try:
        core.set_provider_key("ollama", "sk-test-private-0123456789")
        core.token()
        core.config_store.update(lambda c: c)  # a save
    finally:
        core.close()
    for path in (config, tmp_path / "data" / "secrets.json", tmp_path / "data" / "log.db"):
        assert is_private_file(path), (path, oct(path.stat().st_mode))
    save_config(default_config(), tmp_path / "other.toml")
    assert stat.S_IMODE((tmp_path / "other.toml").stat().st_mode) == 0o600


def test_an_old_world_readable_database_is_made_private(tmp_path: Path) -> None:
    from app.core.storage.db import open_database

    path = tmp_path / "log.db"
    open_database(f"sqlite:///{path}").dispose()
    path.chmod(0o644)
    open_database(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
