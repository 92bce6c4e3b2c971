"""The Monitor panel: live dashboards of a run's event stream, with smoothing, overlays, alerts.

Feed it events from any source (``EventReader.read_new()``, ``EventTail.poll()``) with
``add_events(events, run="name")``; it never reads files or talks to a cluster itself.

How it stays responsive: ``add_events`` only appends numbers to per-series Python lists and
watches for alerts; a 40 Hz QTimer moves them into numpy buffers (``gui.charts.SeriesBuffer``)
and redraws one changed plot of the visible tab per tick, round robin. Each plot is its own
view, so that tick repaints that plot alone, once (its auto range is settled before the paint),
in ~4 ms; the event loop is never held for a whole tab. So a stream of 10,000 events/s costs a
few ms of event loop per tick, never a repaint per event. Curves use pyqtgraph's own peak
(min/max-keeping) downsampling, one min and one max per pixel column, and clip-to-view, so a
million points draw like a thousand.

What it shows: one tab per preset (SFT, RL, Synthesis, Verification, GPUs, plus Other for any key
no preset claims), each a grid of charts (``gui.widgets.metric_plot.MetricPlot``, one pyqtgraph
view each; PNG export grabs the whole tab as on screen), created as keys first arrive; a tab says
"no data yet" until then. A chart has a human title and a y axis with its unit
(``gui.charts.metric_label``), readable ticks, a legend row under the data, a hover readout, and
dots on a short series (a single reading is drawn); the wheel scrolls the grid, Ctrl+wheel
zooms a chart. A series is one (run, key); each run has one colour, its smoothed curve
(TensorBoard's debiased EMA, slider 0-0.99) drawn over the faint raw one. The x axis is the
step or the wall time since the run's first event. Under the tabs: the run picker (every run
fed to the panel, checked = overlaid; ``set_run_shown``; a click on a chart's legend entry
does the same), the summary table of the current tab (last, min, max per metric and shown
run, refreshed twice a second) and the alerts.

Alerts (``alerts``, and the ``alert_raised`` signal) come from the Qt-free rules in
remote/alerts.py (``RunAlerts``): a failed stage, a NaN/inf or exploding ``*loss``, the
engine's own ``alert`` events, and a stalled stage, whose limit is learned from its own
rhythm of events. Stalls are checked on the timer against ``clock`` (injectable; event times
are the writer's clock, so this assumes the cluster's clock roughly agrees with ours).

Left out: removing a run, per-plot zoom linking, persisting the layout, the slider or the run
picker, and progress/log/sample events (other panels show those).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contracts.events import Event, MetricSeries, write_metrics_csv
from gui.charts import SeriesBuffer, metric_label
from gui.widgets.metric_plot import MetricPlot
from gui.widgets.metric_summary import MetricSummary, SummaryRow
from gui.widgets.run_picker import RunPicker
from gui.worker import WorkerError, run_in_worker
from remote.alerts import RunAlerts
from remote.display_text import visible
from remote.run_stream import GpuRound, Record

SeriesKey = tuple[str, str]  # (run, metric key)

# Tab -> (keys in the order they are known, key prefixes the tab also claims).
PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "SFT": (
        ("sft/loss", "sft/lr", "sft/grad_norm", "sft/tokens_per_s", "sft/mfu",
         "sft/padding_frac"),
        ("sft/",),
    ),
    "RL": (
        ("rl/reward/mean", "rl/reward/std", "rl/pass_rate", "rl/groups/all_fail",
         "rl/groups/all_pass", "rl/response_length/mean", "rl/truncation_rate", "rl/kl",
         "rl/entropy", "rl/clip_frac/low", "rl/clip_frac/high", "rl/clip_frac/region",
         "rl/time/generate_s", "rl/time/reward_s", "rl/time/train_s"),
        ("rl/",),
    ),
    "Synthesis": (
        ("synth/json_fail_rate", "synth/tasks_done", "synth/seeds_done",
         "synth/candidates_ok_rate", "synth/hint_leak_rate", "llm/requests_per_s",
         "llm/tokens_per_s", "llm/errors", "llm/failed"),
        ("synth/", "llm/"),
    ),
    "Verification": (
        ("verify/tests_per_s", "verify/runs_per_s", "verify/accept_rate", "verify/agreement",
         "verify/timeouts"),
        ("verify/",),
    ),
    # GPU samples (remote/run_follower.py turns nvidia-smi readings into metric events of stage
    # "gpu"): gpu/<node>/<index>/util and .../mem_used, one plot per node and quantity.
    "GPUs": ((), ("gpu/",)),
    "Other": ((), ()),
}
OTHER_TAB = "Other"

REDRAW_INTERVAL_MS = 25
# Plots redrawn per tick. A plot's repaint costs ~4 ms whatever its points (axes, text), and a
# tick is one uninterrupted stretch of the event loop: redrawing a tab's 6-15 plots at once froze
# the loop for 30-100 ms. One plot per 25 ms tick keeps every stretch short and still refreshes
# 40 plots a second, round robin, oldest change first.
PLOTS_PER_TICK = 1
GRID_COLUMNS = 3
# px; below it the grid scrolls. Title, x axis and legend row take ~75 px of a chart's height:
# at 200 the data keeps ~125 px (2.5 rows show at 1280x800, the rest scroll).
MIN_PLOT_SIZE = (240, 200)
# Peak downsampling (gui/widgets/metric_plot.py: DOWNSAMPLE_PER_PIXEL) keeps a min and a max
# per bucket; one bucket per pixel column draws the same envelope as pyqtgraph's default of 5
# (checked by eye on a noisy 200k-point curve with spikes) with a fifth of the segments.
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")
SUMMARY_EVERY_TICKS = 20  # the summary table follows twice a second: numbers, not motion


def tab_for_key(key: str) -> str:
    """The preset tab a metric key is drawn on (exact preset keys first, then prefixes)."""
    for tab, (keys, _) in PRESETS.items():
        if key in keys:
            return tab
    for tab, (_, prefixes) in PRESETS.items():
        if key.startswith(prefixes) if prefixes else False:
            return tab
    return OTHER_TAB


class _Dashboard(QStackedWidget):
    """One tab: "no data yet" until its first key, then a grid of plots, one view each.

    One ``PlotWidget`` (its own scene and view) per plot, not one scene for the tab: a view
    repaints the bounding rect of everything that changed in it, so with one scene a tick that
    changed the first and the last plot of a row repainted the whole row (30 ms, measured).
    The grid scrolls: a plot is never squeezed below ``MIN_PLOT_SIZE`` (RL's 15 plots would be
    unreadable, and their minimum sizes grew the window past 1280x800).
    """

    run_shown_changed = Signal(str, bool)  # a chart's legend was clicked

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        empty = QLabel(f"{name}: no data yet")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid_widget = QWidget()
        self.grid_widget.setObjectName("plot_grid")
        self.grid_widget.setAutoFillBackground(True)
        palette = self.grid_widget.palette()
        palette.setColor(QPalette.ColorRole.Window, QColor("white"))
        self.grid_widget.setPalette(palette)
        self._grid = QGridLayout(self.grid_widget)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(0)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.grid_widget)
        self.addWidget(empty)
        self.addWidget(self.scroll)
        self.views: dict[str, MetricPlot] = {}

    @property
    def has_data(self) -> bool:
        return bool(self.views)

    @property
    def plots(self) -> dict[str, pg.PlotItem]:
        return {key: view.getPlotItem() for key, view in self.views.items()}

    def plot_for(self, key: str, x_label: str) -> pg.PlotItem:
        return self.view_for(key, x_label).getPlotItem()

    def view_for(self, key: str, x_label: str, whole_x: bool = True) -> MetricPlot:
        view = self.views.get(key)
        if view is not None:
            return view
        n = len(self.views)
        view = MetricPlot(key, x_label, whole_x=whole_x)  # escapes the key: it came from a cluster
        view.run_shown_changed.connect(self.run_shown_changed)
        view.setMinimumSize(*MIN_PLOT_SIZE)
        self._grid.addWidget(view, n // GRID_COLUMNS, n % GRID_COLUMNS)
        self.views[key] = view
        self.setCurrentIndex(1)
        return view


class MonitorPanel(QWidget):
    """Dashboards of metric series per (run, key); see the module docstring."""

    alert_raised = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.time,
                 stall_factor: float = 5.0, stall_floor_s: float = 120.0) -> None:
        super().__init__(parent)
        self.setObjectName("panel_monitor")
        self._clock = clock
        self._rules = RunAlerts(stall_factor=stall_factor, stall_floor_s=stall_floor_s)

        self._series: dict[SeriesKey, SeriesBuffer] = {}
        # Which writer (stage, rank) each series' points came from, for the CSV: runs of
        # points from one writer, as (first point index, stage, rank); usually one per series.
        self._origins: dict[SeriesKey, list[tuple[int, str, int]]] = {}
        self._origin_last: dict[SeriesKey, tuple[str, int]] = {}
        self._hidden_runs: set[str] = set()
        self._summary_due = False
        self._pending: dict[SeriesKey, tuple[list[float], list[float], list[float]]] = {}
        self._dirty: set[SeriesKey] = set()
        self._drawn_at: dict[str, int] = {}  # plot key -> the redraw that last drew it
        self._redraws = 0
        self._curves: dict[SeriesKey, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._ticks = 0
        self._run_colour: dict[str, QColor] = {}
        self._run_t0: dict[str, float] = {}
        self._alert_texts: list[str] = []
        self._tab_of: dict[str, str] = {}
        self._alpha = 0.6
        self._x_axis = "step"
        self._jobs: list[object] = []  # export jobs in flight (kept for tests/shutdown)

        # --- controls
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setObjectName("smoothing")
        self._slider.setRange(0, 99)
        self._slider.setValue(round(self._alpha * 100))
        self._slider.setFixedWidth(160)
        self._slider_label = QLabel(f"{self._alpha:.2f}")
        self._slider.valueChanged.connect(lambda v: self.set_smoothing(v / 100))
        self._x_combo = QComboBox()
        self._x_combo.setObjectName("x_axis")
        self._x_combo.addItem("step", "step")
        self._x_combo.addItem("wall time", "time")
        self._x_combo.currentIndexChanged.connect(
            lambda i: self.set_x_axis(self._x_combo.itemData(i)))
        png = QPushButton("Export PNG…")
        png.clicked.connect(self._export_png_clicked)
        csv_button = QPushButton("Export CSV…")
        csv_button.clicked.connect(self._export_csv_clicked)
        self._status = QLabel("")
        controls = QHBoxLayout()
        for w in (QLabel("Smoothing"), self._slider, self._slider_label, QLabel("X axis"),
                  self._x_combo):
            controls.addWidget(w)
        controls.addStretch(1)
        for w in (self._status, png, csv_button):
            controls.addWidget(w)

        # --- dashboards and alerts
        self._tabs = QTabWidget()
        self._dashboards: dict[str, _Dashboard] = {}
        for name in PRESETS:
            board = _Dashboard(name)
            board.run_shown_changed.connect(self.set_run_shown)
            self._dashboards[name] = board
            self._tabs.addTab(board, name)
        self._tabs.currentChanged.connect(self._tab_changed)
        self._picker = RunPicker()
        self._picker.shown_changed.connect(self.set_run_shown)
        self._summary = MetricSummary()
        self._alert_list = QListWidget()
        self._alert_list.setObjectName("alerts")
        self._alert_list.setWordWrap(True)  # an alert is a sentence: wrapped, not cut
        self._alert_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        self._summary_title = QLabel("Summary")
        for title, widget, width in ((QLabel("Runs (checked: drawn)"), self._picker, 170),
                                     (self._summary_title, self._summary, 520),
                                     (QLabel("Alerts"), self._alert_list, 410)):
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(title)
            column.addWidget(widget)
            box.setMinimumWidth(width // 2)
            bottom.addWidget(box)
        bottom.setSizes([170, 520, 410])
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._tabs)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 1)
        # Sizes from the start, not from the children's size hints: a grid of PlotWidgets
        # hints smaller than a table, which would give the bottom row most of the height.
        splitter.setSizes([560, 150])

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(splitter)

        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    # --- ingest ------------------------------------------------------------------------------

    def add_events(self, records: Iterable[Record], run: str = "run") -> None:
        """Take records of one run (events of any kinds, in any order of files, and the
        desktop's GPU rounds); drawn on the next tick."""
        self._know_run(run)
        events: list[Event] = []
        for r in records:
            if isinstance(r, GpuRound):  # the desktop's samples: points, never an alert
                self._note_t0(run, r.t)
                self._queue_points(run, ("gpu", 0), float(r.step), r.t, r.values)
            elif r.kind == "metric":
                events.append(r)
                self._note_t0(run, r.t)
                self._queue_points(run, (r.stage, r.rank), float(r.step), r.t, r.data)
            else:
                events.append(r)
        for alert in self._rules.observe(run, events):  # remote/alerts.py: the rules
            self._alert(alert.level, alert.text)

    def _queue_points(self, run: str, origin: tuple[str, int], step: float, t: float,
                      values: Mapping[str, float]) -> None:
        pending, origin_last = self._pending, self._origin_last
        for key, value in values.items():
            sk = (run, key)
            lists = pending.get(sk)
            if lists is None:
                lists = pending[sk] = ([], [], [])
            if origin_last.get(sk) != origin:
                self._note_origin(sk, origin, len(lists[0]))
            lists[0].append(step)
            lists[1].append(t)
            lists[2].append(value)

    def add_points(self, run: str, key: str, steps: Sequence[float] | np.ndarray,
                   times: Sequence[float] | np.ndarray,
                   values: Sequence[float] | np.ndarray, *, stage: str | None = None,
                   rank: int = 0) -> None:
        """Bulk-add one series' points as arrays (a history from a store, a benchmark).

        ``stage`` / ``rank``: the writer they came from, for the CSV (default: the key's
        first part, ``sft`` for ``sft/loss``, and rank 0)."""
        self._know_run(run)
        self._flush_pending()  # points that came before these stay before them
        origin = (stage or key.split("/", 1)[0], rank)
        if self._origin_last.get((run, key)) != origin:
            self._note_origin((run, key), origin, 0)
        times = np.asarray(times, dtype=np.float64)
        if times.size:
            self._note_t0(run, float(np.nanmin(times)))
        self._buffer((run, key)).extend(steps, times, values)
        self._dirty.add((run, key))
        self._summary_due = True

    # --- reading back ------------------------------------------------------------------------

    @property
    def runs(self) -> list[str]:
        self._flush_pending()
        return list(dict.fromkeys(run for run, _ in self._series))

    def keys(self, run: str) -> list[str]:
        self._flush_pending()
        return [k for r, k in self._series if r == run]

    def series(self, run: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of (steps, wall times, values) of one series."""
        self._flush_pending()
        b = self._series[(run, key)]
        return b.steps[: b.n].copy(), b.times[: b.n].copy(), b.values[: b.n].copy()

    def smoothed(self, run: str, key: str) -> np.ndarray:
        self._flush_pending()
        return self._series[(run, key)].smoothed(self._alpha).copy()

    def curve_data(self, run: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the smoothed curve as drawn, after a ``refresh()``."""
        x, y = self._curves[(run, key)][1].getOriginalDataset()
        return np.asarray(x), np.asarray(y)

    def plot_item(self, key: str) -> pg.PlotItem:
        return self.plot_view(key).getPlotItem()

    def plot_view(self, key: str) -> MetricPlot:
        """The chart of ``key`` (after a ``refresh()``)."""
        return self._dashboards[self._tab(key)].views[key]

    @property
    def run_picker(self) -> RunPicker:
        return self._picker

    @property
    def summary(self) -> MetricSummary:
        return self._summary

    @property
    def shown_runs(self) -> list[str]:
        return [r for r in self._picker.runs if r not in self._hidden_runs]

    def dashboard(self, tab: str) -> _Dashboard:
        return self._dashboards[tab]

    @property
    def tabs(self) -> QTabWidget:
        return self._tabs

    @property
    def alerts(self) -> list[str]:
        return list(self._alert_texts)

    @property
    def smoothing(self) -> float:
        return self._alpha

    @property
    def x_axis(self) -> str:
        return self._x_axis

    # --- settings ----------------------------------------------------------------------------

    def set_smoothing(self, alpha: float) -> None:
        """EMA weight 0 (raw) .. 0.99; curves update on the next tick (a dragged slider too)."""
        alpha = min(max(float(alpha), 0.0), 0.99)
        if alpha == self._alpha:
            return
        self._alpha = alpha
        self._slider_label.setText(f"{alpha:.2f}")
        if self._slider.value() != round(alpha * 100):
            self._slider.blockSignals(True)
            self._slider.setValue(round(alpha * 100))
            self._slider.blockSignals(False)
        self._dirty.update(self._series)

    def set_x_axis(self, mode: str) -> None:
        """``"step"`` or ``"time"`` (seconds since the run's first event)."""
        if mode not in ("step", "time"):
            raise ValueError(f"x axis is 'step' or 'time', not {mode!r}")
        if mode == self._x_axis:
            return
        self._x_axis = mode
        i = self._x_combo.findData(mode)
        if self._x_combo.currentIndex() != i:
            self._x_combo.blockSignals(True)
            self._x_combo.setCurrentIndex(i)
            self._x_combo.blockSignals(False)
        for board in self._dashboards.values():
            for view in board.views.values():
                view.set_x_label(self._x_label(), whole=mode == "step")
                view.getPlotItem().enableAutoRange()
        self._dirty.update(self._series)

    def set_run_shown(self, run: str, shown: bool) -> None:
        """Overlay ``run`` on every chart, or hide it (the run picker's checkbox)."""
        if shown == (run not in self._hidden_runs):
            return
        if shown:
            self._hidden_runs.discard(run)
        else:
            self._hidden_runs.add(run)
        if run in self._picker.runs and self._picker.is_shown(run) != shown:
            self._picker.set_shown(run, shown)  # called from code: the checkbox follows
        for board in self._dashboards.values():
            for view in board.views.values():
                view.set_run_shown(run, shown)
        # A hidden run's series are not drawn (they stay dirty): drawn when shown again.
        self._dirty.update(sk for sk in self._series if sk[0] == run)
        self._summary_due = True

    # --- drawing -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Draw everything pending now, on every tab (tests, exports); the timer does the rest."""
        self._flush_pending()
        self._redraw(visible_only=False)
        self._update_summary()

    def _tick(self) -> None:
        self._flush_pending()
        self._redraw(visible_only=True, max_plots=PLOTS_PER_TICK)
        self._ticks += 1
        if self._summary_due and self._ticks % SUMMARY_EVERY_TICKS == 0:
            self._update_summary()
        self.check_stalls()

    def _tab_changed(self, _index: int) -> None:
        self._redraw(visible_only=True)
        self._update_summary()

    def _update_summary(self) -> None:
        """The current tab's metrics x shown runs: last, min, max (gui/widgets/metric_summary)."""
        self._summary_due = False
        board = self._tabs.currentWidget()
        assert isinstance(board, _Dashboard)
        self._summary_title.setText(f"Summary: {board.name}")
        rows = []
        for key in board.views:
            title = metric_label(key).title
            for run in self.shown_runs:
                buf = self._series.get((run, key))
                if buf is None or buf.n == 0:
                    continue
                rows.append(SummaryRow(key, title, run, self._colour(run),
                                       float(buf.values[buf.n - 1]), buf.vmin, buf.vmax,
                                       float(buf.steps[buf.n - 1])))
        self._summary.set_rows(rows)

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for sk, (steps, times, values) in pending.items():
            self._buffer(sk).extend(steps, times, values)
            self._dirty.add(sk)
        self._summary_due = True

    def _redraw(self, visible_only: bool, max_plots: int | None = None) -> None:
        if not self._dirty:
            return
        visible = self._tabs.currentWidget()
        # Series in the order they first arrived, so runs get colours and legend rows in that
        # order; with max_plots, the plots redrawn longest ago go first (round robin).
        todo = []
        for sk in [sk for sk in self._series if sk in self._dirty]:
            if sk[0] in self._hidden_runs:
                continue  # drawn when the run is shown again
            board = self._dashboards[self._tab(sk[1])]
            if visible_only and board is not visible and board.has_data:
                continue  # drawn when its tab is shown
            todo.append((sk, board))
        keys = list(dict.fromkeys(sk[1] for sk, _ in todo))
        if max_plots is not None:
            keys = sorted(keys, key=lambda k: self._drawn_at.get(k, -1))[:max_plots]
        self._redraws += 1
        for key in keys:
            self._drawn_at[key] = self._redraws
        chosen = set(keys)
        boards: dict[str, _Dashboard] = {}
        for sk, board in todo:
            if sk[1] in chosen:
                self._draw_series(sk, board)
                self._dirty.discard(sk)
                boards[sk[1]] = board
        for key, board in boards.items():
            # Settle the auto range (and the axes and downsampling that follow it) now, not in
            # the view's paintEvent: changed there, the axes ask for a second paint (measured:
            # two 6 ms paints per redrawn plot instead of one).
            board.views[key].scene().prepareForPaint()

    def _draw_series(self, sk: SeriesKey, board: _Dashboard) -> None:
        run, key = sk
        buf = self._series[sk]
        view = board.view_for(key, self._x_label(), whole_x=self._x_axis == "step")
        if sk not in self._curves:
            self._curves[sk] = view.add_run(run, self._colour(run))
        n = buf.n
        x = buf.steps[:n] if self._x_axis == "step" else buf.times[:n] - self._run_t0.get(run, 0.0)
        view.set_run_data(run, x, buf.values[:n], buf.smoothed(self._alpha))

    def _x_label(self) -> str:
        return "step" if self._x_axis == "step" else "time since run start (s)"

    # --- alerts ------------------------------------------------------------------------------

    def check_stalls(self) -> None:
        """Alert once on each live stage quiet for longer than its learned limit
        (remote/alerts.py); timer-driven."""
        for alert in self._rules.stalls(self._clock()):
            self._alert(alert.level, alert.text)

    def _alert(self, level: str, text: str) -> None:
        line = visible(f"[{level}] {text}")
        self._alert_texts.append(line)
        self._alert_list.addItem(line)
        self._alert_list.scrollToBottom()
        self.alert_raised.emit(line)

    # --- export ------------------------------------------------------------------------------

    def render_png(self) -> QImage:
        """The current tab as an image: every plot as on screen, scrolled out of view or not
        (``QWidget.grab`` of the whole grid)."""
        self.refresh()
        board = self._tabs.currentWidget()
        assert isinstance(board, _Dashboard)
        return (board.grid_widget if board.has_data else board).grab().toImage()

    def export_png(self, path: str | Path) -> None:
        _save_image(self.render_png(), path)

    def export_csv(self, path: str | Path) -> int:
        """Every point as a ``run,stage,rank,metric,step,time,value`` row, through the engine's
        exporter (engine/metrics_export.py), so the file is the one ``python -m engine
        export-metrics RUN --csv`` writes for the same events; returns the number of rows."""
        return write_metrics_csv(path, self._csv_snapshot())

    def _csv_snapshot(self) -> list[MetricSeries]:
        """Copies of every series, cut where its writer (stage, rank) changes (GUI thread)."""
        self._flush_pending()
        out = []
        for (run, key), buf in self._series.items():
            n = buf.n  # copies (a memcpy each): the worker turns them into text
            steps, times = buf.steps[:n].copy(), buf.times[:n].copy()
            values = buf.values[:n].copy()
            cuts = self._origins.get((run, key)) or [(0, key.split("/", 1)[0], 0)]
            for i, (start, stage, rank) in enumerate(cuts):
                end = cuts[i + 1][0] if i + 1 < len(cuts) else n
                out.append(MetricSeries(run, stage, rank, key, steps[start:end],
                                        times[start:end], values[start:end]))
        return out

    def _export_png_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export PNG", "monitor.png", "PNG (*.png)")
        if path:
            # Rendering needs the GUI thread; writing the file does not.
            self._start_export(_save_image, self.render_png(), path)

    def _export_csv_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export CSV", "monitor.csv", "CSV (*.csv)")
        if path:
            self._start_export(write_metrics_csv, path, self._csv_snapshot())

    def _start_export(self, fn: Callable[..., object], *args: object) -> None:
        self._status.setText("exporting…")
        job = run_in_worker(fn, *args, on_done=lambda _: self._status.setText("exported"),
                            on_failed=self._export_failed, owner=self)
        self._jobs = [j for j in self._jobs if not j.wait(0)] + [job]

    def _export_failed(self, error: WorkerError) -> None:
        self._status.setText("export failed")
        self._alert("error", f"export failed: {error}")

    # --- bookkeeping -------------------------------------------------------------------------

    def _buffer(self, sk: SeriesKey) -> SeriesBuffer:
        buf = self._series.get(sk)
        if buf is None:
            buf = self._series[sk] = SeriesBuffer()
        return buf

    def _tab(self, key: str) -> str:
        tab = self._tab_of.get(key)
        if tab is None:
            tab = self._tab_of[key] = tab_for_key(key)
        return tab

    def _colour(self, run: str) -> QColor:
        colour = self._run_colour.get(run)
        if colour is None:
            colour = QColor(RUN_COLOURS[len(self._run_colour) % len(RUN_COLOURS)])
            self._run_colour[run] = colour
        return colour

    def _note_t0(self, run: str, t: float) -> None:
        t0 = self._run_t0.get(run)
        if t0 is None or t < t0:
            self._run_t0[run] = t
            if t0 is not None and self._x_axis == "time":  # an earlier file turned up
                self._dirty.update(sk for sk in self._series if sk[0] == run)

    def _know_run(self, run: str) -> None:
        if run not in self._run_colour:
            self._picker.add_run(run, self._colour(run))

    def _note_origin(self, sk: SeriesKey, origin: tuple[str, int], pending_n: int) -> None:
        """The series' next point (after ``pending_n`` not yet buffered) comes from ``origin``."""
        buf = self._series.get(sk)
        self._origins.setdefault(sk, []).append(
            ((buf.n if buf is not None else 0) + pending_n, *origin))
        self._origin_last[sk] = origin


def _save_image(image: QImage, path: str | Path) -> None:
    if not image.save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
