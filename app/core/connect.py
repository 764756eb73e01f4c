"""Connect an agent in one click: write Downshift into the agent's own settings file, and undo it.

Each agent keeps its settings in its own file and format: Claude Code a JSON `env` block, Codex a TOML
model provider, OpenCode a JSON provider, aider a YAML file of flat keys. `connect` merges only the keys
Downshift needs into what is there (everything else is left as it was), after copying the file aside,
and remembers what each key held before; `disconnect` puts exactly those keys back, so edits the user
made meanwhile survive the undo.

No token is written: each agent reads it from an environment variable (Claude Code's
ANTHROPIC_AUTH_TOKEN, Codex's env_key, OpenCode's `{env:...}`, aider's OPENAI_API_KEY), which one
line in the shell's rc file sets on every new shell, `eval "$(downshift env --agent NAME)"`. A rotated
token or a new port is then picked up by the next shell, with no file to edit again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from app import paths
from app.core.atomic_file import atomic_write

KeyPath = tuple[str, ...]
BACKUP_SUFFIX = ".downshift-backup"


class ConnectError(Exception):
    """The agent's file cannot be read or written; the message says which and why."""


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def _codex_file() -> Path:
    home = os.environ.get("CODEX_HOME")
    return (Path(home).expanduser() if home else _home() / ".codex") / "config.toml"


def _opencode_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME")
    return (Path(base) if base else _home() / ".config") / "opencode" / "opencode.json"


def _claude_settings(v1: str, base: str) -> dict[KeyPath, Any]:
    """The slots name Downshift roles, as in `downshift env --agent claude-code` (see envexport)."""
    return {
        ("env", "ANTHROPIC_BASE_URL"): base,
        ("env", "ANTHROPIC_MODEL"): "opusplan",
        ("env", "ANTHROPIC_DEFAULT_OPUS_MODEL"): "plan",
        ("env", "ANTHROPIC_DEFAULT_SONNET_MODEL"): "default",
        ("env", "ANTHROPIC_DEFAULT_HAIKU_MODEL"): "background",
        ("env", "CLAUDE_CODE_SUBAGENT_MODEL"): "subagent",
        ("env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"): "1",
    }


def _codex_settings(v1: str, base: str) -> dict[KeyPath, Any]:
    return {
        ("model_provider",): "downshift",
        ("model",): "default",
        ("model_providers", "downshift"): {
            "name": "Downshift",
            "base_url": v1,
            "env_key": "DOWNSHIFT_API_KEY",
            "wire_api": "responses",
        },
    }


def _opencode_settings(v1: str, base: str) -> dict[KeyPath, Any]:
    return {
        ("provider", "downshift"): {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Downshift",
            "options": {"baseURL": v1, "apiKey": "{env:DOWNSHIFT_API_KEY}"},
            "models": {role: {"name": role} for role in ("default", "plan", "background")},
        },
        ("model",): "downshift/default",
        ("small_model",): "downshift/background",
        ("autoupdate",): False,
    }


def _aider_settings(v1: str, base: str) -> dict[KeyPath, Any]:
    return {("openai-api-base",): v1, ("model",): "openai/default", ("weak-model",): "openai/background"}


@dataclass(frozen=True)
class AgentFile:
    agent: str  # as in envexport.AGENTS
    label: str
    file: Callable[[], Path]
    fmt: str  # json | toml | yaml
    token_var: str  # the variable the agent reads the token from; `downshift env --agent` exports it
    settings: Callable[[str, str], dict[KeyPath, Any]]  # (proxy /v1 URL, proxy root URL) -> what to set


CONNECTABLE: dict[str, AgentFile] = {
    a.agent: a
    for a in (
        AgentFile(
            "claude-code",
            "Claude Code",
            lambda: _home() / ".claude" / "settings.json",
            "json",
            "ANTHROPIC_AUTH_TOKEN",
            _claude_settings,
        ),
        AgentFile("codex", "Codex CLI", _codex_file, "toml", "DOWNSHIFT_API_KEY", _codex_settings),
        AgentFile("opencode", "OpenCode", _opencode_file, "json", "DOWNSHIFT_API_KEY", _opencode_settings),
        AgentFile(
            "aider", "Aider", lambda: _home() / ".aider.conf.yml", "yaml", "OPENAI_API_KEY", _aider_settings
        ),
    )
}


def agent_file(agent: str) -> AgentFile:
    try:
        return CONNECTABLE[agent]
    except KeyError:
        raise ConnectError(
            f"cannot connect {agent!r}; connectable agents: {', '.join(CONNECTABLE)}"
        ) from None


def rc_line(agent: str, shell: str = "bash") -> str:
    """The line for the shell's rc file that exports the token (and the proxy's current address)."""
    if shell == "fish":
        return f"downshift env --agent {agent} --format fish | source"
    if shell == "powershell":
        return f"downshift env --agent {agent} --format powershell | Invoke-Expression"
    return f'eval "$(downshift env --agent {agent})"'


# ------------------------------------------------------------------------------------------- formats

_MISSING = object()


def _get(data: dict[str, Any], path: KeyPath) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _set(data: dict[str, Any], path: KeyPath, value: Any) -> list[KeyPath]:
    """Set a nested key; returns the parent tables it had to create (so an undo can remove them)."""
    created: list[KeyPath] = []
    node = data
    for i, key in enumerate(path[:-1]):
        if not isinstance(node.get(key), dict):
            if key in node:
                raise ConnectError(f"{'.'.join(path[: i + 1])} is not a table; fix it by hand first")
            node[key] = {}
            created.append(path[: i + 1])
        node = node[key]
    node[path[-1]] = value
    return created


def _delete(data: dict[str, Any], path: KeyPath) -> None:
    parent = _get(data, path[:-1]) if len(path) > 1 else data
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


_YAML_KEY = re.compile(r"^([A-Za-z0-9_.-]+)\s*:")


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value)  # a JSON string or number is a valid YAML scalar


def _yaml_read(text: str) -> dict[str, Any]:
    """Top-level `key: value` lines of a YAML file, values as written (aider's config is flat)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        match = _YAML_KEY.match(line)
        if match:
            raw = line[match.end() :].strip()
            try:
                out[match.group(1)] = json.loads(raw) if raw else None
            except ValueError:
                out[match.group(1)] = raw  # a plain scalar: kept as its text
    return out


def _yaml_write(text: str, changes: dict[str, Any]) -> str:
    """Set (or with _MISSING, remove) top-level keys, line by line: comments and other keys stay."""
    lines, seen = text.splitlines(), set()
    out = []
    for line in lines:
        match = _YAML_KEY.match(line)
        key = match.group(1) if match else None
        if key in changes:
            seen.add(key)
            if changes[key] is not _MISSING:
                out.append(f"{key}: {_yaml_scalar(changes[key])}")
            continue
        out.append(line)
    out += [f"{k}: {_yaml_scalar(v)}" for k, v in changes.items() if k not in seen and v is not _MISSING]
    return "\n".join(out) + "\n" if out else ""


def _load(spec: AgentFile, path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as exc:
        raise ConnectError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if spec.fmt == "json":
            data = json.loads(text) if text.strip() else {}
        elif spec.fmt == "toml":
            data = tomllib.loads(text)
        else:
            data = _yaml_read(text)
    except ValueError as exc:
        raise ConnectError(
            f"{path} is not valid {spec.fmt.upper()} ({exc}); fix it or move it aside first"
        ) from None
    if not isinstance(data, dict):
        raise ConnectError(f"{path} does not hold a {spec.fmt.upper()} object; fix it or move it aside first")
    return data, text


def _save(spec: AgentFile, path: Path, data: dict[str, Any], text: str, changed: dict[KeyPath, Any]) -> None:
    if spec.fmt == "json":
        out = json.dumps(data, indent=2) + "\n"
    elif spec.fmt == "toml":
        out = tomli_w.dumps(data)
    else:
        out = _yaml_write(text, {p[0]: v for p, v in changed.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        atomic_write(path, out.encode(), mode=mode)
    except OSError as exc:
        raise ConnectError(f"cannot write {path}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------------------- state


def _state_file(agent: str) -> Path:
    return paths.data_dir() / "connected" / f"{agent}.json"


def _state(agent: str) -> dict[str, Any] | None:
    try:
        state = json.loads(_state_file(agent).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None  # a file edited by hand into a list is no state


def is_connected(agent: str) -> bool:
    return _state(agent) is not None


@dataclass(frozen=True)
class Connected:
    agent: str
    path: Path
    backup: Path | None  # the file as it was before the first connect; None when there was none
    rc_line: str
    token_var: str


def connect(agent: str, base_url: str, shell: str = "bash") -> Connected:
    """Merge Downshift's settings into the agent's file (again, to follow a new port, if connected)."""
    spec = agent_file(agent)
    path = spec.file()
    data, text = _load(spec, path)
    settings = spec.settings(f"{base_url}/v1", base_url)
    state = _state(agent)
    backup = path.with_name(path.name + BACKUP_SUFFIX) if path.exists() else None
    if state is None:  # the first connect: remember what each key held, and copy the file aside
        previous = []
        for key in settings:
            old = _get(data, key)
            previous.append([list(key), old is not _MISSING, None if old is _MISSING else old])
        state = {
            "path": str(path),
            "previous": previous,
            "created": [],
            "backup": str(backup) if backup else None,
        }
        if backup is not None:
            shutil.copy2(path, backup)
    for key, value in settings.items():
        for parent in _set(data, key, value):
            if list(parent) not in state["created"]:
                state["created"].append(list(parent))
    _save(spec, path, data, text, settings)
    state_path = _state_file(agent)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(state_path, json.dumps(state, indent=2).encode())
    return Connected(
        agent, path, Path(state["backup"]) if state["backup"] else None, rc_line(agent, shell), spec.token_var
    )


def disconnect(agent: str) -> Path:
    """Put back what the keys held before `connect` (removing those that were not there), leaving every
    other change to the file alone. Returns the file."""
    spec = agent_file(agent)
    state = _state(agent)
    if state is None:
        raise ConnectError(f"{spec.label} is not connected")
    path = Path(state["path"])
    data, text = _load(spec, path)
    restored: dict[KeyPath, Any] = {}
    for key, present, value in state["previous"]:
        key = tuple(key)
        if present:
            _set(data, key, value)
        else:
            _delete(data, key)
        restored[key] = value if present else _MISSING
    for parent in sorted((tuple(p) for p in state["created"]), key=len, reverse=True):
        if _get(data, parent) == {}:
            _delete(data, parent)
    if not data and state.get("backup") is None and spec.fmt != "yaml":
        path.unlink(missing_ok=True)  # the file was made by connect and holds nothing else
    elif (
        spec.fmt == "yaml"
        and state.get("backup") is None
        and not _yaml_write(text, {k[0]: v for k, v in restored.items()}).strip()
    ):
        path.unlink(missing_ok=True)
    else:
        _save(spec, path, data, text, restored)
    _state_file(agent).unlink(missing_ok=True)
    return path


def reconnect_all(base_url: str) -> list[str]:
    """After the proxy moved to another port: point every connected agent's file at the new address.
    Returns the agents updated; one that cannot be updated is skipped (its next call says why)."""
    done = []
    for agent in CONNECTABLE:
        if is_connected(agent):
            try:
                connect(agent, base_url)
            except (ConnectError, OSError):
                continue
            done.append(agent)
    return done
