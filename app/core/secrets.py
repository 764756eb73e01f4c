"""Provider keys and the local proxy token, kept in the OS keyring.

One small class over `keyring`: it accepts real OS backends only, falls back visibly to a file that only
the user can read (0600) when the OS has none (headless Linux), and raises one error type the UI can show.
Secrets never go to the config, the database, logs or exports.

Every set and delete also rewrites a small change stamp next to the fallback file (`secrets.changed`, no
secret in it): a keyring tells no one when an entry changes, and a running proxy in another process watches
the stamp to re-read the keys it holds (app.core.credentials).
"""

from __future__ import annotations

import json
import logging
import os
import secrets as _random
import threading
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.errors

from app.core.atomic_file import atomic_write, file_stamp

log = logging.getLogger(__name__)

SERVICE = "downshift"
TOKEN_NAME = "local-proxy-token"
# Backends that are not a real OS store: asking them fails, or they keep secrets in plain files we don't control.
_REJECTED_MODULES = (
    "keyring.backends.fail",
    "keyring.backends.null",
    "keyrings.alt",
    "keyring.backends.chainer",
)


class SecretStoreError(RuntimeError):
    """A secret could not be read or written; the message is fit to show the user."""


class SecretStore:
    """The OS keyring is looked up on first use, not at construction: finding it loads every keyring
    backend (~0.1 s), which the desktop app would otherwise pay before its window appears."""

    _UNRESOLVED: Any = object()

    def __init__(self, fallback_path: Path, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self.fallback_path = fallback_path
        self.stamp_path = fallback_path.with_name("secrets.changed")
        self._chosen: keyring.backend.KeyringBackend | Any = self._UNRESOLVED
        self._lock = threading.Lock()
        if backend is not None:
            self._chosen = backend if _usable(backend) else None

    @property
    def _backend(self) -> keyring.backend.KeyringBackend | None:
        chosen = self._chosen
        if chosen is self._UNRESOLVED:
            with self._lock:
                if self._chosen is self._UNRESOLVED:
                    found = keyring.get_keyring()
                    self._chosen = found if _usable(found) else None
                chosen = self._chosen
        return chosen

    @property
    def uses_keyring(self) -> bool:
        return self._backend is not None

    def describe(self) -> str:
        """Where keys are kept, in words for the user."""
        if self._backend is not None:
            return f"OS keyring ({type(self._backend).__name__})"
        return f"file readable only by you: {self.fallback_path} (no OS keyring backend available)"

    def get(self, name: str) -> str | None:
        if self._backend is not None:
            try:
                return self._backend.get_password(SERVICE, name)
            except keyring.errors.KeyringError as exc:
                raise SecretStoreError(f"Could not read {name!r} from the keyring: {exc}") from exc
        return self._read_file().get(name)

    def set(self, name: str, value: str) -> None:
        if self._backend is not None:
            try:
                self._backend.set_password(SERVICE, name, value)
            except keyring.errors.KeyringError as exc:
                raise SecretStoreError(f"Could not store {name!r} in the keyring: {exc}") from exc
        else:
            data = self._read_file()
            data[name] = value
            self._write_file(data)
        self._mark_changed()

    def delete(self, name: str) -> None:
        if self._backend is not None:
            try:
                self._backend.delete_password(SERVICE, name)
            except keyring.errors.PasswordDeleteError:
                pass
            except keyring.errors.KeyringError as exc:
                raise SecretStoreError(f"Could not delete {name!r} from the keyring: {exc}") from exc
        else:
            data = self._read_file()
            if data.pop(name, None) is None:
                return
            self._write_file(data)
        self._mark_changed()

    def change_stamp(self) -> tuple[int, int, int] | None:
        """The change stamp's (mtime, size, inode), None before the first change: one `stat`, no keyring."""
        return file_stamp(self.stamp_path)

    def _mark_changed(self) -> None:
        """Rewrite the change stamp (a fresh file each time: a new inode even within one mtime tick)."""
        try:
            atomic_write(self.stamp_path, _random.token_hex(8).encode(), mode=0o600)
        except OSError as exc:  # the secret is stored; running proxies see it at their next restart
            log.warning("cannot write the secrets' change stamp %s: %s", self.stamp_path, exc)

    def _read_file(self) -> dict[str, str]:
        try:
            raw = self.fallback_path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretStoreError(
                f"Could not read the secrets file {self.fallback_path}: {exc.strerror}"
            ) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise SecretStoreError(f"The secrets file {self.fallback_path} is damaged: {exc}") from exc
        if not isinstance(data, dict):
            raise SecretStoreError(f"The secrets file {self.fallback_path} is damaged: not a JSON object")
        return data

    def _write_file(self, data: dict[str, str]) -> None:
        try:
            atomic_write(self.fallback_path, json.dumps(data, indent=1).encode(), mode=0o600)
        except OSError as exc:
            raise SecretStoreError(
                f"Could not write the secrets file {self.fallback_path}: {exc.strerror}"
            ) from exc


def _usable(backend: keyring.backend.KeyringBackend) -> bool:
    module = type(backend).__module__
    if any(module.startswith(m) for m in _REJECTED_MODULES):
        if module.startswith("keyring.backends.chainer"):
            return any(_usable(b) for b in getattr(backend, "backends", []))
        return False
    return True


def provider_key_name(provider: str) -> str:
    return f"provider:{provider}"


def provider_key(store: SecretStore, provider_name: str, api_key_env: str | None) -> str | None:
    """A provider's key: its env variable when configured and set, else the keyring."""
    if api_key_env:
        value = os.environ.get(api_key_env)
        if value:
            return value
    return store.get(provider_key_name(provider_name))


def local_token(store: SecretStore, *, create: bool = True) -> str:
    """The token clients present to the proxy: $DOWNSHIFT_TOKEN, else the stored one, made on first run."""
    env = os.environ.get("DOWNSHIFT_TOKEN")
    if env:
        return env
    token = store.get(TOKEN_NAME)
    if token is None and create:
        token = new_token()
        store.set(TOKEN_NAME, token)
    if token is None:
        raise SecretStoreError("No local proxy token has been created yet")
    return token


def rotate_token(store: SecretStore) -> str:
    token = new_token()
    store.set(TOKEN_NAME, token)
    return token


def new_token() -> str:
    return "ds-" + _random.token_urlsafe(24)
