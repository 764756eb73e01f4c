"""The environment variables that point an agent at the proxy, rendered for each shell.

Only proxy values are ever printed: the proxy's URL and the local token. Model names are Downshift role
names, so the proxy (and the active preset) decides which real model serves each call.
"""

from __future__ import annotations

import json

AGENTS = ("claude-code", "codex", "aider", "opencode", "qwen-code", "cline", "continue", "gemini", "generic")
FILE_AGENTS = ("qwen-code", "cline", "continue", "gemini")
"""Agents configured by a file rather than variables: `downshift env --agent NAME --write` writes it
(see app/core/agent_config.py); without --write the file's content is printed as a comment."""
DEBUG_PREFIX = "/debug"
"""`downshift env --debug` puts this after the proxy's address: the proxy serves the same endpoints there, and
its answers name the preset, role and model that served them (X-Downshift-* headers)."""
FORMATS = ("bash", "fish", "powershell", "dotenv", "json")


def agent_env(agent: str, base_url: str, token: str) -> dict[str, str]:
    """Variables for `agent`; base_url is the proxy root, e.g. http://127.0.0.1:8765."""
    v1 = f"{base_url}/v1"
    if agent == "claude-code":
        # Claude Code appends /v1/messages itself. `opusplan` uses the opus slot in plan mode and the
        # sonnet slot otherwise: exactly "plan high, execute cheap" when the slots name Downshift roles.
        return {
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_AUTH_TOKEN": token,
            "ANTHROPIC_MODEL": "opusplan",
            "ANTHROPIC_DEFAULT_OPUS_MODEL": "plan",
            "ANTHROPIC_DEFAULT_SONNET_MODEL": "default",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": "background",
            "CLAUDE_CODE_SUBAGENT_MODEL": "subagent",
            # Otherwise Claude Code probes the proxy with unauthenticated requests (a failed row per run)
            # and tries to reach Anthropic's servers for telemetry and updates.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
    if agent == "codex":
        return {"DOWNSHIFT_API_KEY": token, "OPENAI_BASE_URL": v1}
    if agent == "aider":
        return {
            "OPENAI_API_BASE": v1,
            "OPENAI_API_KEY": token,
            "AIDER_MODEL": "openai/default",
            "AIDER_WEAK_MODEL": "openai/background",
        }
    if agent == "opencode":
        # The whole provider block inline (OpenCode layers it over ~/.config/opencode/opencode.json), the
        # key read from a variable so the JSON holds no secret. The two switches stop a models-catalogue
        # fetch and the self-update check.
        return {
            "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(base_url), separators=(",", ":")),
            "DOWNSHIFT_API_KEY": token,
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
        }
    if agent == "qwen-code":  # Qwen Code needs all three, or it asks for a login
        return {"OPENAI_BASE_URL": v1, "OPENAI_API_KEY": token, "OPENAI_MODEL": "default"}
    if agent == "cline":
        # The provider lives in ~/.cline/data/settings/providers.json (`--write`). Without this variable
        # every run also starts a detached hub daemon on 127.0.0.1:25463 that outlives the CLI.
        return {"CLINE_SESSION_BACKEND_MODE": "local"}
    if agent == "continue":
        return {}  # everything is in the YAML file `cn --config` reads
    # Gemini CLI appends /v1beta/models/...; it also needs ~/.gemini/settings.json (the note)
    if agent == "gemini":
        return {"GOOGLE_GEMINI_BASE_URL": base_url, "GEMINI_API_KEY": token, "GEMINI_MODEL": "default"}
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
    return {
        "OPENAI_BASE_URL": v1,
        "OPENAI_API_BASE": v1,
        "OPENAI_API_KEY": token,
        "OPENAI_MODEL": "default",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": token,
    }


def opencode_config(base_url: str) -> dict[str, object]:
    """OpenCode's config: an OpenAI-compatible provider `downshift` whose models are Downshift roles (the
    title and summary calls go to `small_model`, the `background` role)."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "downshift": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Downshift",
                "options": {"baseURL": f"{base_url}/v1", "apiKey": "{env:DOWNSHIFT_API_KEY}"},
                "models": {
                    "default": {"name": "default"},
                    "plan": {"name": "plan"},
                    "background": {"name": "background"},
                },
            }
        },
        "model": "downshift/default",
        "small_model": "downshift/background",
    }


def codex_config(base_url: str) -> str:
    """The `$CODEX_HOME/config.toml` lines that make Codex CLI talk to Downshift."""
    return (
        'model_provider = "downshift"\n'
        'model = "default"\n\n'
        "[model_providers.downshift]\n"
        'name = "Downshift"\n'
        f'base_url = "{base_url}/v1"\n'
        'env_key = "DOWNSHIFT_API_KEY"\n'
        'wire_api = "responses"\n'
    )


def _quote_sh(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def render(variables: dict[str, str], fmt: str, *, note: str | None = None) -> str:
    if fmt == "json":
        return json.dumps(variables, indent=2) + "\n"
    lines: list[str] = []
    comment = "#"
    if note:
        lines += [f"{comment} {line}".rstrip() for line in note.splitlines()]
    for key, value in variables.items():
        if fmt == "bash":
            lines.append(f"export {key}={_quote_sh(value)}")
        elif fmt == "fish":
            lines.append(f"set -gx {key} {_quote_sh(value)}")
        elif fmt == "powershell":
            lines.append(f"$env:{key} = '{value.replace(chr(39), chr(39) * 2)}'")
        elif fmt == "dotenv":
            lines.append(f"{key}={value}")
        else:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return "\n".join(lines) + "\n"


def export_text(agent: str, fmt: str, base_url: str, token: str) -> str:
    note = None
    if agent == "codex" and fmt != "json":
        note = (
            "Codex CLI: put these lines in $CODEX_HOME/config.toml (~/.codex/config.toml):\n"
            + codex_config(base_url)
        )
    if agent in FILE_AGENTS and fmt != "json":
        from app.core.agent_config import config_note

        note = config_note(agent, base_url, token)
    return render(agent_env(agent, base_url, token), fmt, note=note)


def proxy_base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"
