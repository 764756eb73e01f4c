"""Env variables that point an agent straight at a provider, bypassing the proxy (the Export page's
"direct" variant). Nothing is logged, priced or routed that way, and the real key is in the text, which
is why the GUI asks before copying it. Model names are the real ones from the active preset, since no
proxy is there to map Downshift's role names.
"""

from __future__ import annotations

from app.core.config import Preset, Provider
from app.core.envexport import AGENTS, render


class DirectEnvError(ValueError):
    """This agent cannot talk to this provider directly; the message says why."""


def _root(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _models(provider: Provider, preset: Preset | None) -> dict[str, str]:
    """Role -> real model, for the preset's roles served by this provider (default first)."""
    if preset is None:
        return {}
    return {role: t.model for role, t in preset.roles.items() if t.provider == provider.name}


def direct_env(agent: str, provider: Provider, key: str, preset: Preset | None) -> dict[str, str]:
    if agent not in AGENTS:
        raise DirectEnvError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
    models = _models(provider, preset)
    main = models.get("default") or next(iter(models.values()), None)
    anthropic = provider.api == "anthropic"
    if agent == "gemini":  # no provider kind Downshift knows serves the Gemini API
        raise DirectEnvError(
            f"Gemini CLI speaks only the Gemini API, which {provider.name} does not: "
            "it can only reach this provider through Downshift"
        )
    if agent == "claude-code":
        if not anthropic:
            raise DirectEnvError(
                f"Claude Code speaks the Anthropic Messages API and {provider.name} is OpenAI-format: "
                "it can only reach this provider through Downshift"
            )
        env = {"ANTHROPIC_BASE_URL": _root(provider.base_url), "ANTHROPIC_API_KEY": key}
        if main:
            env["ANTHROPIC_MODEL"] = main
            slots = (
                ("ANTHROPIC_DEFAULT_OPUS_MODEL", "plan"),
                ("ANTHROPIC_DEFAULT_SONNET_MODEL", "default"),
                ("ANTHROPIC_DEFAULT_HAIKU_MODEL", "background"),
                ("CLAUDE_CODE_SUBAGENT_MODEL", "subagent"),
            )
            env.update({var: models[role] for var, role in slots if role in models})
        return env
    if anthropic:
        env = {"ANTHROPIC_BASE_URL": _root(provider.base_url), "ANTHROPIC_API_KEY": key}
        if agent == "aider" and main:
            env["AIDER_MODEL"] = f"anthropic/{main}"
        elif main:
            env["ANTHROPIC_MODEL"] = main
        return env
    base = provider.base_url.rstrip("/")
    if agent == "aider":
        env = {"OPENAI_API_BASE": base, "OPENAI_API_KEY": key}
        if main:
            env["AIDER_MODEL"] = f"openai/{main}"
        return env
    if agent == "codex":
        return {"OPENAI_BASE_URL": base, "OPENAI_API_KEY": key}
    env = {"OPENAI_BASE_URL": base, "OPENAI_API_BASE": base, "OPENAI_API_KEY": key}
    if main:
        env["OPENAI_MODEL"] = main
    return env


def direct_export_text(agent: str, fmt: str, provider: Provider, key: str, preset: Preset | None) -> str:
    note = f"Direct to {provider.name}: no Downshift proxy, so these calls are not logged, priced or routed."
    if agent == "codex":
        note += "\nCodex CLI also needs a provider with the Responses API and a model set in its config.toml."
    return render(direct_env(agent, provider, key, preset), fmt, note=note)


def mask_key(key: str) -> str:
    """For showing a snippet on screen without showing the key: first 6 and last 4 characters."""
    return key if len(key) <= 12 else f"{key[:6]}…{key[-4:]}"
