"""Start the SynthSmith Studio desktop app: QApplication, main window, event loop.

Run it with ``synthsmith`` (see gui/cli.py) or ``python -m gui.app [PRESET.yaml]``.

``load_pipeline`` is the one place the app reads a pipeline config at startup: a small local
YAML read done before any widget exists, so widgets themselves never do I/O. A file that does
not load is not an error here: the window opens and the Pipeline panel lists the problems.

QT_QPA_PLATFORM is left to Qt (set it to ``offscreen`` for headless runs); Qt 6 handles
high-DPI scaling by itself.

Left out: a recent-files list (the Pipeline panel opens any file and the window remembers the
last config).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QApplication

import engine
from engine.schema import ConfigError, ConfigProblem, PipelineConfig, load_config
from gui.main_window import APP_NAME, ORG_NAME, MainWindow
from gui.qt_guard import pin_singletons

ASSETS = Path(engine.__file__).resolve().parent.parent / "assets"
SMOKE_PRESET = ASSETS / "presets" / "smoke-cpu.yaml"


@dataclass(frozen=True)
class LoadedPipeline:
    """Result of reading a config file: either ``config`` or a non-empty ``problems``."""

    source: Path
    config: PipelineConfig | None = None
    problems: tuple[ConfigProblem, ...] = ()


def load_pipeline(path: Path | str | None = None, overrides: Sequence[str] = ()) -> LoadedPipeline:
    """Read and validate a pipeline config; the smoke preset when ``path`` is None.

    A missing or unreadable file comes back as problems too (``load_config`` reports it so).
    """
    source = Path(path) if path is not None else SMOKE_PRESET
    try:
        return LoadedPipeline(source, config=load_config(source, overrides))
    except ConfigError as exc:
        return LoadedPipeline(source, problems=tuple(exc.problems))


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
