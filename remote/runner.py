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

``idempotent=True`` on ``run``/``run_shell`` tells a runner that running the command again
changes nothing (a status probe, ``squeue``/``sacct``, a tail's poll, a stat): an SSH runner
then reconnects and runs it again when the link drops while it runs, instead of raising
``CommandInterrupted``. Everything else (a launch, a cancel, a write) is never run twice.
``run_framed`` passes it on; ``idempotent_kwargs(runner)`` gives it to runners that take it.
Left out: interactive commands (no pty, no stdin streaming beyond ``input``).
"""

from __future__ import annotations

import os
import secrets
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
            input: str | None = None, idempotent: bool = False) -> RunResult: ...

    def run_shell(self, command: str, *, timeout: float | None = None,
                  input: str | None = None, idempotent: bool = False) -> RunResult:
        """A command string built by ``remote.quoting`` (a pipeline, a prefix).
        ``idempotent``: safe to run again after a dropped link (module docstring)."""
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
            input: str | None = None, max_bytes: int | None = None,
            idempotent: bool = False) -> RunResult:
        return self.run_shell(command_line(argv, cwd=cwd, env=env), timeout=timeout, input=input,
                              max_bytes=max_bytes)

    def run_shell(self, command: str, *, timeout: float | None = None,
                  input: str | None = None, max_bytes: int | None = None,
                  idempotent: bool = False) -> RunResult:
        """``max_bytes``: kill the command and raise ``OutputTooLarge`` once its stdout or
        stderr passes it (memory stays bounded). ``idempotent`` changes nothing here: there
        is no link to lose."""
        start = time.monotonic()
        if max_bytes is not None:
            return self._run_capped(command, start, timeout, input, max_bytes)
        try:
            proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                                  timeout=timeout, input=input, errors="replace")
        except subprocess.TimeoutExpired:
            raise TransientError(f"{self.name}: `{command}` did not finish within "
                                 f"{timeout:g} s") from None
        return RunResult(command, proc.returncode, proc.stdout, proc.stderr,
                         time.monotonic() - start, self.name)

    def _run_capped(self, command: str, start: float, timeout: float | None,
                    input: str | None, max_bytes: int) -> RunResult:
        import threading

        from remote.safe_paths import OutputTooLarge

        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        bufs = {"out": bytearray(), "err": bytearray()}
        over = threading.Event()

        def pump(stream, buf: bytearray) -> None:
            for block in iter(lambda: stream.read1(1 << 16), b""):
                buf += block
                if len(buf) > max_bytes:
                    over.set()
                    return

        def feed() -> None:
            try:
                if input:
                    proc.stdin.write(input.encode("utf-8"))
                proc.stdin.close()
            except OSError:
                pass

        threads = [threading.Thread(target=pump, args=(proc.stdout, bufs["out"]), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, bufs["err"]), daemon=True),
                   threading.Thread(target=feed, daemon=True)]
        for t in threads:
            t.start()
        deadline = None if timeout is None else start + timeout
        try:
            while proc.poll() is None or any(t.is_alive() for t in threads[:2]):
                if over.is_set():
                    raise OutputTooLarge(f"{self.name}: `{command[:200]}` wrote more than "
                                         f"{max_bytes} bytes; stopped")
                if deadline is not None and time.monotonic() > deadline:
                    raise TransientError(f"{self.name}: `{command}` did not finish within "
                                         f"{timeout:g} s")
                over.wait(0.02)
            if over.is_set():
                raise OutputTooLarge(f"{self.name}: `{command[:200]}` wrote more than "
                                     f"{max_bytes} bytes; stopped")
        finally:
            if proc.poll() is None:
                import signal

                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        return RunResult(command, proc.returncode, bufs["out"].decode("utf-8", "replace"),
                         bufs["err"].decode("utf-8", "replace"), time.monotonic() - start,
                         self.name)

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


# --- framed output: only what our own command printed ------------------------------------------

FRAME_MAX_BYTES = 64 * 1024 * 1024  # default cap on a framed command's stdout / stderr


class FrameMissing(Exception):
    """A framed command's output held no begin mark (the shell never ran our command)."""


def run_framed(runner: CommandRunner, command: str, *, timeout: float | None = None,
               input: str | None = None, max_bytes: int | None = FRAME_MAX_BYTES,
               what: str | None = None, idempotent: bool = False) -> RunResult:
    """Run ``command`` (a shell string) with its stdout between a begin and an end mark that
    hold a fresh random token, and return the result with ``stdout`` = only what lies between
    them. A login banner or motd printed before the command (lines starting with ``@``,
    ``{``, ``s|``, anything) is never part of the answer.

    Works with dash, bash and busybox sh: ``printf`` only. The command runs in a subshell, so
    an ``exit`` in it still reaches the end mark; the exit status is the command's. When the
    end mark is missing (the command was killed, the link dropped), ``stdout`` holds what came
    after the begin mark. Raises ``remote.errors.RemoteError`` (clear text) when the begin mark
    is missing. ``max_bytes`` caps what is read (``OutputTooLarge`` past it). ``idempotent``:
    the command only reads, so a runner may run it again after a dropped link."""
    from remote.errors import RemoteError

    token = secrets.token_hex(8)
    begin, end = f"@@synthsmith-begin-{token}", f"@@synthsmith-end-{token}"
    script = (f"printf '\\n%s\\n' {begin}\n( {command}\n)\nrc=$?\n"
              f"printf '\\n%s\\n' {end}\nexit $rc")
    kwargs: dict = {"timeout": timeout, "input": input}
    if max_bytes is not None and _takes(runner.run_shell, "max_bytes"):
        kwargs["max_bytes"] = max_bytes
    if idempotent:
        kwargs.update(idempotent_kwargs(runner))
    result = runner.run_shell(script, **kwargs)
    body = unframe(result.stdout, begin, end)
    if body is None:
        shown = (result.stderr or result.stdout).strip()[-300:]
        raise RemoteError(f"{runner.name}: {what or 'a command'} gave no answer of ours (exit "
                          f"{result.returncode}; the remote shell may not be a POSIX sh): "
                          f"{shown!r}")
    return RunResult(command, result.returncode, body, result.stderr, result.duration_s,
                     result.where)


def _takes(method: object, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(method).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def idempotent_kwargs(runner: CommandRunner) -> dict[str, bool]:
    """``{"idempotent": True}`` for a runner whose ``run``/``run_shell`` take the flag, {}
    for one that does not (a runner written before it, a test double): pass it as
    ``runner.run_shell(cmd, **idempotent_kwargs(runner))`` for a command that only reads."""
    return {"idempotent": True} if _takes(runner.run_shell, "idempotent") else {}


def unframe(stdout: str, begin: str, end: str) -> str | None:
    """What lies between the ``begin`` line and the last ``end`` line (to the end of the text
    when there is no end line); None when there is no begin line."""
    head = begin + "\n"
    i = stdout.find(head)
    if i < 0:
        return None
    body = stdout[i + len(head):]
    j = body.rfind("\n" + end + "\n")
    if j < 0 and body.endswith("\n" + end):
        j = len(body) - len(end) - 1
    return body[:j] if j >= 0 else body
