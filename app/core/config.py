"""The TOML configuration: schema, validation with clear messages, atomic save, live reload.

The file is the single source of truth shared by the CLI, the headless proxy and the GUI. A running proxy
re-reads it when it changes on disk and keeps the last good version when the new one is invalid. A file
that cannot be read as a valid config is never overwritten: before a save replaces it, it is kept aside
as `config.toml.damaged-<time>`. The file is written readable only by the user.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

log = logging.getLogger(__name__)

ROLES = ("default", "plan", "background", "subagent")
APIS = ("openai", "anthropic")


class ConfigError(ValueError):
    """A config problem, phrased for the user: which file, which key, what is wrong."""

    def __init__(self, path: Path | str | None, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


@dataclass(frozen=True)
class Target:
    """A provider and one of its models; written `provider/model`, split at the first '/'."""

    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> Target:
        provider, sep, model = text.partition("/")
        if not sep or not provider or not model:
            raise ValueError(f"{text!r} is not of the form provider/model")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `first_byte` bounds the wait for response headers; `idle` the gap between chunks."""

    connect: float = 10.0
    first_byte: float = 300.0
    idle: float = 120.0


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    api: str = "openai"
    api_key_env: str | None = None
    kind: str = "custom"
    local: bool = False
    max_tokens: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    hourly_cost: float | None = None


@dataclass(frozen=True)
class Budget:
    """A spending limit and what happens when it is reached."""

    period: str  # "day" | "month"
    limit_usd: float
    action: str = "warn"  # "warn" | "switch" | "block"
    provider: str | None = None
    switch_to: str | None = None
    member: str | None = None  # team mode: only this member's calls count (and, for block, are refused)


@dataclass(frozen=True)
class Escalation:
    """Send a task's next calls to `role` once the cheap model's tool calls fail too often."""

    threshold: float = 0.3
    window: int = 10
    role: str = "plan"


@dataclass(frozen=True)
class LongContext:
    """Send loop calls whose prompt is over `above_tokens` to `role` (see app.core.long_context)."""

    above_tokens: int
    role: str = "plan"


@dataclass(frozen=True)
class Shadow:
    """Also send a sampled `share` of loop calls to `target`, after the agent had its answer, for evaluation;
    stopped for the day once shadow calls cost `max_usd_per_day` (see app.proxy.shadow)."""

    target: Target
    share: float = 0.1
    max_usd_per_day: float = 2.0


@dataclass(frozen=True)
class Preset:
    name: str
    roles: Mapping[str, Target]
    patterns: Mapping[str, str] = field(default_factory=dict)
    fallback: tuple[Target, ...] = ()
    description: str = ""
    escalate: Escalation | None = None
    long_context: LongContext | None = None
    shadow: Shadow | None = None

    @property
    def default(self) -> Target:
        return self.roles["default"]

    def target_for(self, role: str) -> Target:
        return self.roles.get(role) or self.roles["default"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None


@dataclass(frozen=True)
class Team:
    """Team mode (`[team]`): who this proxy's calls belong to, and the team's ledger to ship them to."""

    member: str = ""  # '' logs calls without a member (a single user)
    machine: str = ""  # '' is this computer's host name
    ledger: str = (
        ""  # postgresql://user@host:port/db (shape 1); its password comes from the keyring or PGPASSWORD
    )
    rate_per_minute: float = 600.0  # a shared gateway's limit per member token (0: none)


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8765
    allow_remote: bool = False
    max_body_mb: float = 32.0
    allowed_origins: tuple[str, ...] = ()
    providers: Mapping[str, Provider] = field(default_factory=dict)
    presets: Mapping[str, Preset] = field(default_factory=dict)
    active: str = ""
    cheap: str = "cheap"
    premium: str = "premium"
    prices: Mapping[str, Price] = field(default_factory=dict)
    store_bodies: bool = False
    body_max_bytes: int = 65536
    retention_days: int = 90
    task_idle_minutes: float = 30.0
    tool_failure_patterns: tuple[str, ...] = ()  # empty: toolcheck.DEFAULT_ERROR_PATTERNS
    budgets: tuple[Budget, ...] = ()
    ui: Mapping[str, Any] = field(default_factory=dict)
    team: Team = field(default_factory=Team)

    @property
    def active_preset(self) -> Preset | None:
        return self.presets.get(self.active)

    def with_active(self, name: str) -> Config:
        if name not in self.presets:
            raise ConfigError(
                None, "routing.active", f"no preset named {name!r} (have: {', '.join(self.presets)})"
            )
        return replace(self, active=name)


# ---------------------------------------------------------------------------------------------- parsing


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
        p = _provider(path, i, raw)
        if p.name in providers:
            raise ConfigError(path, f"providers[{i}].name", f"duplicate provider name {p.name!r}")
        providers[p.name] = p
    presets: dict[str, Preset] = {}
    for i, raw in enumerate(top.get("presets", list, [])):
        p = _preset(path, i, raw, providers)
        if p.name in presets:
            raise ConfigError(path, f"presets[{i}].name", f"duplicate preset name {p.name!r}")
        presets[p.name] = p
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


# ---------------------------------------------------------------------------------------------- writing


def _target_text(t: Target) -> str:
    return str(t)


def to_toml_dict(config: Config) -> dict[str, Any]:
    """The inverse of parse_config: only non-default values are written, so the file stays readable."""
    proxy: dict[str, Any] = {"host": config.host, "port": config.port}
    if config.allow_remote:
        proxy["allow_remote"] = True
    if config.max_body_mb != 32.0:
        proxy["max_body_mb"] = config.max_body_mb
    if config.allowed_origins:
        proxy["allowed_origins"] = list(config.allowed_origins)
    out: dict[str, Any] = {"proxy": proxy}
    providers = []
    for p in config.providers.values():
        d: dict[str, Any] = {"name": p.name, "base_url": p.base_url, "api": p.api}
        if p.kind != "custom":
            d["kind"] = p.kind
        if p.api_key_env:
            d["api_key_env"] = p.api_key_env
        if p.local:
            d["local"] = True
        if p.max_tokens is not None:
            d["max_tokens"] = p.max_tokens
        if p.hourly_cost is not None:
            d["hourly_cost"] = p.hourly_cost
        if p.headers:
            d["headers"] = dict(p.headers)
        if p.timeouts != Timeouts():
            d["timeouts"] = {
                "connect": p.timeouts.connect,
                "first_byte": p.timeouts.first_byte,
                "idle": p.timeouts.idle,
            }
        providers.append(d)
    if providers:
        out["providers"] = providers
    presets = []
    for pr in config.presets.values():
        d = {"name": pr.name}
        if pr.description:
            d["description"] = pr.description
        d.update({role: _target_text(t) for role, t in pr.roles.items()})
        if pr.patterns:
            d["patterns"] = dict(pr.patterns)
        if pr.fallback:
            d["fallback"] = [_target_text(t) for t in pr.fallback]
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
        presets.append(d)
    if presets:
        out["presets"] = presets
    out["routing"] = {"active": config.active, "cheap": config.cheap, "premium": config.premium}
    if config.prices:
        out["prices"] = {
            model: {k: v for k, v in vars(price).items() if v is not None}
            for model, price in config.prices.items()
        }
    logging_ = {
        "store_bodies": config.store_bodies,
        "body_max_bytes": config.body_max_bytes,
        "retention_days": config.retention_days,
    }
    out["logging"] = logging_
    out["tasks"] = {"idle_minutes": config.task_idle_minutes}
    if config.tool_failure_patterns:
        out["tasks"]["tool_failure_patterns"] = list(config.tool_failure_patterns)
    if config.budgets:
        out["budgets"] = [
            {k: v for k, v in vars(b).items() if v is not None and not (k == "action" and v == "warn")}
            for b in config.budgets
        ]
    if config.ui:
        out["ui"] = dict(config.ui)
    if config.team != Team():
        out["team"] = {k: v for k, v in vars(config.team).items() if v != getattr(Team(), k)}
    return out


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def default_config() -> Config:
    """A config that works out of the box with a local Ollama, and shows the shape of the file."""
    ollama = Provider(name="ollama", base_url="http://127.0.0.1:11434/v1", kind="ollama", local=True)
    target = Target("ollama", "qwen2.5-coder:7b")
    presets = {
        "cheap": Preset("cheap", {"default": target}, description="Open-weight executor for the loop"),
        "premium": Preset("premium", {"default": target}, description="Frontier model for everything"),
    }
    return Config(providers={"ollama": ollama}, presets=presets, active="cheap")


# ---------------------------------------------------------------------------------------------- live store


class ConfigStore:
    """Holds the current config and re-reads the file when it changes; keeps the last good one on error.

    `current()` is cheap (one stat call) so the proxy can call it on every request, which is what makes
    a preset switch apply to the very next request.
    """

    def __init__(self, path: Path, on_error: Callable[[ConfigError], None] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
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
        gone wrong while the app ran on its last good config) is kept aside first, not overwritten."""
        with self._lock:
            self.kept_aside = save_config(config, self.path) or self.kept_aside
            self._config = config
            self._stamp = self._file_stamp()
            self.last_error = None
        self._notify(config)

    def update(self, change: Callable[[Config], Config]) -> Config:
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
