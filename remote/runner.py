"""``CommandRunner``: run commands and move files on a cluster, or on "This computer".

Two implementations share this protocol: ``remote.ssh.SSHRunner`` (paramiko) and
``LocalRunner`` here. Both send every command through ``remote.quoting.command_line`` to a
POSIX shell (``/bin/sh -c`` locally, the login shell over SSH), so "This computer" runs the
very same command strings a cluster gets::

    runner = LocalRunner()
    result = runner.run(["python3", "-c", "print(1)"], cwd="/tmp", timeout=30)
    result.check()            # raises CommandFailed on a non-zero exit
    runner.put_bytes(b"x", "/tmp/run/x.txt")
    data = runner.read_bytes("/tmp/run/events/sft.0.jsonl", offset=1024)

File paths may start with ``~/`` (the home directory of the account the runner logs in as).
Left out: interactive commands (no pty, no stdin streaming beyond ``input``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from remote.errors import CommandFailed, TransientError
from remote.quoting import Arg, command_line


@dataclass(frozen=True)
class RunResult:
    command: str  # the exact shell string that ran
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    where: str = "this computer"  # a runner's name, for messages

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> RunResult:
        if not self.ok:
            raise CommandFailed(self)
        return self


@runtime_checkable
class CommandRunner(Protocol):
    name: str  # "this computer", or the profile's name

    def run(self, argv: Sequence[Arg], *, cwd: Arg | None = None,
            env: Mapping[str, Arg] | None = None, timeout: float | None = None,
            input: str | None = None) -> RunResult: ...

    def run_shell(self, command: str, *, timeout: float | None = None,
                  input: str | None = None) -> RunResult:
        """A command string built by ``remote.quoting`` (a pipeline, a prefix)."""
        ...

    def put_bytes(self, data: bytes, path: str, *, mode: int = 0o644) -> None:
        """Write a file atomically (temp name + rename), creating its folder."""
        ...

    def put_file(self, local: str | os.PathLike[str], path: str, *, mode: int | None = None) -> None: ...

    def get_file(self, path: str, local: str | os.PathLike[str]) -> None: ...

    def read_bytes(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of a file from ``offset`` (all, or ``length``); b"" past the end.
        Raises FileNotFoundError for a missing file."""
        ...

    def size(self, path: str) -> int | None:
        """A file's size, or None when it does not exist."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Names in a folder ([] when it does not exist)."""
        ...

    def makedirs(self, path: str) -> None: ...

    def home(self) -> str:
        """The absolute home directory, for resolving ``~/``."""
        ...

    def close(self) -> None: ...


class LocalRunner:
    """"This computer": the same command strings, run by ``/bin/sh -c`` here."""

    def __init__(self, name: str = "this computer") -> None:
        self.name = name

    def __repr__(self) -> str:
        return "LocalRunner()"

    def _path(self, path: str | os.PathLike[str]) -> Path:
        return Path(os.path.expanduser(os.fspath(path)))

    def run(self, argv: Sequence[Arg], *, cwd: Arg | None = None,
            env: Mapping[str, Arg] | None = None, timeout: float | None = None,
            input: str | None = None) -> RunResult:
        return self.run_shell(command_line(argv, cwd=cwd, env=env), timeout=timeout, input=input)

    def run_shell(self, command: str, *, timeout: float | None = None,
                  input: str | None = None) -> RunResult:
        start = time.monotonic()
        try:
            proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                                  timeout=timeout, input=input, errors="replace")
        except subprocess.TimeoutExpired:
            raise TransientError(f"{self.name}: `{command}` did not finish within "
                                 f"{timeout:g} s") from None
        return RunResult(command, proc.returncode, proc.stdout, proc.stderr,
                         time.monotonic() - start, self.name)

    def put_bytes(self, data: bytes, path: str, *, mode: int = 0o644) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)

    def put_file(self, local: str | os.PathLike[str], path: str, *, mode: int | None = None) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(local, tmp)
        os.chmod(tmp, mode if mode is not None else (os.stat(local).st_mode & 0o777))
        os.replace(tmp, target)

    def get_file(self, path: str, local: str | os.PathLike[str]) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(path), local)

    def read_bytes(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        with open(self._path(path), "rb") as f:
            f.seek(offset)
            return f.read() if length is None else f.read(length)

    def size(self, path: str) -> int | None:
        try:
            return self._path(path).stat().st_size
        except FileNotFoundError:
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def makedirs(self, path: str) -> None:
        self._path(path).mkdir(parents=True, exist_ok=True)

    def home(self) -> str:
        return os.path.expanduser("~")

    def close(self) -> None:
        pass
