"""The log viewer of the Runs panel: a run's log files, live, with a file selector and search.

    viewer = LogViewer()
    viewer.open("Logs of r1:")                         # cleared and shown
    viewer.add({("h200", "sft.0.log"): "step 1\n"}, reset=False, prefer="sft.0.log")
    viewer.log_search.setText("error")                 # matches highlighted, "1 of 3"
    viewer.closed.connect(...)                         # the user pressed Close logs

Text arrives from a cluster, so it is made visible (control and bidi characters shown, never
obeyed) before it is shown. Each file keeps its last ``LOG_KEEP_CHARS`` characters (cut at a
line start); new text is appended to the file on screen without redrawing the rest, and the
view follows the end unless the user scrolled up. Search is plain text, up to
``MAX_MATCHES`` matches, Enter / the arrows move between them. No I/O here: the panel's worker
fetches the text (remote/run_follower.py) and hands it over.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from remote.display_text import visible

LOG_KEEP_CHARS = 4_000_000
MAX_MATCHES = 5000

LogKey = tuple[str, str]  # (cluster, file name)


class LogViewer(QWidget):
    closed = Signal()  # Close logs was pressed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._texts: dict[LogKey, str] = {}
        self._keys: list[LogKey] = []  # in the selector's order
        self._matches: list[QTextCursor] = []
        self._match_i = -1

        self.log_files = QComboBox()
        self.log_files.setObjectName("log_files")
        self.log_files.setMinimumWidth(220)
        self.log_files.currentIndexChanged.connect(self._show_file)
        self.log_search = QLineEdit()
        self.log_search.setObjectName("log_search")
        self.log_search.setPlaceholderText("Search the log (Enter: next match)")
        self.log_search.setClearButtonEnabled(True)
        self.log_search.textChanged.connect(lambda _: self._search(keep_index=False))
        self.log_search.returnPressed.connect(self.next_match)
        self.prev_button = QPushButton("▲")
        self.next_button = QPushButton("▼")
        for b in (self.prev_button, self.next_button):
            b.setFixedWidth(36)
        self.prev_button.setToolTip("Previous match")
        self.next_button.setToolTip("Next match (Enter)")
        self.prev_button.clicked.connect(self.prev_match)
        self.next_button.clicked.connect(self.next_match)
        self.match_label = QLabel("")
        self.match_label.setObjectName("log_matches")
        self.match_label.setMinimumWidth(90)
        self.close_button = QPushButton("Close logs")
        self.close_button.clicked.connect(self.closed.emit)
        self.title = QLabel("")
        bar = QHBoxLayout()
        for w in (self.title, self.log_files, self.log_search, self.prev_button,
                  self.next_button, self.match_label, self.close_button):
            bar.addWidget(w)
        bar.setStretchFactor(self.log_search, 1)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("log_view")
        self.log_view.setReadOnly(True)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setPlaceholderText("No log text yet.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.log_view, 1)
        self.hide()

    # --- what the panel calls

    def open(self, title: str) -> None:
        """Start over (no file, no text) and show, titled ``title`` (made visible)."""
        self.clear()
        self.title.setText(visible(title))
        self.show()
        self._search(keep_index=False)

    def clear(self) -> None:
        self._texts.clear()
        self._keys.clear()
        self.log_files.blockSignals(True)
        self.log_files.clear()
        self.log_files.blockSignals(False)
        self.log_view.clear()

    def add(self, logs: dict[LogKey, str], *, reset: bool, several_clusters: bool = False,
            prefer: str = "") -> None:
        """New text per file (``reset``: the whole text so far). A new file joins the
        selector (``cluster: name`` when the run spans ``several_clusters``); the first
        time, the file named ``prefer`` is shown, else the first one."""
        current = self.current_key()
        for key, text in logs.items():
            text = visible(text, keep_newlines=True)  # the cluster's text: shown, not obeyed
            full = ("" if reset else self._texts.get(key, "")) + text
            cut = len(full) > LOG_KEEP_CHARS
            if cut:  # keep the tail, from a line start
                full = full[-LOG_KEEP_CHARS:]
                full = full[full.find("\n") + 1:]
            self._texts[key] = full
            if key not in self._keys:
                cluster, name = key
                self._keys.append(key)
                self.log_files.blockSignals(True)
                self.log_files.addItem(visible(f"{cluster}: {name}" if several_clusters
                                               else name))
                self.log_files.blockSignals(False)
            if key == current and not reset and not cut:
                self._append(text)
            elif key == current:
                self._show_file()
        if current is None and self._keys:
            index = next((i for i, (_, name) in enumerate(self._keys) if name == prefer), 0)
            self.log_files.setCurrentIndex(index)
            self._show_file()

    def current_key(self) -> LogKey | None:
        i = self.log_files.currentIndex()
        return self._keys[i] if 0 <= i < len(self._keys) else None

    def file_names(self) -> list[str]:
        return [self.log_files.itemText(i) for i in range(self.log_files.count())]

    def text(self) -> str:
        return self.log_view.toPlainText()

    def select_file(self, name: str) -> None:
        i = self.log_files.findText(name)
        if i >= 0:
            self.log_files.setCurrentIndex(i)

    def next_match(self) -> None:
        if self._matches:
            self._match_i = (self._match_i + 1) % len(self._matches)
            self._highlight()

    def prev_match(self) -> None:
        if self._matches:
            self._match_i = (self._match_i - 1) % len(self._matches)
            self._highlight()

    def match_count(self) -> int:
        return len(self._matches)

    # --- drawing

    def _append(self, text: str) -> None:
        bar = self.log_view.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        cursor = QTextCursor(self.log_view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        if at_end:
            bar.setValue(bar.maximum())
        if self.log_search.text():
            self._search(keep_index=True)

    def _show_file(self, *_: Any) -> None:
        key = self.current_key()
        self.log_view.setPlainText(self._texts.get(key, "") if key else "")
        bar = self.log_view.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._search(keep_index=False)

    def _search(self, *, keep_index: bool) -> None:
        pattern = self.log_search.text()
        doc = self.log_view.document()
        matches: list[QTextCursor] = []
        if pattern:
            found = doc.find(pattern, 0)
            while not found.isNull() and len(matches) < MAX_MATCHES:
                matches.append(found)
                found = doc.find(pattern, found)
        old = self._match_i
        self._matches = matches
        if not matches:
            self._match_i = -1
        elif keep_index and 0 <= old < len(matches):
            self._match_i = old
        else:
            self._match_i = 0
        self._highlight(move=not keep_index)

    def _highlight(self, move: bool = True) -> None:
        selections = []
        for i, cursor in enumerate(self._matches):
            sel = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setBackground(QColor("#ff9632" if i == self._match_i else "#fff176"))
            sel.format = fmt
            sel.cursor = cursor
            selections.append(sel)
        self.log_view.setExtraSelections(selections)
        n = len(self._matches)
        if not self.log_search.text():
            self.match_label.setText("")
        elif not n:
            self.match_label.setText("no matches")
        else:
            more = "+" if n >= MAX_MATCHES else ""
            self.match_label.setText(f"{self._match_i + 1} of {n}{more}")
        if move and 0 <= self._match_i < n:
            self.log_view.setTextCursor(self._matches[self._match_i])
            self.log_view.ensureCursorVisible()
