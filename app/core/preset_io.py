"""Share a routing preset with a team as a small TOML file: the preset plus the providers it routes to.

Keys are never written: whoever imports adds their own. Import merges into an existing config without
breaking it: a provider that already exists under the same name and URL is reused, a clash of names gets
a fresh name (and the imported preset follows it), and the result is validated before it is returned.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import tomli_w

from app.core.config import Config, ConfigError, Preset, Provider, Target, parse_config, to_toml_dict
from app.core.provider_templates import unique_name

HEADER = "# A Downshift routing preset. Import it from the Presets page; add your own keys on the Providers page.\n"


def preset_toml(config: Config, name: str) -> str:
    """The preset `name` and the providers it needs, as TOML text."""
    try:
        preset = config.presets[name]
    except KeyError:
        raise ConfigError(None, "presets", f"no preset named {name!r}") from None
    used = {t.provider for t in (*preset.roles.values(), *preset.fallback)}
    providers = {k: p for k, p in config.providers.items() if k in used}
    data = to_toml_dict(Config(providers=providers, presets={name: preset}, active=name))
    return HEADER + tomli_w.dumps({"providers": data["providers"], "presets": data["presets"]})


def export_preset(config: Config, name: str, path: Path) -> None:
    path.write_text(preset_toml(config, name), encoding="utf-8")


@dataclass(frozen=True)
class ImportResult:
    config: Config
    presets: tuple[str, ...]  # names as imported (renamed on a clash)
    new_providers: tuple[str, ...]  # added, each still needing a key unless local


def _same_endpoint(a: Provider, b: Provider) -> bool:
    return a.base_url.rstrip("/") == b.base_url.rstrip("/") and a.api == b.api


def merge_presets(config: Config, text: str, source: str = "the file") -> ImportResult:
    """Merge the presets (and providers) in TOML `text` into `config`; raise ConfigError on bad input."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"is not valid TOML: {exc}") from None
    unexpected = sorted(set(data) - {"providers", "presets"})
    if unexpected:
        raise ConfigError(
            source, unexpected[0], "is not part of a preset file (only [[providers]] and [[presets]])"
        )
    incoming = parse_config(
        {"providers": data.get("providers", []), "presets": data.get("presets", [])}, Path(source)
    )
    if not incoming.presets:
        raise ConfigError(source, "presets", "the file holds no preset")

    providers = dict(config.providers)
    renamed: dict[str, str] = {}
    added: list[str] = []
    for name, p in incoming.providers.items():
        existing = providers.get(name)
        if existing is not None and _same_endpoint(existing, p):
            continue
        reuse = next((k for k, e in providers.items() if _same_endpoint(e, p) and e.kind == p.kind), None)
        if reuse is not None:
            renamed[name] = reuse
            continue
        new_name = unique_name(name, providers)
        providers[new_name] = replace(p, name=new_name)
        renamed[name] = new_name
        added.append(new_name)

    def follow(t: Target) -> Target:
        return Target(renamed.get(t.provider, t.provider), t.model)

    presets = dict(config.presets)
    imported: list[str] = []
    for name, pr in incoming.presets.items():
        new_name = name if name not in presets else unique_name(f"{name} (imported)", presets)
        presets[new_name] = Preset(
            new_name,
            {r: follow(t) for r, t in pr.roles.items()},
            dict(pr.patterns),
            tuple(follow(t) for t in pr.fallback),
            pr.description,
            pr.escalate,
            pr.long_context,
            replace(pr.shadow, target=follow(pr.shadow.target)) if pr.shadow else None,
        )
        imported.append(new_name)
    merged = replace(config, providers=providers, presets=presets, active=config.active or imported[0])
    parse_config(to_toml_dict(merged), Path(source))  # the merged whole must still be a valid config
    return ImportResult(merged, tuple(imported), tuple(added))


def import_presets(config: Config, path: Path) -> ImportResult:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "is not UTF-8 text") from None
    return merge_presets(config, text, str(path))
