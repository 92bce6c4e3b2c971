"""gui/qt_guard.py: with None pinned, a long-running Qt event loop does not abort."""

from __future__ import annotations

import subprocess
import sys

LOOP = """
import sys
from PySide6.QtWidgets import QApplication, QLabel
{pin}
app = QApplication([])
w = QLabel("x"); w.show()
before = sys.getrefcount(None)
for _ in range(20000):
    app.processEvents()
print(before - sys.getrefcount(None))
"""


def test_twenty_thousand_event_loop_turns_survive_with_none_pinned():
    code = LOOP.format(pin="from gui.qt_guard import pin_none; pin_none()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin"},
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr[-500:]
    assert sys.getrefcount(None) > 1 << 30 or sys.version_info >= (3, 12)  # pinned here too
