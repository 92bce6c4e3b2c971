"""The notification area: where every panel's errors, warnings and alerts end up.

Panels do not pop up dialogs for failures and never let a traceback vanish: they emit
``notice`` (a ``Notice``) and the main window routes it here. The area is a small list at the
bottom of the window, newest first; a notice with details (a traceback, a remote stderr)
shows them when clicked, and the last one is also flashed in the status bar::

    self.notice.emit(Notice.from_error("Launch failed", worker_error))
    self.notice.emit(Notice("info", "Run smoke-cpu-2026… launched"))

Left out: desktop (system tray) notifications, persistence across restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.worker import WorkerError
from remote.display_text import visible

LEVELS = ("info", "warning", "error")
_COLOURS = {"info": "#3a6ea5", "warning": "#b26a00", "error": "#b00020"}
MAX_NOTICES = 500


@dataclass(frozen=True)
class Notice:
    level: str  # info | warning | error
    text: str
    details: str = ""
    source: str = ""  # the panel it came from
    t: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"notice level {self.level!r}: use one of {', '.join(LEVELS)}")

    @classmethod
    def from_error(cls, text: str, error: WorkerError | BaseException | str,
                   source: str = "") -> Notice:
        """An error notice: ``text`` says what failed, the error says why (traceback kept)."""
        if isinstance(error, WorkerError):
            return cls("error", f"{text}: {error}", error.traceback, source)
        if isinstance(error, BaseException):
            return cls("error", f"{text}: {type(error).__name__}: {error}", "", source)
        return cls("error", f"{text}: {error}", "", source)


class NotificationArea(QWidget):
    """Newest notice first; click one to read its details."""

    posted = Signal(object)  # the Notice, after it is listed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notification_area")
        self._notices: list[Notice] = []
        self.list = QListWidget()
        self.list.setObjectName("notices")
        self.list.currentRowChanged.connect(self._show_details)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Click a notice for its details.")
        self.title = QLabel("Notifications")
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.clear_button)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(self.details)
        split.setSizes([600, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(head)
        layout.addWidget(split, 1)

    def notices(self) -> list[Notice]:
        """Oldest first."""
        return list(self._notices)

    def counts(self) -> dict[str, int]:
        return {lv: sum(n.level == lv for n in self._notices) for lv in LEVELS}

    def post(self, notice: Notice) -> None:
        self._notices.append(notice)
        when = time.strftime("%H:%M:%S", time.localtime(notice.t))
        where = f"[{notice.source}] " if notice.source else ""
        item = QListWidgetItem(visible(f"{when}  {where}{notice.text}"))
        item.setForeground(QColor(_COLOURS[notice.level]))
        item.setToolTip(visible(notice.text))
        self.list.insertItem(0, item)
        if len(self._notices) > MAX_NOTICES:  # oldest go: the area is a log, not an archive
            del self._notices[0]
            self.list.takeItem(self.list.count() - 1)
        c = self.counts()
        self.title.setText(f"Notifications — {c['error']} errors, {c['warning']} warnings")
        self.posted.emit(notice)

    def clear(self) -> None:
        self.list.clear()  # first: it reports row changes while it empties
        self._notices.clear()
        self.details.clear()
        self.title.setText("Notifications")

    def _show_details(self, row: int) -> None:
        if not 0 <= row < len(self._notices):
            self.details.clear()
            return
        n = self._notices[len(self._notices) - 1 - row]
        self.details.setPlainText(visible(n.text + ("\n\n" + n.details if n.details else ""),
                                           keep_newlines=True))
