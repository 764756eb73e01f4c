from __future__ import annotations

import stat
from pathlib import Path

import keyring.backends.fail
import pytest

from app.core.secrets import SecretStore, SecretStoreError, local_token, provider_key, rotate_token


def test_keys_go_to_the_keyring(tmp_path: Path, memory_keyring) -> None:  # type: ignore[no-untyped-def]
    store = SecretStore(tmp_path / "secrets.json")
    assert store.uses_keyring and "MemoryKeyring" in store.describe()
    store.set("provider:x", "sk-123")
    assert memory_keyring.store[("downshift", "provider:x")] == "sk-123"
    assert provider_key(store, "x", None) == "sk-123"
    assert not (tmp_path / "secrets.json").exists()
    store.delete("provider:x")
    store.delete("provider:x")  # deleting twice is fine
    assert store.get("provider:x") is None


def test_env_var_wins_for_provider_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SecretStore(tmp_path / "s.json")
    store.set("provider:x", "from-keyring")
    monkeypatch.setenv("X_KEY", "from-env")
    assert provider_key(store, "x", "X_KEY") == "from-env"
    monkeypatch.delenv("X_KEY")
    assert provider_key(store, "x", "X_KEY") == "from-keyring"


def test_no_keyring_backend_falls_back_to_private_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.json"
    store = SecretStore(path, backend=keyring.backends.fail.Keyring())
    assert not store.uses_keyring
    assert "readable only by you" in store.describe() and str(path) in store.describe()
    store.set("provider:x", "sk-abc")
    assert SecretStore(path, backend=keyring.backends.fail.Keyring()).get("provider:x") == "sk-abc"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_damaged_fallback_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("{not json")
    store = SecretStore(path, backend=keyring.backends.fail.Keyring())
    with pytest.raises(SecretStoreError, match="damaged"):
        store.get("x")


def test_local_token_created_once_env_overrides_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SecretStore(tmp_path / "s.json")
    token = local_token(store)
    assert token.startswith("ds-") and local_token(store) == token
    monkeypatch.setenv("DOWNSHIFT_TOKEN", "mine")
    assert local_token(store) == "mine"
    monkeypatch.delenv("DOWNSHIFT_TOKEN")
    assert rotate_token(store) != token and local_token(store) != token


@pytest.mark.parametrize("backend", ["keyring", "file"])
def test_every_change_rewrites_a_private_stamp_that_holds_no_secret(tmp_path: Path, backend: str) -> None:
    """The change stamp a running proxy watches (app.core.credentials): rewritten on every set and delete,
    whatever the backend, readable by the user only, and never the secret itself."""
    fallback = keyring.backends.fail.Keyring() if backend == "file" else None
    store = SecretStore(tmp_path / "secrets.json", backend=fallback)
    assert store.uses_keyring == (backend == "keyring")
    assert store.change_stamp() is None  # nothing changed yet: no file
    seen = set()
    for change in (
        lambda: store.set("provider:x", "sk-stamp-secret-0123456789"),
        lambda: store.set("provider:x", "sk-stamp-secret-0123456789"),  # the same value again still counts
        lambda: store.delete("provider:x"),
    ):
        change()
        stamp = store.change_stamp()
        assert stamp is not None and stamp not in seen
        seen.add(stamp)
        assert stat.S_IMODE(store.stamp_path.stat().st_mode) == 0o600
        assert b"stamp-secret" not in store.stamp_path.read_bytes()


def test_a_stamp_that_goes_missing_reloads_once(tmp_path: Path) -> None:
    """A stamp deleted (or made unreadable) by hand: the held keys are re-read once, not at every call."""
    from app.core.credentials import Credentials

    store = SecretStore(tmp_path / "secrets.json")
    store.set("provider:x", "sk-first-0123456789abcdef")
    credentials = Credentials(store, lambda _name: None)
    assert credentials.provider_key("x") == "sk-first-0123456789abcdef"
    assert not credentials.changed(0.0)
    store.stamp_path.unlink()
    assert credentials.changed(1.0)
    credentials.reload()
    assert not credentials.changed(2.0) and not credentials.changed(3.0)
    assert credentials.provider_key("x") == "sk-first-0123456789abcdef"
