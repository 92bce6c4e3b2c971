"""Start the SynthSmith Studio desktop app: QApplication, main window, event loop.

Run it with ``synthsmith`` (see gui/cli.py) or ``python -m gui.app [PRESET.yaml]``.

``load_pipeline`` (remote/pipeline_edit.py) is the one place the app reads a pipeline config at startup: a small local
YAML read done before any widget exists, so widgets themselves never do I/O. A file that does
not load is not an error here: the window opens and the Pipeline panel lists the problems.

QT_QPA_PLATFORM is left to Qt (set it to ``offscreen`` for headless runs); Qt 6 handles
high-DPI scaling by itself.

Left out: a recent-files list (the Pipeline panel opens any file and the window remembers the
last config).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from gui.main_window import APP_NAME, ORG_NAME, MainWindow
from gui.qt_guard import pin_singletons
from remote.pipeline_edit import load_pipeline


def main(preset: Path | str | None = None) -> int:
    pin_singletons()  # PySide6 6.12 leaks None/True references on Python 3.11 (gui/qt_guard.py)
    # Qt gets only the program name: our own options were parsed by gui.cli already.
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG_NAME)
    app.setApplicationName(APP_NAME)
    window = MainWindow(load_pipeline(preset))
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
