"""What a command opens: the config store, the secret store, the Core (config and call log) or the bare
ledger database, from the `--config` and `--db` options every command takes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.args import only_reads

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.agent_config import Written
    from app.core.config import ConfigStore
    from app.core.engine import Core
    from app.core.secrets import SecretStore


def read_only_asked(args: argparse.Namespace) -> bool:
    """`--read-only` was given (main refuses it for a command that writes, before the command runs)."""
    return bool(getattr(args, "read_only", False))


def read_only_mode(args: argparse.Namespace) -> bool | None:
    """How the call log opens (as `Core`'s `read_only`): read-only with `--read-only`; for a command that
    only reads, None = read-only when it is a PostgreSQL team ledger (as in the app: a ledger others write
    is not migrated nor written by a report); else writable."""
    if read_only_asked(args):
        return True
    return None if only_reads(args) else False


def open_core(args: argparse.Namespace) -> Core:
    """The config and the call log (`--config`, `--db`), as the proxy would open them (see `read_only_mode`;
    with `--read-only` nothing is written: neither the log nor a default config file)."""
    from app.core.engine import Core

    return Core(args.config, args.db, read_only=read_only_mode(args), create_config=not read_only_asked(args))


def open_ledger(args: argparse.Namespace) -> Engine:
    """The call log's database alone (`--db`, else the config's ledger), for commands that need no Core;
    read-only as `open_core` would open it."""
    from app.core.config import ConfigStore
    from app.core.engine import database_url
    from app.core.storage.db import open_database, open_read_only
    from app.core.storage.dialect import is_postgres_url
    from app.paths import config_path

    path = config_path(args.config)
    config = ConfigStore(path).current() if path.exists() else None
    url = database_url(args.db, config)
    mode = read_only_mode(args)
    if is_postgres_url(url) if mode is None else mode:
        return open_read_only(url)
    return open_database(url)  # no machine: a command never marks calls interrupted


def config_store(args: argparse.Namespace) -> ConfigStore:
    """The config file of `--config`, written with the defaults first when there is none yet (not with
    `--read-only`: the defaults are read, nothing is written)."""
    from app import paths
    from app.core.config import ConfigStore, default_config, save_config

    path = paths.config_path(args.config)
    if not path.exists() and not read_only_asked(args):
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
