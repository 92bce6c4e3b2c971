"""The ``synthsmith`` console command (pyproject: ``synthsmith = "gui.cli:main"``).

    synthsmith                    open the desktop app with the embedded smoke preset
    synthsmith --preset FILE.yaml open it with that pipeline config instead
    synthsmith --version          print the version and exit

    synthsmith cluster|launch|runs|status|tail|cancel|resume|fetch|llm ...   headless
                                  (remote/cli.py)

This module never imports PySide6 at import time: the headless subcommands work where Qt is
not installed. Only the no-subcommand path imports ``gui.app``, and it does so lazily.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import engine

EXIT_NO_QT = 2

_NO_QT_HINT = (
    "synthsmith: the desktop app needs PySide6, which is not installed in this environment.\n"
    "Fix: pip install PySide6-Essentials"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthsmith",
        description="SynthSmith Studio: train code models on fully synthetic data. "
        "With no command, opens the desktop app.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--preset",
        type=Path,
        metavar="PATH",
        help="pipeline config YAML to open (default: the bundled smoke-cpu preset)",
    )
    parser.add_argument("--ssh-config", metavar="PATH",
                        help="ssh_config file for cluster hosts (default ~/.ssh/config)")
    parser.add_argument("--known-hosts", metavar="PATH",
                        help="known_hosts file (default ~/.ssh/known_hosts)")
    from remote.cli import add_commands  # Qt-free: the headless commands

    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def _qt_import_problem() -> str | None:
    """Why the desktop app cannot start here, or None when Qt imports fine."""
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("PySide6", "shiboken6"):
            return _NO_QT_HINT
        raise
    except ImportError as exc:
        # PySide6 is there but its native Qt libraries failed to load (e.g. libEGL missing).
        return (
            f"synthsmith: PySide6 is installed but Qt failed to load: {exc}\n"
            "Fix: install the system libraries Qt needs (on Debian/Ubuntu: "
            "apt-get install libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3), "
            "or reinstall with: pip install --force-reinstall PySide6-Essentials"
        )
    return None


def debian_package(soname: str) -> str:
    """The Debian package that ships a shared library, by Debian's naming rule:
    ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``."""
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    if not version:
        return name
    return f"{name}{'-' if name[-1:].isdigit() else ''}{version}"


def missing_libraries(library: str | Path) -> list[str]:
    """Shared libraries ``library`` needs that the dynamic loader cannot find (``ldd``)."""
    import subprocess

    try:
        out = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []  # no ldd: Qt will say what it lacks itself
    return [line.split()[0] for line in out.splitlines() if "=> not found" in line]


def _window_problem() -> str | None:
    """Why Qt's X11 plugin would abort ("could not load the Qt platform plugin xcb"), as one
    line naming the packages to install; None when it can load (or another platform is used)."""
    import os

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None
    if not platform and (os.environ.get("WAYLAND_DISPLAY") or not os.environ.get("DISPLAY")):
        return None  # Qt picks Wayland, or says itself that there is no display
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    missing = missing_libraries(plugin) if plugin.exists() else []
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
    return (f"synthsmith: the window needs system libraries that are not installed "
            f"({', '.join(missing)}); on Debian/Ubuntu: apt-get install {packages}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"synthsmith {engine.__version__}")
        return 0

    if args.command:
        from remote.cli import run

        return run(args)

    problem = _qt_import_problem() or _window_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_NO_QT

    from gui import app

    return app.main(preset=args.preset)


if __name__ == "__main__":
    sys.exit(main())
