"""One metric's chart in the Monitor: labelled axes, readable ticks, a legend under the data,
a hover readout, and a mouse wheel that scrolls the page it sits in.

    python -m gui.widgets.metric_plot      # one chart with two sample runs

``MetricPlot`` is a pyqtgraph ``PlotWidget`` (one view per chart, see gui/panels/monitor.py for
why) that the Monitor hands curves to: ``add_run(run, colour)`` once, then
``set_run_data(run, x, raw, smoothed)`` on each redraw. What it adds to pyqtgraph's plot:

- Title and y-axis label from ``gui.charts.metric_label`` (a human title, a unit); the raw key
  is the title's tooltip. Both come from a cluster's event, so they are escaped and shown with
  control characters visible (pyqtgraph renders them as rich text).
- Tick labels by ``gui.charts.format_ticks`` (``ReadableAxis``): no float noise and no
  "(x0.001)" SI-prefix scale beside the axis.
- A series of up to ``SHORT_SERIES`` points carries a dot per point: a one-point series, which
  a line alone leaves blank, is drawn, and a sparse one shows where its readings are. A flat
  series (flat but for float noise too) gets a y range of +-5% of its value instead of
  pyqtgraph's +-0.5 (which drew an lr of 1e-5 on a "0" tick) or a range 1e-16 tall.
- The legend is a row under the plot (in the plot's own layout), never over the curves; a
  click on a run's sample hides or shows that run (``run_shown_changed``).
- Hovering shows a vertical line at the nearest reading and a box with that x and each shown
  run's smoothed and raw value (mouse moves rate-limited by pyqtgraph's ``SignalProxy``).
- The wheel scrolls the grid the chart sits in; Ctrl+wheel zooms the chart (pyqtgraph's own
  zoom). A chart that ate the wheel turned a page of charts into a trap for the pointer.

Left out: a readout pinned on click, per-axis zoom with the wheel, log axes.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.charts import format_ticks, format_value, metric_label
from remote.display_text import visible

SHORT_SERIES = 50  # points; up to this many, each carries a dot
DOT_SIZE = 5  # px
RAW_ALPHA = 60  # of 255: the raw curve is context, the smoothed one is the reading
DOWNSAMPLE_PER_PIXEL = 1.0  # see gui/panels/monitor.py
FLAT_PAD = 0.05  # a flat series' y range: +-5% of its value (+-0.5 around zero)
FLAT_SPAN = 1e-9  # relative spread below which a series counts as flat
LEGEND_COLUMNS = 3  # runs per legend row under a ~240 px chart
LEGEND_NAME_CHARS = 18  # longer run names are elided in the legend (the readout has them whole)
HOVER_RATE_HZ = 30
TEXT_GREY = "#555"


def rich(text: str) -> str:
    """Text from a cluster made safe to hand to pyqtgraph's rich-text labels."""
    return html.escape(visible(text))


class ReadableAxis(pg.AxisItem):
    """An axis whose tick labels never print float noise nor an SI-prefix scale; with
    ``whole_ticks`` (a step axis) it has ticks at whole numbers only: there is no step 0.4."""

    def __init__(self, orientation: str, **kwargs: object) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        self.whole_ticks = False

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph's name)
        levels = super().tickSpacing(minVal, maxVal, size)
        if not self.whole_ticks:
            return levels
        return [(spacing, offset) for spacing, offset in levels if spacing >= 1] or [(1.0, 0.0)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph's name)
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        return format_ticks([v * scale for v in values], spacing * scale)


class _Curve(pg.PlotDataItem):
    """A curve whose flat data gets a range relative to its value (see module docstring)."""

    def dataBounds(self, ax, frac=1.0, orthoRange=None):  # noqa: N802 (pyqtgraph's name)
        lo, hi = super().dataBounds(ax, frac, orthoRange)
        # Flat, or flat but for float noise (0.21136364210204 and ...205): noise is not data,
        # and a range 1e-16 tall would draw it as a jagged line.
        if (lo is not None and math.isfinite(lo) and math.isfinite(hi)
                and hi - lo <= FLAT_SPAN * max(abs(lo), abs(hi))):
            mid = (lo + hi) / 2
            # x of a single reading: a step either side (whole steps, see ReadableAxis)
            pad = abs(mid) * FLAT_PAD or 0.5 if ax == 1 else max(abs(mid) * FLAT_PAD, 1.0)
            return mid - pad, mid + pad
        return lo, hi


class MetricPlot(pg.PlotWidget):
    """One metric key's chart; runs are added with ``add_run`` and drawn with
    ``set_run_data`` (see the module docstring). ``run_shown_changed(run, shown)``: a click
    on a run's legend sample asks to hide or show that run (everywhere: the panel decides)."""

    run_shown_changed = Signal(str, bool)

    def __init__(self, key: str, x_label: str, parent: QWidget | None = None, *,
                 whole_x: bool = True) -> None:
        super().__init__(parent, background="w",
                         axisItems={"left": ReadableAxis("left"),
                                    "bottom": ReadableAxis("bottom")})
        self.key = key
        self.label = metric_label(key)
        plot = self.getPlotItem()
        plot.setTitle(rich(self.label.title), size="10pt", color=TEXT_GREY)
        # A tooltip is rich text when it looks like it: the <p> makes it so, the escape keeps a
        # cluster's "<img …>" as text.
        plot.titleLabel.setToolTip(f"<p>{rich(key)}</p>")
        plot.setLabel("left", rich(self.label.axis), color=TEXT_GREY)
        self.set_x_label(x_label, whole_x)
        # No grid: alpha-blended grid lines across every plot tripled the repaint cost (~40 ms
        # of a 1200x760 tab in the benchmark), which is event-loop time on every tick.
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)

        # The legend as a row of the plot's own grid layout, under the x axis (row 3), so it
        # takes its height from the chart instead of covering curves. PlotItem.addItem feeds
        # it named curves as it would the floating legend of addLegend().
        self.legend = pg.LegendItem(colCount=LEGEND_COLUMNS, labelTextSize="8pt",
                                    labelTextColor=TEXT_GREY, verSpacing=-4)
        # Fixed: at its own width, centred, instead of stretched to the chart's.
        self.legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        plot.layout.addItem(self.legend, 4, 1, alignment=Qt.AlignmentFlag.AlignHCenter)
        plot.layout.setRowStretchFactor(4, 0)
        plot.legend = self.legend
        # pyqtgraph's legend sample toggles its own curve when clicked; the panel is told, so
        # the run is hidden on every chart and unchecked in the run picker, not here alone.
        self.legend.sigSampleClicked.connect(self._sample_clicked)

        self._crosshair = pg.InfiniteLine(angle=90, movable=False,
                                          pen=pg.mkPen("#888", width=1, style=Qt.PenStyle.DashLine))
        self._readout = pg.TextItem(anchor=(0, 0), color="#222",
                                    fill=pg.mkBrush(255, 255, 255, 230), border=pg.mkPen("#bbb"))
        self._readout.setZValue(1000)
        for item in (self._crosshair, self._readout):
            item.hide()
            plot.addItem(item, ignoreBounds=True)
        self._hover_proxy = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=HOVER_RATE_HZ,
                                           slot=self._mouse_moved, threadSafe=False)
        self.runs: dict[str, tuple[_Curve, _Curve]] = {}
        self._dotted: dict[str, bool] = {}

    # --- curves ------------------------------------------------------------------------------

    def add_run(self, run: str, colour: QColor, shown: bool = True) -> tuple[_Curve, _Curve]:
        """The (raw, smoothed) curves of one run, created once, in ``colour``."""
        if run in self.runs:
            return self.runs[run]
        faint = QColor(colour)
        faint.setAlpha(RAW_ALPHA)
        ds = DOWNSAMPLE_PER_PIXEL
        raw = _Curve(pen=pg.mkPen(faint, width=1), autoDownsampleFactor=ds)
        name = run if len(run) <= LEGEND_NAME_CHARS else run[: LEGEND_NAME_CHARS - 1] + "…"
        # symbol=None: given a symbol brush alone, pyqtgraph would dot every point at once.
        smooth = _Curve(pen=pg.mkPen(colour, width=2), name=rich(name),
                        autoDownsampleFactor=ds, symbol=None, symbolPen=None,
                        symbolBrush=pg.mkBrush(colour), symbolSize=DOT_SIZE)
        plot = self.getPlotItem()
        for curve in (raw, smooth):
            plot.addItem(curve)
            curve.setVisible(shown)
        self.runs[run] = (raw, smooth)
        self._dotted[run] = False
        return raw, smooth

    def set_run_data(self, run: str, x: np.ndarray, raw: np.ndarray,
                     smoothed: np.ndarray) -> None:
        raw_curve, smooth_curve = self.runs[run]
        dotted = len(x) <= SHORT_SERIES
        if dotted != self._dotted[run]:  # setSymbol rebuilds the scatter: only on a change
            smooth_curve.setSymbol("o" if dotted else None)
            self._dotted[run] = dotted
        raw_curve.setData(x, raw)
        smooth_curve.setData(x, smoothed)

    def _sample_clicked(self, item: pg.PlotDataItem) -> None:
        for run, (_, smooth) in self.runs.items():
            if smooth is item:
                self.run_shown_changed.emit(run, item.isVisible())

    def set_run_shown(self, run: str, shown: bool) -> None:
        for curve in self.runs.get(run, ()):
            curve.setVisible(shown)
        self.hide_readout()

    def set_x_label(self, text: str, whole: bool) -> None:
        """Name the x axis; ``whole``: its values are whole numbers (steps)."""
        plot = self.getPlotItem()
        plot.setLabel("bottom", text, color=TEXT_GREY)
        plot.getAxis("bottom").whole_ticks = whole

    # --- hover readout -----------------------------------------------------------------------

    def _mouse_moved(self, args: tuple[QPointF]) -> None:
        vb = self.getPlotItem().vb
        pos = args[0]
        if not vb.sceneBoundingRect().contains(pos):
            self.hide_readout()
            return
        at = vb.mapSceneToView(pos)
        self.show_readout(at.x(), at.y())

    def show_readout(self, x: float, y: float) -> bool:
        """Show the crosshair at the reading nearest ``x`` and each shown run's values there;
        ``y`` places the box. False (and nothing shown) when no run has a point."""
        readings = []
        for run, (raw, smooth) in self.runs.items():
            xs, ys = smooth.getOriginalDataset()
            if not smooth.isVisible() or xs is None or len(xs) == 0:
                continue
            _, raws = raw.getOriginalDataset()
            readings.append((run, smooth, np.asarray(xs), np.asarray(ys), np.asarray(raws)))
        if not readings:
            self.hide_readout()
            return False
        # Snap to the data point nearest the cursor over all runs: the x the numbers are for.
        nearest = [xs[int(np.abs(xs - x).argmin())] for _, _, xs, _, _ in readings]
        x_at = float(min(nearest, key=lambda v: abs(v - x)))
        x_name = self.getPlotItem().getAxis("bottom").labelText or "x"
        lines = [f"<b>{rich(x_name)} {format_value(x_at)}</b>"]
        for run, smooth, xs, ys, raws in readings:
            i = int(np.abs(xs - x_at).argmin())
            colour = smooth.opts["pen"].color().name()
            raw_text = (f" <span style='color:{TEXT_GREY}'>(raw {format_value(raws[i])})</span>"
                        if len(raws) > i and raws[i] != ys[i] else "")
            lines.append(f"<span style='color:{colour}'>&#9679;</span> {rich(run)}: "
                         f"{format_value(ys[i])}{raw_text}")
        self._readout.setHtml("<br>".join(lines))
        # The box sits beside the cursor, on the side with more room.
        (x0, x1), (y0, y1) = self.getPlotItem().vb.viewRange()
        self._readout.setAnchor((1 if x > (x0 + x1) / 2 else 0, 0 if y > (y0 + y1) / 2 else 1))
        self._readout.setPos(x, y)
        self._crosshair.setPos(x_at)
        self._crosshair.show()
        self._readout.show()
        return True

    def hide_readout(self) -> None:
        self._crosshair.hide()
        self._readout.hide()

    @property
    def readout_text(self) -> str:
        """The readout as plain text ("" when hidden)."""
        return self._readout.textItem.toPlainText() if self._readout.isVisible() else ""

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.hide_readout()
        super().leaveEvent(event)

    # --- wheel -------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt's name)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(event)  # pyqtgraph zooms the view under the cursor
        else:
            event.ignore()  # Qt hands it on to the parents: the scroll area holding the grid


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    from gui.charts import debiased_ema

    app = QApplication(sys.argv)
    chart = MetricPlot("sft/loss", "step")
    rng = np.random.default_rng(0)
    steps = np.arange(300.0)
    for name, colour, scale in (("baseline", "#1f77b4", 1.0), ("lr-2x", "#ff7f0e", 0.8)):
        values = scale * (2.5 * np.exp(-steps / 80) + 0.4) + rng.normal(0, 0.08, steps.size)
        chart.add_run(name, QColor(colour))
        chart.set_run_data(name, steps, values, debiased_ema(values, 0.6)[0])
    chart.resize(520, 360)
    chart.show()
    sys.exit(app.exec())
