"""The executor check from the GUI: "Probe tool use" on the Providers page runs the battery against the mock
provider in the background, stores it, and the verdict shows in the model list and beside the Presets
page's model pickers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from conftest import PROVIDER_KEY
from PySide6.QtCore import Qt

from app.core.analytics.probe import NEEDLE, SECRET
from app.core.provider_models import ModelInfo, ModelListing
from app.core.queries.probes import probe_results
from app.testing.script import RecordedRequest, Reply, ToolCall
from app.ui.pages.presets import PresetsPage
from app.ui.pages.providers import ProvidersPage

pytest_plugins = ["ui_support"]
pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(r"This plugin does not support (propagateSizeHints|raise|grabWindow)"),
]

TARGET = "cheapco/qwen/qwen3-coder"
EVENT = {
    "title": "Design review",
    "time": {"start": "10:00", "end": "11:00"},
    "attendees": [{"name": "Ana", "email": "ana@example.com"}, {"name": "Bo", "email": "bo@example.com"}],
}


def _tool(request: RecordedRequest) -> str:
    return request.json["tools"][0]["function"]["name"]


def good_model(request: RecordedRequest) -> Reply:
    """Answers each probe with the right, well-formed call (and the multi-turn follow-up with the secret)."""
    messages = request.json["messages"]
    if messages[-1]["role"] == "tool":
        return Reply(text=f"The secret word is {SECRET}.", cost=0.001)
    calls = {
        "get_weather": [ToolCall("get_weather", {"city": c}) for c in ("Paris", "Tokyo", "Lima")]
        if "Tokyo" in messages[-1]["content"]
        else [ToolCall("get_weather", {"city": "Paris"})],
        "create_event": [ToolCall("create_event", EVENT)],
        "set_mode": [ToolCall("set_mode", {"mode": "safe", "reason": "tests are failing"})],
        "lookup_ticket": [ToolCall("lookup_ticket", {"ticket_id": NEEDLE})],
        "read_file": [ToolCall("read_file", {"path": "notes.txt"})],
    }[_tool(request)]
    return Reply(tool_calls=calls, cost=0.001)


def broken_model(request: RecordedRequest) -> Reply:
    """Truncated JSON, a bad enum, and a call written as text; the rest answer in prose."""
    tool = _tool(request)
    if tool == "get_weather":
        return Reply(tool_calls=[ToolCall("get_weather", '{"city": "Par')])
    if tool == "set_mode":
        return Reply(tool_calls=[ToolCall("set_mode", {"mode": "turbo", "reason": "why not"})])
    if tool == "lookup_ticket":
        return Reply(text="", text_tool_call=ToolCall("lookup_ticket", {"ticket_id": NEEDLE}))
    return Reply(text="I would rather not use tools.")


def providers_page(qtbot, ctx):  # type: ignore[no-untyped-def]
    ctx.models.put(
        ModelListing(
            "cheapco", (ModelInfo("qwen/qwen3-coder"), ModelInfo("qwen/qwen3-coder-30b")), 5.0, time.time()
        )
    )
    page = ProvidersPage(ctx)
    qtbot.addWidget(page)
    page.resize(980, 680)
    page.show()
    page.show_provider("cheapco")
    assert page.models.topLevelItemCount() == 2
    # the probe column reads the stored verdicts in the background: nothing probed yet
    qtbot.waitUntil(lambda: page.models.topLevelItem(0).text(5) == "not probed", timeout=5000)
    assert not page.probe_button.isEnabled()  # no model selected yet
    page.models.setCurrentItem(page.models.topLevelItem(0))
    assert page.probe_button.isEnabled()
    return page


def run_probe(qtbot, page, mock, script: Callable[[RecordedRequest], Reply], answers) -> str:  # type: ignore[no-untyped-def]
    gui_thread = threading.get_ident()
    seen_threads: list[int] = []

    def answer(request: RecordedRequest) -> Reply:
        seen_threads.append(threading.get_ident())
        return script(request)

    mock.default = answer
    asked = len(answers.asked)
    qtbot.mouseClick(page.probe_button, Qt.MouseButton.LeftButton)
    assert not page.probe_button.isEnabled()  # estimating the cost, then asking
    qtbot.waitUntil(lambda: len(answers.asked) > asked, timeout=10000)
    kind, question = answers.asked[-1]
    assert kind == "confirm" and question.startswith(f"Probe tool use: Probe {TARGET}?")
    assert "6 probes, 7 requests, about " in question and "at most $" in question
    # busy while the battery runs: button off, status and column say so
    assert not page.probe_button.isEnabled()
    assert page.probe_status.text().startswith(f"Probing {TARGET}: 6 tool-use probes")
    assert page.models.topLevelItem(0).text(5) == "probing…"
    qtbot.waitUntil(lambda: page.probing is None, timeout=20000)
    assert page.probe_button.isEnabled()
    assert (
        seen_threads and gui_thread not in seen_threads
    )  # the mock runs on its own loop; GUI never blocked on it
    return page.probe_status.text()


def test_probe_a_good_model_from_the_providers_page(ctx, core, mock, qtbot, answers) -> None:  # type: ignore[no-untyped-def]
    page = providers_page(qtbot, ctx)
    status = run_probe(qtbot, page, mock, good_model, answers)

    stored = probe_results(core.db, TARGET)
    assert stored is not None
    assert (stored["passed"], stored["probes"], stored["tool_calls"], stored["tool_failures"]) == (6, 6, 8, 0)
    assert stored["cost_usd"] == pytest.approx(0.007)
    assert all(r.api_key == PROVIDER_KEY and r.path == "/v1/chat/completions" for r in mock.requests)
    assert (
        status.startswith(f"{TARGET}: 8/8 tool calls valid, 6/6 passed; ") and " ms; cost $0.0070." in status
    )
    assert "Failed" not in status
    assert page.models.topLevelItem(0).text(5) == "8/8 tool calls valid, 6/6 passed"
    assert page.models.topLevelItem(1).text(5) == "not probed"

    # a fresh model list (another provider and back) reads the verdict from the database again
    page.probes = {}
    page.show_provider("backup")
    page.show_provider("cheapco")
    qtbot.waitUntil(
        lambda: page.models.topLevelItem(0).text(5) == "8/8 tool calls valid, 6/6 passed", timeout=5000
    )

    # the Presets page shows the verdict beside the picked model, "not probed" beside the others
    presets = PresetsPage(ctx)
    qtbot.addWidget(presets)
    presets.show()
    default, background = presets.pickers["default"], presets.pickers["background"]
    assert default.target() is not None and str(default.target()) == TARGET
    qtbot.waitUntil(lambda: default.verdict.text() == "probe: 8/8 tool calls valid, 6/6 passed", timeout=5000)
    assert background.verdict.text() == "not probed"
    assert str(background.target()) == "cheapco/qwen/qwen3-coder-30b"  # showing verdicts never changes a pick
    assert presets.pickers["subagent"].verdict.text() == ""  # "same as default": nothing picked
    # picking another model updates the label; the offered items carry the verdict as their tooltip
    background.model.setEditText("qwen/qwen3-coder")
    assert background.verdict.text() == "probe: 8/8 tool calls valid, 6/6 passed"
    i = background.model.findText("qwen/qwen3-coder")
    assert background.model.itemData(i, Qt.ItemDataRole.ToolTipRole).startswith(
        "probe: 8/8 tool calls valid, 6/6 passed\n"
    )


def test_probe_a_model_with_broken_tool_calls_shows_the_failures(ctx, core, mock, qtbot, answers) -> None:  # type: ignore[no-untyped-def]
    page = providers_page(qtbot, ctx)
    status = run_probe(qtbot, page, mock, broken_model, answers)

    stored = probe_results(core.db, TARGET)
    assert stored is not None and stored["passed"] == 0
    by_probe = {r["probe"]: r for r in stored["results"]}
    assert by_probe["single"]["failure_kinds"] == {"invalid_json": 1}
    assert by_probe["enum_required"]["failure_kinds"] == {"schema": 1}
    assert by_probe["long_context"]["failure_kinds"] == {"text_form": 1}
    assert by_probe["nested"]["detail"].startswith("no tool call")
    assert (stored["tool_calls"], stored["tool_failures"]) == (4, 4)

    assert status.startswith(f"{TARGET}: 0/4 tool calls valid, 0/6 passed; ")
    assert "Failed: single (invalid_json" in status and "enum_required (schema" in status
    assert "long_context (text_form" in status and "multi_turn (turn 1: no tool call" in status
    assert page.models.topLevelItem(0).text(5) == "0/4 tool calls valid, 0/6 passed"

    presets = PresetsPage(ctx)
    qtbot.addWidget(presets)
    presets.show()
    qtbot.waitUntil(
        lambda: presets.pickers["default"].verdict.text() == "probe: 0/4 tool calls valid, 0/6 passed",
        timeout=5000,
    )


def test_a_probe_that_cannot_reach_the_provider_reports_it(ctx, core, mock, qtbot, answers) -> None:  # type: ignore[no-untyped-def]
    page = providers_page(qtbot, ctx)
    status = run_probe(qtbot, page, mock, lambda _r: Reply(status=401, error="bad key"), answers)
    assert (
        status.startswith(f"{TARGET}: 0/0 tool calls valid, 0/6 passed")
        and "request failed: HTTP 401" in status
    )
    assert probe_results(core.db, TARGET)["passed"] == 0


def test_probe_says_what_it_will_cost_and_a_no_sends_nothing(ctx, core, mock, qtbot, answers) -> None:  # type: ignore[no-untyped-def]
    page = providers_page(qtbot, ctx)
    answers.confirm = False
    qtbot.mouseClick(page.probe_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(answers.asked), timeout=10000)
    assert "at most $" in answers.asked[-1][1]
    qtbot.waitUntil(lambda: page.probe_button.isEnabled(), timeout=3000)
    assert page.probe_status.text().startswith(f"Probe of {TARGET} cancelled: nothing was sent. 6 probes")
    assert mock.requests == [] and probe_results(core.db, TARGET) is None
    assert page.models.topLevelItem(0).text(5) == "not probed"
