"""`downshift doctor`: check everything Downshift depends on and say what to fix, one line per problem.

It only looks: the config is parsed but not rewritten, the database is inspected but not migrated, the
port is probed by binding and releasing it, and each provider is asked for its model list (concurrently,
with a short timeout). Qt is probed in a child process, because a missing display makes Qt abort the
process that tries it. Exit code 1 when a check failed; warnings alone keep 0.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from app import __version__, paths
from app.core.config import Config, ConfigError, Provider, is_private_file, load_config
from app.core.engine import database_url

if TYPE_CHECKING:
    from app.core.secrets import SecretStore

Status = Literal["ok", "warn", "fail", "skip"]
MARK: dict[str, str] = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
RESOURCES = ("prices.json", "cl100k_base.tiktoken.gz", "icons/downshift.svg")


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ checks


def check_config(path: Path) -> tuple[Check, Config | None]:
    if not path.exists():
        return Check(
            "config",
            "warn",
            f"{path} does not exist yet; built-in defaults apply",
            "start `downshift` once (or the first-run assistant) to create it",
            {"path": str(path)},
        ), None
    try:
        config = load_config(path)
    except ConfigError as exc:
        return Check(
            "config",
            "fail",
            str(exc),
            f"fix that key in {path}; a running proxy keeps the last good config",
            {"path": str(path)},
        ), None
    details = {
        "path": str(path),
        "providers": len(config.providers),
        "presets": len(config.presets),
        "active": config.active,
    }
    if not config.presets:
        return Check(
            "config", "warn", f"{path}: no routing preset", "add one on the Presets page", details
        ), config
    summary = (
        f"{path}: {len(config.providers)} providers, {len(config.presets)} presets, active {config.active!r}"
    )
    return Check("config", "ok", summary, None, details), config


def check_keyring(fallback: Path) -> Check:
    from app.core.secrets import TOKEN_NAME, SecretStore, SecretStoreError

    try:
        store = SecretStore(fallback)
        store.get(TOKEN_NAME)
    except SecretStoreError as exc:
        return Check(
            "keyring", "fail", str(exc), "unlock the keyring (log in to the desktop session) and retry"
        )
    except Exception as exc:  # a broken keyring backend raises its own types
        return Check(
            "keyring",
            "fail",
            f"the keyring backend failed: {type(exc).__name__}: {exc}",
            "check the OS keyring (gnome-keyring, KWallet, Keychain, Credential Manager)",
        )
    details = {"backend": store.describe(), "uses_keyring": store.uses_keyring}
    if store.uses_keyring:
        return Check("keyring", "ok", store.describe(), None, details)
    if fallback.exists() and not is_private_file(fallback):
        return Check(
            "keyring",
            "fail",
            f"{fallback} holds keys and is readable by other users",
            f"chmod 600 {fallback}",
            details,
        )
    return Check(
        "keyring",
        "warn",
        f"no OS keyring: keys go to {fallback}, readable only by you",
        "install and unlock a Secret Service (gnome-keyring or KWallet) to keep keys in the OS keyring",
        details,
    )


def check_database(url: str) -> Check:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    from app.core.storage.db import DatabaseOpenError, check_url, head_revision, sqlite_path
    from app.core.storage.dialect import display_url, normalize_url

    shown = display_url(url)  # a team ledger's URL may hold a password
    try:
        check_url(url)
    except DatabaseOpenError as exc:
        return Check(
            "database",
            "fail",
            str(exc),
            "pass --db sqlite:///path/to/file.db (or leave it out)",
            {"url": shown},
        )
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return Check(
            "database", "ok", f"{path} will be created on first start", None, {"url": shown, "exists": False}
        )
    where = str(path or shown)
    details: dict[str, Any] = {"url": shown, "exists": True}
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            rows = (
                conn.execute(text("SELECT COUNT(*) FROM calls")).scalar_one()
                if inspect(conn).has_table("calls")
                else 0
            )
    except SQLAlchemyError as exc:
        return Check(
            "database",
            "fail",
            f"{where} cannot be opened: {getattr(exc, 'orig', exc)}",
            "move the file aside (Downshift starts a new log) or pass --db with another location",
            details,
        )
    finally:
        engine.dispose()
    head = head_revision()
    size = path.stat().st_size if path is not None else None
    details |= {"revision": current, "head": head, "calls": rows, "bytes": size}
    sized = f", {size / 1e6:.1f} MB" if size is not None else ""
    if current != head:
        return Check(
            "database",
            "warn",
            f"{where}: schema {current or 'empty'}, this version needs {head}; {rows} calls{sized}",
            "it is upgraded at the next start (a copy is kept aside first)",
            details,
        )
    return Check("database", "ok", f"{where}: {rows} calls{sized}, schema up to date", None, details)


def check_port(host: str, port: int, timeout: float = 2.0) -> Check:
    details = {"host": host, "port": port}
    if port == 0:
        return Check("port", "ok", "port 0: a free port is picked at start", None, details)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return Check("port", "ok", f"{host}:{port} is free", None, details)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                return Check(
                    "port",
                    "fail",
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                    "set [proxy] host and port in the config to an address of this machine",
                    details,
                )
    try:
        health = httpx.get(f"http://{_url_host(host)}:{port}/health", timeout=timeout).json()
    except (httpx.HTTPError, ValueError):
        health = None
    if isinstance(health, dict) and health.get("status") == "ok":
        paused = " (paused)" if health.get("paused") else ""
        return Check(
            "port",
            "ok",
            f"{host}:{port} is served by a running Downshift{paused}",
            None,
            details | {"running": True, "paused": bool(health.get("paused"))},
        )
    return Check(
        "port",
        "fail",
        f"{host}:{port} is in use by another program",
        f"stop that program, or choose another port: [proxy] port = {port + 1} (or `downshift serve --port`)",
        details | {"running": False},
    )


def check_refusals(host: str, port: int, token: str | None, timeout: float = 2.0) -> Check:
    """Requests the running proxy refused (no token, a wrong one, a web page), counted in its memory: they
    are never calls in the log, so this is where a page or a misconfigured program trying the proxy shows."""
    from app.proxy.guard import describe_refusals
    from app.proxy.server import STATUS_PATH

    if token is None:
        return Check("refused", "skip", "the local token cannot be read, so the running proxy was not asked")
    try:
        response = httpx.get(
            f"http://{_url_host(host)}:{port}{STATUS_PATH}",
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
        )
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("refused"), dict):
        return Check("refused", "skip", "the running proxy did not report its refusals (an older Downshift?)")
    refused = data["refused"]
    details = {"refused": refused, "connections": data.get("connections")}
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(refused.get("since") or time.time()))
    summary = f"{describe_refusals(refused)} since {since}"
    if not refused.get("total"):
        return Check("refused", "ok", summary, None, details)
    return Check(
        "refused",
        "warn",
        summary,
        "a program without the token (or with an old one) or a web page tried the proxy; if it is your agent, "
        "re-export its environment: `downshift env`",
        details,
    )


def _url_host(host: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"[{shown}]" if ":" in shown else shown


async def _probe_provider(
    client: httpx.AsyncClient, provider: Provider, key: str | None, timeout: float
) -> Check:
    from app.core.provider_models import auth_headers, parse_models

    name = f"provider {provider.name}"
    url = provider.base_url.rstrip("/") + "/models"
    details: dict[str, Any] = {"url": url, "kind": provider.kind, "key": "set" if key else "missing"}
    if not key and not provider.local:
        source = f"${provider.api_key_env} or the keyring" if provider.api_key_env else "the keyring"
        return Check(name, "fail", f"no key in {source}", f"downshift key set {provider.name}", details)
    start = time.perf_counter()
    try:
        response = await client.get(url, headers=auth_headers(provider, key), timeout=timeout)
    except httpx.TimeoutException:
        return Check(
            name,
            "fail",
            f"{url} did not answer within {timeout:g} s",
            "check the network, or the base_url in the config",
            details,
        )
    except httpx.HTTPError as exc:
        if provider.local:
            return Check(
                name,
                "warn",
                f"{url}: not running ({type(exc).__name__})",
                f"start the local server ({provider.kind}) if you route to it",
                details,
            )
        return Check(
            name,
            "fail",
            f"cannot reach {url}: {exc or type(exc).__name__}",
            "check the network, a proxy setting, or the base_url in the config",
            details,
        )
    latency = (time.perf_counter() - start) * 1000
    details |= {"status": response.status_code, "latency_ms": round(latency, 1)}
    if response.status_code in (401, 403):
        return Check(
            name,
            "fail",
            f"the key was refused (HTTP {response.status_code})",
            f"downshift key set {provider.name}   # paste a valid key",
            details,
        )
    if response.status_code >= 400:
        return Check(
            name,
            "fail",
            f"{url} answered HTTP {response.status_code}",
            "check the base_url: it is the prefix of /chat/completions (or /messages)",
            details,
        )
    try:
        count = len(parse_models(response.json()))
    except Exception:
        return Check(
            name,
            "warn",
            f"{url} answered in {latency:.0f} ms but not with a model list",
            "check the base_url: it is the prefix of /chat/completions (or /messages)",
            details,
        )
    details["models"] = count
    return Check(name, "ok", f"{count} models, {latency:.0f} ms", None, details)


def check_providers(config: Config, key_for: Callable[[Provider], str | None], timeout: float) -> list[Check]:
    """Every provider at once: the slowest one bounds the wait, not their sum."""
    providers = list(config.providers.values())
    keys: dict[str, str | None] = {}
    failures: list[Check] = []
    for p in providers:
        try:
            keys[p.name] = key_for(p)
        except Exception as exc:  # a keyring error belongs to this provider's line
            failures.append(
                Check(
                    f"provider {p.name}",
                    "fail",
                    f"its key cannot be read: {exc}",
                    "see the keyring line above",
                )
            )
    readable = [p for p in providers if p.name in keys]

    async def probe_all() -> list[Check]:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            return list(
                await asyncio.gather(*(_probe_provider(client, p, keys[p.name], timeout) for p in readable))
            )

    probed = asyncio.run(probe_all()) if readable else []
    order = {p.name: i for i, p in enumerate(providers)}
    return sorted(probed + failures, key=lambda c: order.get(c.name.removeprefix("provider "), 0))


# Run in a child process: the doctor is a headless command and loads no Qt itself (a CLI process must work
# where Qt's system libraries are missing; the import in the child is the check that they are there).
# argv[1] == "start": also start a GUI application and print the platform it got. The frozen app has no
# `python -c`: its own executable runs the probe when its first argument is QT_PROBE_ARG (packaging/entry.py).
QT_PROBE_ARG = "--doctor-qt-probe"
QT_PROBE = (
    "import sys\nimport PySide6\nfrom PySide6 import QtWidgets\nprint(PySide6.__version__, flush=True)\n"
    "if sys.argv[1:] == ['start']:\n"
    "    from PySide6.QtGui import QGuiApplication\n"
    "    app = QGuiApplication(sys.argv[:1])\n"
    "    print(app.platformName())\n"
)
_QT_LIBS_FIX = (
    "install Qt's system libraries: apt-get install libegl1 libgl1 libxkbcommon0 libfontconfig1 "
    "libdbus-1-3; or run headless: `downshift serve`"
)


def check_qt(timeout: float = 20.0) -> Check:
    """Whether the desktop app can start here, found out without loading Qt into this process."""
    if importlib.util.find_spec("PySide6") is None:
        return Check("qt", "fail", "PySide6 is not installed", _QT_LIBS_FIX)
    display = _display_hint()
    # frozen: no interpreter for `-c`, but the bundle is the same program (its Qt, its libraries)
    probe = [QT_PROBE_ARG] if getattr(sys, "frozen", False) else ["-c", QT_PROBE]
    try:
        done = subprocess.run(
            [sys.executable, *probe, "import" if display else "start"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Check("qt", "warn", f"Qt did not start within {timeout:g} s", "check the display connection")
    lines = done.stdout.split()
    if not lines:  # the import failed: Qt's own libraries or the system's are missing
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return Check("qt", "fail", f"PySide6 cannot be imported: {reason}", _QT_LIBS_FIX)
    version = lines[0]
    details: dict[str, Any] = {"pyside6": version}
    if display is not None:
        return Check(
            "qt",
            "warn",
            f"PySide6 {version}, but {display}",
            "run the proxy headless (`downshift serve`), or start the app in a desktop session",
            details,
        )
    if done.returncode != 0 or len(lines) < 2:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return Check(
            "qt",
            "fail",
            f"Qt cannot start a GUI here: {reason}",
            "install Qt's xcb libraries (apt-get install libxcb-cursor0 libxkbcommon-x11-0), "
            "or run headless: `downshift serve`",
            details,
        )
    details["platform"] = lines[1]
    return Check("qt", "ok", f"PySide6 {version}, platform {details['platform']}", None, details)


def _display_hint() -> str | None:
    """Why no window can open here, or None when one may."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def check_resources() -> Check:
    from app.core.storage.db import MIGRATIONS

    try:
        root = paths.resources_dir()
    except FileNotFoundError as exc:
        return Check("resources", "fail", str(exc), "reinstall Downshift")
    missing = [name for name in RESOURCES if not (root / name).is_file()]
    if not (MIGRATIONS / "env.py").is_file() or not list((MIGRATIONS / "versions").glob("0*.py")):
        missing.append(str(MIGRATIONS))
    details = {"resources": str(root), "migrations": str(MIGRATIONS)}
    if missing:
        return Check(
            "resources",
            "fail",
            f"missing from this installation: {', '.join(missing)}",
            "reinstall Downshift",
            details,
        )
    return Check(
        "resources", "ok", f"{root} (icons, price table, tokenizer) and the schema migrations", None, details
    )


# ------------------------------------------------------------------------------------------------ runner


def run_checks(
    config_override: str | None = None,
    db_override: str | None = None,
    *,
    timeout: float = 5.0,
    network: bool = True,
    qt: bool = True,
) -> list[Check]:
    from app.core.secrets import SecretStore, provider_key

    config_file = paths.config_path(config_override)
    checks = []
    config_check, config = check_config(config_file)
    checks.append(config_check)
    fallback = paths.data_dir() / "secrets.json"
    keyring_check = check_keyring(fallback)
    checks.append(keyring_check)
    checks.append(check_database(database_url(db_override, config)))
    # one store for the token and the provider keys: each new one looks the keyring backend up again
    store = SecretStore(fallback) if keyring_check.status != "fail" else None
    effective = config or (None if config_check.status == "fail" else Config())
    if effective is None:
        checks.append(Check("port", "skip", "the config is invalid", "fix the config first"))
    else:
        port_check = check_port(effective.host, effective.port)
        checks.append(port_check)
        if port_check.details.get("running"):
            checks.append(check_refusals(effective.host, effective.port, _token_for_doctor(store)))
    if config is not None and network:

        def key_for(p: Provider) -> str | None:
            if store is None:
                return os.environ.get(p.api_key_env) if p.api_key_env else None
            return provider_key(store, p.name, p.api_key_env)

        checks.extend(check_providers(config, key_for, timeout))
    else:
        reason = "not checked (--offline)" if config is not None else "no readable config to take them from"
        checks.append(Check("providers", "skip", reason))
    checks.append(check_resources())
    if qt:
        checks.append(check_qt())
    return checks


def _token_for_doctor(store: SecretStore | None) -> str | None:
    """The local token if there is one (never created here: doctor only looks); no store when the keyring
    check failed."""
    from app.core.secrets import local_token

    if os.environ.get("DOWNSHIFT_TOKEN"):
        return os.environ["DOWNSHIFT_TOKEN"]
    if store is None:
        return None
    try:
        return local_token(store, create=False)
    except Exception:  # no token yet, or a broken backend (which raises its own types)
        return None


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"Downshift {__version__} doctor"]
    for c in checks:
        lines.append(f"  [{MARK[c.status]}] {c.name.ljust(width)}  {c.summary}")
        if c.fix and c.status != "ok":
            lines.append(f"  {' ' * 6} {' ' * width}  -> {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    verdict = (
        "everything looks fine" if not failed and not warned else f"{failed} to fix, {warned} to look at"
    )
    lines.append(f"{verdict}.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Entry point of `downshift doctor`."""
    checks = run_checks(
        args.config, args.db, timeout=args.timeout, network=not args.offline, qt=not args.no_qt
    )
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print(
            json.dumps(
                {"version": __version__, "ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2
            )
        )
    else:
        print(render(checks))
    return 1 if failed else 0
