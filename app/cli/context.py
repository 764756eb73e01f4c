"""What a command opens: the config store, the secret store, the Core (config and call log) or the bare
ledger database, from the `--config` and `--db` options every command takes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.agent_config import Written
    from app.core.config import ConfigStore
    from app.core.engine import Core
    from app.core.secrets import SecretStore


def open_core(args: argparse.Namespace) -> Core:
    """The config and the call log (`--config`, `--db`), as the proxy would open them."""
    from app.core.engine import Core

    return Core(args.config, args.db)


def open_ledger(args: argparse.Namespace) -> Engine:
    """The call log's database alone (`--db`, else the config's ledger), for commands that need no Core."""
    from app.core.config import ConfigStore
    from app.core.engine import database_url
    from app.core.storage.db import open_database
    from app.paths import config_path

    path = config_path(args.config)
    config = ConfigStore(path).current() if path.exists() else None
    return open_database(database_url(args.db, config))  # no machine: a command never marks calls interrupted


def config_store(args: argparse.Namespace) -> ConfigStore:
    """The config file of `--config`, written with the defaults first when there is none yet."""
    from app import paths
    from app.core.config import ConfigStore, default_config, save_config

    path = paths.config_path(args.config)
    if not path.exists():
        save_config(default_config(), path)
    return ConfigStore(path)


def secret_store() -> SecretStore:
    from app import paths
    from app.core.secrets import SecretStore

    return SecretStore(paths.data_dir() / "secrets.json")


def proxy_base(store: ConfigStore) -> str:
    """The proxy's root URL: where it listens now, else where the config says it will."""
    from app.core import runtime
    from app.core.envexport import proxy_base_url

    config = store.current()
    host, port = runtime.listening(store.path) or (config.host, config.port)
    return proxy_base_url(host, port)


def kept(written: Written) -> str:
    """What the CLI says about a settings file it replaced."""
    return f" (the old file is kept as {written.backup})" if written.backup else ""
