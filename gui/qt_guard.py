"""A guard against a reference-count bug in this PySide6 build: ``pin_singletons()``.

PySide6 6.12 on Python 3.11 drops references to ``None`` and ``True`` on calls Qt makes into
Python (measured: ~1 ``None`` per ``processEvents()``, ~60 per ``grab()`` of a pyqtgraph chart;
a live Monitor panel loses ~6,600 ``None`` and ~500 ``True`` references a second). Each starts
with a few thousand references; when they run out CPython frees the singleton and aborts
("Fatal Python error: none_dealloc" / "bool_dealloc"): a live Monitor died after ~10 s on
``True`` alone. Python 3.12 made these objects immortal, so the bug is harmless there.

``pin_singletons()`` gives ``None``, ``True`` and ``False`` 2**40 extra references each,
which at 100,000 lost per second last over 300 years: in effect the immortality 3.12 has. It is
a no-op on 3.12+. The app calls it before creating the QApplication (gui/app.py), the GUI tests
at import (tests/gui/conftest.py), the GUI benchmarks at start.
Left out: finding the leaking calls in PySide6 (report upstream; remove this when fixed).
"""

from __future__ import annotations

import ctypes
import sys

PINNED_REFS = 1 << 40
SINGLETONS = (None, True, False)


def pin_singletons() -> None:
    """Make None, True and False effectively immortal on Python < 3.12 (each pinned once)."""
    if sys.version_info >= (3, 12):
        return
    for obj in SINGLETONS:
        if sys.getrefcount(obj) < PINNED_REFS:
            # ob_refcnt is the first field of every object in CPython's (non-debug) layout.
            ctypes.c_ssize_t.from_address(id(obj)).value += PINNED_REFS
