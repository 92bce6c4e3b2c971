"""The main window: a sidebar of five panels (Clusters, Pipeline, Runs, Monitor, Data) and the
notification area.

Run it with ``synthsmith``. The panels share one ``AppSession`` (remote/session.py: cluster
profiles, run registry, one launcher with its links) and talk only through signals wired here:

    Clusters.profiles_changed  -> Pipeline re-reads its placement choices
    Pipeline.config_changed    -> Clusters' Test checks the stages placed there for it
    Pipeline.launched(record)  -> Runs follows the new run; the window shows Runs
    run_streams (remote.run_stream.RunStreams, one stream per run) -> Monitor subscribes and draws
                                  the followed runs' events (GPU samples included); Runs'
                                  follower fills it, so neither panel feeds the other
    Runs.show_monitor(id)      -> the Monitor shows (the run's stream is followed by then)
    Runs.browse_data(id)       -> Data opens the run's store: the file on This computer, paged
                                  remote queries over the link for a cluster (never downloaded)
    Runs.folder_opened(id, dir) -> a run folder read into its stream: Monitor, and Data opens
                                  its store
    every panel's notice       -> the notification area (and the status bar)

State kept in QSettings (ORG_NAME / APP_NAME): window geometry and dock layout, the selected
panel, and the Pipeline panel's config (its YAML text and file), saved when the window closes
and restored by the next window. Tests point QSettings at a temp dir.

Left out: menus (every action is a button on its panel), several windows on one session.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QListWidget,
    QMainWindow,
    QStackedWidget,
    QToolButton,
    QWidget,
)

from engine.contracts.rundir import STORE
from gui.notify import Notice, NotificationArea
from gui.worker import WorkerError, run_in_worker
from remote.run_stream import RunStreams
from remote.session import AppSession

if TYPE_CHECKING:
    from remote.pipeline_edit import LoadedPipeline

log = logging.getLogger(__name__)

ORG_NAME = "SynthSmith"
APP_NAME = "SynthSmith Studio"

PANELS = ("Clusters", "Pipeline", "Runs", "Monitor", "Data")
DEFAULT_PANEL = PANELS.index("Pipeline")  # first start: the smoke preset, ready to launch
DEFAULT_SIZE = (1180, 720)  # leaves room for window decorations and a taskbar on 1280x800
STATUS_MS = 8000
DEFERRED_BUILD_MS = 1500


class MainWindow(QMainWindow):
    def __init__(self, pipeline: LoadedPipeline, session: AppSession | None = None,
                 parent: QWidget | None = None, *, confirm_host_key: Any = None,
                 poll_s: float = 2.0) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_NAME)
        self.session = session or AppSession()

        from gui.panels.clusters import ClustersPanel
        from gui.panels.pipeline import PipelinePanel
        from gui.panels.runs import RunsPanel

        self.notifications = NotificationArea()
        self.clusters_panel = ClustersPanel(self.session.profiles, self.session.ssh_options)
        if confirm_host_key is not None:
            self.clusters_panel.confirm_host_key = lambda err: confirm_host_key(self, err)
        self.pipeline_panel = PipelinePanel(self.session, pipeline, confirm=confirm_host_key)
        self.run_streams = RunStreams()  # what Runs and Monitor both read
        self.runs_panel = RunsPanel(self.session, streams=self.run_streams, poll_s=poll_s,
                                    confirm=confirm_host_key)
        # Monitor and Data (pyqtgraph, numpy, pygments: half the start-up time) are built
        # right after the window first shows, or at once when something needs them.
        self._monitor: Any = None
        self._data: Any = None
        panels = {"Clusters": self.clusters_panel, "Pipeline": self.pipeline_panel,
                  "Runs": self.runs_panel, "Monitor": QWidget(), "Data": QWidget()}

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.addItems(PANELS)
        self.sidebar.setFixedWidth(150)
        self.sidebar.setStyleSheet("QListWidget::item { padding: 8px 6px; }")
        self.stack = QStackedWidget()
        for name in PANELS:
            self.stack.addWidget(panels[name])
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        # Notifications: a dock that opens by itself for a warning or an error and is closed
        # otherwise (an empty, always-open dock took a third of a laptop's height); the
        # status bar's button opens and closes it and counts what it holds. Its title (with
        # the counts) is the dock's, not repeated inside.
        self.notifications_dock = QDockWidget("Notifications", self)
        self.notifications_dock.setObjectName("notifications_dock")
        self.notifications_dock.setWidget(self.notifications)
        self.notifications_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                                            | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.notifications.title.hide()
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.notifications_dock)
        self.resizeDocks([self.notifications_dock], [150], Qt.Orientation.Vertical)
        self.notifications_dock.hide()
        self.notifications_button = QToolButton(objectName="notifications_button")
        self.notifications_button.setDefaultAction(self.notifications_dock.toggleViewAction())
        self.notifications_button.setAutoRaise(True)
        self.statusBar().addPermanentWidget(self.notifications_button)
        self.notifications.posted.connect(self._notice_posted)
        self.notifications.clear_button.clicked.connect(lambda: self._notice_posted(None))
        self._notice_posted(None)

        for source in (self.clusters_panel, self.pipeline_panel, self.runs_panel):
            source.notice.connect(self.notify)
        self.clusters_panel.profiles_changed.connect(self.pipeline_panel.reload_profiles)
        # Test on a cluster says what the stages placed there would lack, for this config.
        self.pipeline_panel.config_changed.connect(
            lambda cfg: setattr(self.clusters_panel, "config", cfg))
        self.clusters_panel.config = self.pipeline_panel.config()  # loaded before the wiring
        self.pipeline_panel.launched.connect(self._launched)
        self.runs_panel.browse_data.connect(self.browse_run_data)
        self.runs_panel.show_monitor.connect(self._show_run_in_monitor)
        self.runs_panel.folder_opened.connect(self._folder_opened)

        self._restore_state()
        self.sidebar.installEventFilter(self)  # its first paint starts the deferred build
        QTimer.singleShot(DEFERRED_BUILD_MS, self._build_deferred)  # a window never shown

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.sidebar and event.type() == QEvent.Type.Paint:
            self.sidebar.removeEventFilter(self)
            QTimer.singleShot(0, self._build_deferred)  # after this paint reaches the screen
        return super().eventFilter(watched, event)

    # -- the panels built after the first paint ---------------------------------------------

    @property
    def monitor_panel(self) -> Any:
        self._build_deferred()
        return self._monitor

    @property
    def data_panel(self) -> Any:
        self._build_deferred()
        return self._data

    def _build_deferred(self) -> None:
        if self._monitor is not None:
            return
        from gui.panels.data import DataPanel
        from gui.panels.monitor import MonitorPanel

        self._monitor = MonitorPanel()
        self._data = DataPanel()
        self._data.setObjectName("panel_data")
        current = self.stack.currentIndex()
        for name, panel in (("Monitor", self._monitor), ("Data", self._data)):
            index = PANELS.index(name)
            placeholder = self.stack.widget(index)
            self.stack.removeWidget(placeholder)
            placeholder.deleteLater()
            self.stack.insertWidget(index, panel)
        self.stack.setCurrentIndex(current)
        self._data.notice.connect(self.notify)
        self._monitor.alert_raised.connect(self._monitor_alert)
        # The Monitor reads the run streams: what they held until now, then every poll's.
        self.run_streams.subscribe(self._to_monitor)
        self.run_streams.publish()

    def _to_monitor(self, run_id: str, events: list[Any]) -> None:
        self._monitor.add_events(events, run=run_id)

    # -- routing ----------------------------------------------------------------------------

    def show_panel(self, name: str) -> None:
        self.sidebar.setCurrentRow(PANELS.index(name))

    def notify(self, notice: Notice) -> None:
        self.notifications.post(notice)
        self.statusBar().showMessage(notice.text, STATUS_MS)
        if notice.level in ("warning", "error"):
            self.notifications_dock.show()

    def _notice_posted(self, _notice: Notice | None) -> None:
        c = self.notifications.counts()
        words = [f"{c[level]} {level}{'s' if c[level] != 1 else ''}"
                 for level in ("error", "warning") if c[level]]
        title = "Notifications" + (f" \u2014 {', '.join(words)}" if words else "")
        self.notifications_dock.setWindowTitle(title)
        n = len(self.notifications.notices())
        self.notifications_dock.toggleViewAction().setText(
            f"Notifications ({n})" if n else "Notifications")

    def _monitor_alert(self, line: str) -> None:
        level = "error" if line.startswith("[error]") else "warning"
        self.notify(Notice(level, line.split("] ", 1)[-1], source="Monitor"))

    def _show_run_in_monitor(self, run_id: str) -> None:
        self.monitor_panel.set_run_shown(run_id, True)  # unhidden, if the picker hid it
        self.show_panel("Monitor")

    def _folder_opened(self, run_id: str, folder: str) -> None:
        """A run folder on this computer: its events are in the Monitor (its stream); its
        store, if it has one, opens in Data."""
        stream = self.run_streams.get(run_id)
        if stream is not None and stream.store is not None:
            self.data_panel.open_store(stream.store)
        self._show_run_in_monitor(run_id)

    def _launched(self, record: Any) -> None:
        self.runs_panel.follow(record.run_id)
        self.show_panel("Runs")

    def browse_run_data(self, run_id: str) -> None:
        """Open the store of a run in the Data panel (found in the worker: the registry and
        profiles are files)."""
        run_in_worker(store_source_for, self.session, run_id, owner=self,
                      on_done=self._open_source,
                      on_failed=lambda e: self.notify(
                          Notice.from_error(f"Opening the data of {run_id}", e, "Data")))

    def _open_source(self, source: tuple[str, Any]) -> None:
        kind, value = source
        if kind == "local":
            self.data_panel.open_store(value)
        else:
            self.data_panel.open_remote(value)
        self.show_panel("Data")

    # -- state ------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        settings = QSettings(ORG_NAME, APP_NAME)
        geometry = settings.value("main_window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*DEFAULT_SIZE)
        layout = settings.value("main_window/layout")
        if layout is not None:
            self.restoreState(layout)
        row = settings.value("main_window/panel", DEFAULT_PANEL, type=int)
        self.sidebar.setCurrentRow(row if 0 <= row < len(PANELS) else DEFAULT_PANEL)
        saved = settings.value("pipeline/state")
        if isinstance(saved, dict) and saved:
            self.pipeline_panel.restore_state(saved)

    def closeEvent(self, event: QCloseEvent) -> None:
        settings = QSettings(ORG_NAME, APP_NAME)
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/layout", self.saveState())
        settings.setValue("main_window/panel", self.sidebar.currentRow())
        settings.setValue("pipeline/state", self.pipeline_panel.state())
        self.runs_panel.stop()
        self.run_streams.unsubscribe(self._to_monitor)  # a poll in flight draws nothing now
        if self._data is not None:
            self._data.close_store()  # in the worker, like every store call
        run_in_worker(self.session.close, on_failed=_log_close_error)
        super().closeEvent(event)


def _log_close_error(error: WorkerError) -> None:
    # The window is gone, so no notice can show it; the log keeps it.
    log.warning("closing the cluster links failed: %s\n%s", error, error.traceback)


def store_source_for(session: AppSession, run_id: str) -> tuple[str, Any]:
    """Where a run's store is: ("local", path) on This computer, else ("remote", a factory of
    a RemoteStore that queries it over the cluster's link). Runs in the worker."""
    record = session.registry.load(run_id)
    seg = next((s for s in reversed(record.segments) if s.status != "waiting"),
               record.segments[0])
    paths = record.clusters.get(seg.cluster)
    if not paths:
        raise RuntimeError(f"run {run_id} has not reached {seg.cluster} yet: nothing to browse")
    store_path = f"{paths['run_dir']}/{STORE}"
    profile = session.profiles.get(seg.cluster)
    if profile.is_local:
        return ("local", store_path)
    from remote.store_client import RemoteStore

    def open_remote() -> RemoteStore:
        from remote.bundle import sync_bundle

        def current_bundle(launcher: Any) -> tuple[Any, str]:
            # The run's own bundle may predate the query command: this app's engine answers
            # (uploaded only if it changed; one manifest read otherwise).
            runner = launcher.runner(seg.cluster)
            return runner, sync_bundle(runner, profile.workdir).bundle_dir

        runner, bundle = session.call(current_bundle)
        return RemoteStore(runner, store_path, engine_dir=bundle, python=profile.python,
                           prefix=profile.activate, env=dict(profile.env), lock=session.lock)

    return ("remote", open_remote)
