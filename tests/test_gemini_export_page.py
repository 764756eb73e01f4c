"""The Export page offers Gemini CLI: its variables and the settings.json note fit the snippet box, and the
direct variant explains that Gemini CLI can only reach these providers through Downshift."""

from __future__ import annotations

import pytest

from app.core.direct_env import mask_key
from app.core.envexport import export_text
from app.ui.pages.export import ExportPage

pytest_plugins = ["ui_support"]
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore(r"This plugin does not support (propagateSizeHints|raise|grabWindow)")]  # fmt: skip


def test_gemini_snippet_and_direct_variant(ctx, proxy, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = ExportPage(ctx)
    qtbot.addWidget(p)
    p.resize(980, 680)
    p.show()
    qtbot.waitUntil(lambda: p.copy_button.isEnabled(), timeout=3000)
    p.agent.setCurrentIndex(p.agent.findData("gemini"))
    assert p.agent.currentText() == "Gemini CLI"
    shown = p.snippet.toPlainText()
    masked = mask_key(token)  # on screen the token is masked; Copy puts the real one on the clipboard
    assert shown == export_text("gemini", "bash", proxy.url, masked)
    assert '"selectedType": "gemini-api-key"' in shown and f"export GEMINI_API_KEY='{masked}'" in shown
    spacing = p.snippet.fontMetrics().lineSpacing()
    assert shown.count("\n") * spacing <= p.snippet.height() - 12, "the snippet must fit without scrolling"
    p.grab().save("/tmp/h17g-export-gemini.png")

    p.direct.setChecked(True)
    p.provider.setCurrentIndex(p.provider.findData("cheapco"))
    qtbot.waitUntil(lambda: "through Downshift" in p.warning.text(), timeout=3000)
    assert not p.copy_button.isEnabled()
    p.grab().save("/tmp/h17g-export-gemini-direct.png")
