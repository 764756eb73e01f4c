"""A preset in one line, for pickers: its models and what they cost per million tokens.

The window's preset switcher and the tray show this beside each preset name, so the choice between
"cheap" and "premium" is made knowing what each one runs and costs.
"""

from __future__ import annotations

from app.core.config import Config, Preset, Target
from app.core.pricing import find_price


def target_price(config: Config, target: Target) -> str:
    """'$0.27 / $1.10 per M' (input / output USD per million tokens), 'free (local)' or 'price unknown'."""
    provider = config.providers.get(target.provider)
    if provider is not None and provider.local:
        return "free (local)"
    price, _source = find_price(config, provider, target.model)
    if price is None:
        return "price unknown"
    return f"${price.input:.2f} / ${price.output:.2f} per M"


def preset_line(config: Config, preset: Preset) -> str:
    """'cheap: deepseek-chat ($0.27 / $1.10 per M)': the default role's model and price."""
    target = preset.default
    return f"{preset.name}: {target.model} ({target_price(config, target)})"


def preset_details(config: Config, preset: Preset) -> str:
    """Every role's target and price, one per line (a tooltip)."""
    lines = [preset.description] if preset.description else []
    lines += [f"{role}: {target} ({target_price(config, target)})" for role, target in preset.roles.items()]
    lines += [f"fallback: {target} ({target_price(config, target)})" for target in preset.fallback]
    return "\n".join(lines)
