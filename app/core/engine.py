"""The core object that the headless runner, the CLI and the GUI all start: config, secrets, log, prices.

It holds no Qt and no event loop; the proxy server runs on top of it.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from app import paths
from app.core.analytics import executors as executor_totals
from app.core.analytics.policy import CallPolicy
from app.core.config import Config, ConfigError, ConfigStore, default_config, save_config
from app.core.credentials import Credentials
from app.core.events import EventBus
from app.core.secrets import SecretStore, local_token
from app.core.storage.db import open_database
from app.core.storage.writer import LogWriter

if TYPE_CHECKING:
    from app.core.team_ship import TeamShipper

log = logging.getLogger(__name__)

# The config one proxied call started with: the proxy sets it per request, so a call reads the config file's
# stamp once (not at every access) and sees one consistent config from start to log row. Elsewhere (GUI,
# CLI, the log writer's thread) it is unset and `Core.config` checks the file as before.
CALL_CONFIG: ContextVar[Config | None] = ContextVar("downshift_call_config", default=None)


def database_url(explicit: str | None, config: Config | None) -> str:
    """The call log to open: --db, else $DOWNSHIFT_DB_URL, else the file chosen in Settings ([ui] database),
    else the user data dir. One rule for the GUI, `serve`, the CLI and `doctor`."""
    if explicit or os.environ.get("DOWNSHIFT_DB_URL") or config is None:
        return paths.db_url(explicit)
    chosen = config.ui.get("database")
    return f"sqlite:///{Path(chosen).expanduser()}" if isinstance(chosen, str) and chosen else paths.db_url()


def team_machine(config: Config | None) -> str:
    """The name this proxy's rows carry as their machine: `[team] machine`, else the host name."""
    import socket

    return (config.team.machine if config is not None else "") or socket.gethostname()


class Core:
    def __init__(
        self,
        config_path: Path | str | None = None,
        db_url: str | None = None,
        *,
        secrets: SecretStore | None = None,
        create_config: bool = True,
    ) -> None:
        self.events = EventBus()
        self.config_path = paths.config_path(config_path)
        if create_config and not self.config_path.exists():
            save_config(default_config(), self.config_path)
        self.config_store = ConfigStore(self.config_path, on_error=self._config_error)
        self.config_store.subscribe(lambda cfg: self.events.emit("config_changed", cfg))
        # provider keys and the local token as the proxy uses them (cached; see app.core.credentials)
        self.credentials = Credentials(
            secrets or SecretStore(paths.data_dir() / "secrets.json"), self._key_env
        )
        self.db_url = database_url(db_url, self.config_store.current())
        self.machine = team_machine(self.config_store.current())
        self.db = open_database(self.db_url)  # a shared ledger's in-flight rows: see serving()
        # The log writer is wired here, once: it warns through the app's notices and masks the secrets the
        # credentials hold in stored bodies. The proxy only hands it records.
        self.writer = LogWriter(
            self.db,
            on_written=lambda recs: self.events.emit("calls_logged", recs),
            notify=lambda title, message: self.events.emit("notice", (title, message)),
        )
        self.writer.secrets = self.secret_values
        self._apply_team(self.config_store.current())
        self.config_store.subscribe(self._apply_team)
        self.shipper: TeamShipper | None = None  # shape 1: started by the proxy (start_team_shipping)
        self.policy = CallPolicy(self)  # tasks, budgets, escalation (app.core.analytics)
        self.writer.hooks.append(self.policy.writer_hook)
        self.writer.hooks.append(executor_totals.writer_hook)  # failure rate by prompt size (scorecard)

    def _apply_team(self, config: Config | None) -> None:
        """Team mode (a [team] member, or a shared PostgreSQL ledger): rows carry member and machine. A single
        user's SQLite log leaves both empty, as before."""
        if config is None:
            return
        team_mode = bool(config.team.member) or self.db.dialect.name != "sqlite"
        self.writer.member = config.team.member or None
        self.writer.machine = self.machine if team_mode else None

    def serving(self) -> None:
        """The proxy starts on this core. On a shared PostgreSQL ledger, this machine's calls left in flight by
        a crash are marked interrupted now (not by every CLI command that opens the ledger, which would mark a
        running gateway's live calls); then shipping to `[team] ledger` starts, if set."""
        if self.db.dialect.name == "postgresql":
            from sqlalchemy import text

            with self.db.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE calls SET outcome = 'interrupted' WHERE outcome = 'in_flight' AND machine = :m"
                    ),
                    {"m": self.machine},
                )
        self.start_team_shipping()

    def start_team_shipping(self) -> None:
        """Ship finished calls to `[team] ledger` (a proxy per developer, one team ledger). Called by the proxy
        when it starts; a change of the ledger setting applies at the next start."""
        config = self.config_store.current()
        if self.shipper is not None or config is None or not config.team.ledger:
            return
        from app.core.team_ship import TeamShipper, ledger_url

        self.shipper = TeamShipper(
            self.db,
            ledger_url(config.team.ledger, self.secrets),
            idle_s=lambda: self.config.task_idle_minutes * 60.0,
            notify=lambda title, message: self.events.emit("notice", (title, message)),
        )
        self.writer.hooks.append(self.shipper.outbox_hook)
        self.shipper.start()

    def _config_error(self, exc: ConfigError) -> None:
        log.error("config not applied, keeping the last good one: %s", exc)
        self.events.emit("config_error", exc)

    @property
    def config(self) -> Config:
        config = CALL_CONFIG.get()
        return config if config is not None else self.config_store.current()

    @property
    def secrets(self) -> SecretStore:
        return self.credentials.store

    @secrets.setter
    def secrets(self, store: SecretStore) -> None:  # tests swap the store; the cached secrets go with it
        self.credentials = Credentials(store, self._key_env)

    def token(self) -> str:
        """The local token, read from the store now (the proxy uses `credentials`, which caches it)."""
        return local_token(self.secrets)

    def _key_env(self, name: str) -> str | None:
        provider = self.config.providers.get(name)
        return provider.api_key_env if provider else None

    def provider_key(self, name: str) -> str | None:
        """A provider's key, cached in memory so the hot path never waits on the keyring."""
        return self.credentials.provider_key(name)

    def set_provider_key(self, name: str, value: str | None) -> None:
        self.credentials.set_provider_key(name, value)

    def forget_cached_keys(self) -> None:
        self.credentials.forget_keys()

    def secret_values(self) -> list[bytes]:
        """For the log writer's thread: every provider key Downshift holds, and the local token."""
        return self.credentials.secret_values(list(self.config.providers))

    def close(self) -> None:
        self.policy.budgets.close()  # a preset switch being saved is finished first
        self.writer.close()
        if self.shipper is not None:
            self.shipper.close()
        self.db.dispose()
