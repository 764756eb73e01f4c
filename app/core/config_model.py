"""The configuration's model: frozen dataclasses for what `config.toml` holds, and the one error type.

Kept apart from reading (`config_parse`) and saving (`config_store`) so that code which only passes a
config around (routing, pricing, the proxy) depends on plain data, not on TOML or files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


def default_config() -> Config:
    """A config that works out of the box with a local Ollama, and shows the shape of the file."""
    ollama = Provider(name="ollama", base_url="http://127.0.0.1:11434/v1", kind="ollama", local=True)
    target = Target("ollama", "qwen2.5-coder:7b")
    presets = {
        "cheap": Preset("cheap", {"default": target}, description="Open-weight executor for the loop"),
        "premium": Preset("premium", {"default": target}, description="Frontier model for everything"),
    }
    return Config(providers={"ollama": ollama}, presets=presets, active="cheap")
