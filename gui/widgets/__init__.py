"""Panels and widgets of the desktop app, one file per thing shown.

Each panel can be shown alone with sample data: ``python -m gui.widgets.<module>``.
Widgets never do I/O; they are handed data (a config, events, rows) by their caller.
"""
