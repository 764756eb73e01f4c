"""Plain words for where shadow runs are on: the Presets page and the tray tooltip show them, since a shadow
run sends the user's code to one more provider (see app.proxy.shadow)."""

from __future__ import annotations

from app.core.config import Config, Preset


def describe(preset: Preset) -> str | None:
    """One line for a preset with shadow runs on, else None."""
    s = preset.shadow
    if s is None:
        return None
    return (
        f"Shadow runs on: {s.share:.0%} of loop calls are also sent to {s.target} for evaluation"
        f" (up to ${s.max_usd_per_day:.2f} a day)"
    )


def active_notice(config: Config) -> str | None:
    """The tray's line while the active preset shadows, else None."""
    preset = config.active_preset
    return describe(preset) if preset is not None else None
