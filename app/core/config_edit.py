"""Edits to providers and presets that keep the config consistent, in plain functions the GUI calls.

Presets and budgets refer to providers by name, so renaming or removing a provider is more than one
dict operation: these helpers follow the references, or refuse with a message that names them.
Every function returns a new Config; saving (and validation) stays with `ConfigStore.save`.
"""

from __future__ import annotations

from dataclasses import replace

from app.core.config import Budget, Config, ConfigError, Preset, Price, Provider, Target


def provider_users(config: Config, name: str) -> list[str]:
    """Where provider `name` is referred to, in words: 'preset cheap', 'budget 1'..."""
    users = [
        f"preset {p.name}"
        for p in config.presets.values()
        if any(t.provider == name for t in (*p.roles.values(), *p.fallback))
    ]
    users += [f"budget {i + 1}" for i, b in enumerate(config.budgets) if b.provider == name]
    return users


def _rename_target(t: Target, old: str, new: str) -> Target:
    return Target(new, t.model) if t.provider == old else t


def upsert_provider(config: Config, provider: Provider, *, old_name: str | None = None) -> Config:
    """Add `provider`, or replace `old_name` with it; a rename carries presets and budgets along."""
    name = provider.name.strip()
    if not name:
        raise ConfigError(None, "providers.name", "a provider needs a name")
    if "/" in name:
        raise ConfigError(
            None, "providers.name", f"{name!r} cannot contain '/' (targets are written provider/model)"
        )
    if name != old_name and name in config.providers:
        raise ConfigError(None, "providers.name", f"there is already a provider named {name!r}")
    if old_name is not None and old_name not in config.providers:
        raise ConfigError(None, "providers.name", f"no provider named {old_name!r}")
    providers: dict[str, Provider] = {}
    for key, existing in config.providers.items():
        providers[name if key == old_name else key] = provider if key == old_name else existing
    providers[name] = provider
    config = replace(config, providers=providers)
    if old_name is None or old_name == name:
        return config
    presets = {
        key: replace(
            p,
            roles={r: _rename_target(t, old_name, name) for r, t in p.roles.items()},
            fallback=tuple(_rename_target(t, old_name, name) for t in p.fallback),
        )
        for key, p in config.presets.items()
    }
    budgets = tuple(replace(b, provider=name) if b.provider == old_name else b for b in config.budgets)
    return replace(config, presets=presets, budgets=budgets)


def remove_provider(config: Config, name: str) -> Config:
    users = provider_users(config, name)
    if users:
        raise ConfigError(
            None, f"providers.{name}", f"is still used by {', '.join(users)}; change those first"
        )
    return replace(config, providers={k: v for k, v in config.providers.items() if k != name})


def put_preset(config: Config, preset: Preset, *, old_name: str | None = None) -> Config:
    """Add or replace a preset, keeping its position; a rename follows `active`, cheap/premium and budgets."""
    name = preset.name.strip()
    if not name:
        raise ConfigError(None, "presets.name", "a preset needs a name")
    if name != old_name and name in config.presets:
        raise ConfigError(None, "presets.name", f"there is already a preset named {name!r}")
    if "default" not in preset.roles:
        raise ConfigError(None, f"presets.{name}.default", "every preset needs a default target")
    presets: dict[str, Preset] = {}
    for key, existing in config.presets.items():
        presets[name if key == old_name else key] = preset if key == old_name else existing
    presets[name] = preset
    if old_name is None or old_name == name:
        return replace(config, presets=presets, active=config.active or name)

    def follow(value: str) -> str:
        return name if value == old_name else value

    budgets = tuple(replace(b, switch_to=follow(b.switch_to)) if b.switch_to else b for b in config.budgets)
    return replace(
        config,
        presets=presets,
        active=follow(config.active),
        cheap=follow(config.cheap),
        premium=follow(config.premium),
        budgets=budgets,
    )


def duplicate_preset(config: Config, name: str) -> tuple[Config, str]:
    """A copy of preset `name` under a free name ('cheap copy', 'cheap copy 2'...)."""
    original = config.presets[name]
    new_name, n = f"{name} copy", 2
    while new_name in config.presets:
        new_name, n = f"{name} copy {n}", n + 1
    return put_preset(config, replace(original, name=new_name)), new_name


def remove_preset(config: Config, name: str) -> Config:
    if name == config.active:
        raise ConfigError(None, f"presets.{name}", "is the active preset; activate another one first")
    switchers = [str(i + 1) for i, b in enumerate(config.budgets) if b.switch_to == name]
    if switchers:
        raise ConfigError(
            None, f"presets.{name}", f"is where budget {', '.join(switchers)} switches to; change that first"
        )
    return replace(config, presets={k: v for k, v in config.presets.items() if k != name})


def set_budgets(config: Config, budgets: list[Budget]) -> Config:
    return replace(config, budgets=tuple(budgets))


def set_price_override(config: Config, key: str, price: Price | None) -> Config:
    """Set (or with None, remove) the `[prices."provider/model"]` override for `key`."""
    prices = {k: v for k, v in config.prices.items() if k != key}
    if price is not None:
        prices[key] = price
    return replace(config, prices=prices)
