"""Reading the configuration: TOML tables to a validated `Config`, with clear messages.

`parse_config` checks every key's type and refuses unknown keys, naming the key path in the error, so a
hand edit gone wrong says which key to fix. Its inverse, `to_toml_dict`, lives with the saving code.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


class _Reader:
    """Walks a TOML table, checking types and refusing unknown keys, with the key path in every error."""

    def __init__(self, path: Path | None, data: Mapping[str, Any], where: str) -> None:
        self.path, self.data, self.where, self.seen = path, data, where, set[str]()
        if not isinstance(data, Mapping):
            raise ConfigError(path, where, f"must be a table, got {type(data).__name__}")

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(
        self, name: str, kind: type | tuple[type, ...], default: Any = ..., required: bool = False
    ) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise ConfigError(self.path, self.key(name), "is required but missing")
            return None if default is ... else default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(
                self.path, self.key(name), f"must be {names}, got {type(value).__name__} {value!r}"
            )
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(self.path, self.key(unknown[0]), "unknown key")


def _target(path: Path | None, key: str, text: Any, providers: Mapping[str, Provider]) -> Target:
    if not isinstance(text, str):
        raise ConfigError(path, key, f"must be a 'provider/model' string, got {text!r}")
    try:
        target = Target.parse(text)
    except ValueError as exc:
        raise ConfigError(path, key, str(exc)) from None
    if target.provider not in providers:
        known = ", ".join(providers) or "none configured"
        raise ConfigError(path, key, f"unknown provider {target.provider!r} (known: {known})")
    return target


def _provider(path: Path | None, index: int, raw: Any) -> Provider:
    r = _Reader(path, raw, f"providers[{index}]")
    name = r.get("name", str, required=True)
    base_url = r.get("base_url", str, required=True).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(path, r.key("base_url"), f"must start with http:// or https://, got {base_url!r}")
    api = r.get("api", str, "openai")
    if api not in APIS:
        raise ConfigError(path, r.key("api"), f"must be one of {', '.join(APIS)}, got {api!r}")
    t = _Reader(path, r.get("timeouts", dict, {}), r.key("timeouts"))
    timeouts = Timeouts(
        connect=t.get("connect", float, 10.0),
        first_byte=t.get("first_byte", float, 300.0),
        idle=t.get("idle", float, 120.0),
    )
    t.finish()
    headers = r.get("headers", dict, {})
    for hk, hv in headers.items():
        if not isinstance(hv, str):
            raise ConfigError(path, f"{r.key('headers')}.{hk}", "must be a string")
    provider = Provider(
        name=name,
        base_url=base_url,
        api=api,
        api_key_env=r.get("api_key_env", str),
        kind=r.get("kind", str, "custom"),
        local=r.get("local", bool, False),
        max_tokens=r.get("max_tokens", int),
        headers=dict(headers),
        timeouts=timeouts,
        hourly_cost=r.get("hourly_cost", float),
    )
    r.finish()
    return provider


def _preset(path: Path | None, index: int, raw: Any, providers: Mapping[str, Provider]) -> Preset:
    r = _Reader(path, raw, f"presets[{index}]")
    name = r.get("name", str, required=True)
    r.get("default", str, required=True)
    roles = {
        role: _target(path, r.key(role), r.data[role], providers)
        for role in ROLES
        if r.get(role, str) is not None
    }
    patterns = r.get("patterns", dict, {})
    for glob, role in patterns.items():
        if role not in ROLES:
            raise ConfigError(
                path, f"{r.key('patterns')}.{glob}", f"role must be one of {', '.join(ROLES)}, got {role!r}"
            )
    fallback = tuple(
        _target(path, f"{r.key('fallback')}[{i}]", text, providers)
        for i, text in enumerate(r.get("fallback", list, []))
    )
    escalate = None
    raw_esc = r.get("escalate", dict)
    if raw_esc is not None:
        e = _Reader(path, raw_esc, r.key("escalate"))
        escalate = Escalation(
            e.get("threshold", float, 0.3), e.get("window", int, 10), e.get("role", str, "plan")
        )
        e.finish()
    preset = Preset(
        name,
        roles,
        dict(patterns),
        fallback,
        r.get("description", str, ""),
        escalate,
        _long_context(path, r, r.get("long_context", dict)),
        _shadow(path, r, r.get("shadow", dict), providers),
    )
    r.finish()
    return preset


def _long_context(path: Path | None, preset: _Reader, raw: Any) -> LongContext | None:
    if raw is None:
        return None
    r = _Reader(path, raw, preset.key("long_context"))
    above = r.get("above_tokens", int, required=True)
    if above < 1:
        raise ConfigError(
            path, r.key("above_tokens"), f"must be a whole number of tokens above 0, got {above}"
        )
    role = r.get("role", str, "plan")
    if role not in ROLES:
        raise ConfigError(path, r.key("role"), f"must be one of {', '.join(ROLES)}, got {role!r}")
    r.finish()
    return LongContext(above, role)


def _shadow(path: Path | None, preset: _Reader, raw: Any, providers: Mapping[str, Provider]) -> Shadow | None:
    if raw is None:
        return None
    r = _Reader(path, raw, preset.key("shadow"))
    target = _target(path, r.key("target"), r.get("target", str, required=True), providers)
    share = r.get("share", float, 0.1)
    if not 0.0 < share <= 1.0:
        raise ConfigError(
            path,
            r.key("share"),
            f"must be a fraction above 0 and at most 1 (0.1 = one call in ten), got {share}",
        )
    cap = r.get("max_usd_per_day", float, 2.0)
    if cap < 0:
        raise ConfigError(path, r.key("max_usd_per_day"), f"must be 0 or more, got {cap}")
    r.finish()
    return Shadow(target, share, cap)


def _price(path: Path | None, key: str, raw: Any) -> Price:
    r = _Reader(path, raw, key)
    price = Price(
        input=r.get("input", float, required=True),
        output=r.get("output", float, required=True),
        cache_read=r.get("cache_read", float),
        cache_write=r.get("cache_write", float),
        cache_write_1h=r.get("cache_write_1h", float),
    )
    r.finish()
    return price


def _budget(
    path: Path | None, index: int, raw: Any, presets: Mapping[str, Preset], providers: Mapping[str, Provider]
) -> Budget:
    r = _Reader(path, raw, f"budgets[{index}]")
    period = r.get("period", str, required=True)
    if period not in ("day", "month"):
        raise ConfigError(path, r.key("period"), f"must be 'day' or 'month', got {period!r}")
    action = r.get("action", str, "warn")
    if action not in ("warn", "switch", "block"):
        raise ConfigError(path, r.key("action"), f"must be 'warn', 'switch' or 'block', got {action!r}")
    provider = r.get("provider", str)
    if provider is not None and provider not in providers:
        raise ConfigError(path, r.key("provider"), f"unknown provider {provider!r}")
    switch_to = r.get("switch_to", str)
    if action == "switch" and switch_to not in presets:
        raise ConfigError(path, r.key("switch_to"), f"must name a preset to switch to, got {switch_to!r}")
    member = r.get("member", str)
    if member is not None and provider is not None:
        raise ConfigError(path, r.key("member"), "a budget is per provider or per member, not both")
    budget = Budget(period, r.get("limit_usd", float, required=True), action, provider, switch_to, member)
    r.finish()
    return budget


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Build a validated Config from parsed TOML; raise ConfigError naming the offending key."""
    top = _Reader(path, data, "")
    proxy = _Reader(path, top.get("proxy", dict, {}), "proxy")
    providers: dict[str, Provider] = {}
    for i, raw in enumerate(top.get("providers", list, [])):
        provider = _provider(path, i, raw)
        if provider.name in providers:
            raise ConfigError(path, f"providers[{i}].name", f"duplicate provider name {provider.name!r}")
        providers[provider.name] = provider
    presets: dict[str, Preset] = {}
    for i, raw in enumerate(top.get("presets", list, [])):
        preset = _preset(path, i, raw, providers)
        if preset.name in presets:
            raise ConfigError(path, f"presets[{i}].name", f"duplicate preset name {preset.name!r}")
        presets[preset.name] = preset
    routing = _Reader(path, top.get("routing", dict, {}), "routing")
    active = routing.get("active", str, next(iter(presets), ""))
    if presets and active not in presets:
        raise ConfigError(path, "routing.active", f"no preset named {active!r} (have: {', '.join(presets)})")
    prices_raw = top.get("prices", dict, {})
    prices = {model: _price(path, f"prices.{model}", raw) for model, raw in prices_raw.items()}
    logging_ = _Reader(path, top.get("logging", dict, {}), "logging")
    tasks = _Reader(path, top.get("tasks", dict, {}), "tasks")
    team_ = _Reader(path, top.get("team", dict, {}), "team")
    team = Team(
        member=team_.get("member", str, "").strip(),
        machine=team_.get("machine", str, "").strip(),
        ledger=team_.get("ledger", str, "").strip(),
        rate_per_minute=team_.get("rate_per_minute", float, 600.0),
    )
    if team.rate_per_minute < 0:
        raise ConfigError(
            path, "team.rate_per_minute", f"must be 0 (no limit) or more, got {team.rate_per_minute:g}"
        )
    if team.ledger and not team.ledger.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ConfigError(path, "team.ledger", f"must be a postgresql:// URL, got {team.ledger!r}")
    if team.ledger and not team.member:
        raise ConfigError(
            path, "team.member", "is required with team.ledger: the name your calls carry in the team ledger"
        )
    if ":" in team.ledger.split("://", 1)[-1].split("@", 1)[0] and "@" in team.ledger:
        raise ConfigError(
            path,
            "team.ledger",
            "holds a password; keep it in the keyring (downshift team password), PGPASSWORD or ~/.pgpass, "
            "never in the config file",
        )
    budgets = tuple(
        _budget(path, i, raw, presets, providers) for i, raw in enumerate(top.get("budgets", list, []))
    )
    port = proxy.get("port", int, 8765)
    if not 0 <= port <= 65535:
        raise ConfigError(path, "proxy.port", f"must be between 0 and 65535, got {port}")
    host = proxy.get("host", str, "127.0.0.1")
    allow_remote = proxy.get("allow_remote", bool, False)
    if not allow_remote and not is_loopback_host(host):
        raise ConfigError(
            path,
            "proxy.host",
            f"{host!r} would let other machines reach the proxy and the keys behind "
            "it; use 127.0.0.1, or set proxy.allow_remote = true if that is really what you want",
        )
    config = Config(
        host=host,
        port=port,
        allow_remote=allow_remote,
        max_body_mb=proxy.get("max_body_mb", float, 32.0),
        allowed_origins=tuple(proxy.get("allowed_origins", list, [])),
        providers=providers,
        presets=presets,
        active=active,
        cheap=routing.get("cheap", str, "cheap"),
        premium=routing.get("premium", str, "premium"),
        prices=prices,
        store_bodies=logging_.get("store_bodies", bool, False),
        body_max_bytes=logging_.get("body_max_bytes", int, 65536),
        retention_days=logging_.get("retention_days", int, 90),
        task_idle_minutes=tasks.get("idle_minutes", float, 30.0),
        tool_failure_patterns=tuple(tasks.get("tool_failure_patterns", list, [])),
        budgets=budgets,
        ui=dict(top.get("ui", dict, {})),
        team=team,
    )
    for reader in (proxy, routing, logging_, tasks, team_, top):
        reader.finish()
    return config


def load_config(path: Path) -> Config:
    """Read and validate a config file; a missing file gives the built-in default."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default_config()
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"is not valid TOML: {exc}") from None
    return parse_config(data, path)


_LOOPBACK_NAMES = frozenset(
    {"localhost", "localhost.", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
)


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith((".localhost", ".localhost.")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
