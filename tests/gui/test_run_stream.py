"""remote/run_stream.py and its wiring: one run-stream model per run, filled by the Runs panel's
follower and read by the Monitor; any run opened in Monitor and Data from the Runs list, and a
run folder on this computer opened into both.

Run: .venv/bin/python -m pytest tests/gui/test_run_stream.py -q

The runs are real: ``Launcher.launch`` of the smoke preset's ``seeds`` stage on "This
computer" (the engine detached by the direct scheduler), and a run folder made by
``python -m engine run``; the window is the real MainWindow (offscreen).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QApplication

from engine.events import EventWriter, read_events
from engine.paths import ASSETS_DIR
from engine.schema import load_config
from gui.main_window import PANELS, MainWindow
from remote.launch import Launcher
from remote.pipeline_edit import load_pipeline
from remote.profiles import LOCAL
from remote.run_stream import RunStreams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sample_run import build_sample_run  # noqa: E402

SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"
REPO = Path(__file__).resolve().parents[2]
WAIT = 40_000


def engine_run(run_dir: Path, stages: str = "seeds") -> None:
    proc = subprocess.run([sys.executable, "-m", "engine", "run", "--config", str(SMOKE),
                           "--run-dir", str(run_dir), "--stages", stages], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture
def window(qtbot):
    w = MainWindow(load_pipeline(), poll_s=0.2,
                   confirm_host_key=lambda *_: pytest.fail("This computer has no host key"))
    qtbot.addWidget(w)
    yield w
    w.runs_panel.stop()
    deadline = time.monotonic() + 20
    while (w.runs_panel.busy() or (w._data is not None and w._data.busy())) \
            and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    w.close()
    assert QThreadPool.globalInstance().waitForDone(20_000)
    QApplication.processEvents()


# ---------------------------------------------------------------------------------------------
# The model alone (Qt-free), on a real run's events


def test_a_stream_hands_each_event_to_every_subscriber_once_and_then_lets_it_go(tmp_path):
    engine_run(tmp_path / "run")
    events = read_events(tmp_path / "run" / "events" / "seeds.0.jsonl")
    assert len(events) >= 4
    streams = RunStreams()
    s = streams.stream("r1")
    s.add(events[:2])  # not followed: only the book
    assert s.held() == [] and s.book.get("seeds").status == "running"
    s.follow(events)  # the whole history, once
    s.add(events)  # a re-read: nothing twice
    assert [e.seq for e in s.held()] == [e.seq for e in events]
    assert s.book.get("seeds").status == "completed" and s.book.get("seeds").done == 8
    assert streams.publish() == {}  # nobody reads yet: kept for the first subscriber
    got_a, got_b = [], []
    streams.subscribe(lambda rid, evs: got_a.append((rid, [e.seq for e in evs])))
    streams.subscribe(lambda rid, evs: got_b.append((rid, [e.seq for e in evs])))
    assert streams.publish() == {"r1": len(events)}
    assert got_a == got_b == [("r1", [e.seq for e in events])]
    assert s.held() == [] and s.published == len(events)  # handed over, not kept
    assert streams.publish() == {} and len(got_a) == 1


# ---------------------------------------------------------------------------------------------
# Runs and Monitor read the same streams


def test_two_runs_opened_from_the_runs_list_show_in_the_monitor_with_their_events(
        qtbot, window):
    session = window.session
    for rid in ("stream-a", "stream-b"):
        session.call(Launcher.launch, load_config(SMOKE), stages=["seeds"], run_id=rid)
    runs, monitor = window.runs_panel, window.monitor_panel
    qtbot.waitUntil(lambda: all(getattr(runs.run_view(r), "status", "") == "completed"
                                for r in ("stream-a", "stream-b")), timeout=WAIT)
    for rid in ("stream-a", "stream-b"):
        menu = runs.run_menu(rid)  # the row's context menu, as a right click opens it
        action = next(a for a in menu.actions() if a.text() == "Open in Monitor")
        action.trigger()
        assert window.sidebar.currentRow() == PANELS.index("Monitor")
    qtbot.waitUntil(lambda: {"stream-a", "stream-b"} <= set(monitor.run_picker.runs),
                    timeout=WAIT)
    qtbot.waitUntil(lambda: all("seeds/imported" in monitor.keys(r)
                                for r in ("stream-a", "stream-b")), timeout=WAIT)
    monitor.refresh()
    assert set(monitor.shown_runs) >= {"stream-a", "stream-b"}
    for rid in ("stream-a", "stream-b"):
        steps, _, values = monitor.series(rid, "seeds/imported")
        assert list(values) == [8.0]  # each event drawn once
        # One model: the row the Runs panel shows is read from the stream the Monitor got.
        stream = window.run_streams.get(rid)
        assert stream.followed and stream.book.get("seeds").done == 8
        assert runs.run_view(rid).stages[0].done == 8
    # Browse data from the same menu, for a run nobody followed before.
    browse = next(a for a in runs.run_menu("stream-a").actions() if a.text() == "Browse data")
    browse.trigger()
    qtbot.waitUntil(lambda: window.sidebar.currentRow() == PANELS.index("Data"), timeout=WAIT)
    run_dir = Path(session.registry.load("stream-a").clusters[LOCAL]["run_dir"])
    qtbot.waitUntil(lambda: window.data_panel.path == run_dir / "data" / "store.sqlite",
                    timeout=WAIT)


def test_a_run_folder_on_this_computer_opens_into_the_monitor_and_data(
        qtbot, window, tmp_path):
    folder = tmp_path / "my-cli-run"
    sample = build_sample_run(folder)  # a real store with tasks, verdicts, rollouts
    engine_run(folder, "seeds")  # real events (the store gains the seeds)
    window.runs_panel.open_folder(str(folder))
    monitor, data = window.monitor_panel, window.data_panel
    qtbot.waitUntil(lambda: "my-cli-run" in monitor.run_picker.runs, timeout=WAIT)
    qtbot.waitUntil(lambda: window.sidebar.currentRow() == PANELS.index("Monitor"),
                    timeout=WAIT)
    qtbot.waitUntil(lambda: "seeds/imported" in monitor.keys("my-cli-run"), timeout=WAIT)
    qtbot.waitUntil(lambda: data.model.rowCount() > 0, timeout=WAIT)
    assert data.path == sample.store_path
    assert any("Opened run folder" in n.text for n in window.notifications.notices())
    # A run still writing there: the next polls bring what its files gain.
    with EventWriter.for_run(folder / "events", "sft", 0) as w:
        w.stage("started")
        w.metric(1, {"sft/loss": 2.5})
        w.metric(2, {"sft/loss": 2.0})
    qtbot.waitUntil(lambda: "sft/loss" in monitor.keys("my-cli-run"), timeout=WAIT)
    qtbot.waitUntil(lambda: len(monitor.series("my-cli-run", "sft/loss")[2]) == 2,
                    timeout=WAIT)
    # Opened twice: the same stream, nothing drawn twice.
    window.runs_panel.open_folder(str(folder))
    qtbot.waitUntil(lambda: not window.runs_panel.busy(), timeout=WAIT)
    assert window.run_streams.run_ids().count("my-cli-run") == 1
    assert list(monitor.series("my-cli-run", "seeds/imported")[2]) == [8.0]
    errors = [n.text for n in window.notifications.notices() if n.level == "error"]
    assert errors == []


def test_a_folder_that_is_not_a_run_says_so(qtbot, window, tmp_path):
    window.runs_panel.open_folder(str(tmp_path))
    qtbot.waitUntil(lambda: any(n.level == "error" for n in window.notifications.notices()),
                    timeout=WAIT)
    text = [n.text for n in window.notifications.notices() if n.level == "error"][0]
    assert "is not a run folder" in text and "events/" in text
    assert os.fspath(tmp_path) in text
