"""Smoke checks for an installed or built Downshift, run the way a user runs it: its `downshift` command.

Shared by tests/test_packaging.py (the wheel, installed in a fresh virtual environment) and
packaging/build.py (the PyInstaller folder). Each step proves something a broken package gets wrong:
`--version` (it starts at all), `doctor` (resources and migrations are inside), `serve` plus a call
through it to the mock upstream (priced from the packaged price table), `count_tokens` (the packaged
tokenizer ranks), the headless demo (the bundled mock and agents), and the GUI offscreen (Qt plugins).

Everything runs in a temp folder with its own HOME, config, log and token, so the user's files are
never read or written. Usage: python packaging/smoke.py PATH/TO/downshift [--demo] [--gui]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the mock upstream comes from this checkout
    sys.path.insert(0, str(ROOT))

TOKEN = "ds-smoke-token-0123456789"
KEY_ENV = "DOWNSHIFT_SMOKE_KEY"


class SmokeError(AssertionError):
    """A smoke step failed; the message says which and shows the command's output."""


def isolated_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with every user folder and Downshift setting pointed into `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOWNSHIFT_", "PYTHON", "XDG_"))}
    env.update(
        {
            "HOME": str(home),
            "USERPROFILE": str(home),
            "APPDATA": str(home / "appdata"),
            "LOCALAPPDATA": str(home / "localappdata"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "DOWNSHIFT_TOKEN": TOKEN,
            KEY_ENV: "sk-smoke",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
    )
    env.update(extra or {})
    home.mkdir(
        parents=True, exist_ok=True
    )  # also the working directory, so a checkout there is never imported
    return env


def smoke_config(path: Path, upstream_url: str) -> Path:
    path.write_text(f"""[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "cheapco"
base_url = "{upstream_url}/v1"
kind = "openrouter"
api_key_env = "{KEY_ENV}"

[[presets]]
name = "cheap"
default = "cheapco/qwen/qwen3-coder"
""")
    return path


def _run(
    command: Sequence[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(command), env=env, capture_output=True, text=True, timeout=timeout, cwd=env["HOME"]
    )
    if done.returncode != 0:
        raise SmokeError(
            f"{' '.join(command)} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return done


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@contextmanager
def serving(command: Sequence[str], env: dict[str, str], timeout: float = 90) -> Iterator[str]:
    """`downshift serve --port 0` in the background; yields its URL; stops it with SIGTERM (Ctrl-Break on Windows)."""
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [*command, "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        creationflags=flags,
        cwd=env["HOME"],
    )
    out: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True)
    reader.start()
    seen: list[str] = []
    url = None
    deadline = time.monotonic() + timeout
    try:
        while url is None:
            if proc.poll() is not None:
                raise SmokeError(
                    f"serve exited {proc.returncode}:\n{''.join(seen)}\n{proc.stderr.read() if proc.stderr else ''}"
                )
            if time.monotonic() > deadline:
                raise SmokeError(f"serve did not report its address within {timeout:g} s:\n{''.join(seen)}")
            try:
                line = out.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if " proxy on http://" in line:
                url = line.split(" proxy on ", 1)[1].split()[0]
        yield url
    finally:
        try:
            proc.send_signal(signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGTERM)  # type: ignore[attr-defined]
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise SmokeError("serve did not stop within 30 s of SIGTERM") from None
            if code != 0 and sys.platform != "win32":
                raise SmokeError(
                    f"serve stopped with exit code {code}: {proc.stderr.read() if proc.stderr else ''}"
                )
        finally:  # the reader meets EOF once serve has exited; then both pipes are closed, not left to the collector
            reader.join(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def check_serve_and_call(command: Sequence[str], work: Path, upstream_url: str) -> str:
    config = smoke_config(work / "config.toml", upstream_url)
    env = isolated_env(
        work / "home", {"DOWNSHIFT_CONFIG": str(config), "DOWNSHIFT_DB_URL": f"sqlite:///{work / 'log.db'}"}
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serving(command, env) as url:
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            headers=headers,
            timeout=30,
            json={"model": "default", "messages": [{"role": "user", "content": "hello from the smoke test"}]},
        )
        if chat.status_code != 200 or "hello from the smoke test" not in chat.text:
            raise SmokeError(f"a call through serve failed: HTTP {chat.status_code} {chat.text[:500]}")
        counted = httpx.post(
            f"{url}/v1/messages/count_tokens",
            headers=headers,
            timeout=30,
            json={
                "model": "default",
                "messages": [{"role": "user", "content": "count these tokens, please"}],
            },
        )
        if counted.status_code != 200 or not counted.json().get("input_tokens"):
            raise SmokeError(
                f"count_tokens (the packaged tokenizer) failed: HTTP {counted.status_code} {counted.text[:500]}"
            )
    calls = json.loads(_run([*command, "calls", "--json"], env).stdout)
    priced = [c for c in calls if c["endpoint"] == "/v1/chat/completions"]
    if not priced or priced[0]["cost_source"] != "table" or not priced[0]["cost_usd"]:
        raise SmokeError(f"the call was not priced from the packaged price table: {priced}")
    return f"serve on {url}: a call through it (priced ${priced[0]['cost_usd']:.6f} from prices.json), count_tokens"


def check_doctor(command: Sequence[str], work: Path) -> str:
    env = isolated_env(work / "home-doctor", {"DOWNSHIFT_DB_URL": f"sqlite:///{work / 'doctor.db'}"})
    done = subprocess.run(
        [*command, "doctor", "--json", "--offline", "--no-qt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=env["HOME"],
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise SmokeError(
            f"doctor printed no JSON (exit {done.returncode}): {done.stdout[-1000:]}{done.stderr[-2000:]}"
        ) from None
    resources = next(c for c in report["checks"] if c["name"] == "resources")
    if resources["status"] != "ok":
        raise SmokeError(f"resources missing from the package: {resources['summary']}")
    return f"doctor: {resources['summary']}"


def check_demo(command: Sequence[str], work: Path) -> str:
    env = isolated_env(work / "home-demo")
    data = json.loads(
        _run([*command, "demo", "--headless", "--seconds", "4", "--speed", "8", "--json"], env).stdout
    )
    if not data["total"]["calls"] or data["total"]["unpriced_calls"]:
        raise SmokeError(f"the headless demo logged nothing or left calls unpriced: {data['total']}")
    return f"headless demo: {data['total']['calls']} calls, ${data['total']['cost_usd']:.4f}"


def check_gui(command: Sequence[str], work: Path) -> str:
    """The desktop app offscreen, fed by the demo's agents, quitting by itself after a few seconds."""
    env = isolated_env(work / "home-gui", {"QT_QPA_PLATFORM": "offscreen"})
    started = time.monotonic()
    done = _run([*command, "demo", "--seconds", "5", "--speed", "4"], env, timeout=180)
    if "Traceback" in done.stderr:
        raise SmokeError(f"the GUI printed a traceback:\n{done.stderr[-4000:]}")
    return f"GUI offscreen: started, served the demo, quit after {time.monotonic() - started:.1f} s"


def run_smoke(
    command: Sequence[str], *, demo: bool = True, gui: bool = False, say: Callable[[str], None] = print
) -> list[str]:
    """Run every step against `command` (e.g. ["dist/downshift/downshift"]); raises SmokeError on the first failure."""
    from app.testing.mock_upstream import MockUpstream

    passed = []
    version = _run([*command, "--version"], isolated_env(Path(tempfile.gettempdir()))).stdout.strip()
    if not version.startswith("downshift "):
        raise SmokeError(f"--version printed {version!r}")
    passed.append(version)
    say(f"  ok  {passed[-1]}")
    with tempfile.TemporaryDirectory(prefix="downshift-smoke-") as tmp, MockUpstream() as upstream:
        work = Path(tmp)
        steps: list[Callable[[], str]] = [
            lambda: check_doctor(command, work),
            lambda: check_serve_and_call(command, work, upstream.base_url),
        ]
        if demo:
            steps.append(lambda: check_demo(command, work))
        if gui:
            steps.append(lambda: check_gui(command, work))
        for step in steps:
            passed.append(step())
            say(f"  ok  {passed[-1]}")
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executable", help="the downshift command to check")
    parser.add_argument("--no-demo", action="store_true", help="skip the headless demo")
    parser.add_argument("--gui", action="store_true", help="also start the desktop app offscreen")
    args = parser.parse_args(argv)
    try:
        run_smoke([args.executable], demo=not args.no_demo, gui=args.gui)
    except SmokeError as exc:
        print(f"smoke test FAILED: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
