"""Whether a preset runs on cheap models, premium ones, or both: what the tray icon shows at a glance.

A target is premium when its provider is a frontier vendor reached over the network (Anthropic, OpenAI),
or when it is one of the premium preset's targets and not also the cheap preset's default. A preset whose
roles are all premium is "premium", none "cheap", and a mix (say, plan on a frontier model and execute
cheap) is "mixed".
"""

from __future__ import annotations

from typing import Literal

from app.core.config import Config, Preset, Target

Tier = Literal["cheap", "premium", "mixed"]
PREMIUM_KINDS = frozenset({"anthropic", "openai"})


def target_is_premium(config: Config, target: Target) -> bool:
    provider = config.providers.get(target.provider)
    if provider is not None and provider.kind in PREMIUM_KINDS and not provider.local:
        return True
    premium = config.presets.get(config.premium)
    cheap = config.presets.get(config.cheap)
    if premium is None or target not in premium.roles.values():
        return False
    return cheap is None or target != cheap.default


def preset_tier(config: Config, preset: Preset | None) -> Tier:
    if preset is None or not preset.roles:
        return "cheap"
    flags = {target_is_premium(config, t) for t in preset.roles.values()}
    if flags == {True}:
        return "premium"
    return "mixed" if True in flags else "cheap"
