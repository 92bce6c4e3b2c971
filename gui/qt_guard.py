"""A guard against a reference-count bug in this PySide6 build: ``pin_none()``.

PySide6 6.12 on Python 3.11 drops one reference to ``None`` on almost every call Qt makes into
Python (measured: ~1 per ``processEvents()``, ~60 per ``grab()`` of a pyqtgraph chart, ~70
per 20 ms of a live plot window). ``None`` starts with ~5,000 references; when they run out
CPython frees it and aborts ("Fatal Python error: none_dealloc") — a live Monitor panel would
die within minutes. Python 3.12 made ``None`` immortal, so the bug is harmless there.

``pin_none()`` gives ``None`` 2**40 extra references, which at 100,000 lost per second last
over 300 years: in effect the immortality 3.12 has. It is a no-op on 3.12+. The app calls it
before creating the QApplication (gui/app.py), the GUI tests at import (tests/gui/conftest.py).
Left out: finding the leaking call in PySide6 (report it upstream; remove this when fixed).
"""

from __future__ import annotations

import ctypes
import sys

PINNED_REFS = 1 << 40


def pin_none() -> None:
    """Make ``None`` effectively immortal on Python < 3.12 (idempotent enough: only ever adds)."""
    if sys.version_info >= (3, 12) or sys.getrefcount(None) > PINNED_REFS:
        return
    # ob_refcnt is the first field of every object in CPython's (non-debug) layout.
    ctypes.c_ssize_t.from_address(id(None)).value += PINNED_REFS
