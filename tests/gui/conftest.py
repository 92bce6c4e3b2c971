"""Fixtures for the GUI tests (pytest-qt, offscreen).

    .venv/bin/python -m pytest tests/gui -q

The whole folder is skipped where PySide6 is absent (the engine/remote CI job runs without Qt).
Every test gets its own QSettings location under tmp_path, so the user's real settings are never
read or written (nor its cluster profiles and runs: ``app_dirs``), and fails if it leaves a visible top-level window or a running QThread behind
(napari's conftest does the same). Screenshots go to <repo>/artifacts/screenshots (git-ignored).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything loads a Qt platform

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("PySide6")

from gui.qt_guard import pin_singletons  # noqa: E402

pin_singletons()  # a long GUI run would otherwise free None or True (gui/qt_guard.py)

from PySide6.QtCore import QSettings, QThread, QThreadPool  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def settings_dir(tmp_path: Path) -> Path:
    """Point every QSettings (user and system scope, ini and native format) at tmp_path."""
    root = tmp_path / "qsettings"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(root / "user"))
        QSettings.setPath(fmt, QSettings.Scope.SystemScope, str(root / "system"))
    return root


@pytest.fixture(autouse=True)
def app_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cluster profiles, run records and This computer's workdir under tmp_path: a test never
    reads or writes the user's ~/.config/synthsmith or ~/.local/share/synthsmith."""
    from remote.profiles import CONFIG_ENV
    from remote.run_registry import DATA_ENV

    root = tmp_path / "app"
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    monkeypatch.setenv(DATA_ENV, str(root / "desktop"))
    monkeypatch.setenv(CONFIG_ENV, str(root / "config" / "synthsmith"))
    return root


@pytest.fixture(autouse=True)
def _fail_on_leftover_windows_and_threads(qapp, monkeypatch):
    started: list[QThread] = []
    original_start = QThread.start

    def recording_start(self, *args, **kwargs):
        started.append(self)
        return original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield

    windows = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    for w in windows:
        w.close()
    running = [t for t in started if t.isRunning()]
    for t in running:
        t.quit()
        t.wait(2000)
    pool = QThreadPool.globalInstance()
    pooled = pool.activeThreadCount()
    pool.waitForDone(2000)

    leftovers = [f"window {type(w).__name__} {w.windowTitle()!r}" for w in windows]
    leftovers += [f"thread {type(t).__name__}" for t in running]
    leftovers += [f"{pooled} QThreadPool task(s)"] if pooled else []
    if leftovers:
        pytest.fail("test left these running (close/register them with qtbot): "
                    + ", ".join(leftovers))


@pytest.fixture
def screenshot_dir() -> Path:
    path = REPO / "artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
