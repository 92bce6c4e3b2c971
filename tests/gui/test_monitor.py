"""The Monitor panel: series from events, EMA, axes, overlays, exports, alerts, a screenshot.

    .venv/bin/python -m pytest tests/gui/test_monitor.py -q

Events are built as wire lines and decoded by ``engine.events.parse_lines``, the same path
``EventReader`` takes. Tests call ``panel.refresh()`` instead of waiting for the 10 Hz timer.
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
    assert rows[0] == ["run", "key", "step", "t", "value"]
    assert ["b", "rl/reward/mean", "1", repr(T0 + 5), "0.25"] in rows
    loss_rows = [r for r in rows[1:] if r[:2] == ["a", "sft/loss"]]
    assert [int(r[2]) for r in loss_rows] == [0, 10, 20]
    assert float(loss_rows[1][4]) == pytest.approx(2.0 / 1.1)


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
    # the timer checks too: a new event ends the stall, a second stall alerts again
    p.add_events(Stream("rl").metric(11, T0 + 31, rl__reward__mean=0.5).events(), run="a")
    clock.now = T0 + 31 + 11
    qtbot.waitUntil(lambda: len(p.alerts) == 2, timeout=2000)
    # a completed stage never stalls
    p.add_events(Stream("rl").stage_status("completed", T0 + 43).events(), run="a")
    clock.now = T0 + 1000
    p.check_stalls()
    assert len(p.alerts) == 2


def test_gpu_samples_never_count_as_a_stalled_stage(qtbot):
    clock = FakeClock(T0)
    p = MonitorPanel(clock=clock, stall_floor_s=1.0)
    qtbot.addWidget(p)
    s = Stream("gpu")
    for i in range(10):
        s.metric(i, T0 + 2.0 * (i + 1), **{"gpu__n1__0__util": 50.0})
    p.add_events(s.events(), run="a")
    clock.now = T0 + 1000  # sampling stopped with the run: not a stall
    p.check_stalls()
    assert p.alerts == []
    assert p.keys("a") == ["gpu/n1/0/util"]


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
    p = MonitorPanel()
    qtbot.addWidget(p)
    p.resize(1200, 760)
    rng = np.random.default_rng(1)
    for run, scale in (("baseline", 1.0), ("lr-2x", 0.8)):
        s = Stream("sft").stage_status("started", T0)
        for i in range(300):
            loss = scale * (2.5 * math.exp(-i / 80) + 0.4) + rng.normal(0, 0.08)
            s.metric(i, T0 + i * 1.5, sft__loss=loss, sft__lr=1e-5 * min(1, i / 30),
                     sft__grad_norm=abs(rng.normal(1, 0.2)),
                     sft__tokens_per_s=9000 + 300 * rng.normal())
        p.add_events(s.events(), run=run)
    p.add_events(Stream("synth").alert("JSON failure rate above 20%", T0, "json_fail").events(),
                 run="baseline")
    p.show()
    qtbot.waitExposed(p)
    p.refresh()
    qtbot.wait(300)  # a second layout pass: axes widen to fit their tick labels
    p.grab().save(str(screenshot_dir / "monitor.png"))
    assert (screenshot_dir / "monitor.png").stat().st_size > 1000


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
