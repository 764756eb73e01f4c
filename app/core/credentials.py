"""The secrets a running proxy uses on every call, held in memory: provider keys and the local token.

One owner, the Core. The proxy's gate reads the token from here, the pipeline and the log writer mask what
is held here, and nobody pushes copies around. A keyring read can take tens of milliseconds (D-Bus, a
locked collection), so the hot path only ever reads this cache; the keyring is read on first use of a
name and again when the store says a secret changed.

"Changed" is told across processes by the store's change stamp (a small file `SecretStore` rewrites on every
set and delete, whatever the backend): `downshift key set` in another terminal rewrites it, and a running
proxy, which looks at the stamp at most every KEYS_RECHECK_S (one `stat`, off the per-call path otherwise),
re-reads the keys it holds before its next call goes out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from app.core.secrets import SecretStore, local_token, provider_key, provider_key_name

log = logging.getLogger(__name__)

KeyEnv = Callable[[str], str | None]  # a provider's name -> its `api_key_env` (None when it has none)
Stamp = tuple[int, int, int] | None


class Credentials:
    KEYS_RECHECK_S = 0.25  # how long a key changed by another process may go unseen by a running proxy

    def __init__(self, store: SecretStore, key_env: KeyEnv) -> None:
        self.store = store
        self._key_env = key_env
        self._keys: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.token: str | None = None  # the local token as last read (None until read)
        self.token_read_at = 0.0  # time.monotonic() of that read
        self._stamp: Stamp = store.change_stamp()
        self._next_check = 0.0

    # ------------------------------------------------------------------ the local token

    def read_token(self) -> str:
        """Read (or create) the local token from the store and remember it. Blocking: not on the event loop."""
        token = local_token(self.store)
        self.token, self.token_read_at = token, time.monotonic()
        return token

    def forget_token(self) -> None:
        """The next use reads the store again (the GUI calls this when it rotated the token)."""
        self.token = None

    # ------------------------------------------------------------------ provider keys

    def holds(self, name: str) -> bool:
        """Whether a provider's key is in memory, so `provider_key` answers without touching the store."""
        return name in self._keys

    def provider_key(self, name: str) -> str | None:
        """A provider's key from memory; read from the store (blocking) the first time a name is asked for."""
        try:
            return self._keys[name]
        except KeyError:
            pass
        key = provider_key(self.store, name, self._key_env(name))
        with self._lock:
            self._keys[name] = key
        return key

    def set_provider_key(self, name: str, value: str | None) -> None:
        if value:
            self.store.set(provider_key_name(name), value)
        else:
            self.store.delete(provider_key_name(name))
        with self._lock:
            self._keys.pop(name, None)

    def forget_keys(self) -> None:
        with self._lock:
            self._keys.clear()

    def secret_values(self, providers: Iterable[str]) -> list[bytes]:
        """Every exact secret to mask in stored or echoed text: the named providers' keys and the token."""
        out = [key.encode() for key in map(self.provider_key, providers) if key]
        if self.token:
            out.append(self.token.encode())
        return out

    # ------------------------------------------------------------------ changes made by other processes

    def changed(self, now: float) -> bool:
        """Whether the store changed since the last reload. Costs a comparison per call and one `stat` at most
        every KEYS_RECHECK_S, so the proxy asks it before every call."""
        if now < self._next_check:
            return False
        self._next_check = now + self.KEYS_RECHECK_S
        return self.store.change_stamp() != self._stamp

    def reload(self) -> None:
        """Re-read every key held (and the token, if held) from the store. Blocking: run off the event loop.
        A key that cannot be read keeps its old value; the change is taken as seen either way (a locked
        keyring is not asked again and again)."""
        self._stamp = self.store.change_stamp()
        fresh: dict[str, str | None] = {}
        for name in list(self._keys):
            try:
                fresh[name] = provider_key(self.store, name, self._key_env(name))
            except Exception:  # SecretStoreError, or a backend's own bug: the old key goes on serving
                log.warning("could not re-read the key of %s", name, exc_info=True)
        with self._lock:
            self._keys.update(fresh)
        if self.token is not None:
            try:
                self.read_token()
            except Exception:
                log.warning("could not re-read the local token", exc_info=True)
