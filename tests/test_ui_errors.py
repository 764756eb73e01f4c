"""Errors in plain words: every failure the window shows says what went wrong and what to do, never a
library's repr. Driven through the real failure paths (a closed port, a keyring that refuses, a broken
file, a folder that does not exist) and `app.ui.errors` directly for the rest."""

from __future__ import annotations

import errno
import json
import tomllib
from pathlib import Path

import httpx
import keyring.errors
from sqlalchemy.exc import OperationalError

from app.core.config import ConfigError
from app.core.secrets import SecretStoreError
from app.testing.ports import free_port
from app.ui.errors import explain, plain_error
from app.ui.pages.presets import PresetsPage
from app.ui.pages.providers import ProvidersPage

pytest_plugins = ["ui_support"]

# what a user must never read: exception class names, errno codes, reprs
RAW = ("[Errno", "Error(", "Exception", "ConnectError", "KeyringLocked", "TOMLDecodeError", "Traceback", "<")


def plain(text: str) -> bool:
    return not any(r in text for r in RAW)


def page(qtbot, cls, ctx):  # type: ignore[no-untyped-def]
    widget = cls(ctx)
    qtbot.addWidget(widget)
    widget.resize(980, 680)
    widget.show()
    return widget


def raised(exc: BaseException) -> BaseException:
    """`exc` with a traceback, as a background job hands it over."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_library_exceptions_become_a_reason_and_what_to_do() -> None:
    port = free_port()
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    except httpx.ConnectError as exc:
        connect_error: BaseException = exc
    locked = OperationalError("SELECT 1", {}, Exception("database is locked"))
    try:
        json.loads("{nope")
    except json.JSONDecodeError as exc:
        bad_json: BaseException = exc
    try:
        tomllib.loads("a = ")
    except tomllib.TOMLDecodeError as exc:
        bad_toml: BaseException = exc
    cases = {
        connect_error: "could not connect to the server. Check the base URL",
        raised(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")): "connection refused",
        raised(
            PermissionError(errno.EACCES, "Permission denied", "/etc/x")
        ): "not allowed to use this file (/etc/x)",
        raised(FileNotFoundError(errno.ENOENT, "No such file", "/no/x")): "does not exist (/no/x)",
        raised(OSError(errno.ENOSPC, "No space left on device")): "the disk is full",
        raised(OSError(errno.EADDRINUSE, "Address already in use")): "already in use by another program",
        raised(keyring.errors.KeyringLocked("Failed to unlock the collection!")): "keyring is locked",
        raised(keyring.errors.PasswordSetError("backend said no")): "keyring refused",
        locked: "the call log is busy",
        bad_json: "not valid JSON (line 1, column 2)",
        bad_toml: "not valid TOML",
        raised(KeyError("a_dict_key")): "something unexpected went wrong",
        raised(TypeError("unsupported operand type(s) for +: 'int' and 'str'")): "unexpected",
    }
    for exc, expected in cases.items():
        text = plain_error("Not saved", exc)
        assert text.startswith("Not saved: ") and expected in text, (type(exc), text)
        assert plain(text), text


def test_downshifts_own_messages_pass_through_and_the_library_error_they_wrap_is_said_plainly() -> None:
    own = raised(ConfigError("config.toml", "proxy.port", "must be between 0 and 65535"))
    assert (
        explain(own).sentence("Not applied")
        == "Not applied: config.toml: proxy.port: must be between 0 and 65535."
    )
    try:
        try:
            raise keyring.errors.KeyringLocked("Failed to unlock the collection!")
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"Could not store 'provider:x' in the keyring: {exc}") from exc
    except SecretStoreError as exc:
        wrapped: BaseException = exc
    text = plain_error("Not saved", wrapped)
    assert text == (
        "Not saved: Could not store 'provider:x' in the keyring: the system keyring is locked. "
        "Unlock it (log in to it), then try again."
    )


def test_a_provider_test_against_a_closed_port_says_so_plainly(ctx, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    p.new_account("custom")
    p.name.setText("nowhere")
    p.base_url.setText(f"http://127.0.0.1:{free_port()}/v1")
    p.test_connection()
    qtbot.waitUntil(lambda: p.message.kind == "error", timeout=5000)
    text = p.message.text()
    assert text.startswith("Connection failed: cannot connect to http://127.0.0.1:")
    assert "nothing answers at that address (connection refused)" in text and plain(text), text


def test_a_keyring_that_refuses_a_key_is_explained(ctx, core, memory_keyring, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def locked(*_: object) -> None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    monkeypatch.setattr(memory_keyring, "set_password", locked)
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("cheapco")
    p.key.setText("sk-new-key-0123456789")
    p.save()
    qtbot.waitUntil(lambda: p.message.kind == "error", timeout=5000)
    text = p.message.text()
    assert text.startswith("Not saved: ") and "the system keyring is locked" in text and "Unlock it" in text
    assert plain(text) and "sk-new-key" not in text, text


def test_a_broken_preset_file_and_a_missing_folder_are_explained(ctx, answers, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, PresetsPage, ctx)
    broken = tmp_path / "broken.downshift.toml"
    broken.write_text("[presets.x\nname = ")
    answers.open_path = broken
    p.import_file()
    qtbot.waitUntil(lambda: p.message.kind == "error", timeout=5000)
    assert p.message.text().startswith(f"Not imported: {broken}: is not valid TOML") and plain(
        p.message.text()
    )
    answers.save_path = tmp_path / "no-such-folder" / "cheap.downshift.toml"
    p.export_current()
    text = p.message.text()
    assert text.startswith("Not exported: ") and plain(text), text
