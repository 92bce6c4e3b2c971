"""Responsiveness of the Monitor panel: a redraw of 1M points, event-loop latency under load.

Run: ``QT_QPA_PLATFORM=offscreen python tests/bench/gui_responsiveness.py [SECONDS]
[--against REV [--rounds N]]``. Prints
one JSON line, ``{"redraw_1m_points_s": ..., "event_loop_latency_p95_s": ..., ...}``:

- ``redraw_1m_points_s``: median of 5 of (setData of a 1,000,000-point raw and smoothed curve
  + a forced full repaint via ``grab()`` of the plot widget), pyqtgraph's peak downsampling
  and clip-to-view on as in the panel. ``grab_only_1m_points_s`` is the repaint alone.
- ``event_loop_latency_p95_s``: while a feeder timer pushes 10,000 metric events/s (100 every
  10 ms, three keys each) into a shown ``MonitorPanel`` for SECONDS (default 3), how late a
  10 ms precise QTimer fires, p95 (and max), in seconds. The panel's own 10 Hz redraws happen
  on the same loop, so their cost is in it.

``--against REV`` measures this tree's Monitor and ``gui/panels/monitor.py`` as of git REV side by
side instead: ROUNDS (default 4) alternating runs of each in fresh processes, then one JSON line
of the medians of both and their ratio (this tree / REV), so a change is judged on one machine
in one sitting (this machine's absolute times vary by 2x from day to day).

A benchmark, not a test: pytest does not collect tests/bench, and nothing asserts a speed.
Targets from the issue: redraw < 0.05 s, latency p95 < 0.05 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEvent, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from engine.events import parse_lines  # noqa: E402
from gui.qt_guard import pin_singletons  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

pin_singletons()  # as the app does: PySide6 6.12 on Python 3.11 leaks None/True references

N_POINTS = 1_000_000
EVENTS_PER_S = 10_000
FEED_EVERY_MS = 10


def _redraw_1m(app: QApplication) -> tuple[float, float]:
    from gui.panels.monitor import MonitorPanel

    panel = MonitorPanel()
    panel.resize(1200, 760)
    panel.show()
    steps = np.arange(N_POINTS, dtype=np.float64)
    rng = np.random.default_rng(0)
    values = 2.0 * np.exp(-steps / 2e5) + rng.normal(0, 0.05, N_POINTS)
    panel.add_points("bench", "sft/loss", steps, 1.7e9 + steps * 0.01, values)
    panel.refresh()
    app.processEvents()
    widget = panel.dashboard("SFT")  # the tab: its one plot view
    widget.grab()  # first paint: fonts, caches
    full, grab_only = [], []
    for i in range(5):
        # new data each time (a live curve grows), so nothing is served from a cache
        panel.add_points("bench", "sft/loss", [N_POINTS + i], [1.8e9], [1.0])
        start = time.perf_counter()
        panel.refresh()
        mid = time.perf_counter()
        widget.grab()
        end = time.perf_counter()
        full.append(end - start)
        grab_only.append(end - mid)
    _dispose(app, panel)
    return statistics.median(full), statistics.median(grab_only)


def _dispose(app: QApplication, panel: QWidget) -> None:
    # Delete widgets while Qt is fully alive: leaving them to interpreter shutdown crashed
    # PySide6 in its final garbage collection.
    panel.close()
    panel.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


def _events(n: int) -> list:
    lines = [
        json.dumps({"v": 1, "seq": i, "t": 1.7e9 + i / EVENTS_PER_S, "stage": "sft", "rank": 0,
                    "kind": "metric", "step": i,
                    "data": {"sft/loss": 2.0 / (1 + i * 1e-4), "sft/lr": 1e-5,
                             "sft/grad_norm": 1.0 + (i % 7) * 0.01}})
        for i in range(n)
    ]
    events, _, _, _ = parse_lines(("\n".join(lines) + "\n").encode())
    return events


def _latency_under_load(app: QApplication, seconds: float) -> tuple[float, float, int]:
    from gui.panels.monitor import MonitorPanel

    events = _events(int(EVENTS_PER_S * seconds) + EVENTS_PER_S)
    panel = MonitorPanel(clock=lambda: 1.7e9)
    panel.resize(1200, 760)
    panel.show()
    app.processEvents()
    per_tick = EVENTS_PER_S * FEED_EVERY_MS // 1000
    fed = [0]

    def feed() -> None:
        # Catch up to the wall clock, so a late timer still delivers 10,000 events/s.
        due = min(len(events), int(clock.nsecsElapsed() / 1e9 * EVENTS_PER_S) + per_tick)
        i = fed[0]
        if due > i:
            panel.add_events(events[i:due], run="bench")
            fed[0] = due

    clock = QElapsedTimer()
    clock.start()
    lateness: list[float] = []
    last = [clock.nsecsElapsed()]

    def probe() -> None:
        now = clock.nsecsElapsed()
        lateness.append(max(0.0, (now - last[0]) / 1e9 - 0.010))
        last[0] = now

    feeder = QTimer()
    feeder.setTimerType(Qt.TimerType.PreciseTimer)
    feeder.timeout.connect(feed)
    prober = QTimer()
    prober.setTimerType(Qt.TimerType.PreciseTimer)
    prober.setInterval(10)
    prober.timeout.connect(probe)
    loop = QEventLoop()
    feeder.start(FEED_EVERY_MS)
    prober.start()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    feeder.stop()
    prober.stop()
    _dispose(app, panel)
    lateness = lateness[1:]  # the first interval starts before the loop runs
    return float(np.percentile(lateness, 95)), max(lateness), fed[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seconds", nargs="?", type=float, default=3.0)
    parser.add_argument("--against", metavar="REV", help="compare with the Monitor of git REV")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--monitor-from", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.against:
        return _compare(args.against, args.seconds, args.rounds)
    if args.monitor_from:
        _use_monitor_module(Path(args.monitor_from))
    app = QApplication.instance() or QApplication([])
    redraw, grab_only = _redraw_1m(app)
    p95, worst, fed = _latency_under_load(app, args.seconds)
    print(json.dumps({
        "redraw_1m_points_s": round(redraw, 4),
        "grab_only_1m_points_s": round(grab_only, 4),
        "event_loop_latency_p95_s": round(p95, 4),
        "event_loop_latency_max_s": round(worst, 4),
        "events_fed": fed,
        "events_per_s": round(fed / args.seconds),
    }))
    sys.stdout.flush()
    # Skip interpreter shutdown: its final garbage collection still trips the PySide6 None bug.
    os._exit(0)


def _use_monitor_module(path: Path) -> None:
    """Import ``path`` as gui.panels.monitor (an older revision's file, rest of this tree)."""
    spec = importlib.util.spec_from_file_location("gui.panels.monitor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gui.panels.monitor"] = module
    spec.loader.exec_module(module)


def _compare(rev: str, seconds: float, rounds: int) -> int:
    shown = subprocess.run(["git", "show", f"{rev}:gui/panels/monitor.py"], cwd=REPO,
                           capture_output=True, text=True)
    if shown.returncode != 0:
        print(f"cannot read gui/panels/monitor.py at {rev!r}: {shown.stderr.strip()}",
              file=sys.stderr)
        return 2
    keys = ("redraw_1m_points_s", "event_loop_latency_p95_s", "event_loop_latency_max_s")
    results: dict[str, list[dict]] = {"base": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "monitor.py"
        old.write_text(shown.stdout)
        for _ in range(rounds):
            for name, extra in (("base", ["--monitor-from", str(old)]), ("this", [])):
                run = subprocess.run([sys.executable, __file__, str(seconds), *extra],
                                     capture_output=True, text=True, cwd=REPO)
                lines = run.stdout.strip().splitlines()
                if run.returncode != 0 or not lines:
                    print(f"{name} run failed (exit {run.returncode}): {run.stderr[-2000:]}",
                          file=sys.stderr)
                    return 1
                results[name].append(json.loads(lines[-1]))
    summary: dict[str, object] = {"against": rev, "rounds": rounds}
    for key in keys:
        base = statistics.median(r[key] for r in results["base"])
        this = statistics.median(r[key] for r in results["this"])
        summary[key] = {"base": round(base, 4), "this": round(this, 4),
                        "ratio": round(this / base, 3)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
