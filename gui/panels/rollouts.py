"""The RL rollout view: a run's rollouts by step and prompt group, code diffed with the golden.

Shown as the Data panel's "RL rollouts" tab (gui/panels/data.py hands it the open source:
a local ``engine.store_rpc.StoreReader`` or a ``remote.store_client.RemoteStore``), or alone::

    python -m gui.panels.rollouts runs/<id>          # a run dir (or its data/store.sqlite)

Top to bottom: the step selector (the latest step first shown) with the step's summary; the
step's prompt groups (task id, mean and std of the reward, how many rollouts passed all their
tests, an all-fail ✗ / all-pass ✓ mark); the selected group's rollouts (sample, reward,
advantage on green for > 0 and red for < 0, passed / total tests, truncated, verdicts);
and the selected rollout's code, highlighted (gui/highlight.py), next to a unified diff
against the task's golden solution (highlighted with pygments' diff lexer). Rollouts come from
``<run>/rollouts/rl/`` (engine/rollouts.py), the golden code from the store (only the golden
solution crosses a cluster link, ``golden_solution``).

How: every read runs in the worker through the session's ``call`` (the Data panel's lock), one
request per step, group and golden solution; answers of an older selection are dropped
(sequence numbers), golden solutions are cached per task while the source stays open.
``busy()`` says whether a read is pending.

Left out: comparing rollouts of one task across steps, token-level views (log-probs are not
recorded), and rollouts of ranks other than the one a group came from side by side.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.contracts.rollouts import GroupSummary, RolloutRecord
from engine.contracts.store import Solution
from gui.highlight import highlight_html
from gui.notify import Notice
from gui.widgets.status_label import StatusLabel
from gui.worker import JobCounter, WorkerError
from remote.display_text import visible

POSITIVE = "#bfe5b4"  # advantage > 0, all-pass groups
NEGATIVE = "#f3bcbc"  # advantage < 0, all-fail groups
ALL_FAIL = "\u2717 all fail"
ALL_PASS = "\u2713 all pass"


def advantage_colour(advantage: float) -> QColor | None:
    """The background of an advantage cell: None (no fill) for exactly 0."""
    if advantage > 0:
        return QColor(POSITIVE)
    if advantage < 0:
        return QColor(NEGATIVE)
    return None


def task_name(task_id: int) -> str:
    """A task id of the RL set as a person reads it: seed problems have minus their seed id."""
    return f"seed #{-task_id}" if task_id < 0 else f"task #{task_id}"


def group_mark(g: GroupSummary) -> str:
    return ALL_FAIL if g.all_fail else ALL_PASS if g.all_pass else ""


def rollout_diff(golden: str, code: str, golden_name: str, rollout_name: str) -> str:
    """A unified diff from the golden solution to the rollout's code ("" when equal)."""
    a = golden.splitlines(keepends=True)
    b = code.splitlines(keepends=True)
    for lines in (a, b):  # a last line without newline would glue onto the next diff line
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
    return "".join(difflib.unified_diff(a, b, fromfile=golden_name, tofile=rollout_name))


def step_summary(step: int, groups: list[GroupSummary]) -> str:
    n = sum(g.size for g in groups)
    if not n:
        return f"step {step}: no rollouts recorded"
    mean = sum(g.reward_mean * g.size for g in groups) / n
    passed = sum(g.passed_all for g in groups)
    return (f"step {step} \u00b7 {len(groups)} groups \u00b7 {n} rollouts \u00b7 mean reward "
            f"{mean:.3g} \u00b7 {passed}/{n} passed all tests \u00b7 "
            f"{sum(g.all_fail for g in groups)} all-fail \u00b7 "
            f"{sum(g.all_pass for g in groups)} all-pass groups")


# ---------------------------------------------------------------------------------------------
# Worker side (the source is a StoreReader or a RemoteStore)


def _steps(source: Any) -> list[int]:
    return source.rollout_steps()


def _groups(source: Any, step: int) -> list[GroupSummary]:
    return source.rollout_groups(step)


def _group(source: Any, step: int, rank: int, group: int) -> list[RolloutRecord]:
    return source.rollout_group(step, rank, group)


def _golden(source: Any, task_id: int) -> Solution | None:
    return source.golden_solution(task_id)


# ---------------------------------------------------------------------------------------------
# The widget


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(method)
    def wrapper(self: RolloutView, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:  # odd data: shown, the view stays usable
            self.message.show_error(f"{type(exc).__name__}: {exc}")

    return wrapper


def _item(text: Any, *, right: bool = False, tip: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(str(text))
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        item.setToolTip(tip)
    return item


def _table(columns: tuple[str, ...]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    return t


class RolloutView(QWidget):
    """See the module docstring."""

    notice = Signal(object)  # gui.notify.Notice: a read that failed (the Data panel forwards)

    GROUP_COLUMNS = ("group", "task", "mean reward", "std", "passed all", "mark")
    ROLLOUT_COLUMNS = ("sample", "reward", "advantage", "tests", "truncated", "verdicts")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rollout_view")
        self._session: Any = None
        self._gen = 0
        self._seq = {"steps": 0, "groups": 0, "group": 0}
        self._work = JobCounter(self)
        self.steps: list[int] = []
        self.groups: list[GroupSummary] = []
        self.rollouts: list[RolloutRecord] = []
        self.current: RolloutRecord | None = None
        self.golden: dict[int, Solution | str | None] = {}  # task -> solution, or why none
        self._golden_pending: set[int] = set()

        self.message = StatusLabel()
        self.step_combo = QComboBox()
        self.step_combo.setMinimumContentsLength(8)
        self.step_combo.currentIndexChanged.connect(self._step_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the run's rollout steps again (a run may still "
                                       "be writing)")
        self.refresh_button.clicked.connect(self.reload)
        self.step_label = QLabel()
        self.step_label.setWordWrap(True)

        self.group_table = _table(self.GROUP_COLUMNS)
        self.group_table.currentCellChanged.connect(self._group_changed)
        self.rollout_table = _table(self.ROLLOUT_COLUMNS)
        self.rollout_table.currentCellChanged.connect(self._rollout_changed)

        self.rollout_info = QLabel()
        self.rollout_info.setWordWrap(True)
        self.code_view = QTextBrowser()
        self.code_view.setObjectName("rollout_code")
        self.diff_view = QTextBrowser()
        self.diff_view.setObjectName("rollout_diff")
        for view in (self.code_view, self.diff_view):
            view.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
        self.code_tabs = QTabWidget()
        self.code_tabs.addTab(self.code_view, "Code")
        self.code_tabs.addTab(self.diff_view, "Diff vs golden")

        top = QHBoxLayout()
        top.addWidget(QLabel("Step"))
        top.addWidget(self.step_combo)
        top.addWidget(self.refresh_button)
        top.addWidget(self.step_label, 1)

        tables = QSplitter(Qt.Orientation.Vertical)
        tables.addWidget(self.group_table)
        tables.addWidget(self.rollout_table)
        code = QWidget()
        cv = QVBoxLayout(code)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(self.rollout_info)
        cv.addWidget(self.code_tabs, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(tables)
        split.addWidget(code)
        split.setSizes([520, 680])

        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.message.show_info("Open a run to see its RL rollouts.")

    # -- jobs and messages

    def busy(self) -> bool:
        return self._work.busy()

    def _submit(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None],
                on_failed: Callable[[WorkerError], None]) -> None:
        self._work.submit(self._session.call, fn, *args, on_done=on_done, on_failed=on_failed)

    # -- the source

    def set_session(self, session: Any) -> None:
        """Show the rollouts of ``session``'s source (``session.call(fn, *args)`` runs
        ``fn(source, *args)`` in the worker), or nothing for None."""
        self._gen += 1
        self._session = session
        self.golden.clear()
        self._golden_pending.clear()
        self._set_steps([])
        if session is None:
            self.message.show_info("Open a run to see its RL rollouts.")
        else:
            self.reload()

    def reload(self) -> None:
        """Read the list of steps again (and show the latest)."""
        if self._session is None:
            return
        gen, seq = self._gen, self._next("steps")
        self.message.show_info("Reading the run's rollout steps \u2026")
        self._submit(_steps, on_done=lambda steps: self._steps_ready(gen, seq, steps),
                     on_failed=lambda err: self._failed(gen, "steps", seq, "the rollout steps",
                                                        err))

    def _next(self, what: str) -> int:
        self._seq[what] += 1
        return self._seq[what]

    def _fresh(self, gen: int, what: str, seq: int) -> bool:
        return gen == self._gen and seq == self._seq[what]

    @_guarded
    def _failed(self, gen: int, what: str, seq: int, label: str, err: WorkerError) -> None:
        if self._fresh(gen, what, seq):
            self.message.show_error(f"Could not read {label}: {err.message}")
            self.notice.emit(Notice.from_error(f"Could not read {label}", err, "Data"))

    # -- steps

    def _set_steps(self, steps: list[int]) -> None:
        self.steps = list(steps)
        self.step_combo.blockSignals(True)
        self.step_combo.clear()
        for s in self.steps:
            self.step_combo.addItem(f"{s}", s)
        self.step_combo.blockSignals(False)
        self._set_groups([])
        self.step_label.setText("")

    @_guarded
    def _steps_ready(self, gen: int, seq: int, steps: list[int]) -> None:
        if not self._fresh(gen, "steps", seq):
            return
        self._set_steps(steps)
        if not steps:
            self.message.show_info("No RL rollouts recorded for this run (the rl stage writes them "
                            "to <run>/rollouts/rl/).")
            return
        self.message.show_info(f"{len(steps)} RL steps with rollouts (steps {steps[0]}\u2013"
                        f"{steps[-1]})")
        self.step_combo.setCurrentIndex(len(steps) - 1)  # the latest: what training does now

    def select_step(self, step: int) -> None:
        i = self.step_combo.findData(step)
        if i >= 0:
            self.step_combo.setCurrentIndex(i)

    def _step_changed(self, index: int) -> None:
        if self._session is None or not 0 <= index < len(self.steps):
            return
        step = self.steps[index]
        gen, seq = self._gen, self._next("groups")
        self._set_groups([])
        self._submit(_groups, step, on_done=lambda gs: self._groups_ready(gen, seq, step, gs),
                     on_failed=lambda err: self._failed(gen, "groups", seq,
                                                        f"the groups of step {step}", err))

    # -- groups

    def _set_groups(self, groups: list[GroupSummary]) -> None:
        self._seq["group"] += 1  # a group load in flight is about the old list
        self.groups = list(groups)
        t = self.group_table
        t.blockSignals(True)
        t.clearContents()
        t.setRowCount(0)  # the current cell goes too: selecting row 0 again is a change
        t.setRowCount(len(groups))
        for r, g in enumerate(groups):
            name = f"r{g.rank}/{g.group}" if g.rank else f"{g.group}"
            cells = [_item(name, right=True),
                     _item(g.task_id if g.task_id >= 0 else task_name(g.task_id), right=True),
                     _item(f"{g.reward_mean:.3g}", right=True),
                     _item(f"{g.reward_std:.3g}", right=True),
                     _item(f"{g.passed_all}/{g.size}", right=True), _item(group_mark(g))]
            if g.all_fail or g.all_pass:
                cells[5].setBackground(QBrush(QColor(NEGATIVE if g.all_fail else POSITIVE)))
                cells[5].setForeground(QBrush(QColor("#000000")))
            if g.truncated:
                cells[0].setToolTip(f"{g.truncated} of {g.size} rollouts truncated")
            for c, item in enumerate(cells):
                t.setItem(r, c, item)
        t.blockSignals(False)
        self._set_rollouts([])

    @_guarded
    def _groups_ready(self, gen: int, seq: int, step: int, groups: list[GroupSummary]) -> None:
        if not self._fresh(gen, "groups", seq):
            return
        self._set_groups(groups)
        self.step_label.setText(step_summary(step, groups))
        if groups:
            self.group_table.setCurrentCell(0, 0)

    @_guarded
    def _group_changed(self, row: int, _col: int, _prev_row: int, _prev_col: int) -> None:
        if self._session is None or not 0 <= row < len(self.groups):
            return
        g = self.groups[row]
        gen, seq = self._gen, self._next("group")
        self._set_rollouts([])
        self._submit(_group, g.step, g.rank, g.group,
                     on_done=lambda recs: self._group_ready(gen, seq, recs),
                     on_failed=lambda err: self._failed(gen, "group", seq,
                                                        f"group {g.group} of step {g.step}",
                                                        err))
        self._want_golden(g.task_id)

    # -- one group's rollouts

    def _set_rollouts(self, records: list[RolloutRecord]) -> None:
        self.rollouts = list(records)
        self.current = None
        t = self.rollout_table
        t.blockSignals(True)
        t.clearContents()
        t.setRowCount(0)
        t.setRowCount(len(records))
        for r, rec in enumerate(records):
            adv = _item(f"{rec.advantage:+.3f}", right=True,
                        tip=f"(reward {rec.reward:g} - group mean {rec.group_mean:.4g}) / "
                            f"(group std {rec.group_std:.4g} + 1e-4)")
            colour = advantage_colour(rec.advantage)
            if colour is not None:
                adv.setBackground(QBrush(colour))
                adv.setForeground(QBrush(QColor("#000000")))
            verdicts = visible(" ".join(rec.statuses) if rec.statuses else (rec.reason or ""))
            cells = [_item(rec.sample, right=True), _item(f"{rec.reward:g}", right=True), adv,
                     _item(f"{rec.passed}/{rec.total}", right=True),
                     _item("yes" if rec.truncated else ""), _item(verdicts, tip=verdicts)]
            for c, item in enumerate(cells):
                t.setItem(r, c, item)
        t.blockSignals(False)
        self.rollout_info.setText("")
        self.code_view.clear()
        self.diff_view.clear()

    @_guarded
    def _group_ready(self, gen: int, seq: int, records: list[RolloutRecord]) -> None:
        if not self._fresh(gen, "group", seq):
            return
        self._set_rollouts(records)
        if records:
            self.rollout_table.setCurrentCell(0, 0)

    @_guarded
    def _rollout_changed(self, row: int, _col: int, _prev_row: int, _prev_col: int) -> None:
        if not 0 <= row < len(self.rollouts):
            return
        rec = self.current = self.rollouts[row]
        info = [f"step {rec.step} \u00b7 group {rec.group} \u00b7 sample {rec.sample} \u00b7 "
                f"{task_name(rec.task_id)} \u00b7 reward {rec.reward:g} \u00b7 advantage "
                f"{rec.advantage:+.3f}"
                + (f" \u00b7 {rec.response_tokens} response tokens" if rec.response_tokens
                   else "")
                + (" (truncated)" if rec.truncated else "")]
        if rec.reason:
            info.append(f"no code judged: {rec.reason}")
        self.rollout_info.setText(visible("\n".join(info), keep_newlines=True))
        if rec.code is None:
            self.code_view.setPlainText(visible(rec.text, keep_newlines=True)
                                        if rec.text else "(no response recorded)")
        else:
            self.code_view.setHtml(highlight_html(rec.code, rec.language or "python"))
        self._show_diff()

    # -- the golden solution and the diff

    def _want_golden(self, task_id: int) -> None:
        if task_id in self.golden or task_id in self._golden_pending:
            return
        self._golden_pending.add(task_id)
        gen = self._gen
        self._submit(_golden, task_id,
                     on_done=lambda sol: self._golden_ready(gen, task_id, sol),
                     on_failed=lambda err: self._golden_ready(gen, task_id, err.message))

    @_guarded
    def _golden_ready(self, gen: int, task_id: int, result: Solution | str | None) -> None:
        if gen != self._gen:
            return
        self._golden_pending.discard(task_id)
        self.golden[task_id] = result
        if self.current is not None and self.current.task_id == task_id:
            self._show_diff()

    def _show_diff(self) -> None:
        rec = self.current
        if rec is None:
            return
        if rec.task_id not in self.golden:
            self.diff_view.setPlainText("Reading the task's golden solution \u2026")
            return
        golden = self.golden[rec.task_id]
        if golden is None or isinstance(golden, str) or golden.code is None:
            why = golden if isinstance(golden, str) else "the task has no golden solution " \
                "in the store (not verified, or the store is not on this cluster)"
            self.diff_view.setPlainText(f"No diff: {why}")
            return
        if rec.code is None:
            self.diff_view.setPlainText("No diff: the rollout has no extracted code")
            return
        name = f"golden (solution #{golden.idx})" if rec.task_id >= 0 else \
            f"{task_name(rec.task_id)} reference solution"
        diff = rollout_diff(golden.code, rec.code, name,
                            f"step {rec.step} group {rec.group} sample {rec.sample}")
        if not diff:
            self.diff_view.setPlainText("Identical to the golden solution.")
        else:
            self.diff_view.setHtml(highlight_html(diff, "diff"))


def main(argv: list[str] | None = None) -> int:
    """Show the view alone on a run dir (or a run's data/store.sqlite)."""
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from engine.contracts.rundir import RunDir
    from engine.contracts.store import StoreReader
    from remote.store_client import StoreSession

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gui.panels.rollouts RUN_DIR | STORE_PATH", file=sys.stderr)
        return 2
    path = Path(args[0])
    reader = StoreReader(path) if path.suffix == ".sqlite" else StoreReader(
        RunDir(path).store_path, run_dir=path)
    from gui.qt_guard import pin_singletons

    pin_singletons()  # PySide6 6.12 leaks None/True references on Python 3.11
    app = QApplication.instance() or QApplication([])
    view = RolloutView()
    view.resize(1300, 800)
    view.set_session(StoreSession(reader))
    view.show()
    code = app.exec()
    view.set_session(None)
    reader.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
