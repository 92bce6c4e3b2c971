"""gui/qt_guard.py: with None, True and False pinned, a long-running Qt loop does not abort.

Each loop turn below costs this PySide6 build (6.12 on Python 3.11) about one reference to
``None`` (``processEvents``) and one to ``True`` (a pyqtgraph signal emit in
``prepareForPaint``); 20,000 turns outlast the few thousand each starts with, so without the
pin the child process dies with "none_dealloc" or "bool_dealloc".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOOP = """
import sys
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication
{pin}
app = QApplication([])
view = pg.PlotWidget()
view.plot([1, 2, 3])
view.show()
for _ in range(20000):
    app.processEvents()
    view.scene().prepareForPaint()
print("survived")
"""


def _loop(pin: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOOP.format(pin=pin)], capture_output=True,
                          text=True, timeout=120, cwd=str(REPO),
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin"})


def test_twenty_thousand_turns_of_a_live_chart_survive_with_the_singletons_pinned():
    out = _loop("from gui.qt_guard import pin_singletons; pin_singletons()")
    assert out.returncode == 0 and "survived" in out.stdout, out.stderr[-500:]
    if sys.version_info < (3, 12):  # pinned in this process too (tests/gui/conftest.py)
        assert all(sys.getrefcount(o) > 1 << 39 for o in (None, True, False))
