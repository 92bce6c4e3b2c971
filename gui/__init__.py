"""The SynthSmith Studio desktop app (PySide6 + pyqtgraph).

Widgets never do I/O; they call Qt-free functions in ``remote`` and ``engine`` through one
worker adapter.
"""
