"""The TOML configuration: schema, validation with clear messages, atomic save, live reload.

The file is the single source of truth shared by the CLI, the headless proxy and the GUI. A running proxy
re-reads it when it changes on disk and keeps the last good version when the new one is invalid.

This module is the public face; the work is split along its seams: `config_model` (the dataclasses),
`config_parse` (TOML to a validated Config) and `config_store` (back to TOML, saving, the damaged-file rule
and the live `ConfigStore`). Import from here.
"""

from __future__ import annotations

from app.core.atomic_file import atomic_write
from app.core.config_model import (
    APIS,
    ROLES,
    Budget,
    Config,
    ConfigError,
    Escalation,
    LongContext,
    Preset,
    Price,
    Provider,
    Shadow,
    Target,
    Team,
    Timeouts,
    default_config,
)
from app.core.config_parse import is_loopback_host, load_config, parse_config
from app.core.config_store import (
    ConfigStore,
    backup_path,
    is_private_file,
    keep_aside_if_damaged,
    save_config,
    to_toml_dict,
)

__all__ = [
    "APIS",
    "ROLES",
    "Budget",
    "Config",
    "ConfigError",
    "ConfigStore",
    "Escalation",
    "LongContext",
    "Preset",
    "Price",
    "Provider",
    "Shadow",
    "Target",
    "Team",
    "Timeouts",
    "atomic_write",
    "backup_path",
    "default_config",
    "is_loopback_host",
    "is_private_file",
    "keep_aside_if_damaged",
    "load_config",
    "parse_config",
    "save_config",
    "to_toml_dict",
]
