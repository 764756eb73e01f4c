"""The main window: a page list on the left, the page on the right, a status line at the bottom.

Pages are imported and built the first time they are shown, so start-up stays quick; a page that fails
while it builds shows a plain note instead of taking the window down.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.icons import app_icon
from app.ui.pages import MessageLine
from app.ui.quickbar import QuickBar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageSpec:
    key: str
    title: str
    module: str
    cls: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("dashboard", "Dashboard", "app.ui.pages.dashboard", "DashboardPage"),
    PageSpec("calls", "Calls", "app.ui.pages.calls", "CallsPage"),
    PageSpec("tasks", "Tasks", "app.ui.pages.tasks", "TasksPage"),
    PageSpec("executors", "Executors", "app.ui.pages.executors", "ExecutorsPage"),
    PageSpec("budgets", "Budgets", "app.ui.pages.budgets", "BudgetsPage"),
    PageSpec("providers", "Providers", "app.ui.pages.providers", "ProvidersPage"),
    PageSpec("presets", "Presets", "app.ui.pages.presets", "PresetsPage"),
    PageSpec("export", "Export", "app.ui.pages.export", "ExportPage"),
    PageSpec("settings", "Settings", "app.ui.pages.settings", "SettingsPage"),
    PageSpec("team", "Team", "app.ui.pages.team", "TeamPage"),
)


class PageClass(Protocol):
    """What every page class is: built from the shared context, with a parent."""

    def __call__(self, ctx: UiContext, parent: QWidget | None = None, /) -> QWidget: ...


@runtime_checkable
class GuardedPage(Protocol):
    """A page with a form whose edits are guarded (Presets, Providers, Settings): asked before leaving."""

    def has_unsaved_changes(self) -> bool: ...
    def unsaved_what(self) -> str: ...
    def save_changes(self) -> None: ...
    def discard_changes(self) -> None: ...


def placeholder(text: str) -> QWidget:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label


class MainWindow(QMainWindow):
    closed = Signal()  # the user closed the window (it is hidden, not destroyed)
    # asked before the window closes: False keeps it open (the app asks "quit or keep running?" when no
    # tray exists to come back from)
    may_close: Callable[[], bool] | None = None

    def __init__(
        self, ctx: UiContext, settings: QSettings, on_quit: Callable[[], None], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx, self.settings = ctx, settings
        self.setWindowTitle("Downshift")
        self.setWindowIcon(app_icon())
        self.pages: dict[str, QWidget] = {}
        self._row = -1  # the page shown
        self.nav = QListWidget()
        self.nav.setObjectName("pageList")
        self.nav.setAccessibleName("Pages")
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.stack = QStackedWidget()
        for spec in PAGES:
            QListWidgetItem(spec.title, self.nav)
            self.stack.addWidget(QWidget())  # a stand-in until the page is first shown
        self.nav.setSpacing(3)
        self.nav.setFrameShape(QFrame.Shape.NoFrame)
        self.nav.setBackgroundRole(QPalette.ColorRole.Window)
        self.nav.setFixedWidth(self.nav.sizeHintForColumn(0) + 40)
        self.nav.currentRowChanged.connect(self._show_row)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(6, 8, 8, 0)
        layout.setSpacing(8)
        layout.addWidget(self.nav)
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.VLine)
        rule.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(rule)
        layout.addWidget(self.stack, 1)
        # a warning that stays in view while it holds: the active preset's local server is not running
        self.health = MessageLine()
        self.health.setObjectName("healthWarning")
        outer = QWidget()
        outer_layout = QVBoxLayout(outer)
        outer_layout.setContentsMargins(0, 0, 0, 0)
        outer_layout.setSpacing(0)
        outer_layout.addWidget(self.health)
        self.budget_banner = self._budget_banner()
        outer_layout.addWidget(self.budget_banner)
        outer_layout.addWidget(central, 1)
        self.health.setContentsMargins(12, 6, 12, 0)
        self.setCentralWidget(outer)
        self.quick = QuickBar(ctx, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.quick)
        self.addActions(self.quick.shortcut_actions())
        self._build_menus(on_quit)
        self.status = QLabel()
        self.statusBar().addPermanentWidget(self.status)
        ctx.bridge.configChanged.connect(self.refresh_status)
        ctx.bridge.configChanged.connect(self.check_health)
        ctx.bridge.navigate.connect(self.show_page)
        ctx.bridge.pausedChanged.connect(self.refresh_status)
        self.refresh_status()
        self.restore_state()

    # ------------------------------------------------------------------------------------------- budgets

    def _budget_banner(self) -> QWidget:
        """A reached budget (the proxy's "Budget reached" notice) stays in view, whatever the page, until
        dismissed: a tray bubble fades, and a desktop without a tray shows none."""
        banner = QFrame()
        banner.setObjectName("budgetWarning")
        banner.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(banner)
        row.setContentsMargins(12, 4, 12, 4)
        self.budget_message = MessageLine()
        show = QPushButton("&Budgets")
        show.clicked.connect(lambda: self.show_page("budgets"))
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(banner.hide)
        row.addWidget(self.budget_message, 1)
        row.addWidget(show)
        row.addWidget(dismiss)
        self.budget_dismiss = dismiss
        banner.hide()
        self.ctx.bridge.notice.connect(self._notice)
        return banner

    def _notice(self, title: str, message: str) -> None:
        if title != "Budget reached":
            return
        shown = self.budget_message.label.text() if self.budget_banner.isVisible() else ""
        if message not in shown:  # several budgets reached: all of them, until dismissed
            self.budget_message.show_message("error", f"{shown} {message}".strip())
        self.budget_banner.show()

    # ------------------------------------------------------------------------------------------- actions

    def _build_menus(self, on_quit: Callable[[], None]) -> None:
        app_menu = self.menuBar().addMenu("&Downshift")
        close = QAction("&Close Window", self, shortcut=QKeySequence("Ctrl+W"))
        close.triggered.connect(self.close_by_user)
        quit_ = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"))
        quit_.setMenuRole(QAction.MenuRole.QuitRole)
        quit_.triggered.connect(on_quit)
        setup = QAction("Set up a &provider…", self)
        setup.setToolTip("The first-run assistant: a provider, its key, a cheap and a premium model")
        setup.triggered.connect(self.open_first_run)
        app_menu.addAction(setup)
        app_menu.addSeparator()
        app_menu.addActions([close, quit_])
        go = self.menuBar().addMenu("&Go")
        self.page_actions: dict[str, QAction] = {}
        for i, spec in enumerate(PAGES):
            action = QAction(spec.title, self)
            if i < 9:  # Ctrl+1..9; a tenth page is a click away
                action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, k=spec.key: self.show_page(k))
            go.addAction(action)
            self.page_actions[spec.key] = action
        self.addActions(
            [close, quit_, *self.page_actions.values()]
        )  # shortcuts work with the menu bar hidden
        help_menu = self.menuBar().addMenu("&Help")
        from app.ui.help import add_help_actions

        self.help_actions = add_help_actions(help_menu)
        about = help_menu.addAction("&About Downshift")
        about.triggered.connect(self._about)

    def _about(self) -> None:
        from app.ui import dialogs

        dialogs.info(
            self,
            "About Downshift",
            f"Downshift {__version__}",
            "Routes coding agents to cheaper models through a local proxy, and measures what that costs "
            f"and how reliable the tool calls are.\n\nConfig: {self.ctx.core.config_path}\n"
            f"Keys: {self.ctx.core.secrets.describe()}",
        )

    def open_first_run(self) -> None:
        from app.ui.first_run import open_first_run

        open_first_run(self.ctx, self)

    def check_health(self, *_: object) -> None:
        """Off the GUI thread (a TCP connect): warn while the active preset's local server is down."""
        from app.core.health import local_server_down

        config = self.ctx.core.config
        self.ctx.background.run(lambda: local_server_down(config), self._health_checked, lambda exc: None)

    def _health_checked(self, problem: str | None) -> None:
        if problem:
            self.health.error(problem)
        else:
            self.health.clear()

    # ------------------------------------------------------------------------------------------- pages

    def page(self, key: str) -> QWidget:
        """The page for `key`, built on first use."""
        if key not in self.pages:
            index = next(i for i, s in enumerate(PAGES) if s.key == key)
            widget = self._build(PAGES[index])
            old = self.stack.widget(index)
            self.stack.insertWidget(index, widget)
            if old is not None:
                self.stack.removeWidget(old)
                old.deleteLater()
            self.pages[key] = widget
        return self.pages[key]

    def _build(self, spec: PageSpec) -> QWidget:
        """Every page ships with the app: a module that fails to import is a bug and raises (loudly, in
        tests too). A page that fails while it builds (its data unreadable) says so in plain words."""
        page_class: PageClass = getattr(importlib.import_module(spec.module), spec.cls)
        try:
            return page_class(self.ctx, self.stack)
        except Exception as exc:  # one broken page must not take the whole window down
            return placeholder(plain_error(f"The {spec.title} page could not be opened", exc))

    def _show_row(self, row: int) -> None:
        if not 0 <= row < len(PAGES):
            return
        if row != self._row and not self.confirm_leave(self._row):
            self.nav.blockSignals(True)
            self.nav.setCurrentRow(self._row)
            self.nav.blockSignals(False)
            return
        self.page(PAGES[row].key)
        self.stack.setCurrentIndex(row)
        self._row = row

    def show_page(self, key: str) -> QWidget:
        """Show a page; "calls?outcome=error" also hands the part after "?" to the page's `apply_query`."""
        key, _, query = key.partition("?")
        if query:
            page = self.show_page(key)
            if self.current_page() == key and hasattr(page, "apply_query"):
                page.apply_query(query)
            return page
        row = next(i for i, s in enumerate(PAGES) if s.key == key)
        if self.nav.currentRow() != row:
            self.nav.setCurrentRow(row)  # shows it through _show_row, unless unsaved edits keep the user
        else:
            self._show_row(row)
        return self.page(key)

    def confirm_leave(self, row: int | None = None) -> bool:
        """Before leaving a page with edits not yet saved (the Presets, Providers or Settings forms): Save,
        Discard or stay. With `row` None, every built page is checked (before quitting)."""
        keys = [s.key for s in PAGES] if row is None else [PAGES[row].key] if 0 <= row < len(PAGES) else []
        for key in keys:
            page = self.pages.get(key)
            if not isinstance(page, GuardedPage) or not page.has_unsaved_changes():
                continue
            from app.ui import dialogs

            answer = dialogs.choose(
                self,
                "Unsaved changes",
                f"{page.unsaved_what()} has unsaved changes.",
                ["Save", "Discard changes"],
                "Discarded changes are lost.",
            )
            if answer is None:
                return False
            if answer == 0:
                page.save_changes()
            else:
                page.discard_changes()
        return True

    def current_page(self) -> str:
        return PAGES[max(self.nav.currentRow(), 0)].key

    # ------------------------------------------------------------------------------------------- state

    def refresh_status(self, *_: object) -> None:
        config = self.ctx.core.config
        proxy = "paused" if self.ctx.paused else self.ctx.base_url
        self.status.setText(f"Proxy: {proxy}   ·   Preset: {config.active or 'none'}")
        self.quick.show_paused(self.ctx.paused)  # also enables Pause once the proxy is attached

    def restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1100, 720)
        last = str(self.settings.value("window/page", "dashboard"))
        self.show_page(last if any(s.key == last for s in PAGES) else "dashboard")

    def save_state(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/page", self.current_page())
        self.settings.sync()

    def close_by_user(self) -> None:
        """Ctrl+W / Close Window: a close the user asked for, like the title bar's (see closeEvent)."""
        self._user_close = True
        try:
            self.close()
        finally:
            self._user_close = False

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing hides the window; the tray app (and the proxy) keep running until Quit. Only a close the
        user asked for (title bar, Ctrl+W) is questioned; one from QApplication.quit (a timed demo, the
        session ending) goes through, or nothing could quit the app without a screen to answer on."""
        user = event.spontaneous() or getattr(self, "_user_close", False)
        if user and self.may_close is not None and not self.may_close():
            event.ignore()
            return
        self.save_state()
        event.ignore()
        self.hide()
        self.closed.emit()
