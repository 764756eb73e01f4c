"""Which provider and model serve a request, decided from the active preset.

Order: a requested model equal to a role name -> that role; `provider/model` of a configured provider ->
that exact target; a preset pattern -> its role; else the preset's default. The preset's fallback list
follows the chosen target for failures before any byte reached the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from app.core.config import ROLES, Config, Preset, Target


class RoutingError(LookupError):
    """No target can serve the request (no preset configured, or an unknown explicit target)."""


@dataclass(frozen=True, slots=True)
class Route:
    preset: str | None
    role: str | None  # None when the client named an explicit provider/model
    targets: tuple[Target, ...]  # first the chosen target, then fallbacks (duplicates removed)
    reason: str  # role | explicit | pattern | default


def route(config: Config, requested: str | None, *, force_role: str | None = None) -> Route:
    preset = config.active_preset
    name = (requested or "").strip()
    if force_role is None and "/" in name:
        provider, _, model = name.partition("/")
        if provider in config.providers and model:
            fallback = preset.fallback if preset else ()
            return Route(
                preset.name if preset else None, None, _chain(Target(provider, model), fallback), "explicit"
            )
    if preset is None:
        raise RoutingError("no routing preset is configured; add one with `downshift` or in the config file")
    if force_role is not None:
        return _for_role(preset, force_role, "escalated")
    if name in ROLES:
        return _for_role(preset, name, "role")
    lowered = name.lower()
    for pattern, role in preset.patterns.items():
        if fnmatchcase(lowered, pattern.lower()):
            return _for_role(preset, role, "pattern")
    return _for_role(preset, "default", "default")


def _for_role(preset: Preset, role: str, reason: str) -> Route:
    return Route(preset.name, role, _chain(preset.target_for(role), preset.fallback), reason)


def _chain(first: Target, fallback: tuple[Target, ...]) -> tuple[Target, ...]:
    return (first, *(t for t in fallback if t != first))
