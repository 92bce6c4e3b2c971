"""The one place where a command becomes a shell string (ARCHITECTURE.md §6).

Every command the desktop sends to a shell — over SSH, or ``/bin/sh -c`` on "This computer" —
is built here from an argv list with ``shlex.quote``, so a run name or path holding spaces,
quotes, ``$``, ``;``, backticks, newlines or non-ASCII text is one word and never code::

    from remote.quoting import command_line
    command_line(["python", "-m", "engine", "status", "--run-dir", run_dir],
                 cwd="~/synthsmith", env={"SLURM_CONF": "/etc/slurm/slurm.conf"})
    # -> cd ~/'synthsmith' && SLURM_CONF=/etc/slurm/slurm.conf python -m engine status ...

``cwd`` may start with ``~/`` (the remote home): the tilde stays outside the quotes so the
remote shell expands it, the rest is quoted. ``prefix`` is a line the user wrote in a cluster
profile to activate Python (``source ~/venv/bin/activate``, ``module load python``): it is
shell code by design, kept as given and run first; nothing else is ever unquoted.
Refused: NUL bytes (no shell can pass them) and environment names that are not identifiers.

Every such string is POSIX ``sh``. sshd hands it to the user's *login* shell; for a login
shell that is not a POSIX one (fish, csh, tcsh: their quoting and syntax differ),
``for_login_shell`` carries the string through unchanged as base64 to ``/bin/sh``::

    exec /bin/sh -c 'eval "$(echo <base64> | base64 -d)"'

which every shell reads the same way (one single-quoted word of ``[A-Za-z0-9+/=]`` and
plain punctuation, no backslash, no ``!``).

A quoted argv word never expands ``~``, and the engine does not expand it either: a path
that goes INTO a command as an argument, a file written over SFTP, or a path in a generated
script is made absolute first with ``absolute_path(home, path)`` (``runner.home()``), the
one place that rule lives.
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Arg = str | os.PathLike[str] | int | float

# Login shells that read our POSIX sh strings as sh does; any other gets them through /bin/sh.
POSIX_LOGIN_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "lksh",
                                "ash", "busybox", "yash", "posh"})


def quote(arg: Arg) -> str:
    """One shell word for ``arg``."""
    text = os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg)
    if "\x00" in text:
        raise ValueError(f"{text!r} holds a NUL byte, which no shell command can carry")
    return shlex.quote(text)


def quote_path(path: Arg) -> str:
    """A path as one word; a leading ``~/`` (or a bare ``~``) is left for the shell to expand."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if text == "~":
        return "~"
    if text.startswith("~/"):
        rest = text[2:]
        return "~/" + quote(rest) if rest else "~/"
    return quote(text)


def command_line(argv: Sequence[Arg], *, cwd: Arg | None = None,
                 env: Mapping[str, Arg] | None = None, prefix: str | None = None) -> str:
    """``argv`` as one shell command: optional ``prefix`` (trusted profile code), ``cd``,
    environment assignments, then the quoted words."""
    if not argv:
        raise ValueError("an empty command")
    parts: list[str] = []
    if prefix and prefix.strip():
        parts.append(f"{{ {prefix.strip()} ; }}")
    if cwd is not None:
        parts.append(f"cd -- {quote_path(cwd)}")  # --: a folder named -x is no option
    words = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"environment variable name {name!r} is not an identifier")
        words.append(f"{name}={quote(value)}")
    words += [quote(a) for a in argv]
    parts.append(" ".join(words))
    return " && ".join(parts)


def script_line(argv: Sequence[Arg]) -> str:
    """One line of a generated script (sbatch, launcher): the quoted words, nothing else."""
    return " ".join(quote(a) for a in argv)


def for_login_shell(command: str, login_shell: str | None) -> str:
    """``command`` (POSIX sh) as the string to send to a login shell named ``login_shell``
    (``$SHELL`` on the cluster, e.g. ``/usr/bin/fish``): itself for a POSIX shell, else a
    ``/bin/sh`` that decodes and runs it (module docstring). ``None`` (not known): carried."""
    if posixpath.basename((login_shell or "").strip()) in POSIX_LOGIN_SHELLS:
        return command
    encoded = base64.b64encode(command.encode("utf-8")).decode("ascii")
    return f"exec /bin/sh -c 'eval \"$(echo {encoded} | base64 -d)\"'"


def absolute_path(home: str, path: str) -> str:
    """``path`` on the cluster as an absolute, normalised path: ``~`` and ``~/x`` under
    ``home`` (the login home, ``runner.home()``), a relative path under ``home`` too (where
    a login shell and SFTP start). ``~user`` is not supported and stays relative to home."""
    if path == "~" or path.startswith("~/"):
        path = home.rstrip("/") + path[1:]
    elif not path.startswith("/"):
        path = posixpath.join(home, path)
    return posixpath.normpath(path)
