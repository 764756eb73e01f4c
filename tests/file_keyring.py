"""The suite's keyring (conftest's MemoryKeyring) kept in a JSON file, so that two processes share it.

A real keyring backend through the `keyring` API, chosen by subprocesses with
PYTHON_KEYRING_BACKEND=file_keyring.FileKeyring (tests/ on PYTHONPATH) and DOWNSHIFT_TEST_KEYRING=<file>.
Unlike Downshift's own fallback file it is a keyring: nothing Downshift can watch changes when an entry does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keyring.backend
import keyring.errors


class FileKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]  # keyring declares it as a classproperty

    @property
    def path(self) -> Path:
        return Path(os.environ["DOWNSHIFT_TEST_KEYRING"])

    def _load(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data

    def _save(self, data: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise keyring.errors.PasswordDeleteError(username)
        self._save(data)
