"""The demo's throw-away world: a temp folder with its own config, call log, token and user dirs.

The demo must never touch the user's real config, call log or keyring, and must not need a key. So the
demo providers read a fake key from an environment variable, the proxy token comes from
$DOWNSHIFT_TOKEN, and the XDG folders (GUI caches, autostart, the keyring fallback file) point into the
temp folder while the demo runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.core.config import Config, Preset, Provider, Target, Timeouts, save_config
from app.core.ports import free_port

KEY_ENV = "DOWNSHIFT_DEMO_KEY"
DEMO_FLAG_ENV = "DOWNSHIFT_DEMO"  # set while the demo runs, so the GUI may say it shows demo data
FAKE_KEY = "demo-key-not-a-secret"
_XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")

# Real provider kinds and model names, so the packaged price table prices the simulated calls.
CHEAP = Target("openrouter", "qwen/qwen3-coder")
SMALL = Target("deepseek", "deepseek-chat")
SONNET = Target("anthropic", "claude-sonnet-4-5")
OPUS = Target("anthropic", "claude-opus-4-1")
HAIKU = Target("anthropic", "claude-haiku-4-5")


def demo_config(upstream_url: str, port: int) -> Config:
    """Three providers on the simulated upstream and the three usual presets, cheap active."""
    base = upstream_url.rstrip("/") + "/v1"
    quick = Timeouts(connect=5.0, first_byte=60.0, idle=30.0)

    def provider(name: str, kind: str, api: str = "openai") -> Provider:
        return Provider(name=name, base_url=base, api=api, kind=kind, api_key_env=KEY_ENV, timeouts=quick)

    providers = {
        p.name: p
        for p in (
            provider("openrouter", "openrouter"),
            provider("deepseek", "deepseek"),
            provider("anthropic", "anthropic", "anthropic"),
        )
    }
    presets = {
        "cheap": Preset(
            "cheap",
            {"default": CHEAP, "background": SMALL},
            fallback=(SMALL,),
            description="Open-weight models for the whole loop",
        ),
        "plan-high": Preset(
            "plan-high",
            {"default": CHEAP, "plan": OPUS, "background": SMALL},
            fallback=(SMALL,),
            description="Plan on a frontier model, execute cheap",
        ),
        "premium": Preset(
            "premium",
            {"default": SONNET, "plan": OPUS, "background": HAIKU},
            description="Frontier models for everything",
        ),
    }
    return Config(
        port=port,
        providers=providers,
        presets=presets,
        active="cheap",
        cheap="cheap",
        premium="premium",
        ui={"first_run_done": True},
    )


@dataclass
class DemoWorkspace:
    root: Path
    config_path: Path
    db_url: str
    token: str
    port: int
    owned: bool  # created by us, so removed by `cleanup`

    @classmethod
    def create(cls, upstream_url: str, *, root: Path | None = None, port: int | None = None) -> DemoWorkspace:
        owned = root is None
        folder = Path(tempfile.mkdtemp(prefix="downshift-demo-")) if root is None else root
        folder.mkdir(parents=True, exist_ok=True)
        chosen = free_port() if port is None else port
        config_path = folder / "config.toml"
        save_config(demo_config(upstream_url, chosen), config_path)
        return cls(
            folder,
            config_path,
            f"sqlite:///{folder / 'demo.db'}",
            "ds-demo-" + secrets.token_urlsafe(12),
            chosen,
            owned,
        )

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables the demo process runs with."""
        env = {
            KEY_ENV: FAKE_KEY,
            "DOWNSHIFT_TOKEN": self.token,
            DEMO_FLAG_ENV: "1",
            "DOWNSHIFT_CONFIG": str(self.config_path),
            "DOWNSHIFT_DB_URL": self.db_url,
        }
        env.update({var: str(self.root / "home" / var.lower()) for var in _XDG})
        return env

    @contextmanager
    def activated(self, environ: MutableMapping[str, str] | None = None) -> Iterator[DemoWorkspace]:
        """Apply `environment()` for the duration, then restore what was there."""
        env = os.environ if environ is None else environ
        values = self.environment()
        saved = {name: env.get(name) for name in values}
        for name, value in values.items():
            if name in _XDG:
                Path(value).mkdir(parents=True, exist_ok=True)
            env[name] = value
        try:
            yield self
        finally:
            for name, old in saved.items():
                if old is None:
                    env.pop(name, None)
                else:
                    env[name] = old

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)
