"""Bad input is refused clearly: every client mistake is a 4xx in the caller's own API shape (never a 500),
logged, and never forwarded. A bad config file, a damaged database or a missing keyring gives a clear
message and overwrites nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import keyring.backend
import keyring.errors
import orjson
import pytest
from conftest import logged_calls, proxy_config_text

from app.core.config import Config, ConfigError, ConfigStore, default_config, load_config, save_config
from app.core.storage.db import DatabaseOpenError, open_database

ENDPOINTS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "responses": "/v1/responses",
    "count_tokens": "/v1/messages/count_tokens",
}
GOOD = {
    "openai": {"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    "anthropic": {"model": "default", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]},
    "responses": {"model": "default", "input": "hi"},
    "count_tokens": {"model": "default", "messages": [{"role": "user", "content": "hi"}]},
}
FIELD = {"openai": "messages", "anthropic": "messages", "responses": "input", "count_tokens": "messages"}


def without(body: dict, key: str) -> dict:
    return {k: v for k, v in body.items() if k != key}


def bad_bodies(api: str) -> dict[str, bytes]:
    good, field = GOOD[api], FIELD[api]
    cases = {
        "malformed_json": b'{"model": "default", "messages": [',
        "empty": b"",
        "not_an_object": b'[{"model": "default"}]',
        "a_string": b'"hello"',
        "missing_model": orjson.dumps(without(good, "model")),
        "model_not_a_string": orjson.dumps({**good, "model": 42}),
        "model_empty": orjson.dumps({**good, "model": "  "}),
        "model_huge": orjson.dumps({**good, "model": "m" * 10_000}),
        f"missing_{field}": orjson.dumps(without(good, field)),
        f"{field}_a_number": orjson.dumps({**good, field: 7}),
        f"{field}_of_numbers": orjson.dumps({**good, field: [1, 2, 3]}),
        "stream_yes": orjson.dumps({**good, "stream": "yes"}),
        "tools_not_a_list": orjson.dumps({**good, "tools": {"name": "x"}}),
        "invalid_utf8": b'{"model": "default", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    }
    if api != "responses":
        cases[f"{field}_empty"] = orjson.dumps({**good, field: []})
        cases[f"{field}_an_object"] = orjson.dumps({**good, field: {"role": "user", "content": "hi"}})
    if api != "count_tokens":
        name = "max_output_tokens" if api == "responses" else "max_tokens"
        cases.update(
            {
                "max_tokens_negative": orjson.dumps({**good, name: -1}),
                "max_tokens_zero": orjson.dumps({**good, name: 0}),
                "max_tokens_10e12": orjson.dumps({**good, name: 10**12}),
                "max_tokens_string": orjson.dumps({**good, name: "100"}),
                "max_tokens_float": orjson.dumps({**good, name: 1.5}),
                "max_tokens_true": orjson.dumps({**good, name: True}),
            }
        )
    return cases


def shape_of(api: str) -> str:
    return "anthropic" if api in ("anthropic", "count_tokens") else "openai"


def assert_shape(shape: str, body: dict, status: int) -> None:
    if shape == "anthropic":
        assert body["type"] == "error", body
        assert body["error"]["type"] in (
            "invalid_request_error",
            "request_too_large",
            "not_found_error",
            "authentication_error",
            "permission_error",
            "api_error",
            "overloaded_error",
        ), body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    else:
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert body["error"]["type"]


def post(proxy, token: str, path: str, content: bytes, **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    hdrs = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
    return httpx.post(f"{proxy.url}{path}", content=content, headers=hdrs, timeout=20)


@pytest.mark.parametrize("api", list(ENDPOINTS))
def test_client_mistakes_are_a_400_in_the_callers_shape(proxy, mock, token, core, api) -> None:  # type: ignore[no-untyped-def]
    cases = bad_bodies(api)
    for name, content in cases.items():
        r = post(proxy, token, ENDPOINTS[api], content)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert_shape(shape_of(api), r.json(), 400)
    assert mock.requests == []  # nothing bad was forwarded
    rows = logged_calls(core)
    assert len(rows) == len(cases)
    assert {(row["outcome"], row["status"]) for row in rows} == {("error", 400)}
    assert all(row["error_kind"] in ("bad_json", "bad_request") for row in rows), [
        r["error_kind"] for r in rows
    ]
    # and a good request still works after all that
    assert post(proxy, token, ENDPOINTS[api], orjson.dumps(GOOD[api])).status_code == 200


def test_messages_that_say_what_is_wrong(proxy, token) -> None:  # type: ignore[no-untyped-def]
    def message(body: dict, path: str = "/v1/chat/completions") -> str:
        r = post(proxy, token, path, orjson.dumps(body))
        assert r.status_code == 400
        data = r.json()
        return data["error"]["message"]

    assert "'model' is required" in message({"messages": [{"role": "user", "content": "x"}]})
    assert "'max_tokens' must be a whole number from 1 to" in message({**GOOD["openai"], "max_tokens": -1})
    assert "'stream' must be true or false" in message({**GOOD["openai"], "stream": "yes"})
    assert "'messages' must be a non-empty list" in message(
        {**GOOD["anthropic"], "messages": "hi"}, "/v1/messages"
    )
    r = post(proxy, token, "/v1/chat/completions", orjson.dumps({**GOOD["openai"], "max_tokens": 10**12}))
    assert r.json()["error"]["param"] == "max_tokens"


@pytest.mark.parametrize("api", ["openai", "anthropic", "responses"])
def test_wrong_content_type_is_a_415(proxy, mock, token, core, api) -> None:  # type: ignore[no-untyped-def]
    r = post(
        proxy,
        token,
        ENDPOINTS[api],
        b"model=default",
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert_shape(shape_of(api), r.json(), 415)
    r = post(
        proxy,
        token,
        ENDPOINTS[api],
        orjson.dumps(GOOD[api]),
        **{"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 415
    assert mock.requests == []
    assert [row["status"] for row in logged_calls(core)] == [415, 415]


def test_json_variants_of_content_type_are_accepted(proxy, token) -> None:  # type: ignore[no-untyped-def]
    for ctype in ("application/json; charset=utf-8", "text/plain", "application/vnd.api+json"):
        r = post(
            proxy, token, "/v1/chat/completions", orjson.dumps(GOOD["openai"]), **{"Content-Type": ctype}
        )
        assert r.status_code == 200, (ctype, r.text)


@pytest.fixture
def small_limit(config_path: Path) -> Path:
    config_path.write_text(config_path.read_text().replace("port = 0\n", "port = 0\nmax_body_mb = 0.05\n", 1))
    return config_path


@pytest.mark.parametrize("api", ["openai", "anthropic", "responses"])
def test_body_over_the_limit_is_a_413(small_limit, proxy, mock, token, core, api) -> None:  # type: ignore[no-untyped-def]
    limit = int(0.05 * 1024 * 1024)
    big = dict(GOOD[api])
    big[FIELD[api]] = (
        [{"role": "user", "content": "x" * (limit + 100)}] if api != "responses" else "x" * (limit + 100)
    )
    content = orjson.dumps(big)
    r = post(proxy, token, ENDPOINTS[api], content)
    assert r.status_code == 413
    assert_shape(shape_of(api), r.json(), 413)
    assert str(limit) in r.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(content), 8192):
            yield content[i : i + 8192]

    r = httpx.post(
        f"{proxy.url}{ENDPOINTS[api]}",
        content=chunked(),
        timeout=20,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert mock.requests == []
    # just under the limit is fine
    ok = dict(GOOD[api])
    ok[FIELD[api]] = (
        [{"role": "user", "content": "x" * (limit - 500)}] if api != "responses" else "x" * (limit - 500)
    )
    assert post(proxy, token, ENDPOINTS[api], orjson.dumps(ok)).status_code == 200
    assert [row["status"] for row in logged_calls(core)] == [413, 413, 200]


def test_body_limit_default_is_32_mb_and_follows_the_config_live(
    proxy, token, core, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert Config().max_body_mb == 32.0 and default_config().max_body_mb == 32.0
    assert proxy.server._max_body() == 32 * 1024 * 1024
    body = orjson.dumps(
        {**GOOD["openai"], "messages": [{"role": "user", "content": "x" * (33 * 1024 * 1024)}]}
    )
    r = post(proxy, token, "/v1/chat/completions", body)
    assert r.status_code == 413
    core.config_store.update(lambda c: __import__("dataclasses").replace(c, max_body_mb=40.0))
    r = post(proxy, token, "/v1/chat/completions", body)
    assert r.status_code == 200  # the new limit applies to the next request, no restart


def test_unknown_model_with_no_preset_is_a_400_in_each_shape(tmp_path: Path, mock, core) -> None:  # type: ignore[no-untyped-def]
    from app.proxy.server import ProxyThread

    text = proxy_config_text(mock.base_url)
    no_presets = text[: text.index("[[presets]]")]
    core.config_path.write_text(no_presets)
    os.utime(core.config_path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert not core.config.presets
    token = core.token()
    with ProxyThread(core, port=0) as proxy:
        for api in ("openai", "anthropic", "responses"):
            r = post(proxy, token, ENDPOINTS[api], orjson.dumps({**GOOD[api], "model": "gpt-4o"}))
            assert r.status_code == 400
            assert_shape(shape_of(api), r.json(), 400)
            assert "no routing preset" in r.json()["error"]["message"]
    assert mock.requests == []


def test_unknown_endpoints_and_methods(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    hdrs = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{proxy.url}/v1/embeddings", json={"input": "x"}, headers=hdrs)
    assert r.status_code == 404
    assert_shape("openai", r.json(), 404)
    assert "/v1/embeddings" in r.json()["error"]["message"]
    r = httpx.post(f"{proxy.url}/v1/messages/batches", json={}, headers=hdrs)
    assert r.status_code == 404
    assert_shape("anthropic", r.json(), 404)
    r = httpx.get(f"{proxy.url}/v1/chat/completions", headers=hdrs)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert_shape("openai", r.json(), 405)
    r = httpx.delete(f"{proxy.url}/v1/models", headers=hdrs)
    assert r.status_code == 405
    rows = logged_calls(core)
    assert [(x["endpoint"], x["status"]) for x in rows] == [
        ("/v1/embeddings", 404),
        ("/v1/messages/batches", 404),
        ("/v1/chat/completions", 405),
        ("/v1/models", 405),
    ]


# ----------------------------------------------------------------------------------------------- config file


def test_bad_config_file_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    from app.core.engine import Core

    path = tmp_path / "config.toml"
    path.write_text("[proxy\nport = 1")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        Core(path, f"sqlite:///{tmp_path / 'log.db'}")
    assert str(path) in str(info.value) and "not valid TOML" in str(info.value)
    assert path.read_bytes() == before  # refused, not replaced by a default
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_damaged_config_is_kept_aside_not_overwritten(tmp_path: Path, mock) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(proxy_config_text(mock.base_url))
    store = ConfigStore(path)
    assert store.current().active == "cheap"
    damaged = path.read_text().replace("[routing]", "[routing") + "\n# half an edit\n"
    path.write_text(damaged)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert store.current().active == "cheap"  # the running app keeps its last good config
    store.update(lambda c: c.with_active("premium"))  # e.g. a preset switch from the tray
    kept = sorted(tmp_path.glob("config.toml.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == damaged  # the user's edit survives, byte for byte
    assert store.kept_aside == kept[0]
    assert load_config(path).active == "premium"
    # saving over a valid file keeps nothing aside
    store.update(lambda c: c.with_active("cheap"))
    assert len(list(tmp_path.glob("config.toml.damaged-*"))) == 1


def test_save_config_keeps_an_unreadable_file_aside(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\x00\x01 not a config")
    aside = save_config(default_config(), path)
    assert aside is not None and aside.read_bytes() == b"\x00\x01 not a config"
    assert load_config(path) == default_config()


def test_remote_bind_without_the_setting_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[proxy]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="proxy.host.*allow_remote"):
        load_config(path)
    path.write_text('[proxy]\nhost = "0.0.0.0"\nallow_remote = true\n')
    assert load_config(path).allow_remote


# ----------------------------------------------------------------------------------------------- database


def test_corrupted_database_pages_are_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    engine = open_database(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page, len(data), page):  # keep the header, scramble every other page
        data[offset : offset + page] = os.urandom(page)
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(DatabaseOpenError) as info:
        open_database(f"sqlite:///{path}")
    assert str(path) in str(info.value) and "left untouched" in str(info.value)
    assert path.read_bytes() == before


def test_database_from_a_newer_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    open_database(f"sqlite:///{path}").dispose()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(DatabaseOpenError, match="newer version"):
        open_database(f"sqlite:///{path}")
    assert path.read_bytes() == before


@pytest.mark.timeout(60)
def test_serve_on_a_damaged_database_exits_with_a_message(tmp_path: Path, config_path: Path) -> None:
    db = tmp_path / "log.db"
    db.write_bytes(b"not a database at all" * 200)
    env = {**os.environ, "DOWNSHIFT_TOKEN": "ds-test-token-for-serve-0123456789"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--config",
            str(config_path),
            "--db",
            f"sqlite:///{db}",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot be opened" in proc.stderr and str(db) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert db.read_bytes() == b"not a database at all" * 200


# ----------------------------------------------------------------------------------------------- keyring


class BrokenKeyring(keyring.backend.KeyringBackend):
    """A real backend that has gone away (locked collection, D-Bus gone)."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")


def test_no_keyring_backend_falls_back_to_a_private_file_and_serves(
    tmp_path: Path, mock, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from keyring.backends import fail

    from app.core.engine import Core
    from app.core.secrets import SecretStore
    from app.proxy.server import ProxyThread

    store = SecretStore(tmp_path / "secrets.json", backend=fail.Keyring())
    assert not store.uses_keyring and "readable only by you" in store.describe()
    core = Core(config_path, f"sqlite:///{tmp_path / 'log.db'}", secrets=store)
    try:
        core.set_provider_key("cheapco", "sk-test-fallback-file-0123456789")
        with ProxyThread(core, port=0) as proxy:
            r = post(proxy, core.token(), "/v1/chat/completions", orjson.dumps(GOOD["openai"]))
            assert r.status_code == 200
        assert mock.requests[-1].api_key == "sk-test-fallback-file-0123456789"
        assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    finally:
        core.close()


def test_a_keyring_that_fails_is_a_503_not_a_crash(tmp_path: Path, mock, config_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.core.engine import Core
    from app.core.secrets import SecretStore
    from app.proxy.server import ProxyThread

    core = Core(
        config_path,
        f"sqlite:///{tmp_path / 'log.db'}",
        secrets=SecretStore(tmp_path / "s.json", backend=BrokenKeyring()),
    )
    try:
        with ProxyThread(core, port=0) as proxy:  # starts although the token cannot be read yet
            for api in ("openai", "anthropic"):
                r = post(proxy, "ds-whatever-token-0123456789", ENDPOINTS[api], orjson.dumps(GOOD[api]))
                assert r.status_code == 503
                assert_shape(shape_of(api), r.json(), 503)
                assert "locked" in r.json()["error"]["message"]
            assert httpx.get(f"{proxy.url}/health").status_code == 200
        rows = logged_calls(core)
        assert [(x["status"], x["error_kind"]) for x in rows] == [(503, "token_unavailable")] * 2
    finally:
        core.close()
    assert mock.requests == []


def test_a_provider_key_that_cannot_be_read_is_a_503(
    tmp_path: Path, mock, config_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from app.core.engine import Core
    from app.core.secrets import SecretStore
    from app.proxy.server import ProxyThread

    monkeypatch.setenv(
        "DOWNSHIFT_TOKEN", "ds-env-token-0123456789abcdef"
    )  # the token comes from the environment
    core = Core(
        config_path,
        f"sqlite:///{tmp_path / 'log.db'}",
        secrets=SecretStore(tmp_path / "s.json", backend=BrokenKeyring()),
    )
    try:
        with ProxyThread(core, port=0) as proxy:
            r = post(proxy, "ds-env-token-0123456789abcdef", "/v1/messages", orjson.dumps(GOOD["anthropic"]))
            assert r.status_code == 503
            assert_shape("anthropic", r.json(), 503)
        (row,) = logged_calls(core)
        assert (row["status"], row["error_kind"]) == (503, "keyring_unavailable")
    finally:
        core.close()
