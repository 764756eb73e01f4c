"""The config and the secrets from the command line: `use`, `presets`, `providers`, `key`, `token`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from app.cli.args import AddCommand
from app.cli.context import config_store, secret_store
from app.cli.format import print_json, table

if TYPE_CHECKING:
    from app.core.config import Preset


def cmd_use(args: argparse.Namespace) -> int:
    from app.core.config import ConfigError

    store = config_store(args)
    try:
        store.update(lambda c: c.with_active(args.preset))
    except ConfigError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    print(f"active preset: {args.preset} (applies to the next request)")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    config = config_store(args).current()
    presets = list(config.presets.values())
    if args.json:
        print_json([_preset_json(p, config.active) for p in presets])
        return 0

    def role(p: Preset, name: str) -> str | None:
        target = p.roles.get(name)
        return None if target is None else str(target)

    flat = [
        {
            "active": "*" if p.name == config.active else "",
            "name": p.name,
            "default": role(p, "default"),
            "plan": role(p, "plan"),
            "background": role(p, "background"),
            "fallback": ", ".join(str(t) for t in p.fallback) or None,
        }
        for p in presets
    ]
    print(
        table(
            flat,
            [
                ("active", ""),
                ("name", "PRESET"),
                ("default", "DEFAULT"),
                ("plan", "PLAN"),
                ("background", "BACKGROUND"),
                ("fallback", "FALLBACK"),
            ],
        )
    )
    from app.core.shadow_info import describe as describe_shadow

    for p in config.presets.values():  # a shadow run sends code to one more provider: say so
        notice = describe_shadow(p)
        if notice:
            print(f"{p.name}: {notice}")
    return 0


def _preset_json(p: Preset, active: str | None) -> dict[str, Any]:
    """A preset in `presets --json` (README, "JSON output")."""
    return {
        "name": p.name,
        "active": p.name == active,
        "roles": {r: str(t) for r, t in p.roles.items()},
        "patterns": dict(p.patterns),
        "fallback": [str(t) for t in p.fallback],
        "description": p.description,
        "long_context": None if p.long_context is None else vars(p.long_context),
        "shadow": None if p.shadow is None else {**vars(p.shadow), "target": str(p.shadow.target)},
    }


def cmd_providers(args: argparse.Namespace) -> int:
    from app.core.secrets import provider_key

    config = config_store(args).current()
    secrets = secret_store()
    rows = []
    for p in config.providers.values():
        has_key = provider_key(secrets, p.name, p.api_key_env) is not None
        rows.append(
            {
                "name": p.name,
                "api": p.api,
                "base_url": p.base_url,
                "kind": p.kind,
                "local": p.local,
                "key": "set" if has_key else ("not needed" if p.local else "missing"),
                "key_source": f"${p.api_key_env}" if p.api_key_env else "keyring",
            }
        )
    if args.json:
        print_json(rows)
    else:
        print(
            table(
                rows,
                [
                    ("name", "PROVIDER"),
                    ("api", "API"),
                    ("base_url", "BASE URL"),
                    ("key", "KEY"),
                    ("key_source", "FROM"),
                ],
            )
        )
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from app.core.secrets import SecretStoreError, provider_key_name

    config = config_store(args).current()
    if args.provider not in config.providers:
        print(
            f"downshift: no provider named {args.provider!r} (have: {', '.join(config.providers)})",
            file=sys.stderr,
        )
        return 2
    secrets = secret_store()
    try:
        if args.action == "delete":
            secrets.delete(provider_key_name(args.provider))
            print(f"key for {args.provider} deleted")
            return 0
        value = (
            sys.stdin.readline().strip()
            if not sys.stdin.isatty()
            else getpass.getpass(f"API key for {args.provider}: ")
        )
        if not value:
            print("downshift: no key given", file=sys.stderr)
            return 2
        secrets.set(provider_key_name(args.provider), value)
    except SecretStoreError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    print(f"key for {args.provider} stored in the {secrets.describe()}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from app.core.secrets import local_token, rotate_token

    secrets = secret_store()
    if args.action == "rotate":
        rotate_token(secrets)
        print(
            "token rotated: re-export your agent's environment (`downshift env`); the running proxy picks it up"
        )
        return 0
    print(local_token(secrets))
    return 0


def register(add: AddCommand) -> None:
    p = add("use", cmd_use, "switch the active routing preset (applies to the next request)")
    p.add_argument("preset")
    p = add("presets", cmd_presets, "list routing presets")
    p.add_argument("--json", action="store_true")
    p = add("providers", cmd_providers, "list provider accounts and whether their key is set")
    p.add_argument("--json", action="store_true")
    p = add(
        "key", cmd_key, "store or delete a provider's API key in the OS keyring (read from stdin or a prompt)"
    )
    p.add_argument("action", choices=("set", "delete"))
    p.add_argument("provider")
    p = add("token", cmd_token, "show or rotate the local token agents use to reach the proxy")
    p.add_argument("action", choices=("show", "rotate"), nargs="?", default="show")
