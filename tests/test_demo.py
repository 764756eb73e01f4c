"""`downshift demo`: the simulated provider's behaviour as the real proxy records it, the throw-away
workspace, and the headless run end to end through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from app.cli import main
from app.core.config import load_config
from app.core.price_table import lookup
from app.demo import agent as demo_agent
from app.demo.provider import FAILURE_KINDS, SimulatedProvider
from app.demo.traffic import AIDER, CLAUDE_CODE, CODEX, TaskPlan, made_tool_call
from app.demo.workspace import FAKE_KEY, KEY_ENV, DemoWorkspace, demo_config

ROOT = Path(__file__).resolve().parent.parent


def test_every_demo_target_is_priced_by_the_real_price_table() -> None:
    config = demo_config("http://127.0.0.1:1", 8765)
    targets = {t for p in config.presets.values() for t in (*p.roles.values(), *p.fallback)}
    assert len(targets) == 5
    for target in targets:
        entry = lookup(target.model, config.providers[target.provider].kind)
        assert entry is not None and entry.input > 0, target


def test_workspace_is_valid_isolated_and_restores_the_environment(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": "/home/me/.config", "DOWNSHIFT_TOKEN": "mine"}
    workspace = DemoWorkspace.create("http://127.0.0.1:1", root=tmp_path / "demo")
    config = load_config(workspace.config_path)  # saved through the validating writer, read back
    assert config.active == "cheap" and config.port == workspace.port and config.ui["first_run_done"] is True
    assert all(p.api_key_env == KEY_ENV for p in config.providers.values())
    with workspace.activated(environ):
        assert environ["DOWNSHIFT_TOKEN"] == workspace.token and environ[KEY_ENV] == FAKE_KEY
        assert environ["XDG_CONFIG_HOME"].startswith(str(workspace.root))
        assert Path(environ["XDG_DATA_HOME"]).is_dir()
    assert environ == {"XDG_CONFIG_HOME": "/home/me/.config", "DOWNSHIFT_TOKEN": "mine"}
    workspace.cleanup()
    assert workspace.root.exists()  # a folder we were given is not ours to delete
    own = DemoWorkspace.create("http://127.0.0.1:1")
    own.cleanup()
    assert not own.root.exists()


def test_simulated_provider_breaks_tool_calls_in_every_detected_way(tmp_path: Path) -> None:
    """Through the real proxy: the call log sees each failure kind, a fallback after a 429, and a cut stream."""
    from app.core.engine import Core
    from app.proxy.server import ProxyThread

    provider = SimulatedProvider(speed=200, fallback_every=5, cut_every=7)
    provider.start()
    workspace = DemoWorkspace.create(provider.mock.base_url, root=tmp_path / "demo")
    try:
        with workspace.activated():
            core = Core(workspace.config_path, workspace.db_url)
            with ProxyThread(core, port=0) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
                for n in range(40):
                    plan = TaskPlan(AIDER, n, "demo", stream=n % 2 == 0)
                    client.post(AIDER.path, content=plan.body(1), headers=plan.headers(workspace.token))
            core.writer.flush()
            with core.db.connect() as conn:
                from sqlalchemy import text

                kinds = Counter(
                    k for (k,) in conn.execute(text("SELECT kind FROM tool_calls WHERE kind != 'ok'"))
                )
                rows = conn.execute(
                    text("SELECT attempts, outcome, error_kind, provider, streamed FROM calls")
                ).all()
            core.close()
    finally:
        provider.stop()
    assert set(kinds) == set(FAILURE_KINDS), kinds
    fallbacks = [r for r in rows if r.attempts > 1]
    assert fallbacks and all(r.provider == "deepseek" and r.outcome == "ok" for r in fallbacks)
    cut = [r for r in rows if r.outcome == "error"]
    assert cut and all(r.streamed for r in cut)


def test_personas_speak_their_wire_format() -> None:
    aider = TaskPlan(AIDER, 1, "fix it", stream=True)
    assert aider.headers("tok")["X-Downshift-Task"] == "aider-1: fix it"
    claude = TaskPlan(CLAUDE_CODE, 2, "fix it", stream=True)
    headers = claude.headers("tok")
    assert headers["x-api-key"] == "tok" and headers["x-claude-code-session-id"] == claude.session
    body = orjson.loads(claude.body(3, "plan"))
    assert body["model"] == "plan" and json.loads(body["metadata"]["user_id"])["session_id"] == claude.session
    codex = TaskPlan(CODEX, 3, "fix it", stream=True)
    body = orjson.loads(codex.body(2))
    kinds = Counter(item["type"] for item in body["input"])
    assert kinds["function_call"] == kinds["function_call_output"] >= 2
    assert body["input"][0]["role"] == "developer" and codex.headers("t")["session-id"] == codex.session
    assert len(orjson.loads(codex.body(4))["input"]) > len(body["input"])  # the history grows each turn
    assert made_tool_call("responses", b'{"type":"function_call"}')
    assert not made_tool_call("openai", b'{"finish_reason":"stop"}')


def test_schedule_switches_midway() -> None:
    assert [demo_agent.phase_at(f) for f in (0.0, 0.49, 0.5, 0.79, 0.8, 0.99)] == [
        "cheap",
        "cheap",
        "plan-high",
        "plan-high",
        "premium",
        "premium",
    ]


def test_headless_demo_end_to_end(capsys) -> None:  # type: ignore[no-untyped-def]
    before = dict(os.environ)
    code = main(["demo", "--headless", "--seconds", "6", "--speed", "8", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    total = data["total"]
    assert total["calls"] >= 15 and total["cost_usd"] > 0 and total["unpriced_calls"] == 0
    assert data["agent"]["preset_switches"][:2] == ["plan-high", "premium"]
    assert data["presets_used"] >= 2 and data["streamed_calls"] > 0 and data["sessions"] >= 3
    assert {"openai", "responses"} <= set(data["calls_by_client_api"])
    assert sum(data["tool_failures_by_kind"].values()) >= 2 and len(data["tool_failures_by_kind"]) >= 2
    assert data["premium_equivalent_usd"] > 0
    assert {m["provider"] for m in data["models"]} >= {"openrouter", "deepseek", "anthropic"}
    assert dict(os.environ) == before  # no demo variable leaks into the caller


def test_demo_refuses_a_nonsense_speed(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--headless", "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err


def test_demo_without_a_display_points_to_headless(capsys, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["demo", "--seconds", "1"]) == 2
    assert "downshift demo --headless" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_demo_with_a_window_runs_offscreen_and_quits_on_time(tmp_path: Path) -> None:
    """The real GUI (offscreen), fed by the agents through its own proxy, quits after --seconds."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "demo", "--seconds", "6", "--speed", "6", "--keep"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kept = next(line for line in done.stderr.splitlines() if line.startswith("demo files kept in "))
    folder = Path(kept.removeprefix("demo files kept in ").split(" ")[0])
    try:
        stats = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "--config",
                str(folder / "config.toml"),
                "--db",
                f"sqlite:///{folder / 'demo.db'}",
                "stats",
                "--json",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(stats.stdout)["total"]["calls"] >= 5, stats.stdout
        assert "Traceback" not in done.stderr
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


# Screenshots go to docs/screenshots only when asked (DOWNSHIFT_SCREENSHOTS=1), so a test run leaves the tree
# clean; the README's demo_dashboard.png was made with DOWNSHIFT_DEMO_SHOT_SECONDS=300 and _SPEED=1 (five
# real minutes: one bar a minute, the preset switches visible in the colours).
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.qt_log_ignore(r"This plugin does not support (propagateSizeHints|raise|grabWindow)")
def test_demo_traffic_drives_the_live_dashboard(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The desktop app on the demo workspace: the agents' calls, switches and task outcomes reach the
    dashboard while they happen."""
    from PySide6.QtCore import QSettings

    from app.core.engine import Core
    from app.demo.agent import ScriptedAgents
    from app.proxy.server import ProxyThread
    from app.ui.application import DownshiftApp

    seconds = float(os.environ.get("DOWNSHIFT_DEMO_SHOT_SECONDS", "24"))
    speed = float(os.environ.get("DOWNSHIFT_DEMO_SHOT_SPEED", "4"))
    shots = SCREENSHOTS if os.environ.get("DOWNSHIFT_SCREENSHOTS") else tmp_path
    provider = SimulatedProvider(speed=speed)
    provider.start()
    workspace = DemoWorkspace.create(provider.mock.base_url, root=tmp_path / "demo")
    settings = QSettings(str(tmp_path / "window-state.ini"), QSettings.Format.IniFormat)
    settings.setValue("window/page", "dashboard")
    with workspace.activated():
        core = Core(workspace.config_path, workspace.db_url)
        proxy = ProxyThread(core, port=0).start()
        app = DownshiftApp(core, proxy, settings)
        agents = ScriptedAgents(
            proxy.url,
            workspace.token,
            workspace.config_path,
            speed=speed,
            cycle=seconds * speed,
            db_url=workspace.db_url,
        )
        try:
            app.start(minimised=False)
            app.window.resize(1400, 900)
            app.show_window("dashboard")
            dash = app.window.pages["dashboard"]
            dash.range_box.setCurrentIndex(1)  # the last hour: the demo's minutes fill it
            agents.start()
            qtbot.wait(int(seconds * 1000))
            agents.stop(drain=2.0)
            core.writer.flush()
            calls = logged_count(core)
            qtbot.waitUntil(lambda: dash.tiles["calls"].value.text() == f"{calls:,}", timeout=15_000)
            assert agents.stats.switches[:2] == ["plan-high", "premium"]
            assert agents.stats.outcomes["finished"] >= 1
            assert dash.tiles["failure"].value.text() not in ("–", "0%", "0.0%")
            assert (
                dash.tiles["per_task"].value.text().lstrip("~").startswith("$")
            )  # tasks the agents marked finished
            # ("~": the demo breaks some streams, whose usage is estimated)
            assert dash.tiles["savings"].value.text().lstrip("~").startswith("$")
            qtbot.wait(500)  # the charts are drawn one per event-loop turn after the tiles
            assert app.window.grab().save(str(shots / "demo_dashboard.png"))
        finally:
            agents.stop(drain=1.0)
            app.shutdown()
            core.close()
            provider.stop()


def logged_count(core) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with core.db.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM calls")).scalar_one())


def test_a_preset_picked_by_hand_pauses_the_schedule_and_the_demo_says_so(tmp_path: Path) -> None:
    """The schedule used to re-apply its phase every quarter second, flipping a user's pick straight back."""
    import time

    from app.core.config import ConfigStore
    from app.core.engine import Core
    from app.proxy.server import ProxyThread

    provider = SimulatedProvider(speed=50)
    provider.start()
    workspace = DemoWorkspace.create(provider.mock.base_url, root=tmp_path / "demo")
    said: list[str] = []
    with workspace.activated():
        core = Core(workspace.config_path, workspace.db_url)
        proxy = ProxyThread(core, port=0).start()
        agents = demo_agent.ScriptedAgents(
            proxy.url, workspace.token, workspace.config_path, workers=0, cycle=3600, say=said.append
        )
        try:
            agents.start()
            time.sleep(0.6)
            assert ConfigStore(workspace.config_path).current().active == "cheap" and said == []
            ConfigStore(workspace.config_path).update(lambda c: c.with_active("premium"))  # as the tray does
            deadline = time.monotonic() + 5
            while agents.paused_by is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.8)  # several turns of the schedule
            assert ConfigStore(workspace.config_path).current().active == "premium"
            assert agents.paused_by == "premium" and agents.stats.switches == []
            assert said == [
                "preset switched by hand to premium: the demo's schedule pauses, your choice stays"
            ]
        finally:
            agents.stop(drain=0.5)
            proxy.stop()
            core.close()
            provider.stop()
