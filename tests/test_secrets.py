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
