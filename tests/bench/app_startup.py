"""Startup time of the desktop app: from process start to the main window painted.

Run: ``QT_QPA_PLATFORM=offscreen python tests/bench/app_startup.py [RUNS]``. Starts RUNS
(default 5) fresh interpreters, side by side with the same number of bare ``python -c pass``
and ``import PySide6.QtWidgets`` runs, so the noise of this machine shows in the baseline.
Each app run creates the QApplication and the MainWindow with the embedded smoke preset
(profiles and runs in a temp dir), shows it and waits for the first paint. Prints one JSON
line: medians in seconds and ``window_over_qt_import`` (how much the app adds on top of Qt
itself). Target from the issue: the window opens in under two seconds.

A benchmark, not a test: pytest does not collect tests/bench, and nothing asserts a speed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

APP = r"""
import os, sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication
from gui.qt_guard import pin_singletons
pin_singletons()
from remote.pipeline_edit import load_pipeline
from gui.main_window import MainWindow
app = QApplication([])
window = MainWindow(load_pipeline())

class FirstPaint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint:
            print(time.time() - t0, flush=True)
            os._exit(0)  # skip teardown: only the time to a painted window counts
        return False

f = FirstPaint()
window.stack.currentWidget().installEventFilter(f)
window.show()
app.exec()
"""


def _time(code: str, env: dict[str, str], *, reports: bool = False) -> float:
    """Seconds from spawning ``python -c code`` to its exit, or to the time it printed
    (``reports``: the app prints the time of its first paint and exits at once)."""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code, repr(t0)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-1]) if reports else time.time() - t0


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=f"{tmp}/data",
                   XDG_CONFIG_HOME=f"{tmp}/config", SYNTHSMITH_DATA_DIR=f"{tmp}/desktop",
                   SYNTHSMITH_CONFIG_DIR=f"{tmp}/config/synthsmith",
                   XDG_RUNTIME_DIR=tmp)
        bare, qt, window = [], [], []
        for _ in range(runs):  # interleaved, so a busy spell hits all three alike
            bare.append(_time("pass", env))
            qt.append(_time("import PySide6.QtWidgets", env))
            window.append(_time(APP, env, reports=True))
    med = {k: statistics.median(v) for k, v in
           (("python_s", bare), ("qt_import_s", qt), ("window_painted_s", window))}
    print(json.dumps({**{k: round(v, 3) for k, v in med.items()},
                      "window_over_qt_import": round(med["window_painted_s"]
                                                     / med["qt_import_s"], 2),
                      "window_painted_max_s": round(max(window), 3), "runs": runs,
                      "target_s": 2.0}))


if __name__ == "__main__":
    main()
