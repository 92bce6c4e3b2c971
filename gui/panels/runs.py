"""The Runs panel: every run launched from this desktop, followed live, with its logs.

    streams = RunStreams()                        # remote.run_stream: what every view reads
    panel = RunsPanel(session, streams=streams)   # remote.session.AppSession: profiles, registry
    streams.subscribe(lambda run, evs: monitor.add_events(evs, run=run))
    panel.notice.connect(notifications.post)      # every failure, as a gui.notify.Notice
    panel.browse_data.connect(open_store_of_run)  # run id: "Browse data" was pressed
    panel.show_monitor.connect(switch_to_monitor) # run id: "Open in Monitor" was pressed
    panel.folder_opened.connect(show_folder)      # run id, folder: "Open run folder…"

    python -m gui.panels.runs                     # the panel alone, on your own registry

Top: a tree of runs, newest first (run id, created, clusters, status, progress in stages, the
current stage's ETA, why it waits or failed); expand a run for one row per stage (cluster,
status, items processed / total as a bar with what was kept and rejected, the LLM calls of
a running stage, ETA, reason). A bar is full only when the stage completed all its items; a
stage that never ran says "waiting" or "not run", without the run's failure. Buttons (and a
run's context menu): Refresh, Cancel (asks first), Resume, Open logs, Browse data, Open in
Monitor (any run, finished or not), Open run folder… (a run folder on this computer, e.g.
one made by ``python -m engine run``: its events into the Monitor, its store into Data).
Below: the selected run's summary and its latest GPU sample, and the log view when open: the
run's log files (a selector when there are several), live, with a search box (matches
highlighted, Enter = next, "3 of 12").

How: widgets never do I/O. All the work is ``remote.run_follower.RunFollower`` run in the worker
through ``AppSession.call``: first ``load`` (the registry and the local event caches, so the
runs and their last known state show at once after a restart), then every ``poll_s`` one
``poll`` job, never two at once (a tick while one is in flight is skipped). The follower puts
the events into the run-stream model (live runs and runs opened in the Monitor: history once,
then what is new, GPU samples included as ``gpu/...`` metrics); the result updates the tree
and the log view, and ``streams.publish()`` hands the new events to the model's subscribers.
A run this panel saw live that completes or fails raises one notice. A cluster whose host
key is unknown is connected through ``gui.hostkey_flow.ensure_connected`` (the user sees the
fingerprint; a refused key stops polls of that cluster until Refresh). Cancel and Resume call
``Launcher.cancel`` / ``Launcher.resume`` in the worker. Every failure is a ``Notice`` on
``notice`` (the traceback in its details), each once, never a dialog.

Call ``stop()`` before the panel goes (it stops the timer; a job in flight finishes and its
outcome is dropped). ``busy()`` says whether a job of the panel is pending (tests wait on it).
Left out: launching (the Pipeline panel does it), deleting runs, listing opened folders in the
tree (they live in the Monitor and Data), log files over a few MB (the view keeps each file's
last ``LOG_KEEP_CHARS`` characters: gui/widgets/log_viewer.py), regex search.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.hostkey_flow import confirm_host_key as confirm_host_key_dialog
from gui.hostkey_flow import ensure_connected
from gui.notify import Notice
from gui.widgets.log_viewer import LogViewer
from gui.worker import Job, WorkerError, run_in_worker
from remote.display_text import visible
from remote.errors import HostKeyUnknown
from remote.gpus import GpuSample
from remote.launch import Launcher
from remote.run_follower import PollRequest, PollResult, RunFollower, RunView, StageView
from remote.run_registry import RunRecord
from remote.run_stream import RunStream, RunStreams
from remote.session import AppSession

SOURCE = "Runs"
COLUMNS = ("Run / stage", "Created", "Cluster", "Status", "Progress", "ETA", "Reason")
COL_RUN, COL_CREATED, COL_CLUSTER, COL_STATUS, COL_PROGRESS, COL_ETA, COL_REASON = range(7)
RUN_ROLE = Qt.ItemDataRole.UserRole  # on every row: the run id
STAGE_ROLE = Qt.ItemDataRole.UserRole + 1  # on stage rows: the stage name
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 2  # on the progress cell: 0..1, or None (no bar)
STATUS_COLOURS = {
    "running": "#1f5fa8", "queued": "#6b6b6b", "waiting": "#6b6b6b", "completed": "#2e7d32",
    "skipped": "#2e7d32", "failed": "#b00020", "cancelled": "#b26a00",
    "interrupted": "#b26a00", "not run": "#6b6b6b",
}


def format_eta(seconds: float | None) -> str:
    """"—" when unknown; else "45 s", "12 min", "3 h 05 min"."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_progress(stage: StageView) -> str:
    """"3 / 8 seeds · 1 ok, 2 rejected (0.2/s)"; while running, "· 16 LLM calls" too: an
    LLM stage's items may all wait on their retries for minutes while calls are answered."""
    if stage.done is None:
        return ""
    unit = f" {stage.unit}" if stage.unit else ""
    text = f"{stage.done} / {stage.total}{unit}" if stage.total is not None else \
        f"{stage.done}{unit}"
    split = [f"{n} {word}" for n, word in ((stage.ok, "ok"), (stage.rejected, "rejected"))
             if n is not None]
    if split:
        text += " · " + ", ".join(split)
    running = stage.status == "running"
    if running and stage.llm_calls:
        text += f" · {stage.llm_calls} LLM call{'' if stage.llm_calls == 1 else 's'}"
    if stage.rate and running:
        text += f" ({stage.rate:.3g}/s)"
    return text


def format_gpus(samples: list[GpuSample]) -> str:
    parts = []
    for s in samples:
        util = "?" if s.util_pct is None else f"{s.util_pct:.0f}%"
        used = "?" if s.mem_used_gib is None else f"{s.mem_used_gib:.1f}"
        total = "?" if s.mem_total_mib is None else f"{s.mem_total_mib / 1024:.1f}"
        parts.append(f"{s.host} #{s.index} {s.name}: {util}, {used}/{total} GiB")
    return " · ".join(parts)


def ask_before_cancel(parent: QWidget | None, text: str) -> bool:
    """Ask before cancelling; No is the default."""
    box = QMessageBox(QMessageBox.Icon.Question, "Cancel run", text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setObjectName("cancel_run_dialog")
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


class _ProgressDelegate(QStyledItemDelegate):
    """Draws the progress cell as a bar (FRACTION_ROLE) with the cell's text on it."""

    def paint(self, painter: Any, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        fraction = index.data(FRACTION_ROLE)
        if fraction is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect.adjusted(2, 2, -2, -2))
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(round(float(fraction) * 1000))
        bar.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        bar.textVisible = True
        bar.state = option.state
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class RunsPanel(QWidget):
    notice = Signal(object)  # gui.notify.Notice
    browse_data = Signal(str)  # run id
    show_monitor = Signal(str)  # run id
    folder_opened = Signal(str, str)  # run id (its stream), the run folder on this computer
    updated = Signal()  # a load or poll result is shown (the tree holds its views)

    def __init__(self, session: AppSession, parent: QWidget | None = None, *,
                 streams: RunStreams | None = None,
                 poll_s: float = 2.0, gpu_every_s: float = 10.0,
                 confirm: Callable[[QWidget, HostKeyUnknown], bool] | None = None,
                 confirm_cancel: Callable[[QWidget, str], bool] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel_runs")
        self.session = session
        self.streams = streams if streams is not None else RunStreams()
        self.follower = RunFollower(session.registry, streams=self.streams,
                                    gpu_every_s=gpu_every_s)
        self._confirm_key = confirm or confirm_host_key_dialog
        self._confirm_cancel = confirm_cancel or ask_before_cancel
        self._views: dict[str, RunView] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self._gpus: dict[str, tuple[float, list[GpuSample]]] = {}
        self._follow: set[str] = set()
        self._job: Job | None = None  # the load or the poll in flight
        self._actions = 0  # cancel / resume / connect flows in flight
        self._again = False  # poll once more as soon as the one in flight is done
        self._force = False
        self._stopped = False
        self._loaded = False
        self._key_flow: str | None = None
        self._track: str | None = None  # select this run once it is listed
        self._refused: set[str] = set()
        self.poll_count = 0
        self.skipped_ticks = 0
        # log view state
        self._log_run: str | None = None
        self._log_gen = 0
        self._log_reset_pending = False
        self._job_log_gen = 0

        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(max(50, int(poll_s * 1000)))
        self._timer.timeout.connect(self._tick)
        self._job = run_in_worker(session.call, self.follower.load, owner=self,
                                  on_done=self._loaded_done, on_failed=self._load_failed)

    # --- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.refresh_button = QPushButton("Refresh")
        self.cancel_button = QPushButton("Cancel…")
        self.resume_button = QPushButton("Resume")
        self.logs_button = QPushButton("Open logs")
        self.browse_button = QPushButton("Browse data")
        self.follow_button = QPushButton("Open in Monitor")
        self.folder_button = QPushButton("Open run folder…")
        self.folder_button.setToolTip("A run folder on this computer (config.yaml, events/, "
                                      "data/): its events into the Monitor, its store into "
                                      "Data")
        for button, slot in ((self.refresh_button, self.refresh),
                             (self.cancel_button, self.cancel_selected),
                             (self.resume_button, self.resume_selected),
                             (self.logs_button, self.open_logs),
                             (self.browse_button, self.browse_selected),
                             (self.follow_button, self.follow_selected),
                             (self.folder_button, self.choose_folder)):
            button.clicked.connect(slot)
        self.status_label = QLabel("Loading runs…")
        self.status_label.setObjectName("runs_status")
        bar = QHBoxLayout()
        for w in (self.refresh_button, self.cancel_button, self.resume_button,
                  self.logs_button, self.browse_button, self.follow_button, self.folder_button):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.status_label)

        self.empty_label = QLabel("No runs yet. Launch one from the Pipeline panel or with "
                                  "`synthsmith launch`; it shows here by itself.")
        self.empty_label.setObjectName("runs_empty")
        self.empty_label.hide()
        self.tree = QTreeWidget()
        self.tree.setObjectName("runs_tree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setItemDelegateForColumn(COL_PROGRESS, _ProgressDelegate(self.tree))
        header = self.tree.header()
        header.setStretchLastSection(True)
        for col, width in ((COL_RUN, 260), (COL_CREATED, 120), (COL_CLUSTER, 130),
                           (COL_STATUS, 90), (COL_PROGRESS, 280), (COL_ETA, 70)):
            header.resizeSection(col, width)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)

        self.detail_label = QLabel("Select a run.")
        self.detail_label.setObjectName("run_detail")
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.gpu_label = QLabel("")
        self.gpu_label.setObjectName("run_gpus")
        self.gpu_label.setWordWrap(True)

        # the log view (gui/widgets/log_viewer.py); its parts are the panel's for tests
        self.log_area = LogViewer()
        self.log_area.closed.connect(self.close_logs)
        self.log_files, self.log_search = self.log_area.log_files, self.log_area.log_search
        self.log_view, self.match_label = self.log_area.log_view, self.log_area.match_label
        self.prev_button, self.next_button = self.log_area.prev_button, self.log_area.next_button

        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.detail_label)
        lower_layout.addWidget(self.gpu_label)
        lower_layout.addWidget(self.log_area, 1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.empty_label)
        top_layout.addWidget(self.tree, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(lower)
        split.setSizes([380, 300])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split, 1)
        self._update_buttons()

    # --- public API ------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        """Runs in the tree, top (newest) first."""
        return [self.tree.topLevelItem(i).data(COL_RUN, RUN_ROLE)
                for i in range(self.tree.topLevelItemCount())]

    def run_view(self, run_id: str) -> RunView | None:
        return self._views.get(run_id)

    def run_item(self, run_id: str) -> QTreeWidgetItem | None:
        return self._items.get(run_id)

    def selected_run(self) -> str | None:
        items = self.tree.selectedItems()
        return items[0].data(COL_RUN, RUN_ROLE) if items else None

    def select_run(self, run_id: str) -> None:
        item = self._items.get(run_id)
        if item is not None:
            self.tree.setCurrentItem(item)

    def track(self, run_id: str) -> None:
        """A run just launched: poll now and select it as soon as it is listed."""
        self._track = run_id
        self._follow.add(run_id)
        self._poll_soon()

    def follow(self, run_id: str) -> None:
        """Send this run's events to the Monitor (its history first) from the next poll on."""
        self._follow.add(run_id)
        self._poll_soon()

    def busy(self) -> bool:
        return self._job is not None or self._actions > 0 or not self._loaded

    def stop(self) -> None:
        """No more polls (the app or the test is closing)."""
        self._stopped = True
        self._timer.stop()

    def refresh(self) -> None:
        """Poll now: runs in backoff are retried, refused host keys asked again, GPUs sampled."""
        self._refused.clear()
        self._force = True
        self._poll_soon()

    def cancel_selected(self) -> None:
        rid = self.selected_run()
        view = self._views.get(rid or "")
        if view is None or not view.live:
            return
        stage = view.current.stage if view.current else "—"
        if not self._confirm_cancel(self, f"Cancel run {rid}? Its jobs on {', '.join(view.clusters)} "
                             f"are stopped (the current stage, {stage}, saves what it has); "
                             "Resume continues it later."):
            return
        self._action(Launcher.cancel, rid, "Cancelling")

    def resume_selected(self) -> None:
        rid = self.selected_run()
        view = self._views.get(rid or "")
        if view is None or view.status not in ("failed", "cancelled"):
            return
        self._action(Launcher.resume, rid, "Resuming")

    def browse_selected(self) -> None:
        rid = self.selected_run()
        if rid:
            self.browse_data.emit(rid)

    def follow_selected(self) -> None:
        """"Open in Monitor": the run's events (its history, then live) go to its stream, which
        the Monitor reads; any run, finished or not."""
        rid = self.selected_run()
        if rid:
            self.follow(rid)
            self.show_monitor.emit(rid)

    def run_menu(self, run_id: str) -> QMenu:
        """The context menu of a run's row (its actions act on that run)."""
        menu = QMenu(self)
        menu.setObjectName("run_menu")
        view = self._views.get(run_id)

        def on_run(slot: Callable[[], None]) -> Callable[[], None]:
            def act() -> None:
                self.select_run(run_id)
                slot()
            return act

        for text, slot, enabled in (
                ("Open in Monitor", self.follow_selected, True),
                ("Browse data", self.browse_selected, True),
                ("Open logs", self.open_logs, True),
                (None, None, True),
                ("Cancel…", self.cancel_selected, view is not None and view.live),
                ("Resume", self.resume_selected,
                 view is not None and view.status in ("failed", "cancelled"))):
            if text is None:
                menu.addSeparator()
                continue
            action = menu.addAction(text)
            action.setEnabled(enabled)
            action.triggered.connect(on_run(slot))
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        rid = item.data(COL_RUN, RUN_ROLE) if item is not None else None
        if rid:
            self.run_menu(rid).exec(self.tree.viewport().mapToGlobal(pos))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open run folder")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str) -> Job:
        """Read a run folder on this computer (its ``events/*.jsonl``) into its own stream, in
        the worker; then ``folder_opened(run id, folder)`` (the window shows it in the Monitor
        and opens its store in Data). Later polls read what its files gain."""
        self._actions += 1

        def done(stream: RunStream) -> None:
            self._actions -= 1
            self.streams.publish()
            self.notice.emit(Notice("info", f"Opened run folder {visible(folder)} as "
                                    f"{visible(stream.run_id)}", "", SOURCE))
            self.folder_opened.emit(stream.run_id, str(stream.folder))

        def failed(error: WorkerError) -> None:
            self._actions -= 1
            self.notice.emit(Notice.from_error(f"Opening the run folder {folder}", error,
                                               SOURCE))

        return run_in_worker(self.streams.open_folder, folder, owner=self, on_done=done,
                             on_failed=failed)

    def open_logs(self) -> None:
        rid = self.selected_run()
        if not rid:
            return
        self._log_run = rid
        self._log_gen += 1
        self._log_reset_pending = True
        self.log_area.open(f"Logs of {rid}:")
        self._poll_soon()

    def close_logs(self) -> None:
        self._log_run = None
        self.log_area.clear()
        self.log_area.hide()

    def log_file_names(self) -> list[str]:
        return self.log_area.file_names()

    def log_text(self) -> str:
        return self.log_area.text()

    def select_log_file(self, name: str) -> None:
        self.log_area.select_file(name)

    def next_match(self) -> None:
        self.log_area.next_match()

    def prev_match(self) -> None:
        self.log_area.prev_match()

    def match_count(self) -> int:
        return self.log_area.match_count()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()
        super().closeEvent(event)

    # --- polling ---------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._job is not None:
            self.skipped_ticks += 1  # never two polls at once
            return
        self._start_poll()

    def _poll_soon(self) -> None:
        if self._stopped:
            return
        if self._job is not None:
            self._again = True
        else:
            self._start_poll()

    def _start_poll(self) -> None:
        if self._stopped or not self._loaded:
            return
        skip = set(self._refused) | ({self._key_flow} if self._key_flow else set())
        request = PollRequest(selected=self.selected_run(), follow=frozenset(self._follow),
                              logs=self._log_run, logs_reset=self._log_reset_pending,
                              skip_clusters=frozenset(skip), force=self._force)
        self._force = False
        self._job_log_gen = self._log_gen
        self.poll_count += 1
        self._job = run_in_worker(self.session.call, self.follower.poll, request, owner=self,
                                  on_done=self._poll_done, on_failed=self._poll_failed)

    def _loaded_done(self, result: PollResult) -> None:
        self._job = None
        self._loaded = True
        self._apply(result)
        if not self._stopped:
            self._timer.start()
        if self._again or self._track:
            self._again = False
            self._poll_soon()

    def _load_failed(self, error: WorkerError) -> None:
        self._job = None
        self._loaded = True
        self.notice.emit(Notice.from_error("Loading the runs failed", error, SOURCE))
        if not self._stopped:
            self._timer.start()
        if self._again or self._track:
            self._again = False
            self._poll_soon()

    def _poll_done(self, result: PollResult) -> None:
        self._job = None
        self._apply(result)
        if self._again:
            self._again = False
            self._poll_soon()

    def _poll_failed(self, error: WorkerError) -> None:
        self._job = None
        if self.session.closed:
            return  # the app is closing: nothing to tell
        self.notice.emit(Notice.from_error("Following the runs failed", error, SOURCE))

    def _apply(self, result: PollResult) -> None:
        for level, text, details in result.notices:
            self.notice.emit(Notice(level, text, details, SOURCE))
        for view in result.runs:
            self._say_if_finished(self._views.get(view.run_id), view)
        self._update_tree(result.runs)
        now = time.time()
        for rid, samples in result.gpus.items():
            self._gpus[rid] = (now, samples)
        self.streams.publish()  # the followed runs' new events, to the Monitor
        if result.logs_run is not None and result.logs_run == self._log_run \
                and self._job_log_gen == self._log_gen:
            if result.logs_reset:
                self._log_reset_pending = False
            self._add_logs(result.logs, reset=result.logs_reset)
        for cluster in result.unknown_keys:
            self._ask_host_key(cluster)
        if self._track in self._items:
            self.select_run(self._track)
            self._track = None
        live = sum(v.live for v in result.runs)
        runs = len(result.runs)
        self.status_label.setText(
            f"{runs} run{'' if runs == 1 else 's'}, {live} live · updated "
            f"{time.strftime('%H:%M:%S')} ({result.took_s:.1f} s)")
        self._selection_changed()
        self.updated.emit()

    def _say_if_finished(self, before: RunView | None, now: RunView) -> None:
        """One notice when a run this panel saw live has completed or failed (a run that
        was finished at start-up says nothing; a cancel says so itself)."""
        if before is None or not before.live or now.status not in ("completed", "failed"):
            return
        n = len(now.stages)
        took = format_eta(max(0.0, time.time() - now.created_at))
        if now.status == "completed":
            self.notice.emit(Notice("info", f"Run {now.run_id} completed: {n} stage"
                                    f"{'' if n == 1 else 's'}, {took} since launch", "",
                                    SOURCE))
        else:
            why = f": {now.reason}" if now.reason else ""
            self.notice.emit(Notice("error", f"Run {now.run_id} failed{why}",
                                    now.reason or "", SOURCE))

    # --- the tree --------------------------------------------------------------------------

    def _update_tree(self, runs: list[RunView]) -> None:
        self._views = {v.run_id: v for v in runs}
        for gone in [rid for rid in self._items if rid not in self._views]:
            item = self._items.pop(gone)
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
        for pos, view in enumerate(runs):  # runs are newest first
            item = self._items.get(view.run_id)
            if item is None:
                item = self._items[view.run_id] = QTreeWidgetItem()
                item.setData(COL_RUN, RUN_ROLE, view.run_id)
                self.tree.insertTopLevelItem(pos, item)
            self._fill_run(item, view)
        self.empty_label.setVisible(not runs)

    def _fill_run(self, item: QTreeWidgetItem, view: RunView) -> None:
        item.setText(COL_RUN, visible(view.run_id))
        item.setText(COL_CREATED, time.strftime("%Y-%m-%d %H:%M",
                                                time.localtime(view.created_at)))
        item.setText(COL_CLUSTER, visible(", ".join(view.clusters)))
        _status(item, view.status)
        n = len(view.stages)
        current = view.current
        progress = f"{view.finished_stages} / {n} stages"
        if current is not None and view.live:
            progress += f" · {current.stage}"
        item.setText(COL_PROGRESS, progress)
        item.setData(COL_PROGRESS, FRACTION_ROLE, view.finished_stages / n if n else None)
        item.setText(COL_ETA, format_eta(current.eta_s) if current and view.live else "")
        item.setText(COL_REASON, visible(view.reason or ""))
        item.setToolTip(COL_REASON, visible(view.reason or ""))
        while item.childCount() > len(view.stages):
            item.takeChild(item.childCount() - 1)
        for i, stage in enumerate(view.stages):
            child = item.child(i) if i < item.childCount() else None
            if child is None:
                child = QTreeWidgetItem(item)
            child.setData(COL_RUN, RUN_ROLE, view.run_id)
            child.setData(COL_RUN, STAGE_ROLE, stage.stage)
            child.setText(COL_RUN, visible(stage.stage))
            child.setText(COL_CLUSTER, visible(stage.cluster))
            _status(child, stage.status)
            child.setText(COL_PROGRESS, format_progress(stage))
            child.setData(COL_PROGRESS, FRACTION_ROLE, stage.fraction)
            child.setText(COL_ETA, format_eta(stage.eta_s) if stage.status == "running" else "")
            child.setText(COL_REASON, visible(stage.reason or ""))
            child.setToolTip(COL_REASON, visible(stage.reason or ""))

    def stage_item(self, run_id: str, stage: str) -> QTreeWidgetItem | None:
        item = self._items.get(run_id)
        if item is None:
            return None
        for i in range(item.childCount()):
            if item.child(i).data(COL_RUN, STAGE_ROLE) == stage:
                return item.child(i)
        return None

    def _selection_changed(self) -> None:
        rid = self.selected_run()
        view = self._views.get(rid or "")
        if view is None:
            self.detail_label.setText("Select a run." if self._views else "")
            self.gpu_label.setText("")
        else:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(view.created_at))
            why = f" — {view.reason}" if view.reason else ""
            # Rich text: what a cluster wrote is escaped, never markup.
            self.detail_label.setText(
                f"<b>{html.escape(visible(view.run_id))}</b>: "
                + html.escape(visible(f"{view.status} on {', '.join(view.clusters)}, "
                                      f"launched {created}{why}")))
            gpus = self._gpus.get(view.run_id)
            self.gpu_label.setText(
                f"GPUs at {time.strftime('%H:%M:%S', time.localtime(gpus[0]))}: "
                f"{format_gpus(gpus[1])}" if gpus and gpus[1] else "")
        self._update_buttons()

    def _update_buttons(self) -> None:
        view = self._views.get(self.selected_run() or "")
        self.cancel_button.setEnabled(view is not None and view.live)
        self.resume_button.setEnabled(view is not None and view.status in ("failed",
                                                                            "cancelled"))
        for button in (self.logs_button, self.browse_button, self.follow_button):
            button.setEnabled(view is not None)

    # --- cancel, resume, host keys ---------------------------------------------------------

    def _action(self, fn: Callable[..., RunRecord], rid: str, doing: str) -> None:
        view = self._views[rid]
        self._actions += 1

        def failed(error: WorkerError | str, details: str = "") -> None:
            self._actions -= 1
            if isinstance(error, WorkerError):
                self.notice.emit(Notice.from_error(f"{doing} run {rid} failed", error, SOURCE))
            else:
                self.notice.emit(Notice("error", f"{doing} run {rid} failed: {error}",
                                        details, SOURCE))

        def done(record: RunRecord) -> None:
            self._actions -= 1
            why = f" ({record.current().reason})" if record.current() and \
                record.current().reason else ""
            self.notice.emit(Notice("info", f"Run {rid}: {record.status}{why}", "", SOURCE))
            self._poll_soon()

        def connected() -> None:
            run_in_worker(self.session.call, fn, rid, owner=self, on_done=done,
                          on_failed=failed)

        ensure_connected(self, self.session, list(view.clusters), on_ready=connected,
                         on_failed=failed, confirm=self._confirm_key)

    def _ask_host_key(self, cluster: str) -> None:
        if self._key_flow is not None or cluster in self._refused:
            return
        self._key_flow = cluster
        self._actions += 1

        def ready() -> None:
            self._actions -= 1
            self._key_flow = None
            self.notice.emit(Notice("info", f"Connected to {cluster}", "", SOURCE))
            self._poll_soon()

        def failed(message: str, details: str) -> None:
            self._actions -= 1
            self._key_flow = None
            self._refused.add(cluster)
            self.notice.emit(Notice("warning", f"{message}. Runs on {cluster} are not "
                                    "followed until Refresh.", details, SOURCE))

        ensure_connected(self, self.session, [cluster], on_ready=ready, on_failed=failed,
                         confirm=self._confirm_key)

    # --- the log view ----------------------------------------------------------------------

    def _add_logs(self, logs: dict[tuple[str, str], str], *, reset: bool) -> None:
        view = self._views.get(self._log_run or "")
        # the first time, the engine's log of the run's current (or last) stage
        stage = view.current.stage if view and view.current else (
            view.stages[-1].stage if view and view.stages else "")
        self.log_area.add(logs, reset=reset, prefer=f"{stage}.0.log",
                          several_clusters=view is not None and len(view.clusters) > 1)


def _status(item: QTreeWidgetItem, status: str) -> None:
    item.setText(COL_STATUS, status)
    item.setForeground(COL_STATUS, QColor(STATUS_COLOURS.get(status, "#000000")))


def main() -> int:
    """The panel alone, on the user's own profiles and runs."""
    import sys

    from gui.qt_guard import pin_singletons

    pin_singletons()  # PySide6 6.12 leaks None/True references on Python 3.11
    app = QApplication.instance() or QApplication(sys.argv)
    session = AppSession()
    streams = RunStreams()
    streams.subscribe(lambda *_: None)  # no Monitor here: the events need not be kept
    panel = RunsPanel(session, streams=streams)
    panel.notice.connect(lambda n: print(f"[{n.level}] {n.text}", file=sys.stderr))
    panel.resize(1100, 700)
    panel.setWindowTitle("SynthSmith — Runs")
    panel.show()
    code = app.exec()
    panel.stop()
    session.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
