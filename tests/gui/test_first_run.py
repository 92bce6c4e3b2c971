"""The first command's failure modes (issue 17): a window that cannot open says which system
packages it needs in one line, instead of Qt's "could not load the Qt platform plugin xcb".

    .venv/bin/python -m pytest tests/gui/test_first_run.py -q

A real shared library is built with gcc against a library that is then deleted, so ``ldd``
reports it missing exactly as it does for Qt's xcb plugin on a bare Debian.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from gui.cli import _window_problem, debian_package, missing_libraries


@pytest.mark.parametrize("soname, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"), ("libEGL.so.1", "libEGL1"),
])
def test_a_library_name_gives_its_debian_package(soname, package):
    assert debian_package(soname) == package


def test_a_library_the_loader_cannot_find_is_named(tmp_path):
    if not (shutil.which("gcc") and shutil.which("ldd")):
        pytest.skip("needs gcc and ldd")
    (tmp_path / "gone.c").write_text("int gone(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int gone(void);\nint plugin(void) { return gone(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libxcb-gone.so.7",
                    "-Wl,-soname,libxcb-gone.so.7", tmp_path / "gone.c"], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "plugin.so",
                    tmp_path / "plugin.c", tmp_path / "libxcb-gone.so.7"], check=True)
    (tmp_path / "libxcb-gone.so.7").unlink()
    assert missing_libraries(tmp_path / "plugin.so") == ["libxcb-gone.so.7"]


def test_this_machines_window_needs_nothing_more(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":99")
    assert _window_problem() is None  # .ci/run installs Qt's xcb libraries
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert _window_problem() is None
