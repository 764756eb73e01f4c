"""Saving the configuration and keeping it live: `to_toml_dict` (the inverse of parse_config), an atomic save
that keeps the user's comments and layout, the damaged-file rule, and `ConfigStore`, which re-reads the file
when it changes and keeps the last good version.

A file that cannot be read as a valid config is never overwritten: before a save replaces it, it is kept
aside as `config.toml.damaged-<time>`. The file is written readable only by the user.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from app.core.atomic_file import atomic_write
from app.core.config_model import Budget, Config, ConfigError, Preset, Price, Provider, Team, Timeouts
from app.core.config_parse import load_config, parse_config

log = logging.getLogger(__name__)


def to_toml_dict(config: Config) -> dict[str, Any]:
    """The inverse of parse_config: only non-default values are written, so the file stays readable."""
    out: dict[str, Any] = {"proxy": _proxy_table(config)}
    providers = [_provider_table(p) for p in config.providers.values()]
    if providers:
        out["providers"] = providers
    presets = [_preset_table(pr) for pr in config.presets.values()]
    if presets:
        out["presets"] = presets
    out["routing"] = {"active": config.active, "cheap": config.cheap, "premium": config.premium}
    if config.prices:
        out["prices"] = {model: _set_fields(price) for model, price in config.prices.items()}
    out["logging"] = {
        "store_bodies": config.store_bodies,
        "body_max_bytes": config.body_max_bytes,
        "retention_days": config.retention_days,
    }
    tasks: dict[str, Any] = {"idle_minutes": config.task_idle_minutes}
    if config.tool_failure_patterns:
        tasks["tool_failure_patterns"] = list(config.tool_failure_patterns)
    out["tasks"] = tasks
    if config.budgets:
        out["budgets"] = [
            {k: v for k, v in _set_fields(b).items() if not (k == "action" and v == "warn")}
            for b in config.budgets
        ]
    if config.ui:
        out["ui"] = dict(config.ui)
    if config.team != Team():
        out["team"] = {k: v for k, v in vars(config.team).items() if v != getattr(Team(), k)}
    return out


def _set_fields(obj: Price | Budget) -> dict[str, Any]:
    """A dataclass's fields that are not None (an optional price or budget field left out)."""
    return {k: v for k, v in vars(obj).items() if v is not None}


def _proxy_table(config: Config) -> dict[str, Any]:
    proxy: dict[str, Any] = {"host": config.host, "port": config.port}
    if config.allow_remote:
        proxy["allow_remote"] = True
    if config.max_body_mb != 32.0:
        proxy["max_body_mb"] = config.max_body_mb
    if config.allowed_origins:
        proxy["allowed_origins"] = list(config.allowed_origins)
    return proxy


def _provider_table(p: Provider) -> dict[str, Any]:
    d: dict[str, Any] = {"name": p.name, "base_url": p.base_url, "api": p.api}
    optional: dict[str, Any] = {
        "kind": p.kind if p.kind != "custom" else None,
        "api_key_env": p.api_key_env or None,
        "local": True if p.local else None,
        "max_tokens": p.max_tokens,
        "hourly_cost": p.hourly_cost,
        "headers": dict(p.headers) if p.headers else None,
    }
    d.update((k, v) for k, v in optional.items() if v is not None)
    if p.timeouts != Timeouts():
        d["timeouts"] = {
            "connect": p.timeouts.connect,
            "first_byte": p.timeouts.first_byte,
            "idle": p.timeouts.idle,
        }
    return d


def _preset_table(pr: Preset) -> dict[str, Any]:
    d: dict[str, Any] = {"name": pr.name}
    if pr.description:
        d["description"] = pr.description
    d.update({role: str(t) for role, t in pr.roles.items()})
    if pr.patterns:
        d["patterns"] = dict(pr.patterns)
    if pr.fallback:
        d["fallback"] = [str(t) for t in pr.fallback]
    if pr.escalate:
        d["escalate"] = {
            "threshold": pr.escalate.threshold,
            "window": pr.escalate.window,
            "role": pr.escalate.role,
        }
    if pr.long_context:
        d["long_context"] = {"above_tokens": pr.long_context.above_tokens, "role": pr.long_context.role}
    if pr.shadow:
        d["shadow"] = {
            "target": str(pr.shadow.target),
            "share": pr.shadow.share,
            "max_usd_per_day": pr.shadow.max_usd_per_day,
        }
    return d


def save_config(config: Config, path: Path) -> Path | None:
    """Write `config` to `path` (0600). A file already there that does not load is kept aside first, never
    replaced: returns where it went (None when there was nothing to keep)."""
    data = to_toml_dict(config)
    parse_config(data, path)  # never write a file we would refuse to read
    aside = keep_aside_if_damaged(path)
    old = None if aside is not None else _read_text(path)
    if old is None:
        text = tomli_w.dumps(data)
    else:  # a file that loads: change only what differs, keeping the user's comments and layout
        from app.core.config_layout import preserving_dumps

        effective = to_toml_dict(load_config(path))
        text = preserving_dumps(old, data, lambda written: _reads_back(written, config, path), effective)
        if text == old:
            return None
    try:
        if old is not None:
            atomic_write(backup_path(path), old.encode())
        atomic_write(path, text.encode())
    except OSError as exc:
        raise ConfigError(
            path,
            "",
            f"cannot be written: {exc.strerror or exc} (is its folder read-only?); nothing was changed",
        ) from None
    return aside


def backup_path(path: Path) -> Path:
    """Where the file a save replaced is kept (one generation): `config.toml.bak`."""
    return path.with_name(path.name + ".bak")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _reads_back(data: dict[str, Any], config: Config, path: Path) -> bool:
    try:
        return parse_config(data, path) == config
    except ConfigError:
        return False


def keep_aside_if_damaged(path: Path) -> Path | None:
    """Rename a config file that does not load to `<name>.damaged-<time>` so nothing overwrites it."""
    try:
        load_config(path)
        return None
    except ConfigError as exc:
        if not path.exists():
            return None
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        os.replace(path, aside)
        log.warning("%s could not be used (%s); kept as %s before writing a new one", path, exc, aside)
        return aside


class ConfigStore:
    """Holds the current config and re-reads the file when it changes; keeps the last good one on error.

    `current()` is cheap (one stat call) so the proxy can call it on every request, which is what makes
    a preset switch apply to the very next request.
    """

    def __init__(self, path: Path, on_error: Callable[[ConfigError], None] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        # `update` is a read-modify-write: two at once (the window's writer thread, the budget switch's saver
        # thread) take turns, or the second would save over the first. Re-entrant: a listener may update.
        self._updating = threading.RLock()
        self._on_error = on_error
        self.last_error: ConfigError | None = None
        self.kept_aside: Path | None = None  # where a damaged file was moved before a save replaced it
        self._listeners: list[Callable[[Config], None]] = []
        self._stamp = self._file_stamp()
        self._config = load_config(path)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> Config:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._reload(stamp)
        return self._config

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                config = load_config(self.path)
            except ConfigError as exc:
                self.last_error = exc
                if self._on_error:
                    self._on_error(exc)
                return
            self.last_error = None
            self._config = config
        self._notify(config)

    def save(self, config: Config) -> None:
        """Validate, write atomically, and make it current at once. A damaged file on disk (say, a hand edit
        gone wrong while the app ran on its last good config) is kept aside first, not overwritten.

        This writes `config` whole: a writer with a change to make uses `update`, or a change saved since
        `config` was read (a budget switch, another window) is lost."""
        with self._lock:
            self.kept_aside = save_config(config, self.path) or self.kept_aside
            self._config = config
            self._stamp = self._file_stamp()
            self.last_error = None
        self._notify(config)

    def update(self, change: Callable[[Config], Config]) -> Config:
        """Apply `change` to the current config and save it, one update at a time."""
        with self._updating:
            config = change(self.current())
            self.save(config)
        return config

    def subscribe(self, listener: Callable[[Config], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, config: Config) -> None:
        for listener in list(self._listeners):
            listener(config)


def is_private_file(path: Path) -> bool:
    """True when only the owner can read the file (what secrets and config need)."""
    mode = path.stat().st_mode
    return not (mode & (stat.S_IRWXG | stat.S_IRWXO))
