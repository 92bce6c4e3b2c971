"""The Data panel: browse a run's dataset store (tasks, lineage, solutions, tests, verdicts)
and its RL rollouts.

Two ways in, the same view:

    panel.open_store("runs/r1/data/store.sqlite")             # a file on this computer
    panel.open_remote(lambda: RemoteStore(runner, path, engine_dir=bundle, python=py,
                                          prefix=activate, env=env, lock=session.lock))

``open_store(path)`` reads a local store read-only (``engine.store_rpc.StoreReader``).
``open_remote(source)`` takes a ``remote.store_client.RemoteStore`` or a callable that makes
one; the callable runs in the worker, so it may use the runner (the app's session lock
serialises the link). Every page, task and rollout group is then one remote command; the store
is never downloaded. Both show the run's RL rollouts in the "RL rollouts" tab
(gui/panels/rollouts.py; ``show_rollouts()`` switches to it), read from ``<run>/rollouts/``
next to the store's ``<run>/data/``. A store that cannot be opened (none yet, a newer schema)
is reported and the rollouts still show; a source that cannot answer at all (no Python, an
engine bundle too old for remote browsing, the link down) is reported and nothing shows.

The "Tasks" tab's left side is the task table (one keyset page at a time,
``Store.query_tasks``) with its filters: style, status, reject reason, agreement range,
feature category and full-text search. Selecting a row loads that task (``Store.get_task`` + ``Store.lineage_of``) into the tabs on the right: the statement
(markdown) with the integration strategy and selected features, the feature lineage tree, the
candidate solutions with highlighted code (the golden one marked ★), the tests (big ones
previewed) and the verdict matrix (solution × test, coloured by status, with a legend and each
solution's "n/m ok" in its row header).

What verification recorded (``TaskDetail.verify_meta``, free-form JSON) shows where it is
looked for: a line under the title (statement samples: how many, how many used and added as
tests; compile errors; eligible candidates; unusable tests; the whole JSON in its tooltip), a
red "Compile error" box with the compiler's message (monospace) above a solution's code, the
candidate's weight / eligibility / exposures / time on the biggest input in the solution's
info, and the same per solution in a "Candidates" table under the verdict matrix.

How: widgets never do I/O (ARCHITECTURE.md §7). Opening, every page and every task detail run
through ``run_in_worker``; a source is used from one thread at a time, so each open source
travels with a lock that every worker call takes (a RemoteStore takes the app's link lock
inside it as well). Each query and detail load is tagged with a
sequence number and answers of older ones are dropped, so a slow query can't overwrite the
result of a newer one. Text filters and the spin boxes are debounced (300 ms). Failures (a
missing file, a store from a newer engine, a broken query, a remote error) show in the
message label and go out as ``notice`` (gui.notify.Notice) for the notification area; every
slot that handles a result is guarded so nothing escapes to Qt.

Call ``close_store()`` before the panel goes away (it closes the store in the worker);
``busy()`` says whether any of the panel's jobs is still pending (tests wait for it).

Over a remote source, test inputs and outputs arrive cut to the RemoteStore's
``max_test_chars`` (their full size is in the test's meta, and the note says it).

Clicking a column header sorts the table in the store (id, style, status, reason, agreement,
solutions, tests; again: descending), and pages follow that order; the title column is
searched, not sorted. A detail whose task a filter or page removed is cleared. Plain-text
statements keep their line breaks. "Open…" takes a run folder from this computer (its
``data/store.sqlite``), so the panel is never a dead end.

Left out: jumping to a page number or the last page, sorting by title, and feature names in the lineage tree (``lineage_of`` gives
kinds and ids only).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.contracts.config import TASK_STYLES as STYLES
from engine.contracts.rundir import RunDir
from engine.contracts.store import (
    CUT_KEY,
    LineageEdge,
    Solution,
    StoreError,
    StoreReader,
    TaskDetail,
    TaskPage,
    TaskQuery,
    TaskRow,
    Test,
)
from gui.highlight import highlight_html
from gui.notify import Notice
from gui.panels.rollouts import RolloutView
from gui.widgets.status_label import StatusLabel
from gui.worker import Job, JobCounter, WorkerError
from remote.display_text import visible
from remote.store_client import StoreSession

PAGE_SIZE = 100
TITLE_WIDTH = 240  # px: the task table's title column, at first
DEBOUNCE_MS = 300
PREVIEW_CHARS = 2000
STATUSES = ("pending", "accepted", "rejected")
GOLDEN = "\u2605"  # ★

# Verdict cell colours; any other status (runtime_error, compile_error, memory_limit, ...) is
# an error (grey), and a solution × test pair without a verdict is white.
VERDICT_COLOURS = {"ok": "#a8dca0", "wrong": "#f0a0a0", "time_limit": "#f5bd6c",
                   "timeout": "#f5bd6c"}
ERROR_COLOUR = "#c4c4c4"
MISSING_COLOUR = "#ffffff"


# The verdict matrix's legend: (a status with that colour, what it means); None: no verdict.
LEGEND = (("ok", "ok"), ("wrong", "wrong answer"), ("time_limit", "time limit"),
          ("runtime_error", "error (runtime, compile, memory, \u2026)"), (None, "no verdict (blank)"))
COMPILE_ERROR_CHARS = 8000  # a compiler message longer than this shows its start


def verdict_colour(status: str | None) -> QColor:
    """The background of a verdict cell: None means no verdict for that pair."""
    if status is None:
        return QColor(MISSING_COLOUR)
    return QColor(VERDICT_COLOURS.get(status, ERROR_COLOUR))


def legend_html() -> str:
    """The verdict matrix's legend: each colour as a swatch with its meaning (wraps between
    entries, never inside one)."""
    entries = [f'<span style="background-color: {verdict_colour(status).name()};'
               f' color: #000000;">&nbsp;{html.escape(words).replace(" ", "&nbsp;")}&nbsp;</span>'
               for status, words in LEGEND]
    return "Legend: " + " &nbsp; ".join(entries)


# ---------------------------------------------------------------------------------------------
# Verification details (TaskDetail.verify_meta): free-form JSON from the verify stage. The keys
# below are shown in words; anything else shows as "key: value".

SAMPLE_WORDS = {"in_statement": "in the statement", "as_tests": "used as tests",
                "added": "added as tests by verify"}
CANDIDATE_WORDS = {"eligible": "eligible", "samples_passed": "samples passed",
                   "weight": "weight", "exposures": "exposures",
                   "biggest_input_cpu_s": "biggest input (CPU)"}
SUMMARY_KEYS = ("samples", "compile_errors", "candidates", "unusable_tests")


def _meta_dict(meta: Any, key: str) -> dict[str, Any]:
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, dict) else {}


def meta_value(key: str, value: Any) -> str:
    """One verification value in words: yes/no, seconds, a number, compact JSON."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:.3f} s" if key.endswith("_s") else f"{value:g}"
    if isinstance(value, str):
        return value
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 80 else text[:79] + "\u2026"


def samples_text(samples: dict[str, Any]) -> str:
    """``{"in_statement": 2, "as_tests": 2, "added": 1}`` -> "2 in the statement, 2 used as
    tests, 1 added as tests by verify"."""
    return ", ".join(f"{meta_value(k, v)} {SAMPLE_WORDS[k]}" if k in SAMPLE_WORDS
                     else f"{k}: {meta_value(k, v)}" for k, v in samples.items())


def verify_summary(meta: dict[str, Any]) -> str:
    """The detail header's verification line ("" when nothing was recorded)."""
    if not meta:
        return ""
    parts = []
    samples = _meta_dict(meta, "samples")
    if samples:
        parts.append(f"statement samples: {samples_text(samples)}")
    if "compile_errors" in meta:
        n = len(_meta_dict(meta, "compile_errors"))
        parts.append(f"{n} compile error{'' if n == 1 else 's'}")
    candidates = _meta_dict(meta, "candidates")
    if candidates:
        eligible = sum(1 for c in candidates.values() if isinstance(c, dict) and c.get("eligible"))
        parts.append(f"{eligible} of {len(candidates)} candidates eligible")
    if "unusable_tests" in meta:
        parts.append(f"unusable tests: {meta_value('unusable_tests', meta['unusable_tests'])}")
    parts += [f"{k}: {meta_value(k, v)}" for k, v in meta.items() if k not in SUMMARY_KEYS]
    return "Verification \u2014 " + " \u00b7 ".join(parts)


def candidate_text(candidate: dict[str, Any]) -> str:
    """A candidate's verification record in one line, for the solution's info."""
    parts = []
    for key, value in candidate.items():
        if key == "eligible" and isinstance(value, bool):
            parts.append("eligible (passes every sample)" if value
                         else "not eligible (fails a sample)")
        elif key == "biggest_input_cpu_s":
            parts.append(f"biggest input {meta_value(key, value)} CPU")
        else:
            parts.append(f"{CANDIDATE_WORDS.get(key, key)} {meta_value(key, value)}")
    return "candidate: " + " \u00b7 ".join(parts)


def error_line(message: str) -> str:
    """A compiler message's telling line: the first that says "error", else the first."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")


def pass_counts(detail: TaskDetail) -> dict[int, int]:
    """Solution id -> how many of the task's tests it passed (verdict ``ok``)."""
    test_ids = {t.id for t in detail.tests}
    out = {s.id: 0 for s in detail.solutions}
    for v in detail.verdicts:
        if v.status == "ok" and v.test_id in test_ids and v.solution_id in out:
            out[v.solution_id] += 1
    return out


# ---------------------------------------------------------------------------------------------
# Worker side: Qt-free functions run by run_in_worker


# A source is anything with StoreReader's read methods: a StoreReader (local files) or a
# remote.store_client.RemoteStore (queries over a cluster's link).
Source = Any


def _open(source_or_factory: Source | Callable[[], Source]
          ) -> tuple[StoreSession, list[tuple[str, int]] | None, str | None]:
    """(session, reject reasons, None), or (session, None, why the store is unusable): the
    run's rollouts may be there without a store. Other failures raise (nothing to show)."""
    source = source_or_factory() if callable(source_or_factory) else source_or_factory
    try:
        reasons = source.reject_reasons()
    except StoreError as exc:
        return StoreSession(source), None, str(exc)
    except BaseException:
        source.close()
        raise
    return StoreSession(source), reasons, None


def _query(source: Source, q: TaskQuery) -> TaskPage:
    return source.query_tasks(q)


def _detail(source: Source, task_id: int) -> tuple[TaskDetail | None, list[LineageEdge]]:
    detail = source.get_task(task_id)
    return detail, (source.lineage_of("task", task_id) if detail is not None else [])


# ---------------------------------------------------------------------------------------------
# Widgets


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """A result slot whose exceptions go to the message label instead of escaping to Qt."""

    @functools.wraps(method)
    def wrapper(self: DataPanel, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:  # a bug or odd data: shown, the panel stays usable
            self.message.show_error(f"{type(exc).__name__}: {exc}")

    return wrapper


class TaskTableModel(QAbstractTableModel):
    """The rows of the current page."""

    COLUMNS = ("id", "title", "style", "status", "reason", "agreement", "solutions", "tests")
    # The store's sort key for each column the store can sort by (it sorts, pages stay keyset
    # pages); the title is searched, not sorted.
    SORT_KEYS = {0: "id", 2: "style", 3: "status", 4: "reject_reason", 5: "agreement",
                 6: "n_solutions", 7: "n_tests"}

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[TaskRow] = []

    def set_rows(self, rows: list[TaskRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            values = (row.id, visible(row.title), row.style, row.status,
                      visible(row.reject_reason or ""),
                      "\u2014" if row.agreement is None else f"{row.agreement:.2f}",
                      row.n_solutions, row.n_tests)
            return values[col]
        if role == Qt.ItemDataRole.ToolTipRole and col in (1, 4):
            # The snippet shows why a search matched (hits wrapped in « »).
            return visible(row.snippet if col == 1 else row.reject_reason or "")
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (0, 5, 6, 7):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class _OptionalSpin(QDoubleSpinBox):
    """A 0..1 spin box with one extra step past an end, shown as "any": no bound."""

    def __init__(self, any_at_top: bool) -> None:
        self._any = 1.05 if any_at_top else -0.05  # before any Qt call: Qt asks for text
        super().__init__()
        self.setDecimals(2)
        self.setSingleStep(0.05)
        if any_at_top:
            self.setRange(0.0, 1.05)
        else:
            self.setRange(-0.05, 1.0)
        self.setValue(self._any)

    def _is_any(self, value: float) -> bool:
        return abs(value - self._any) < 1e-6

    def textFromValue(self, value: float) -> str:
        return "any" if self._is_any(value) else super().textFromValue(value)

    def valueFromText(self, text: str) -> float:
        return self._any if text.strip().lower() == "any" else super().valueFromText(text)

    def bound(self) -> float | None:
        return None if self._is_any(self.value()) else round(self.value(), 2)

    def clear_bound(self) -> None:
        self.setValue(self._any)


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]#<>|" else c for c in text)


def _features_markdown(tree: Any, depth: int = 0) -> list[str]:
    """The selected-features tree as a nested markdown list."""
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            lines.append(f"{pad}- {_md_escape(visible(str(key)))}")
            lines += _features_markdown(value, depth + 1)
    elif isinstance(tree, list):
        for value in tree:
            if isinstance(value, dict | list):
                lines += _features_markdown(value, depth)
            else:
                lines.append(f"{pad}- {_md_escape(visible(str(value)))}")
    elif tree not in (None, ""):
        lines.append(f"{pad}- {_md_escape(visible(str(tree)))}")
    return lines


def store_file(path: Path) -> Path:
    """A run folder, its data/ folder or the store file itself -> the store file's path."""
    for candidate in (RunDir(path).store_path, path / RunDir(path).store_path.name):
        if path.is_dir() and candidate.is_file():
            return candidate
    return path


def keep_line_breaks(markdown: str) -> str:
    """Each line break outside code fences made a hard break ("  " at the line's end), so a
    plain-text statement (input format lines, sample rows) keeps its lines; markdown joins
    them into one paragraph otherwise."""
    out, fenced = [], False
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif (not fenced and line.strip() and i + 1 < len(lines) and lines[i + 1].strip()
              and not line.endswith("  ")):
            line += "  "
        out.append(line)
    return "\n".join(out)


def task_markdown(detail: TaskDetail) -> str:
    """The statement tab's document: statement, then integration strategy and features."""
    # Generated text, maybe read from a cluster: control and bidi characters made visible.
    parts = [keep_line_breaks(visible(detail.statement.strip(), keep_newlines=True))
             or "*(no statement)*", "",
             "---", "", "**Integration strategy**", "",
             _md_escape(visible(detail.integration_strategy.strip(), keep_newlines=True))
             or "*(none recorded)*", "",
             "**Selected features**", ""]
    parts += _features_markdown(detail.selected_features) or ["*(none recorded)*"]
    return "\n".join(parts) + "\n"


def preview(text: str | None, limit: int = PREVIEW_CHARS,
            full_chars: int | None = None) -> tuple[str, str]:
    """(text to show, note): big texts are cut to their first ``limit`` characters.
    ``full_chars``: the text's real length when ``text`` arrived cut already (remote).
    Control and bidi characters are made visible (remote.display_text): the text is generated,
    maybe on a cluster, and a U+202E must not reorder what a person reads."""
    if text is None:
        return "", "(none)"
    size = max(full_chars or 0, len(text))
    if size <= limit:
        return visible(text, keep_newlines=True), f"{size} chars"
    return (visible(text[:limit], keep_newlines=True),
            f"showing the first {min(limit, len(text))} of {size} chars")


def _solution_label(sol: Solution, golden_id: int | None) -> str:
    mark = f"{GOLDEN} " if sol.id == golden_id else ""
    label = f"{mark}#{sol.idx}  {visible(sol.language)}  {sol.status}"
    if sol.status == "rejected" and sol.reject_reason:
        label += f" \u2014 {visible(sol.reject_reason)}"
    return label


def _fmt(value: float | int | None, unit: str, spec: str = "") -> str:
    return "\u2014" if value is None else f"{value:{spec}} {unit}"


class DataPanel(QWidget):
    """The data browser; see the module docstring."""

    notice = Signal(object)  # gui.notify.Notice: failures to open, query or read rollouts

    def __init__(self, parent: QWidget | None = None, *, page_size: int = PAGE_SIZE) -> None:
        super().__init__(parent)
        self.setObjectName("panel_data")
        self.page_size = page_size
        self.path: Path | None = None  # a local store's file; None for a remote one
        self.label = ""  # what the message line names: the file, or cluster:path
        self._session: StoreSession | None = None
        self._has_store = False  # the session's store opened (else: rollouts only)
        self._gen = 0  # bumped per open/close: answers about an older store are dropped
        self._query_seq = 0
        self._detail_seq = 0
        self._work = JobCounter(self)  # jobs whose outcome is not in yet
        self.page: TaskPage | None = None
        self.page_index = 0
        self.total: int | None = None
        self.detail: TaskDetail | None = None
        self.lineage: list[LineageEdge] = []
        self._shown_task: int | None = None  # the task the detail shows or is loading
        self._reselecting = False

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh)

        self._build_filters()
        self._build_table()
        self._build_detail()

        self.message = StatusLabel()
        self.message.setObjectName("data_message")

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.filters)
        lv.addWidget(self.table, 1)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        nav.addWidget(self.total_label, 1)
        lv.addLayout(nav)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.title_label)
        rv.addWidget(self.verify_label)
        rv.addWidget(self.tabs, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([560, 640])  # the detail tabs need the room more than the titles

        self.rollouts = RolloutView()
        self.rollouts.notice.connect(self.notice.emit)
        self.views = QTabWidget()
        self.views.setObjectName("data_views")
        self.views.addTab(splitter, "Tasks")
        self.views.addTab(self.rollouts, "RL rollouts")

        # Never a dead end: a store or a run folder can be opened from here, not only from
        # the Runs panel's "Browse data".
        self.open_button = QPushButton("Open\u2026", objectName="data_open_button")
        self.open_button.setToolTip("Open a run folder (or its data/store.sqlite) from this "
                                    "computer; a run on a cluster opens from the Runs panel "
                                    "(Browse data)")
        self.open_button.clicked.connect(self._choose_and_open)
        top = QHBoxLayout()
        top.addWidget(self.message, 1)
        top.addWidget(self.open_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.views, 1)
        self._set_enabled(False)
        self.message.show_info("No run open: Open\u2026 a run folder or its data/store.sqlite, "
                               "or pick a run in Runs and press Browse data.")

    # -- construction ------------------------------------------------------------------------

    def _build_filters(self) -> None:
        self.filters = QWidget()
        form = QFormLayout(self.filters)
        form.setContentsMargins(0, 0, 0, 0)

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("full-text search: title, statement, features")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self._debounce.start)
        self.search_edit.returnPressed.connect(self.refresh)
        form.addRow("Search", self.search_edit)

        self.style_combo = QComboBox()
        self.style_combo.addItem("all", None)
        for style in STYLES:
            self.style_combo.addItem(style, style)
        self.status_combo = QComboBox()
        self.status_combo.addItem("all", None)
        for status in STATUSES:
            self.status_combo.addItem(status, status)
        self.reason_combo = QComboBox()
        self.reason_combo.addItem("all", None)
        self.reason_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.reason_combo.setMinimumContentsLength(14)
        for combo in (self.style_combo, self.status_combo, self.reason_combo):
            combo.currentIndexChanged.connect(self.refresh)
        row1 = QHBoxLayout()
        for label, widget in (("Style", self.style_combo), ("Status", self.status_combo),
                              ("Reason", self.reason_combo)):
            row1.addWidget(QLabel(label))
            row1.addWidget(widget, 1)
        form.addRow(row1)

        self.agreement_min = _OptionalSpin(any_at_top=False)
        self.agreement_max = _OptionalSpin(any_at_top=True)
        self.category_edit = QLineEdit()
        self.category_edit.setPlaceholderText("feature category, e.g. algorithms")
        self.category_edit.setClearButtonEnabled(True)
        for spin in (self.agreement_min, self.agreement_max):
            spin.valueChanged.connect(self._debounce.start)
        self.category_edit.textChanged.connect(self._debounce.start)
        self.category_edit.returnPressed.connect(self.refresh)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Agreement"))
        row2.addWidget(self.agreement_min)
        row2.addWidget(QLabel("to"))
        row2.addWidget(self.agreement_max)
        row2.addWidget(QLabel("Category"))
        row2.addWidget(self.category_edit, 1)
        form.addRow(row2)

    def _build_table(self) -> None:
        self.model = TaskTableModel()
        self.table = QTableView()
        self.table.setObjectName("task_table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The title is what a person reads: a width of its own (a stretched title was squeezed
        # to ~50 px by the columns sized to their contents); the user may drag it, and the
        # last column takes what is left.
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, TITLE_WIDTH)
        header.resizeSection(4, 110)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(40)
        # Sorting is the store's (a click re-queries from the first page), not the view's:
        # a page of 100 sorted locally would be a lie about the other pages.
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        header.sectionClicked.connect(self._header_clicked)
        self.sort_column, self.sort_descending = 0, False
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)

        self.prev_button = QPushButton("\u2190 Previous")
        self.next_button = QPushButton("Next \u2192")
        self.prev_button.clicked.connect(self.previous_page)
        self.next_button.clicked.connect(self.next_page)
        self.total_label = QLabel()
        self.total_label.setObjectName("total_label")

    def _build_detail(self) -> None:
        self.title_label = QLabel()
        self.title_label.setWordWrap(True)
        font = QFont(self.title_label.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title_label.setFont(font)
        self.verify_label = QLabel()  # verification's summary; its tooltip has all of it
        self.verify_label.setObjectName("verify_label")
        self.verify_label.setWordWrap(True)
        self.verify_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verify_label.hide()

        self.statement_view = QTextBrowser()
        self.statement_view.setOpenExternalLinks(False)

        self.lineage_tree = QTreeWidget()
        self.lineage_tree.setHeaderLabels(["node", "relation"])
        self.lineage_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

        self.solution_list = QListWidget()
        self.solution_list.currentRowChanged.connect(self._solution_changed)
        self.solution_info = QLabel()
        self.solution_info.setWordWrap(True)
        self.code_view = QTextBrowser()
        self.code_view.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
        # The compiler's message for a solution that did not compile, above its code.
        self.compile_error_title = QLabel("Compile error")
        self.compile_error_title.setStyleSheet("color: #b00020; font-weight: bold;")
        self.compile_error_title.setWordWrap(True)
        self.compile_error_view = QPlainTextEdit()
        self.compile_error_view.setObjectName("compile_error_view")
        self.compile_error_view.setReadOnly(True)
        self.compile_error_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.compile_error_view.setFont(
            QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.compile_error_view.setStyleSheet(
            "QPlainTextEdit { background: #fdecea; color: #5f0000;"
            " border: 1px solid #b00020; }")
        self.compile_error_box = QWidget()
        ev = QVBoxLayout(self.compile_error_box)
        ev.setContentsMargins(0, 0, 0, 4)
        ev.addWidget(self.compile_error_title)
        ev.addWidget(self.compile_error_view)
        self.compile_error_box.hide()
        solutions = QSplitter(Qt.Orientation.Vertical)
        solutions.addWidget(self.solution_list)
        code_box = QWidget()
        cv = QVBoxLayout(code_box)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(self.solution_info)
        cv.addWidget(self.compile_error_box)
        cv.addWidget(self.code_view, 1)
        solutions.addWidget(code_box)
        solutions.setStretchFactor(1, 3)

        self.test_list = QListWidget()
        self.test_list.currentRowChanged.connect(self._test_changed)
        self.test_input_note = QLabel()
        self.test_expected_note = QLabel()
        self.test_input = QPlainTextEdit()
        self.test_expected = QPlainTextEdit()
        for edit in (self.test_input, self.test_expected):
            edit.setReadOnly(True)
            edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        tests = QSplitter(Qt.Orientation.Vertical)
        tests.addWidget(self.test_list)
        for note, edit in ((self.test_input_note, self.test_input),
                           (self.test_expected_note, self.test_expected)):
            box = QWidget()
            bv = QVBoxLayout(box)
            bv.setContentsMargins(0, 0, 0, 0)
            bv.addWidget(note)
            bv.addWidget(edit, 1)
            tests.addWidget(box)

        self.verdict_table = QTableWidget()
        self.verdict_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verdict_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        # One wrapping label (a row of widgets would set a minimum width for the window).
        self.verdict_legend = QLabel(legend_html())
        self.verdict_legend.setObjectName("verdict_legend")
        self.verdict_legend.setWordWrap(True)
        # Per solution: tests passed, and what verification recorded about it as a candidate.
        self.candidate_table = QTableWidget()
        self.candidate_table.setObjectName("candidate_table")
        self.candidate_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.candidate_table.verticalHeader().setVisible(False)
        self.candidate_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.candidate_table.horizontalHeader().setStretchLastSection(True)
        self.candidate_label = QLabel("Candidates: tests passed and what verification recorded")
        self.candidate_label.setWordWrap(True)
        candidates = QWidget()
        cb = QVBoxLayout(candidates)
        cb.setContentsMargins(0, 4, 0, 0)
        cb.addWidget(self.candidate_label)
        cb.addWidget(self.candidate_table, 1)
        grid = QSplitter(Qt.Orientation.Vertical)
        grid.addWidget(self.verdict_table)
        grid.addWidget(candidates)
        grid.setStretchFactor(0, 3)
        grid.setStretchFactor(1, 1)
        verdicts = QWidget()
        vv = QVBoxLayout(verdicts)
        vv.setContentsMargins(0, 0, 0, 0)
        vv.addWidget(self.verdict_legend)
        vv.addWidget(grid, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.statement_view, "Statement")
        self.tabs.addTab(self.lineage_tree, "Lineage")
        self.tabs.addTab(solutions, "Solutions")
        self.tabs.addTab(tests, "Tests")
        self.tabs.addTab(verdicts, "Verdicts")

    # -- jobs and messages -------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether a job of this panel (or a debounced query) has not delivered its outcome."""
        return self._work.busy() or self._debounce.isActive() or self.rollouts.busy()

    def _submit(self, fn: Callable[..., Any], *args: Any,
                on_done: Callable[[Any], None], on_failed: Callable[[WorkerError], None]) -> Job:
        return self._work.submit(fn, *args, on_done=on_done, on_failed=on_failed)

    def _set_enabled(self, on: bool) -> None:
        self.filters.setEnabled(on)
        self.table.setEnabled(on)
        if not on:
            self.prev_button.setEnabled(False)
            self.next_button.setEnabled(False)

    # -- opening and closing -----------------------------------------------------------------

    def _choose_and_open(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        start = str(self.path.parent.parent) if self.path is not None else str(Path.cwd())
        chosen = QFileDialog.getExistingDirectory(self, "Open a run folder", start)
        if chosen:
            self.open_store(chosen)

    def open_store(self, path: str | Path) -> Job:
        """Open a local store file read-only (in the worker) and show its first page and the
        run's rollouts. ``path`` may be the run's folder (its ``data/store.sqlite``) or its
        ``data/`` folder."""
        path = store_file(Path(path))
        job = self.open_source(functools.partial(StoreReader, path), str(path))
        self.path = path
        return job

    def open_remote(self, source: Source | Callable[[], Source],
                    label: str | None = None) -> Job:
        """Browse a store on a cluster: ``source`` is a ``RemoteStore`` or a callable making
        one (called in the worker). Every page is then one remote query."""
        return self.open_source(source, label or getattr(source, "label", None)
                                or "the run's store on its cluster")

    def open_source(self, source: Source | Callable[[], Source], label: str) -> Job:
        """Open any source with StoreReader's read methods (or a callable making one)."""
        self.close_store()
        self.label = label
        gen = self._gen
        self.message.show_info(f"Opening {label} \u2026")
        return self._submit(_open, source,
                            on_done=lambda res: self._opened(gen, res),
                            on_failed=lambda err: self._open_failed(gen, err))

    def show_rollouts(self) -> None:
        """Switch to the RL rollouts tab."""
        self.views.setCurrentWidget(self.rollouts)

    def close_store(self) -> Job | None:
        """Forget the open store and close it in the worker; clears the table and detail."""
        self._gen += 1
        self._query_seq += 1
        self._detail_seq += 1
        self._debounce.stop()
        session, self._session = self._session, None
        self._has_store = False
        self.path = None
        self.rollouts.set_session(None)
        self.page, self.total, self.page_index = None, None, 0
        self.model.set_rows([])
        self._shown_task = None
        self._clear_detail()
        self._set_enabled(False)
        self.total_label.setText("")
        if session is None:
            return None
        return self._submit(session.close, on_done=lambda _: None, on_failed=lambda _: None)

    @_guarded
    def _opened(self, gen: int, result: tuple[StoreSession, list[tuple[str, int]] | None,
                                              str | None]) -> None:
        session, reasons, store_error = result
        if gen != self._gen:  # another store was opened (or this one closed) meanwhile
            self._submit(session.close, on_done=lambda _: None, on_failed=lambda _: None)
            return
        self.label = getattr(session.source, "label", None) or self.label
        self._session = session  # closed by close_store(), store or not
        self.rollouts.set_session(session)
        if store_error is not None:  # no tasks to browse; the rollouts may still be there
            self.message.show_error(f"Could not open {self.label}: {store_error}")
            self.notice.emit(Notice("warning", f"Could not open {self.label}: {store_error}",
                                    source="Data"))
            return
        self._has_store = True
        self.reason_combo.blockSignals(True)
        self.reason_combo.clear()
        self.reason_combo.addItem("all", None)
        for reason, n in reasons:
            self.reason_combo.addItem(f"{visible(reason)} ({n})", reason)
        self.reason_combo.blockSignals(False)
        self._set_enabled(True)
        self.message.show_info(self.label)
        self.refresh()

    @_guarded
    def _open_failed(self, gen: int, err: WorkerError) -> None:
        if gen == self._gen:
            self.message.show_error(f"Could not open {self.label}: {err.message}")
            self.notice.emit(Notice.from_error(f"Could not open {self.label}", err, "Data"))

    # -- the task table ----------------------------------------------------------------------

    def query(self) -> TaskQuery:
        """The filters as they stand, for the first page."""
        text = self.search_edit.text().strip()
        category = self.category_edit.text().strip()
        return TaskQuery(
            style=self.style_combo.currentData(),
            status=self.status_combo.currentData(),
            reject_reason=self.reason_combo.currentData(),
            agreement_min=self.agreement_min.bound(),
            agreement_max=self.agreement_max.bound(),
            category=category or None,
            search=text or None,
            sort=TaskTableModel.SORT_KEYS[self.sort_column],
            descending=self.sort_descending,
            limit=self.page_size,
        )

    def sort_by(self, column: int, descending: bool = False) -> None:
        """Sort the table by ``column`` (an index of ``TaskTableModel.COLUMNS``) in the store,
        and show the first page; a column the store cannot sort by (the title) is ignored."""
        if column not in TaskTableModel.SORT_KEYS:
            self._show_sort_indicator()
            return
        self.sort_column, self.sort_descending = column, descending
        self._show_sort_indicator()
        self.refresh()

    def _header_clicked(self, column: int) -> None:
        same = column == self.sort_column
        self.sort_by(column, descending=not self.sort_descending if same else False)

    def _show_sort_indicator(self) -> None:
        order = Qt.SortOrder.DescendingOrder if self.sort_descending else Qt.SortOrder.AscendingOrder
        self.table.horizontalHeader().setSortIndicator(self.sort_column, order)

    def refresh(self) -> None:
        """Re-query the first page with the current filters (and a fresh total)."""
        self._debounce.stop()
        self._run_query(0)

    def next_page(self) -> None:
        if self.page is not None and self.page.next_cursor is not None:
            self._run_query(self.page_index + 1, after=self.page.next_cursor)

    def previous_page(self) -> None:
        if self.page is not None and self.page.prev_cursor is not None:
            self._run_query(self.page_index - 1, before=self.page.prev_cursor)

    def _run_query(self, page_index: int, **position: Any) -> None:
        if self._session is None or not self._has_store:
            return
        try:
            # Later pages reuse the first page's total instead of counting again.
            q = dataclasses.replace(self.query(), **position, with_total=not position)
        except ValueError as exc:
            self.message.show_error(str(exc))
            return
        self._query_seq += 1
        seq = self._query_seq
        self._submit(self._session.call, _query, q,
                     on_done=lambda page: self._page_ready(seq, page_index, page),
                     on_failed=lambda err: self._query_failed(seq, err))

    @_guarded
    def _page_ready(self, seq: int, page_index: int, page: TaskPage) -> None:
        if seq != self._query_seq:
            return  # an older query's answer
        self.page, self.page_index = page, max(page_index, 0)
        if page.total is not None:
            self.total = page.total
        self.model.set_rows(page.rows)
        # The detail shows (or is loading) a task: kept, and its row selected again, while
        # the page lists it; cleared when a filter or page took it away.
        shown = self._shown_task
        rows = [r.id for r in page.rows]
        if shown is not None and shown not in rows:
            self._detail_seq += 1  # a load still on its way is for a task no longer listed
            self._shown_task = None
            self._clear_detail()
        elif shown is not None:
            self._reselecting = True
            try:
                self.table.selectRow(rows.index(shown))
            finally:
                self._reselecting = False
        self.prev_button.setEnabled(page.prev_cursor is not None)
        self.next_button.setEnabled(page.next_cursor is not None)
        self._update_total_label()
        if self.label != self.message.text():
            self.message.show_info(self.label)  # a previous error no longer applies

    def _update_total_label(self) -> None:
        total = self.total or 0
        if not self.model.rows:
            self.total_label.setText(f"no tasks match (of {total})" if total else "no tasks")
            return
        first = self.page_index * self.page_size + 1
        last = first + len(self.model.rows) - 1
        self.total_label.setText(
            f"page {self.page_index + 1} \u00b7 tasks {first}\u2013{last} of {total}")

    @_guarded
    def _query_failed(self, seq: int, err: WorkerError) -> None:
        if seq == self._query_seq:
            self.message.show_error(f"Query failed: {err}")
            self.notice.emit(Notice.from_error(f"Query of {self.label} failed", err, "Data"))

    # -- the detail view ---------------------------------------------------------------------

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._reselecting:
            return
        if current.isValid() and current.row() < len(self.model.rows):
            self.show_task(self.model.rows[current.row()].id)

    def show_task(self, task_id: int) -> None:
        """Load one task (in the worker) into the detail tabs."""
        if self._session is None or not self._has_store:
            return
        self._detail_seq += 1
        seq = self._detail_seq
        self._shown_task = task_id
        self._submit(self._session.call, _detail, task_id,
                     on_done=lambda res: self._detail_ready(seq, task_id, res),
                     on_failed=lambda err: self._detail_failed(seq, err))

    @_guarded
    def _detail_failed(self, seq: int, err: WorkerError) -> None:
        if seq == self._detail_seq:
            self.message.show_error(f"Could not load the task: {err}")
            self.notice.emit(Notice.from_error("Could not load the task", err, "Data"))

    def _clear_detail(self) -> None:
        self.detail, self.lineage = None, []
        self.title_label.setText("")
        self.verify_label.setText("")
        self.verify_label.setToolTip("")
        self.verify_label.hide()
        self.statement_view.clear()
        self.lineage_tree.clear()
        self.solution_list.clear()
        self.solution_info.setText("")
        self.code_view.clear()
        self.compile_error_view.clear()
        self.compile_error_box.hide()
        self.test_list.clear()
        for w in (self.test_input, self.test_expected):
            w.clear()
        self.test_input_note.setText("")
        self.test_expected_note.setText("")
        self.verdict_table.clear()
        self.verdict_table.setRowCount(0)
        self.verdict_table.setColumnCount(0)
        self.candidate_table.clear()
        self.candidate_table.setRowCount(0)
        self.candidate_table.setColumnCount(0)

    @_guarded
    def _detail_ready(self, seq: int, task_id: int,
                      result: tuple[TaskDetail | None, list[LineageEdge]]) -> None:
        if seq != self._detail_seq:
            return
        self._clear_detail()
        detail, edges = result
        if detail is None:
            self.message.show_error(f"Task {task_id} is not in the store")
            return
        self.detail, self.lineage = detail, edges
        agreement = "\u2014" if detail.agreement is None else f"{detail.agreement:.2f}"
        reason = f" ({visible(detail.reject_reason)})" if detail.reject_reason else ""
        self.title_label.setText(
            f"#{detail.id} {visible(detail.title)} \u00b7 {detail.style} \u00b7 {detail.status}{reason}"
            f" \u00b7 agreement {agreement}")
        summary = verify_summary(detail.verify_meta)
        if summary:
            self.verify_label.setText(summary)
            self.verify_label.setToolTip(
                preview(json.dumps(detail.verify_meta, indent=1, ensure_ascii=False))[0])
            self.verify_label.show()
        self.statement_view.setMarkdown(task_markdown(detail))
        self._fill_lineage(detail, edges)
        self._fill_solutions(detail)
        self._fill_tests(detail.tests)
        self._fill_verdicts(detail)

    def _fill_lineage(self, detail: TaskDetail, edges: list[LineageEdge]) -> None:
        root = QTreeWidgetItem([f"task #{detail.id}", ""])
        self.lineage_tree.addTopLevelItem(root)
        items: dict[tuple[str, int], QTreeWidgetItem] = {("task", detail.id): root}
        # Edges come nearest first, so a child's item exists before its parents are added.
        # A node reached twice (two features from one seed) shows under both, expanded once.
        for e in edges:
            under = items.get((e.child_kind, e.child_id), root)
            item = QTreeWidgetItem(under, [f"{e.parent_kind} #{e.parent_id}", e.relation])
            items.setdefault((e.parent_kind, e.parent_id), item)
        self.lineage_tree.expandAll()

    def _fill_solutions(self, detail: TaskDetail) -> None:
        current = 0
        errors = _meta_dict(detail.verify_meta, "compile_errors")
        for i, sol in enumerate(detail.solutions):
            label = _solution_label(sol, detail.golden_solution_id)
            error = errors.get(str(sol.id))
            if error is not None:
                label += " \u00b7 compile error"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, sol.id)
            if error is not None:
                item.setToolTip(preview(str(error))[0])
            if sol.status == "rejected" or error is not None:
                item.setForeground(QBrush(QColor("#8a1c1c")))
            if sol.id == detail.golden_solution_id:
                current = i
            self.solution_list.addItem(item)
        if detail.solutions:
            self.solution_list.setCurrentRow(current)

    @_guarded
    def _solution_changed(self, row: int) -> None:
        if self.detail is None or not 0 <= row < len(self.detail.solutions):
            return
        detail = self.detail
        sol = detail.solutions[row]
        info = [_solution_label(sol, detail.golden_solution_id)]
        if sol.id == detail.golden_solution_id:
            info.append(f"{GOLDEN} golden solution (labels the tests)")
        if detail.tests:
            info.append(f"tests passed: {pass_counts(detail)[sol.id]}/{len(detail.tests)} ok")
        candidate = _meta_dict(detail.verify_meta, "candidates").get(str(sol.id))
        if isinstance(candidate, dict) and candidate:
            info.append(candidate_text(candidate))
        if sol.reasoning:
            info.append(f"reasoning: {len(sol.reasoning)} chars (tooltip)")
        self.solution_info.setText("\n".join(info))
        self.solution_info.setToolTip(preview(sol.reasoning or "")[0])
        error = _meta_dict(detail.verify_meta, "compile_errors").get(str(sol.id))
        if error is None:
            self.compile_error_view.clear()
            self.compile_error_box.hide()
        else:
            shown, note = preview(str(error), COMPILE_ERROR_CHARS)
            self.compile_error_title.setText(f"Compile error \u2014 {note}" if len(shown) <
                                             len(str(error)) else "Compile error")
            self.compile_error_view.setPlainText(shown)
            # as tall as the message, up to 10 lines (then it scrolls), plus a scroll bar's room
            n_lines = min(max(shown.count("\n") + 1, 2), 10)
            spacing = self.compile_error_view.fontMetrics().lineSpacing()
            self.compile_error_view.setFixedHeight(n_lines * spacing + 30)
            self.compile_error_box.show()
        if sol.code is None:
            self.code_view.setPlainText("(no code extracted)")
        else:
            self.code_view.setHtml(highlight_html(sol.code, sol.language))

    def _fill_tests(self, tests: list[Test]) -> None:
        for t in tests:
            size = len(t.input) + len(t.expected_output or "")
            item = QListWidgetItem(f"#{t.idx}  {t.kind}  ({t.source}, weight {t.weight:g},"
                                   f" {size} chars)")
            if t.meta:
                item.setToolTip(json.dumps(t.meta, indent=1)[:PREVIEW_CHARS])
            self.test_list.addItem(item)
        if tests:
            self.test_list.setCurrentRow(0)

    @_guarded
    def _test_changed(self, row: int) -> None:
        if self.detail is None or not 0 <= row < len(self.detail.tests):
            return
        t = self.detail.tests[row]
        full = t.meta.get(CUT_KEY) or {}  # a remote answer's cut texts: their real sizes
        shown, note = preview(t.input, full_chars=full.get("input"))
        self.test_input.setPlainText(shown)
        self.test_input_note.setText(f"input \u2014 {note}")
        shown, note = preview(t.expected_output, full_chars=full.get("expected_output"))
        self.test_expected.setPlainText(shown)
        self.test_expected_note.setText(f"expected output \u2014 {note}")

    def _fill_verdicts(self, detail: TaskDetail) -> None:
        table = self.verdict_table
        sols, tests = detail.solutions, detail.tests
        passed = pass_counts(detail)
        table.setRowCount(len(sols))
        table.setColumnCount(len(tests))
        table.setVerticalHeaderLabels(
            [(f"{GOLDEN} " if s.id == detail.golden_solution_id else "") + f"#{s.idx}"
             + (" \u2717" if s.status == "rejected" else "")
             + (f"  {passed[s.id]}/{len(tests)} ok" if tests else "") for s in sols])
        table.setHorizontalHeaderLabels([f"#{t.idx} {t.kind}" for t in tests])
        by_pair = {(v.solution_id, v.test_id): v for v in detail.verdicts}
        for r, sol in enumerate(sols):
            for c, test in enumerate(tests):
                v = by_pair.get((sol.id, test.id))
                item = QTableWidgetItem("" if v is None else v.status)
                item.setBackground(QBrush(verdict_colour(None if v is None else v.status)))
                item.setForeground(QBrush(QColor("#000000")))  # readable on every fill colour
                if v is None:
                    item.setToolTip(f"solution #{sol.idx} × test #{test.idx}: no verdict")
                else:
                    item.setToolTip(
                        f"solution #{sol.idx} × test #{test.idx}: {v.status}\n"
                        f"time: {_fmt(v.time_s, 's', '.3f')}\n"
                        f"memory: {_fmt(v.memory_kb, 'KB')}")
                table.setItem(r, c, item)
        self._fill_candidates(detail, passed)

    def _fill_candidates(self, detail: TaskDetail, passed: dict[int, int]) -> None:
        """One row per solution: tests passed, then what verification recorded about it."""
        candidates = _meta_dict(detail.verify_meta, "candidates")
        errors = _meta_dict(detail.verify_meta, "compile_errors")
        keys = [k for k in CANDIDATE_WORDS if any(
            isinstance(c, dict) and k in c for c in candidates.values())]
        keys += sorted({k for c in candidates.values() if isinstance(c, dict) for k in c}
                       - set(keys))
        columns = (["solution", "tests ok"] + [CANDIDATE_WORDS.get(k, k) for k in keys]
                   + (["compile error"] if errors else []))
        table = self.candidate_table
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(columns)
        table.setRowCount(len(detail.solutions))
        n_tests = len(detail.tests)
        for r, sol in enumerate(detail.solutions):
            candidate = candidates.get(str(sol.id))
            candidate = candidate if isinstance(candidate, dict) else {}
            error = errors.get(str(sol.id))
            first_line = error_line(str(error)) if error else ""
            cells = ([(f"{GOLDEN} " if sol.id == detail.golden_solution_id else "")
                      + f"#{sol.idx}", f"{passed[sol.id]}/{n_tests}"]
                     + [meta_value(k, candidate[k]) if k in candidate else "" for k in keys]
                     + ([first_line] if errors else []))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if errors and c == len(cells) - 1 and error:
                    item.setToolTip(preview(str(error))[0])
                    item.setForeground(QBrush(QColor("#8a1c1c")))
                table.setItem(r, c, item)
