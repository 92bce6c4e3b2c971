"""The main window: a sidebar of five panels (Clusters, Pipeline, Runs, Monitor, Data).

Run it with ``synthsmith``. Pipeline (a read-only view of the loaded config), Clusters
(gui/panels/clusters.py), Monitor (gui/panels/monitor.py) and Data (gui/panels/data.py) are
real; Runs says what it will hold and that it is not built yet.

Window geometry and the selected panel are kept in QSettings under ORG_NAME / APP_NAME, saved
when the window closes and restored by the next window (tests point QSettings at a temp dir).

Left out: menus, a status bar, the notification area and the worker adapter (later issues).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from gui.widgets.pipeline_overview import PipelineOverview

if TYPE_CHECKING:
    from gui.app import LoadedPipeline

ORG_NAME = "SynthSmith"
APP_NAME = "SynthSmith Studio"

PANELS = ("Clusters", "Pipeline", "Runs", "Monitor", "Data")
DEFAULT_PANEL = PANELS.index("Pipeline")  # the only panel with content so far
DEFAULT_SIZE = (1180, 720)  # leaves room for window decorations and a taskbar on 1280x800

_NOT_BUILT = {
    "Clusters": "connection profiles (SSH, jump hosts, Slurm) and remote environment checks "
    "(GPUs, CUDA, library versions, disk, partitions).",
    "Runs": "launch, status, cancel and resume of pipeline runs, with their logs.",
    "Monitor": "live dashboards: training curves, RL reward and pass rate, synthesis and "
    "verification throughput, GPU use.",
    "Data": "what a run made: tasks with their feature lineage, candidate solutions, tests, "
    "the verdict matrix and RL rollouts.",
}


def _not_built_panel(name: str) -> QLabel:
    label = QLabel(f"{name} — {_NOT_BUILT[name]}\n\nNot built yet; see the issue tracker.")
    label.setObjectName(f"panel_{name.lower()}")
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setMargin(48)
    return label


class MainWindow(QMainWindow):
    def __init__(self, pipeline: LoadedPipeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_NAME)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.addItems(PANELS)
        self.sidebar.setFixedWidth(150)
        self.sidebar.setStyleSheet("QListWidget::item { padding: 8px 6px; }")

        self.pipeline_overview = PipelineOverview()
        if pipeline.config is not None:
            self.pipeline_overview.set_config(pipeline.config, pipeline.source)
        else:
            self.pipeline_overview.show_problems(pipeline.problems, pipeline.source)

        from gui.panels.clusters import ClustersPanel
        from gui.panels.data import DataPanel
        from gui.panels.monitor import MonitorPanel

        self.clusters_panel = ClustersPanel()
        self.monitor_panel = MonitorPanel()
        self.monitor_panel.setObjectName("panel_monitor")
        self.data_panel = DataPanel()
        self.data_panel.setObjectName("panel_data")
        built = {"Pipeline": self.pipeline_overview, "Clusters": self.clusters_panel,
                 "Monitor": self.monitor_panel, "Data": self.data_panel}
        self.stack = QStackedWidget()
        for name in PANELS:
            self.stack.addWidget(built.get(name) or _not_built_panel(name))
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._restore_state()

    def _restore_state(self) -> None:
        settings = QSettings(ORG_NAME, APP_NAME)
        geometry = settings.value("main_window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*DEFAULT_SIZE)
        row = settings.value("main_window/panel", DEFAULT_PANEL, type=int)
        self.sidebar.setCurrentRow(row if 0 <= row < len(PANELS) else DEFAULT_PANEL)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.data_panel.close_store()  # in the worker, like every store call
        settings = QSettings(ORG_NAME, APP_NAME)
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/panel", self.sidebar.currentRow())
        super().closeEvent(event)
