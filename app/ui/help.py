"""The Help menu: the README's sections, opened where the user reads Markdown (their browser or editor).

The README is the manual; linking its sections keeps one text to maintain. It ships beside the `app`
package in a source checkout; where it is missing (an installed wheel) the actions are off and say why.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QMenu

README = Path(__file__).resolve().parent.parent.parent / "README.md"

# (menu text, README heading): the everyday questions, in the order a new user meets them
SECTIONS: tuple[tuple[str, str], ...] = (
    ("&Quick start", "Quick start (headless)"),
    ("First run and &demo", "First run and demo"),
    ("The desktop &app", "The desktop app"),
    ("&Connect an agent", "One click: connect an agent"),
    ("Using your a&gent through Downshift", "Using your agent through Downshift"),
    ("C&onfiguration", "Configuration"),
    ("Command &line", "Command line"),
    ("Agent a&nalytics", "Agent analytics"),
    ("Picking an &executor", "Picking an executor"),
    ("&Team mode", "Team mode"),
)


def slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown viewers) give a heading: lower case, punctuation dropped,
    spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def section_url(heading: str | None, readme: Path = README) -> QUrl:
    url = QUrl.fromLocalFile(str(readme))
    if heading:
        url.setFragment(slug(heading))
    return url


def add_help_actions(menu: QMenu, readme: Path = README) -> list[QAction]:
    """ "Read me" and one action per README section; each opens the file at the section's anchor."""
    found = readme.is_file()
    actions = []
    for text, heading in (("&Read me", None), *SECTIONS):
        action = QAction(text, menu)
        url = section_url(heading, readme)
        action.setData(url)
        action.setEnabled(found)
        action.setToolTip(
            url.toString() if found else f"{readme} is not there (an installed copy has no README)"
        )
        action.triggered.connect(lambda _=False, u=url: QDesktopServices.openUrl(u))
        actions.append(action)
    menu.addAction(actions[0])
    menu.addSeparator()
    menu.addActions(actions[1:])
    menu.addSeparator()
    return actions
