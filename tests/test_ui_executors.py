"""The Executors page offscreen with pytest-qt over a real core and a generated call log: the table, the
verdict with its evidence, the failure-rate-by-prompt-size chart, and a screenshot for the README."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from analytics_support import generated_call, write_log

from app.ui.background import Background
from app.ui.bridge import CoreBridge
from app.ui.context import UiContext
from app.ui.pages.executors import VERDICT_COLUMN, ExecutorsPage

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
T0 = time.time() - 3 * 86400


def shadow_history(core, n: int = 40) -> None:  # type: ignore[no-untyped-def]
    """A candidate shadowing the loop model: valid 9 times in 10, the same tool 7 times in 10."""
    from sqlalchemy import insert

    from app.core.storage.models import ShadowCall

    rows = [
        {
            "call_id": f"c{i}",
            "started_at": T0 + i,
            "preset": "cheap",
            "served_provider": "cheapco",
            "served_model": "qwen/qwen3-coder",
            "provider": "cheapco",
            "model": "moonshotai/kimi-k2",
            "prompt_tokens": 20_000,
            "outcome": "ok",
            "latency_ms": 1500.0,
            "served_latency_ms": 2000.0,
            "input_tokens": 20_000,
            "output_tokens": 200,
            "cache_read_tokens": 0,
            "cost_usd": 0.004,
            "cost_source": "table",
            "served_cost_usd": 0.003,
            "tool_calls": 1,
            "tool_failures": int(i % 10 == 0),
            "served_tool_calls": 1,
            "served_tool_failures": 0,
            "valid": i % 10 != 0,
            "served_valid": True,
            "same_tool": i % 10 < 7,
            "args_valid": i % 10 != 0,
            "served_tool": "read_file",
            "shadow_tool": "read_file",
        }
        for i in range(n)
    ]
    with core.db.begin() as conn:
        conn.execute(insert(ShadowCall), rows)


def history(core) -> None:  # type: ignore[no-untyped-def]
    """Three models: one that climbs with prompt size, one that holds, one with too few calls to judge."""
    recs = []
    plan = [
        ("cheapco/qwen/qwen3-coder", 10_000, 400, 0.02),
        ("cheapco/qwen/qwen3-coder", 40_000, 200, 0.03),
        ("cheapco/qwen/qwen3-coder", 70_000, 120, 0.06),
        ("cheapco/qwen/qwen3-coder", 100_000, 100, 0.18),
        ("cheapco/qwen/qwen3-coder", 140_000, 60, 0.3),
        ("backup/deepseek/deepseek-chat", 12_000, 200, 0.02),
        ("backup/deepseek/deepseek-chat", 90_000, 100, 0.03),
        ("backup/deepseek/deepseek-chat", 150_000, 60, 0.03),
        ("premium/claude-sonnet-4-6", 30_000, 12, 0.0),
    ]
    at = T0
    for target, prompt, n, rate in plan:
        bad = round(n * rate)
        for i in range(n):
            at += 5
            failed = (i * bad) // n != ((i + 1) * bad) // n  # spread evenly over the bin
            recs.append(
                generated_call(
                    target,
                    prompt + (i * 37) % 7000,
                    ["schema" if failed else "ok"],
                    at=at,
                    duration_ms=800.0 + (i * 53) % 4000,
                    cost=0.002 + prompt / 1e8,
                    task=f"{target}-{i // 40}",
                )
            )
    write_log(core, recs)
    from app.core.queries.tasks import list_tasks, set_outcome

    for i, task in enumerate(list_tasks(core.db)):
        set_outcome(core.db, task["id"], "finished" if i % 3 else "abandoned")


@pytest.fixture
def ctx(core):  # type: ignore[no-untyped-def]
    c = UiContext(core, None, CoreBridge(core.events), Background())
    yield c
    c.background.wait(10_000)
    c.bridge.close()


def open_page(qtbot: Any, ctx: UiContext) -> ExecutorsPage:
    page = ExecutorsPage(ctx)
    qtbot.addWidget(page)
    page.resize(1400, 860)
    page.show()
    qtbot.waitUntil(lambda: page.refreshes >= 1, timeout=10_000)
    return page


def test_table_verdict_and_chart(qtbot: Any, ctx: UiContext) -> None:
    history(ctx.core)
    page = open_page(qtbot, ctx)
    targets = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    assert targets == [
        "backup/deepseek/deepseek-chat",
        "cheapco/qwen/qwen3-coder",
        "premium/claude-sonnet-4-6",
    ]
    qwen = targets.index("cheapco/qwen/qwen3-coder")
    assert page.table.item(qwen, 1).text() == "880"
    assert page.table.item(qwen, VERDICT_COLUMN).text().startswith("holds up to ")
    assert "no verdict yet: 12 tool calls" in page.table.item(2, VERDICT_COLUMN).text()
    assert (
        page.selected_target() == "cheapco/qwen/qwen3-coder"
    )  # the model whose failures climb is shown first
    assert page.verdict.text().startswith("Holds up to ") and "fails" in page.verdict.text()
    assert "880 calls" in page.evidence.text()
    assert set(page.chart.points) == set(targets)
    assert len(page.chart.points["premium/claude-sonnet-4-6"]) == 1  # 12 calls, all in one bin
    qwen_points = page.chart.points["cheapco/qwen/qwen3-coder"]
    assert qwen_points[0][1] < 5 and qwen_points[-1][1] > 20  # the back half of the session, made visible
    page.table.selectRow(0)
    assert page.detail_title.text() == "backup/deepseek/deepseek-chat"
    assert page.verdict.text().startswith("Holds up across every prompt size seen")


def test_shadow_comparisons_and_evaluation_spend(qtbot: Any, ctx: UiContext) -> None:
    history(ctx.core)
    shadow_history(ctx.core)
    page = open_page(qtbot, ctx)
    assert (
        page.evaluation.text() == "Evaluation spend (shadow runs, not in spend totals): $0.160 over 40 runs"
    )
    targets = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    page.table.selectRow(targets.index("cheapco/moonshotai/kimi-k2"))
    assert page.table.item(targets.index("cheapco/moonshotai/kimi-k2"), 1).text() == "0"  # it served nothing
    assert page.shadow.isVisible()
    assert (
        page.evidence.text()
        == "It served no calls in this range: shadow runs compare it with the model that did."
    )
    assert page.verdict.text().startswith("Candidate only (served no calls): 40 shadow runs against")
    assert page.shadow.text() == (
        "As a shadow of cheapco/qwen/qwen3-coder: 40 runs, valid 90.0% (served 100.0%), same "
        "tool 70.0%, arguments valid 90.0%, latency 1.5 s (served 2.0 s), evaluation spend $0.160 (served $0.120)"
    )


def test_the_range_box_requeries(qtbot: Any, ctx: UiContext) -> None:
    history(ctx.core)
    page = open_page(qtbot, ctx)
    before = page.refreshes
    page.range_box.setCurrentIndex(0)  # last 7 days: the history is 3 days old, still in
    qtbot.waitUntil(lambda: page.refreshes > before and not page.flight.running, timeout=5000)
    assert page.table.rowCount() == 3


def test_empty_log_says_what_to_do(qtbot: Any, ctx: UiContext) -> None:
    page = open_page(qtbot, ctx)
    assert page.table.rowCount() == 0 and "No calls in this range" in page.verdict.text()


def test_render_executors_page_to_png(qtbot: Any, ctx: UiContext) -> None:
    history(ctx.core)
    shadow_history(ctx.core)
    page = open_page(qtbot, ctx)
    page.run_replay()
    qtbot.waitUntil(lambda: page.replay_data is not None, timeout=5000)
    qtbot.wait(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert page.grab().save(str(SCREENSHOTS / "executors.png"))
    targets = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    page.table.selectRow(targets.index("cheapco/moonshotai/kimi-k2"))
    qtbot.wait(100)
    assert page.grab().save(str(SCREENSHOTS / "executors-shadow.png"))
    for name in ("executors", "executors-shadow"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 20_000


def test_one_click_fix_writes_the_long_context_rule(qtbot: Any, ctx: UiContext) -> None:
    """The conftest config's active preset 'cheap' runs its loop on cheapco/qwen/qwen3-coder, whose failures
    climb with prompt size here; one click adds the rule, and the proxy's next call applies it."""
    history(ctx.core)
    page = open_page(qtbot, ctx)
    assert page.selected_target() == "cheapco/qwen/qwen3-coder"
    assert page.fix_button.isVisible() and page.fix_button.isEnabled()
    assert page.fix_button.text() == "Route prompts over 96K tokens to plan"
    assert (
        "to preset 'cheap'" in page.fix_note.text()
        and "go to backup/deepseek/deepseek-chat" in page.fix_note.text()
    )
    page.fix_button.click()
    qtbot.waitUntil(lambda: page.message.kind == "ok", timeout=5000)
    rule = ctx.core.config.presets["cheap"].long_context
    assert rule is not None and (rule.above_tokens, rule.role) == (96_000, "plan")
    assert "long_context" in ctx.core.config_path.read_text()
    assert not page.fix_button.isVisible()
    page.refresh(force=True)
    qtbot.waitUntil(lambda: page.refreshes >= 2, timeout=5000)
    assert not page.fix_button.isVisible() and "already sends prompts over 96K" in page.message.text()
    page.table.selectRow(0)  # deepseek holds up: nothing to offer
    assert not page.fix_button.isVisible()


def test_replay_panel_prices_the_range_on_another_preset(qtbot: Any, ctx: UiContext) -> None:
    history(ctx.core)
    page = open_page(qtbot, ctx)
    assert page.replay_box.currentText() == "premium"  # the premium preset first: "what would premium cost?"
    page.run_replay()
    qtbot.waitUntil(lambda: page.replay_data is not None, timeout=5000)
    data = page.replay_data
    assert data is not None and data["preset"] == "premium" and data["calls"] == 1252
    text = page.replay_result.text()
    assert "1,252 calls" in text and "on premium" in text and "No call was sent." in text
    assert "default: 1,252 calls" in text and "premium/claude-sonnet-4-6" in text


def test_presets_page_says_plainly_when_shadow_runs_are_on(qtbot: Any, ctx: UiContext) -> None:
    from dataclasses import replace

    from app.core.config import LongContext, Shadow, Target
    from app.ui.pages.presets import PresetsPage

    shadow = Shadow(Target("backup", "cand"), 0.25, 1.5)
    ctx.core.config_store.update(
        lambda c: replace(
            c,
            presets={
                **c.presets,
                "cheap": replace(c.presets["cheap"], shadow=shadow, long_context=LongContext(64_000, "plan")),
            },
        )
    )
    page = PresetsPage(ctx)
    qtbot.addWidget(page)
    page.show()
    page.show_preset("cheap")
    assert page.rules_note.isVisible()
    assert page.rules_note.text() == (
        "Shadow runs on: 25% of loop calls are also sent to backup/cand for evaluation "
        "(up to $1.50 a day). Loop calls over 64,000 prompt tokens go to the plan role."
    )
    page.show_preset("premium")
    assert not page.rules_note.isVisible()
    page.show_preset("cheap")
    page.save()  # saving the form keeps the rules it does not edit
    qtbot.waitUntil(lambda: page.message.kind == "ok", timeout=5000)
    assert ctx.core.config.presets["cheap"].shadow == shadow
    assert ctx.core.config.presets["cheap"].long_context == LongContext(64_000, "plan")
