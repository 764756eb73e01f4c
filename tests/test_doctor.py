"""`downshift doctor`: each check against the real thing it checks (files, sockets, the mock upstream as
providers, a running proxy), the readable checklist, `--json` and the exit code."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from app import doctor
from app.cli import main
from app.core.config import Config, Provider
from app.testing.mock_upstream import MockUpstream
from app.testing.ports import dead_url

GOOD = "sk-doctor-good-0123456789"


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream(require_key=GOOD) as mock:
        yield mock


def write_config(path: Path, providers: str, port: int = 0) -> Path:
    path.write_text(
        f'[proxy]\nport = {port}\n{providers}\n[[presets]]\nname = "cheap"\ndefault = "good/qwen/qwen3-coder"\n'
    )
    return path


def provider_toml(name: str, url: str, extra: str = "") -> str:
    return f'[[providers]]\nname = "{name}"\nbase_url = "{url}"\n{extra}\n'


def store_key(name: str, value: str) -> None:
    keyring.get_keyring().set_password("downshift", f"provider:{name}", value)


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_a_healthy_setup_passes_and_exits_zero(tmp_path: Path, upstream: MockUpstream, capsys) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "config.toml", provider_toml("good", upstream.base_url + "/v1"))
    store_key("good", GOOD)
    code = main(["doctor", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'log.db'}", "--no-qt"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[ok  ] provider good  5 models," in out and " ms" in out
    assert "[ok  ] keyring" in out and "MemoryKeyring" in out
    assert "everything looks fine." in out
    assert upstream.last_request.api_key == GOOD and upstream.last_request.path == "/v1/models"


def test_provider_problems_each_say_what_to_do(tmp_path: Path, upstream: MockUpstream, capsys) -> None:  # type: ignore[no-untyped-def]
    providers = "".join(
        [
            provider_toml("good", upstream.base_url + "/v1"),
            provider_toml("refused", upstream.base_url + "/v1"),
            provider_toml("nokey", upstream.base_url + "/v1"),
            provider_toml("gone", dead_url()),
            provider_toml("lab", dead_url(), "local = true"),
            provider_toml("wrongurl", upstream.base_url + "/v2"),
        ]
    )
    config = write_config(tmp_path / "config.toml", providers)
    for name in ("good", "gone", "wrongurl"):
        store_key(name, GOOD)
    store_key("refused", "sk-not-this-one")
    code = main(
        ["doctor", "--json", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'log.db'}", "--no-qt"]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["ok"] is False
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["provider good"]["status"] == "ok" and checks["provider good"]["details"]["models"] == 5
    assert (
        checks["provider refused"]["status"] == "fail"
        and "refused (HTTP 401)" in checks["provider refused"]["summary"]
    )
    assert checks["provider refused"]["fix"].startswith("downshift key set refused")
    assert (
        checks["provider nokey"]["status"] == "fail"
        and checks["provider nokey"]["fix"] == "downshift key set nokey"
    )
    assert (
        checks["provider gone"]["status"] == "fail" and "cannot reach" in checks["provider gone"]["summary"]
    )
    assert checks["provider lab"]["status"] == "warn" and "not running" in checks["provider lab"]["summary"]
    assert (
        checks["provider wrongurl"]["status"] == "fail"
        and "HTTP 404" in checks["provider wrongurl"]["summary"]
    )
    assert [c["name"] for c in data["checks"] if c["name"].startswith("provider")] == [
        "provider good",
        "provider refused",
        "provider nokey",
        "provider gone",
        "provider lab",
        "provider wrongurl",
    ]
    for check in data["checks"]:  # the key never appears in what doctor prints
        assert GOOD not in json.dumps(check)


def test_providers_are_asked_at_once_with_a_short_timeout(tmp_path: Path) -> None:
    with MockUpstream(latency=1.0) as slow, MockUpstream(latency=5.0) as stuck:
        config = Config(
            providers={
                "a": Provider("a", slow.base_url + "/v1", local=True),
                "b": Provider("b", slow.base_url + "/v1", local=True),
                "c": Provider("c", stuck.base_url + "/v1", local=True),
            }
        )
        started = time.monotonic()
        checks = by_name(doctor.check_providers(config, lambda p: None, timeout=1.8))
        elapsed = time.monotonic() - started
    assert checks["provider a"].status == checks["provider b"].status == "ok"
    assert (
        checks["provider c"].status == "fail"
        and "did not answer within 1.8 s" in checks["provider c"].summary
    )
    assert elapsed < 3.0  # one timeout, not the sum of three waits


def test_an_invalid_config_names_the_key_and_skips_what_depends_on_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nport = "eighty"\n')
    code = main(["doctor", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'log.db'}", "--no-qt"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] config" in out and "proxy.port: must be int" in out
    assert "[skip] port" in out and "[skip] providers" in out


def test_port_taken_by_a_running_downshift_is_fine_by_another_program_is_not(core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.proxy.server import ProxyThread

    with ProxyThread(core, port=0) as proxy:
        check = doctor.check_port("127.0.0.1", proxy.port)
    assert check.status == "ok" and "running Downshift" in check.summary
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        check = doctor.check_port("127.0.0.1", port)
    assert check.status == "fail" and "another program" in check.summary and f"port = {port + 1}" in check.fix
    assert doctor.check_port("127.0.0.1", port).status == "ok"  # released again


def test_database_states(tmp_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    fresh = doctor.check_database(f"sqlite:///{tmp_path / 'new.db'}")
    assert fresh.status == "ok" and "will be created" in fresh.summary
    assert not (tmp_path / "new.db").exists()  # doctor only looks
    current = doctor.check_database(core.db_url)
    assert current.status == "ok" and "0 calls" in current.summary and "schema up to date" in current.summary
    old = tmp_path / "old.db"
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(old)) as conn, conn:  # closed, not only committed
        conn.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO calls DEFAULT VALUES")
    behind = doctor.check_database(f"sqlite:///{old}")
    assert (
        behind.status == "warn" and "1 calls" in behind.summary and "upgraded at the next start" in behind.fix
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    broken = doctor.check_database(f"sqlite:///{junk}")
    assert broken.status == "fail" and "cannot be opened" in broken.summary and "--db" in broken.fix


def test_keyring_fallback_is_a_warning_and_a_readable_file_is_a_failure(tmp_path: Path) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())  # conftest restores the previous backend
    secrets = tmp_path / "secrets.json"
    check = doctor.check_keyring(secrets)
    assert check.status == "warn" and "no OS keyring" in check.summary
    secrets.write_text("{}")
    os.chmod(secrets, 0o644)
    check = doctor.check_keyring(secrets)
    assert check.status == "fail" and check.fix == f"chmod 600 {secrets}"
    os.chmod(secrets, stat.S_IRUSR | stat.S_IWUSR)
    assert doctor.check_keyring(secrets).status == "warn"


def test_a_keyring_that_errors_is_reported(
    tmp_path: Path, memory_keyring, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    def locked(*_args: object) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    monkeypatch.setattr(memory_keyring, "get_password", locked)
    check = doctor.check_keyring(tmp_path / "secrets.json")
    assert check.status == "fail" and "locked" in check.summary


def test_qt_probe_starts_a_real_gui_application_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check = doctor.check_qt()
    assert check.status == "ok" and check.details["platform"] == "offscreen"
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    check = doctor.check_qt()
    assert check.status == "fail" and "serve" in check.fix


def test_qt_without_a_display_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.sys, "platform", "linux")
    for var in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    check = doctor.check_qt()
    assert check.status == "warn" and "no display" in check.summary and "downshift serve" in check.fix


def test_resources_present_here_and_missing_when_the_folder_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert doctor.check_resources().status == "ok"
    monkeypatch.setattr(doctor.paths, "resources_dir", lambda: tmp_path)
    check = doctor.check_resources()
    assert check.status == "fail" and "prices.json" in check.summary and check.fix == "reinstall Downshift"


def test_render_lists_fixes_under_problems_only() -> None:
    text = doctor.render(
        [
            doctor.Check("config", "ok", "fine", "never shown"),
            doctor.Check("port", "fail", "taken", "use another"),
        ]
    )
    assert "never shown" not in text and "-> use another" in text and text.endswith("1 to fix, 0 to look at.")


def test_the_database_chosen_in_settings_is_the_one_checked(tmp_path: Path) -> None:
    from dataclasses import replace

    from app.core.config import default_config

    chosen = tmp_path / "elsewhere.db"
    config = replace(default_config(), ui={"database": str(chosen)})
    assert doctor.database_url(None, config) == f"sqlite:///{chosen}"
    assert doctor.database_url("sqlite:///x.db", config) == "sqlite:///x.db"  # --db wins
    assert doctor.database_url(None, default_config()).endswith("/downshift.db")
