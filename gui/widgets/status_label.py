"""A panel's one-line status: what it is doing, or (in red) what went wrong.

    self.message = StatusLabel()
    self.message.show_info("Opening store.sqlite …")
    self.message.show_error("Could not open it: no such file")

Wraps, and its text can be selected and copied (an error message is something to paste).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

ERROR_STYLE = "color: #b00020;"


class StatusLabel(QLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def show_info(self, text: str) -> None:
        self.setStyleSheet("")
        self.setText(text)

    def show_error(self, text: str) -> None:
        self.setStyleSheet(ERROR_STYLE)
        self.setText(text)
