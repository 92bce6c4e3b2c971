"""The Monitor panel: series from events, EMA, axes, overlays, exports, alerts, a screenshot.

    .venv/bin/python -m pytest tests/gui/test_monitor.py -q

Events are built as wire lines and decoded by ``engine.events.parse_lines``, the same path
``EventReader`` takes. Tests call ``panel.refresh()`` instead of waiting for the redraw timer.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PySide6.QtWidgets import QListWidget

from engine.events import parse_lines
from gui.charts import debiased_ema
from gui.panels.monitor import MonitorPanel, tab_for_key

T0 = 1_764_130_000.0


class Stream:
    """Builds one file's events (seq rising from 0), decoded like EventReader does."""

    def __init__(self, stage: str = "sft", rank: int = 0) -> None:
        self.stage, self.rank, self.seq = stage, rank, 0
        self.lines: list[str] = []

    def _add(self, kind: str, t: float, data: dict, step: int | None = None) -> None:
        def enc(v):
            if isinstance(v, float) and not math.isfinite(v):
                return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
            return v

        rec = {"v": 1, "seq": self.seq, "t": t, "stage": self.stage, "rank": self.rank,
               "kind": kind, "step": step,
               "data": {k: enc(v) for k, v in data.items()} if kind == "metric" else data}
        self.lines.append(json.dumps(rec))
        self.seq += 1

    def metric(self, step: int, t: float, **values: float) -> Stream:
        self._add("metric", t, {k.replace("__", "/"): v for k, v in values.items()}, step)
        return self

    def stage_status(self, status: str, t: float, reason: str | None = None) -> Stream:
        self._add("stage", t, {"status": status, "reason": reason, "summary": None})
        return self

    def alert(self, message: str, t: float, code: str | None = None) -> Stream:
        self._add("alert", t, {"level": "warning", "code": code, "message": message})
        return self

    def events(self):
        events, _, _, bad = parse_lines(("\n".join(self.lines) + "\n").encode())
        assert bad == 0
        return events


def sft_run(n: int = 50, loss0: float = 2.0) -> Stream:
    s = Stream("sft").stage_status("started", T0)
    for i in range(n):
        s.metric(i * 10, T0 + 1 + 2.0 * i, sft__loss=loss0 / (1 + 0.1 * i), sft__lr=1e-5)
    return s.stage_status("completed", T0 + 2 + 2.0 * n)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def panel(qtbot):
    p = MonitorPanel()
    qtbot.addWidget(p)
    p.resize(1100, 700)
    return p


def test_metric_events_become_series(panel):
    panel.add_events(sft_run(30).events(), run="a")
    steps, times, values = panel.series("a", "sft/loss")
    assert steps.tolist() == [i * 10 for i in range(30)]
    assert times.tolist() == [T0 + 1 + 2.0 * i for i in range(30)]
    np.testing.assert_allclose(values, [2.0 / (1 + 0.1 * i) for i in range(30)])
    assert sorted(panel.keys("a")) == ["sft/loss", "sft/lr"]
    assert panel.alerts == []


def test_tabs_say_no_data_until_they_have_some(panel):
    for tab in ("SFT", "RL", "Synthesis", "Verification"):
        assert not panel.dashboard(tab).has_data
    panel.add_events(sft_run(5).events(), run="a")
    panel.refresh()
    assert panel.dashboard("SFT").has_data
    assert set(panel.dashboard("SFT").plots) == {"sft/loss", "sft/lr"}
    assert not panel.dashboard("RL").has_data
    assert panel.dashboard("RL").currentIndex() == 0  # the "no data yet" label


def test_keys_go_to_their_preset_tab():
    assert tab_for_key("rl/clip_frac/high") == "RL"
    assert tab_for_key("llm/tokens_per_s") == "Synthesis"
    assert tab_for_key("verify/status/ok") == "Verification"
    assert tab_for_key("gpu/node1/0/util") == "GPUs"
    assert tab_for_key("custom/thing") == "Other"


def test_ema_matches_a_hand_computation(panel):
    xs = [1.0, 3.0, 2.0, 6.0]
    s = Stream("sft")
    for i, x in enumerate(xs):
        s.metric(i, T0 + i, sft__loss=x)
    panel.add_events(s.events(), run="a")
    panel.set_smoothing(0.5)
    # ema_1 = 0.5, /(1-.5) = 1; ema_2 = .25+1.5 = 1.75, /.75; ema_3 = .875+1 = 1.875, /.875;
    # ema_4 = .9375+3 = 3.9375, /.9375
    expected = [1.0, 1.75 / 0.75, 1.875 / 0.875, 3.9375 / 0.9375]
    np.testing.assert_allclose(panel.smoothed("a", "sft/loss"), expected)
    panel.refresh()
    _, y = panel.curve_data("a", "sft/loss")
    np.testing.assert_allclose(y, expected)
    panel.set_smoothing(0.0)
    np.testing.assert_allclose(panel.smoothed("a", "sft/loss"), xs)


def test_ema_vectorised_equals_the_loop_and_resumes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    x[17] = np.nan
    for a in (0.01, 0.6, 0.99):
        last, n, ref = 0.0, 0, []
        for v in x:
            if not np.isfinite(v):
                ref.append(v)
                continue
            last = a * last + (1 - a) * v
            n += 1
            ref.append(last / (1 - a**n))
        full, _ = debiased_ema(x, a)
        np.testing.assert_allclose(full, ref, rtol=1e-9, atol=1e-12)
        head, state = debiased_ema(x[:1234], a)
        tail, _ = debiased_ema(x[1234:], a, state)
        np.testing.assert_allclose(np.concatenate([head, tail]), ref, rtol=1e-9, atol=1e-12)


def test_x_axis_step_or_wall_time(panel):
    panel.add_events(sft_run(10).events(), run="a")
    panel.refresh()
    x, _ = panel.curve_data("a", "sft/loss")
    assert x.tolist() == [i * 10 for i in range(10)]
    panel.set_x_axis("time")
    panel.refresh()
    x, _ = panel.curve_data("a", "sft/loss")
    # seconds since the run's first event (the stage "started" at T0 is not a metric; the
    # first metric at T0 + 1 is the run's start on this axis)
    np.testing.assert_allclose(x, [2.0 * i for i in range(10)])
    assert panel.plot_item("sft/loss").getAxis("bottom").labelText.startswith("time")
    with pytest.raises(ValueError):
        panel.set_x_axis("epoch")


def test_two_runs_overlay_with_colours_and_a_legend(panel):
    panel.add_events(sft_run(10, loss0=2.0).events(), run="a")
    panel.add_events(sft_run(20, loss0=3.0).events(), run="b")
    panel.refresh()
    assert panel.runs == ["a", "b"]
    plot = panel.plot_item("sft/loss")
    legend_names = [label.text for _, label in plot.legend.items]
    assert legend_names == ["a", "b"]
    curves = plot.listDataItems()
    assert len(curves) == 4  # raw + smoothed per run
    colours = {c.opts["pen"].color().name() for c in curves if c.name()}
    assert len(colours) == 2
    assert len(panel.curve_data("b", "sft/loss")[0]) == 20


def test_downsampling_and_clip_to_view_are_on(panel):
    panel.add_events(sft_run(5).events(), run="a")
    panel.refresh()
    for curve in panel.plot_item("sft/loss").listDataItems():
        assert curve.opts["autoDownsample"] and curve.opts["downsampleMethod"] == "peak"
        assert curve.opts["clipToView"]


def test_a_long_curve_draws_about_two_points_per_pixel_and_keeps_its_peaks(panel, qtbot):
    n = 100_000
    steps = np.arange(n, dtype=np.float64)
    values = np.sin(steps / 5000.0)
    values[61_234] = 9.0  # one spike: min/max-keeping downsampling must not drop it
    panel.resize(900, 500)
    panel.show()
    qtbot.waitExposed(panel)
    panel.add_points("a", "sft/loss", steps, T0 + steps, values)
    panel.refresh()
    qtbot.wait(50)
    raw = panel.plot_item("sft/loss").listDataItems()[0]
    x, y = raw.getData()  # what is drawn, after downsampling
    width = raw.getViewBox().width()
    assert 100 < width < 900
    assert len(x) <= 2 * width + 4, (len(x), width)  # a min and a max per pixel column
    assert float(np.max(y)) == 9.0


def test_csv_export_has_every_point(panel, tmp_path):
    panel.add_events(sft_run(3).events(), run="a")
    s = Stream("rl")
    s.metric(1, T0 + 5, rl__reward__mean=0.25)
    panel.add_events(s.events(), run="b")
    path = tmp_path / "series.csv"
    assert panel.export_csv(path) == 7
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["run", "stage", "rank", "metric", "step", "time", "value"]
    assert ["b", "rl", "0", "rl/reward/mean", "1", repr(T0 + 5), "0.25"] in rows
    loss_rows = [r for r in rows[1:] if r[:4] == ["a", "sft", "0", "sft/loss"]]
    assert [int(r[4]) for r in loss_rows] == [0, 10, 20]
    assert float(loss_rows[1][6]) == pytest.approx(2.0 / 1.1)


def test_png_export_writes_an_image(panel, tmp_path):
    panel.add_events(sft_run(20).events(), run="a")
    path = tmp_path / "sft.png"
    panel.export_png(path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- alerts -------------------------------------------------------------------------------


def test_clean_data_raises_no_alert():
    clock = FakeClock(T0 + 110)  # just after the run completed
    p = MonitorPanel(clock=clock)
    p.add_events(sft_run(50).events(), run="a")
    p.check_stalls()
    p.refresh()
    assert p.alerts == []
    p.deleteLater()


def test_failed_stage_alerts(panel):
    s = Stream("sft").stage_status("started", T0).stage_status("failed", T0 + 3, "CUDA OOM")
    panel.add_events(s.events(), run="a")
    assert panel.alerts == ["[error] run a / sft: stage failed: CUDA OOM"]


def test_nan_loss_alerts_once(panel):
    s = sft_run(10)
    s.metric(200, T0 + 200, sft__loss=float("nan"))
    s.metric(210, T0 + 201, sft__loss=float("inf"))
    panel.add_events(s.events(), run="a")
    assert len(panel.alerts) == 1
    assert "sft/loss is nan at step 200" in panel.alerts[0]


def test_exploding_loss_alerts(panel):
    s = Stream("sft")
    for i in range(25):
        s.metric(i, T0 + i, sft__loss=1.0 + 0.01 * (i % 3))
    s.metric(25, T0 + 25, sft__loss=9.0)  # < 10x the median: not yet
    s.metric(26, T0 + 26, sft__loss=55.0)
    panel.add_events(s.events(), run="a")
    assert len(panel.alerts) == 1
    assert "sft/loss exploded at step 26" in panel.alerts[0]


def test_stalled_stage_alerts_on_the_injected_clock(qtbot):
    clock = FakeClock(T0)
    p = MonitorPanel(clock=clock, stall_floor_s=1.0)
    qtbot.addWidget(p)
    s = Stream("rl").stage_status("started", T0)
    for i in range(10):
        s.metric(i, T0 + 2.0 * (i + 1), rl__reward__mean=0.5)  # one event every 2 s
    p.add_events(s.events(), run="a")
    clock.now = T0 + 20 + 9.0  # 9 s quiet < 5 x 2 s
    p.check_stalls()
    assert p.alerts == []
    clock.now = T0 + 20 + 10.5
    p.check_stalls()
    p.check_stalls()  # once per stall
    assert len(p.alerts) == 1 and "run a / rl: stalled" in p.alerts[0]
    # the timer checks too: a new event ends the stall, a second stall alerts again, once it
    # is longer than 1.5x the 11 s pause the stage came back from (that pause is its rhythm)
    p.add_events(Stream("rl").metric(11, T0 + 31, rl__reward__mean=0.5).events(), run="a")
    clock.now = T0 + 31 + 16
    p.check_stalls()
    assert len(p.alerts) == 1
    clock.now = T0 + 31 + 17
    qtbot.waitUntil(lambda: len(p.alerts) == 2, timeout=2000)
    # a completed stage never stalls
    p.add_events(Stream("rl").stage_status("completed", T0 + 43).events(), run="a")
    clock.now = T0 + 1000
    p.check_stalls()
    assert len(p.alerts) == 2


def test_gpu_rounds_are_points_and_never_a_stalled_stage(qtbot):
    from remote.run_stream import GpuRound

    clock = FakeClock(T0)
    p = MonitorPanel(clock=clock, stall_floor_s=1.0)
    qtbot.addWidget(p)
    p.add_events([GpuRound(T0 + 2.0 * (i + 1), i, {"gpu/n1/0/util": 50.0 + i})
                  for i in range(10)], run="a")
    clock.now = T0 + 1000  # sampling stopped with the run: not a stall
    p.check_stalls()
    assert p.alerts == []
    assert p.keys("a") == ["gpu/n1/0/util"]
    steps, times, values = p.series("a", "gpu/n1/0/util")
    assert steps.tolist() == list(range(10)) and values.tolist()[-1] == 59.0


def test_engine_alert_events_are_listed(panel):
    s = Stream("synth").alert("JSON failure rate 40%", T0, code="json_fail")
    panel.add_events(s.events(), run="a")
    assert panel.alerts == ["[warning] run a / synth: json_fail: JSON failure rate 40%"]
    assert panel._alert_list.count() == 1


def test_ingest_does_not_redraw_per_event(panel):
    panel.add_events(sft_run(5).events(), run="a")
    assert not panel.dashboard("SFT").has_data  # nothing drawn until the timer fires


def test_the_timer_draws_the_visible_tab(panel, qtbot):
    panel.add_events(sft_run(5).events(), run="a")
    qtbot.waitUntil(lambda: panel.dashboard("SFT").has_data, timeout=2000)


def test_screenshot_with_data(qtbot, screenshot_dir):
    """monitor.png: three SFT runs (one short, drawn with dots), the hover readout on the loss
    chart, the summary and the run picker; monitor-synthesis.png: charts of one reading each
    (a run that synthesised 0 tasks), as a new user's first run left them."""
    p = MonitorPanel(clock=FakeClock(T0 + 460))  # shortly after the last event: live runs
    qtbot.addWidget(p)
    p.resize(1200, 760)
    rng = np.random.default_rng(1)
    for run, scale, n in (("baseline", 1.0, 300), ("lr-2x", 0.8, 300), ("short-test", 1.2, 25)):
        s = Stream("sft").stage_status("started", T0)
        for i in range(n):
            loss = scale * (2.5 * math.exp(-i / 80) + 0.4) + rng.normal(0, 0.08)
            s.metric(i * (12 if n < 100 else 1), T0 + i * 1.5, sft__loss=loss,
                     sft__lr=1e-5 * min(1, i / 30), sft__grad_norm=abs(rng.normal(1, 0.2)),
                     sft__tokens_per_s=9000 + 300 * rng.normal())
        p.add_events(s.events(), run=run)
    p.add_events(Stream("synth").alert("JSON failure rate above 20%", T0, "json_fail").events(),
                 run="baseline")
    synth = Stream("synth").stage_status("started", T0)
    synth.metric(0, T0 + 3, synth__tasks_done=0.0, synth__seeds_done=8.0,
                 synth__json_fail_rate=0.2113636421020400, llm__requests_per_s=12.00000000000002,
                 llm__tokens_per_s=1843.5)
    p.add_events(synth.events(), run="first-run")
    p.show()
    qtbot.waitExposed(p)
    p.refresh()
    qtbot.wait(300)  # a second layout pass: axes widen to fit their tick labels
    view = p.plot_view("sft/loss")
    _move_mouse(view, 120.0, 1.2)
    qtbot.waitUntil(lambda: view.readout_text != "", timeout=2000)
    p.grab().save(str(screenshot_dir / "monitor.png"))
    p.tabs.setCurrentWidget(p.dashboard("Synthesis"))
    p.refresh()
    qtbot.wait(300)
    p.grab().save(str(screenshot_dir / "monitor-synthesis.png"))
    for name in ("monitor.png", "monitor-synthesis.png"):
        assert (screenshot_dir / name).stat().st_size > 1000


def test_a_tick_redraws_one_plot_round_robin_so_the_loop_is_never_held_long(panel):
    panel._timer.stop()  # drive the ticks by hand
    keys = ["sft/loss", "sft/lr", "sft/grad_norm"]
    for k in keys:
        panel.add_points("a", k, [0.0, 1.0], [T0, T0 + 1], [1.0, 2.0])
    panel.refresh()  # a refresh (export, tab switch) still draws everything at once
    assert all(len(panel.curve_data("a", k)[0]) == 2 for k in keys)

    def grow_all(step: float) -> None:
        for k in keys:
            panel.add_points("a", k, [step], [T0 + step], [0.5])

    def drawn() -> list[int]:
        return [len(panel.curve_data("a", k)[0]) for k in keys]

    grow_all(2.0)
    panel._tick()
    assert drawn() == [3, 2, 2]  # one plot per tick
    grow_all(3.0)  # sft/loss changed again, but the others waited longer
    panel._tick()
    panel._tick()
    assert drawn() == [3, 4, 4]
    panel._tick()
    assert drawn() == [4, 4, 4]


def test_a_tick_repaints_only_the_plot_it_redrew_and_once(panel, qtbot):
    from PySide6.QtCore import QEvent, QObject

    class PaintCounter(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Type.Paint:
                self.n += 1
            return False

    panel._timer.stop()
    keys = ["sft/loss", "sft/lr", "sft/grad_norm"]
    for k in keys:
        panel.add_points("a", k, np.arange(50.0), T0 + np.arange(50.0), np.arange(50.0) ** 0.5)
    panel.resize(1200, 600)
    panel.show()
    qtbot.waitExposed(panel)
    panel.refresh()
    counters = {}
    for k in keys:
        counters[k] = PaintCounter()
        panel.dashboard("SFT").views[k].viewport().installEventFilter(counters[k])

    def quiet() -> bool:  # first paints done, axes settled: 100 ms without a paint
        before = sum(c.n for c in counters.values())
        qtbot.wait(100)
        return sum(c.n for c in counters.values()) == before

    qtbot.waitUntil(quiet, timeout=5000)
    for c in counters.values():
        c.n = 0
    for k in keys:  # the x range grows on every plot (y stays inside: axes keep their widths)
        panel.add_points("a", k, [50.0], [T0 + 50], [3.0])
    panel._tick()
    qtbot.waitUntil(lambda: counters["sft/loss"].n > 0, timeout=5000)
    qtbot.waitUntil(quiet, timeout=5000)  # and any second paint would have come by now
    # the oldest-drawn plot (sft/loss) repainted in one pass: its axes settled before the paint
    assert [counters[k].n for k in keys] == [1, 0, 0]


def test_the_dashboards_get_most_of_the_height(panel, qtbot):
    panel.add_events(sft_run(5).events(), run="a")
    panel.resize(1200, 760)
    panel.show()
    qtbot.waitExposed(panel)
    panel.refresh()
    alerts = panel.findChild(QListWidget, "alerts")
    assert panel.tabs.height() > 3 * alerts.height() > 0


def test_many_plots_scroll_instead_of_shrinking_and_the_png_has_them_all(panel, qtbot):
    from gui.panels.monitor import MIN_PLOT_SIZE, PRESETS

    rl_keys = PRESETS["RL"][0]
    for key in rl_keys:
        panel.add_points("a", key, [0.0, 1.0], [T0, T0 + 1], [1.0, 2.0])
    panel.resize(1200, 700)
    panel.show()
    qtbot.waitExposed(panel)
    panel.tabs.setCurrentWidget(panel.dashboard("RL"))
    panel.refresh()
    qtbot.wait(50)
    board = panel.dashboard("RL")
    assert len(board.views) == len(rl_keys) == 15
    assert min(v.height() for v in board.views.values()) >= MIN_PLOT_SIZE[1]
    assert panel.minimumSizeHint().height() < 700  # the grid scrolls, the panel does not grow
    assert board.scroll.verticalScrollBar().maximum() > 0
    image = panel.render_png()
    assert image.height() >= 5 * MIN_PLOT_SIZE[1]  # every row, scrolled out of view or not


def test_a_metric_key_from_the_cluster_is_refused_or_shown_as_text_not_rich_text(panel):
    key = "sft/<b>bold</b><img src='file:///etc/passwd'>\u202eevil"
    s = Stream("sft").metric(0, T0, x=1.0)
    s.lines[-1] = s.lines[-1].replace('"x"', json.dumps(key))
    events, _, _, bad = parse_lines((s.lines[-1] + "\n").encode())
    assert (events, bad) == ([], 1)  # the event contract refuses such a name (METRIC_NAME_PATTERN)
    # and should one reach a chart, its title, axis label and tooltip are plain text
    # (pyqtgraph renders rich text). The title is no longer the raw key (issue #17) but words
    # made from it, so the tags show split at their slashes.
    plot = panel.dashboard("SFT").plot_for(key, "step")
    assert plot.titleLabel.item.toPlainText() == (
        "SFT <b>bold< b><img src='file: etc passwd'>\\u202eevil")
    assert plot.getAxis("left").label.toPlainText().strip() == "passwd'>\\u202eevil"
    tooltip = plot.titleLabel.toolTip()
    assert "<img" not in tooltip and "&lt;img src=&#x27;file:///etc/passwd" in tooltip


# --- issue #17: charts a new user can read --------------------------------------------------


def _shown(panel, qtbot, size=(1200, 760)):
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    panel.refresh()
    qtbot.wait(50)  # a layout pass: axes and legends take their sizes


def _pixels_of(image, colour: str, tolerance: int = 40) -> int:
    from PySide6.QtGui import QColor

    target = QColor(colour)
    rgb = image.convertToFormat(image.Format.Format_RGB32)  # kept: the array views its memory
    arr = np.frombuffer(rgb.constBits(), dtype=np.uint8).reshape(
        rgb.height(), rgb.bytesPerLine() // 4, 4)
    b, g, r = (arr[..., i].astype(int) for i in range(3))
    return int(((abs(r - target.red()) + abs(g - target.green()) + abs(b - target.blue()))
                < tolerance).sum())


def _drawn_tick_strings(axis) -> list[str]:
    """The labels the axis paints now, as ``AxisItem.generateDrawSpecs`` asks for them."""
    lo, hi = axis.range
    length = axis.height() if axis.orientation in ("left", "right") else axis.width()
    out = []
    for spacing, values in axis.tickValues(lo, hi, length):
        out += axis.tickStrings(values, axis.autoSIPrefixScale * axis.scale, spacing)
    return [s for s in out if s]


def test_a_series_with_one_point_is_drawn(panel, qtbot):
    panel.add_points("a", "synth/tasks_done", [0.0], [T0], [0.0])
    panel.tabs.setCurrentWidget(panel.dashboard("Synthesis"))
    _shown(panel, qtbot)
    view = panel.dashboard("Synthesis").views["synth/tasks_done"]
    view.getPlotItem().legend.hide()  # its sample line is in the run's colour too
    data_area = view.mapFromScene(view.getPlotItem().vb.sceneBoundingRect()).boundingRect()
    image = view.grab(data_area.intersected(view.rect())).toImage()
    assert _pixels_of(image, "#1f77b4") >= 9  # a dot, not a blank chart


def test_a_flat_series_is_drawn_at_its_value_not_on_a_zero_tick(panel, qtbot):
    panel.add_points("a", "sft/lr", [0.0, 1.0, 2.0], [T0, T0 + 1, T0 + 2], [1e-5] * 3)
    _shown(panel, qtbot)
    plot = panel.plot_item("sft/lr")
    lo, hi = plot.vb.viewRange()[1]
    # +-5% of the value: not +-0.5 (the line on a "0" tick), nor 1e-20 tall (the EMA's float
    # noise drawn as a slope, and "1e-05" written on every tick)
    assert 0.9e-5 < lo < 0.99e-5 and 1.01e-5 < hi < 1.1e-5
    strings = _drawn_tick_strings(plot.getAxis("left"))
    assert "1e-5" in strings and len(strings) == len(set(strings))


def test_charts_have_human_titles_and_axis_labels_with_units(panel):
    keys = ["sft/loss", "sft/lr", "llm/tokens_per_s", "gpu/node1/0/mem_used",
            "custom/tokens_seen"]
    for key in keys:
        panel.add_points("a", key, [0.0, 1.0], [T0, T0 + 1], [1.0, 2.0])
    panel.refresh()

    def texts(key):
        plot = panel.plot_item(key)
        return (plot.titleLabel.item.toPlainText(),
                plot.getAxis("left").label.toPlainText().strip(),
                plot.getAxis("bottom").label.toPlainText().strip())

    assert texts("sft/loss") == ("SFT loss", "loss", "step")
    assert texts("sft/lr")[:2] == ("SFT learning rate", "learning rate")
    assert texts("llm/tokens_per_s")[1] == "tokens / s"
    assert texts("gpu/node1/0/mem_used") == ("GPU 0 memory used on node1", "memory (GiB)", "step")
    assert texts("custom/tokens_seen")[:2] == ("Custom tokens seen", "tokens seen")
    assert panel.plot_item("sft/loss").getAxis("left").isVisible()


def test_tick_text_for_the_issues_examples():
    from gui.charts import format_ticks, format_value

    assert format_ticks([0.2113636421020400, 0.21136364210204005], 1e-17) == ["", "0.2114"]
    assert format_ticks([12.00000000000002], 1e-14) == ["12"]
    assert format_ticks([-1.1e-17, 0.25, 0.5], 0.25) == ["0.00", "0.25", "0.50"]
    assert format_ticks([0.0, 0.5, 1.0], 0.5) == ["0.0", "0.5", "1.0"]
    assert format_ticks([0, 2e-6, 4e-6], 2e-6) == ["0", "2e-6", "4e-6"]
    assert format_ticks([8000, 9000, 10000, 11000], 1000) == ["8000", "9000", "10000", "11000"]
    # ticks finer than 4 digits: one label, on the tick it names
    assert format_ticks([8999.6, 8999.8, 9000.0, 9000.2], 0.2) == ["", "", "9000", ""]
    assert [format_value(v) for v in (0.2113636421020400, 12.00000000000002, 1e-5, 12345.6)] \
        == ["0.2114", "12", "1e-5", "12346"]


def test_axes_print_no_float_noise_and_no_si_scale(panel, qtbot):
    n = 50
    steps = np.arange(n) * 1000.0  # steps in the thousands: pyqtgraph wrote "step (x0.001)"
    panel.add_points("a", "sft/loss", steps, T0 + steps, 0.2113636421020400
                     + np.tile([0.0, 5.551115123125783e-17], n // 2))  # flat but for noise
    panel.add_points("a", "sft/grad_norm", steps, T0 + steps, np.linspace(0.001, 0.004, n))
    panel.add_points("a", "sft/eta_s", steps, T0 + steps, 12.00000000000002 + steps * 0)
    _shown(panel, qtbot)
    for key in ("sft/loss", "sft/grad_norm", "sft/eta_s"):
        plot = panel.plot_item(key)
        for side in ("left", "bottom"):
            axis = plot.getAxis(side)
            assert "(x" not in axis.labelString(), (key, side, axis.labelString())
            strings = _drawn_tick_strings(axis)
            assert strings, (key, side)
            for s in strings:
                digits = s.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
                assert len(digits.rstrip("0") if "." not in s else digits) <= 5, (key, side, s)
    assert "10000" in _drawn_tick_strings(panel.plot_item("sft/loss").getAxis("bottom"))


def test_the_legend_sits_under_the_data_and_inside_the_chart(panel, qtbot):
    for run in ("a", "b", "a-long-run-name-with-many-words"):
        panel.add_points(run, "sft/loss", np.arange(100.0), T0 + np.arange(100.0),
                         np.linspace(2, 0.5, 100))
    _shown(panel, qtbot)
    view = panel.dashboard("SFT").views["sft/loss"]
    plot = view.getPlotItem()
    legend = plot.legend.sceneBoundingRect()
    data = plot.vb.sceneBoundingRect()
    assert [label.text for _, label in plot.legend.items][:2] == ["a", "b"]
    assert not legend.intersects(data)
    assert legend.top() >= plot.getAxis("bottom").sceneBoundingRect().bottom() - 1
    assert view.sceneRect().contains(legend)  # not cut


def _move_mouse(view, x: float, y: float) -> None:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    scene_pos = view.getPlotItem().vb.mapViewToScene(QPointF(x, y))
    local = QPointF(view.mapFromScene(scene_pos))
    event = QMouseEvent(QEvent.Type.MouseMove, local, QPointF(view.viewport().mapToGlobal(local)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), event)


def test_hovering_a_chart_reads_out_x_and_each_runs_value(panel, qtbot):
    panel.set_smoothing(0.0)  # the readout's value is then the point itself
    steps = np.arange(0.0, 200.0, 10.0)
    panel.add_points("a", "sft/loss", steps, T0 + steps, 2.0 - steps / 100)
    panel.add_points("b", "sft/loss", steps, T0 + steps, 3.0 - steps / 100)
    _shown(panel, qtbot)
    view = panel.plot_view("sft/loss")
    assert view.readout_text == ""
    _move_mouse(view, 101.0, 1.0)  # nearest reading: step 100
    qtbot.waitUntil(lambda: view.readout_text != "", timeout=2000)
    lines = view.readout_text.splitlines()
    assert lines[0] == "step 100"
    assert any(line.endswith("a: 1") for line in lines), lines
    assert any(line.endswith("b: 2") for line in lines), lines
    panel.set_run_shown("b", False)  # a hidden run is not read out
    _move_mouse(view, 49.0, 1.0)
    qtbot.waitUntil(lambda: view.readout_text.startswith("step 50"), timeout=2000)
    assert not any("b:" in line for line in view.readout_text.splitlines())
    _move_mouse(view, -1e6, 1.0)  # off the data area: the readout goes
    qtbot.waitUntil(lambda: view.readout_text == "", timeout=2000)


def _wheel(view, ctrl: bool) -> None:
    """One notch down, through the window system as a real wheel (QTest): a spontaneous event,
    which Qt hands on to the parents when the chart ignores it (a sent one it would not)."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    window = view.window()
    at = view.viewport().mapTo(window, view.viewport().rect().center())
    mods = Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier
    QTest.wheelEvent(window.windowHandle(), at, QPoint(0, -120), QPoint(0, 0), mods)


def test_the_wheel_scrolls_the_grid_and_ctrl_wheel_zooms_the_chart(panel, qtbot):
    from gui.panels.monitor import PRESETS

    for key in PRESETS["RL"][0]:
        panel.add_points("a", key, np.arange(20.0), T0 + np.arange(20.0), np.arange(20.0))
    panel.tabs.setCurrentWidget(panel.dashboard("RL"))
    _shown(panel, qtbot, (1200, 700))
    board = panel.dashboard("RL")
    bar = board.scroll.verticalScrollBar()
    view = board.views["rl/reward/mean"]
    qtbot.wait(200)  # axes settled: the view range moves no more on its own
    before = view.getPlotItem().vb.viewRange()
    assert bar.value() == 0 and bar.maximum() > 0
    _wheel(view, ctrl=False)
    assert bar.value() > 0  # the page scrolled
    qtbot.wait(50)
    assert view.getPlotItem().vb.viewRange() == before  # the chart did not zoom
    scrolled = bar.value()
    _wheel(view, ctrl=True)
    assert bar.value() == scrolled
    after = view.getPlotItem().vb.viewRange()
    assert after[0][1] - after[0][0] != pytest.approx(before[0][1] - before[0][0])


def test_a_summary_table_shows_last_min_and_max_per_metric_and_run(panel, qtbot):
    s = Stream("sft")
    for i, (loss, lr) in enumerate([(2.0, 1e-5), (0.5, 2e-5), (float("nan"), 2e-5), (0.8, 1e-5)]):
        s.metric(i * 10, T0 + i, sft__loss=loss, sft__lr=lr)
    panel.add_events(s.events(), run="a")
    panel.add_events(sft_run(3, loss0=3.0).events(), run="b")
    panel.add_points("a", "rl/kl", [0.0], [T0], [0.1])  # another tab: not in SFT's table
    _shown(panel, qtbot)
    from gui.widgets.metric_summary import COLUMNS

    assert tuple(panel.summary.horizontalHeaderItem(i).text() for i in range(6)) == COLUMNS
    rows = panel.summary.cell_texts()
    assert ["SFT loss", "a", "0.8", "0.5", "2", "30"] in rows  # NaN is no minimum
    assert ["SFT learning rate", "a", "1e-5", "1e-5", "2e-5", "30"] in rows
    assert ["SFT loss", "b", "2.5", "2.5", "3", "20"] in rows
    assert not any(r[0] == "RL KL divergence" for r in rows)
    panel.tabs.setCurrentWidget(panel.dashboard("RL"))
    assert panel.summary.cell_texts() == [["RL KL divergence", "a", "0.1", "0.1", "0.1", "0"]]
    # the timer keeps it current
    panel.add_points("a", "rl/kl", [1.0], [T0 + 1], [0.3])
    qtbot.waitUntil(lambda: panel.summary.cell_texts()[0][2:5] == ["0.3", "0.1", "0.3"],
                    timeout=3000)


def test_the_run_picker_overlays_the_runs_that_are_checked(panel, qtbot):
    from PySide6.QtCore import Qt

    panel.add_events(sft_run(10, loss0=2.0).events(), run="a")
    panel.add_events(sft_run(10, loss0=3.0).events(), run="b")
    panel.add_events(Stream("synth").alert("slow", T0).events(), run="c")  # no metrics yet
    _shown(panel, qtbot)
    picker = panel.run_picker
    assert picker.runs == ["a", "b", "c"]
    item_b = picker.item(1)
    assert item_b.text() == "b" and item_b.checkState() == Qt.CheckState.Checked
    item_b.setCheckState(Qt.CheckState.Unchecked)  # what a click on its box does
    assert panel.shown_runs == ["a", "c"]
    raw_b, smooth_b = panel.plot_view("sft/loss").runs["b"]
    assert not raw_b.isVisible() and not smooth_b.isVisible()
    assert panel.plot_view("sft/loss").runs["a"][1].isVisible()
    panel.refresh()
    assert {r[1] for r in panel.summary.cell_texts()} == {"a"}
    # new points of a hidden run wait; checked again, it is drawn with them
    panel.add_points("b", "sft/loss", [500.0], [T0 + 500], [0.1])
    panel.refresh()
    assert len(panel.curve_data("b", "sft/loss")[0]) == 10
    item_b.setCheckState(Qt.CheckState.Checked)
    panel.refresh()
    assert smooth_b.isVisible() and len(panel.curve_data("b", "sft/loss")[0]) == 11
    panel.set_run_shown("a", False)  # from code, the checkbox follows
    assert picker.item(0).checkState() == Qt.CheckState.Unchecked
    # a click on a legend sample (pyqtgraph toggles that curve) hides the run everywhere
    panel.set_run_shown("a", True)
    legend = panel.plot_item("sft/lr").legend
    sample_b = next(sample for sample, label in legend.items if label.text == "b")
    sample_b.mouseClickEvent(_left_click())
    assert picker.item(1).checkState() == Qt.CheckState.Unchecked
    assert not panel.plot_view("sft/loss").runs["b"][1].isVisible()


def _left_click():
    """A left click as pyqtgraph hands it to an item (its MouseClickEvent, faked)."""
    from PySide6.QtCore import Qt

    class Click:
        def button(self):
            return Qt.MouseButton.LeftButton

        def accept(self):
            pass

    return Click()


def _healthy_run_with_pauses() -> Stream:
    """A stage as the issue saw it: events ~0.074 s apart, and long quiet spells (a model load,
    generation rounds, an evaluation, a checkpoint) of 45 s to 110 s, about once a minute."""
    rng = np.random.default_rng(7)
    s = Stream("rl").stage_status("started", T0)
    t, step = T0, 0
    pauses = [95.0, 60.0, 75.0, 110.0, 45.0, 90.0, 100.0, 70.0, 105.0]  # load first
    for pause in pauses:
        t += pause
        for _ in range(200):
            t += float(rng.exponential(0.074))
            s.metric(step, t, rl__reward__mean=0.5)
            step += 1
    return s


def _replay(panel: MonitorPanel, clock: FakeClock, events, every_s: float = 1.0) -> None:
    """Feed events as they would arrive, checking stalls every ``every_s`` of simulated time."""
    for e in events:
        while clock.now + every_s < e.t:
            clock.now += every_s
            panel.check_stalls()
        clock.now = max(clock.now, e.t)
        panel.add_events([e], run="a")


def test_a_healthy_run_with_long_pauses_raises_no_stall_alert(qtbot):
    clock = FakeClock(T0)
    p = MonitorPanel(clock=clock)
    qtbot.addWidget(p)
    p._timer.stop()  # the replay checks on simulated time
    s = _healthy_run_with_pauses()
    _replay(p, clock, s.events())
    assert p.alerts == []


def test_a_real_stall_alerts_once(qtbot):
    clock = FakeClock(T0)
    p = MonitorPanel(clock=clock)
    qtbot.addWidget(p)
    p._timer.stop()
    _replay(p, clock, _healthy_run_with_pauses().events())
    last = clock.now
    clock.now = last + 160  # > the 110 s pause seen, but < 1.5x it: still its rhythm
    p.check_stalls()
    assert p.alerts == []
    for minute in range(3, 30):  # much longer than anything seen, checked again and again
        clock.now = last + 60 * minute
        p.check_stalls()
    assert len(p.alerts) == 1
    assert p.alerts[0].startswith("[warning] run a / rl: stalled, no event for 3.0 min")
    assert "longest pause so far was 1.8 min" in p.alerts[0]


def test_a_stage_stuck_while_starting_alerts_after_the_startup_limit(qtbot):
    clock = FakeClock(T0)
    p = MonitorPanel(clock=clock)
    qtbot.addWidget(p)
    p._timer.stop()
    p.add_events(Stream("sft").stage_status("started", T0).events(), run="a")
    clock.now = T0 + 20 * 60  # a slow model load: fine
    p.check_stalls()
    assert p.alerts == []
    clock.now = T0 + 30 * 60 + 1  # STALL_STARTUP_S
    p.check_stalls()
    p.check_stalls()
    assert p.alerts == ["[warning] run a / sft: stalled, no event for 30.0 min (since it started)"]
