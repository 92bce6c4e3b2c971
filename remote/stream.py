"""Live events and logs of a run, over any ``CommandRunner``: ``EventTail`` and ``LogTail``.

A tail polls. Each ``poll()`` is ONE remote command, whatever the number of files: a small
``sh`` script that, for every ``events/*.jsonl`` (or ``logs/*.log``) file of the run, prints
its size and the bytes past the offset this desktop already holds, base64-encoded (so the
bytes arrive exact, whatever the transport does to text) and ended by an end mark::

    tail = EventTail(runner, "~/synthsmith/runs/smoke", Path("~/.cache/synthsmith").expanduser())
    old = tail.history()                       # what earlier sessions received: instant, local
    tail.follow(stop=lambda: closed, on_events=monitor.add)   # poll() + sleep(poll_s)

Guarantees (ARCHITECTURE.md §3, §6):

- Only complete lines are taken (a line counts once it ends in ``\\n``); a torn last line
  stays on the cluster until a later poll finds it finished.
- No loss, no duplicates, also across dropped links and desktop crashes. The offsets live in a
  local cache, ``cache_dir/<safe run id>/``: the received raw lines per remote file
  (``events/<name>``, appended and fsynced) and ``events.offsets.json`` (written atomically
  AFTER the lines are durable). At load, a cache file longer than the offsets say (a crash
  between the two writes) is cut back, so the bytes are fetched again instead of kept twice.
  On top, ``seq`` drops repeats per file (a file replaced on the cluster is read again from 0).
- A poll only reads, so its command is marked ``idempotent`` (``remote.runner``): an SSH
  runner reconnects and runs it again by itself when the link drops under it. One that still
  fails on a transient link error (or whose output lacks the end mark: the session died
  mid-answer) consumes nothing, returns ``[]`` and counts in ``reconnects``; the next poll
  reads from the same offsets.
- ``drain()`` is the last poll after a run ended: it polls, with backoff, until one poll goes
  through with nothing left waiting, so the final events are not lost to a link that drops
  just then.
- Several tails on one cache (two windows on one run) share it: fetching happens under a
  file lock, and each tail delivers from the cache what it has not delivered yet.

Latency is about ``poll_s / 2`` plus one round trip on average, ``poll_s`` plus one round trip
at worst; ``follow`` skips the sleep while a file has more than one read's worth waiting.
Left out: push-style streaming (``tail -f`` on a channel) — polling survives reconnects by
construction and costs a fork of a few tiny processes per poll; compaction of the cache; file
locking on Windows (no ``fcntl``: one tail per run there).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.contracts.events import Event, parse_event, parse_lines
from engine.contracts.rundir import EVENTS, LOGS
from remote.errors import RemoteSetupError, TransientError
from remote.quoting import quote, quote_path
from remote.runner import CommandRunner
from remote.safe_paths import (
    OutputTooLarge,
    UnsafeRemotePath,
    private_dir,
    private_open,
    run_capped,
    safe_join,
    safe_name,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one tail per run cache there
    fcntl = None  # type: ignore[assignment]

# Bytes one poll takes from one file at most: bounds memory and the size of one answer;
# follow() polls again at once while a file has more.
READ_LIMIT = 8 * 1024 * 1024
COMMAND_TIMEOUT_S = 60.0
# Raw bytes one poll takes from all files together (in units of read_limit); the answer's cap
# (base64 grows 4/3, plus line ends and headers) follows from it.
ANSWER_FILES_BUDGET = 4
ANSWER_SLACK = 4 << 20
# How long drain() keeps trying to get one poll through a link that keeps dropping.
DRAIN_TIMEOUT_S = 120.0
_LINK_ERRORS = (TransientError, ConnectionError, EOFError, TimeoutError)


def safe_run_id(runner_name: str, run_dir: str) -> str:
    """A folder name for one run on one cluster: readable, unique, path-safe."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", posixpath.basename(run_dir.rstrip("/")))[:60]
    key = hashlib.sha256(f"{runner_name}\0{run_dir}".encode()).hexdigest()[:12]
    return f"{base or 'run'}-{key}"


def answer_cap(limit: int) -> int:
    """Bytes a poll answer may have at most (more: a chatty or compromised cluster)."""
    return ANSWER_FILES_BUDGET * limit * 14 // 10 + ANSWER_SLACK


def _fetch_script(remote_dir: str, glob: str, offsets: dict[str, int], limit: int) -> str:
    """The one command of a poll. Prints, per file, ``@<from> <count> <size> <name>`` and then
    ``count`` bytes from byte ``from`` in base64; ``@end`` last (absent = the answer was cut).
    Names with control characters (a newline would break the framing) are skipped; all
    files together send at most ``ANSWER_FILES_BUDGET * limit`` bytes (the rest next poll)."""
    cases = "".join(f"    {quote(name)}) o={off} ;;\n" for name, off in sorted(offsets.items()))
    budget = ANSWER_FILES_BUDGET * limit
    return (
        # What a login banner printed before the last @begin line is not the answer (base64
        # lines never start with @, and nothing of ours comes before it).
        "echo @begin\n"
        # The one tool a bare host may lack; say so instead of answering garbage forever.
        "command -v base64 >/dev/null 2>&1 || { echo '@error base64 is not installed'; exit 3; }\n"
        f"cd {quote_path(remote_dir)} 2>/dev/null || {{ echo @end; exit 0; }}\n"
        f"t={budget}\n"
        f"for f in {glob}; do\n"
        '  [ -f "$f" ] || continue\n'
        '  case "$f" in *[[:cntrl:]]*) continue ;; esac\n'
        '  case "$f" in\n'
        f"{cases}"
        "    *) o=0 ;;\n"
        "  esac\n"
        '  s=$(($(wc -c < "$f")))\n'
        # shorter than what we hold: the file was replaced; read it again (seq drops repeats)
        '  [ "$s" -lt "$o" ] && o=0\n'
        f'  n=$((s - o)); [ "$n" -gt {limit} ] && n={limit}\n'
        '  [ "$n" -gt "$t" ] && n=$t\n'
        '  t=$((t - n))\n'
        '  printf \'@%s %s %s %s\\n\' "$o" "$n" "$s" "$f"\n'
        '  [ "$n" -gt 0 ] && tail -c +$((o + 1)) "$f" | head -c "$n" | base64\n'
        "done\n"
        "echo @end\n"
    )


def _after_begin(stdout: str) -> list[str]:
    """The answer's lines after its last ``@begin`` line (a banner comes before ours, and
    nothing of ours after it starts ``@begin``); all lines when there is none."""
    lines = stdout.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] == "@begin":
            return lines[i + 1:]
    return lines


@dataclass
class _Chunk:
    start: int  # byte offset in the remote file
    data: bytes
    size: int  # the remote file's size when read


def _parse_answer(stdout: str, rejected: list[tuple[str, str]] | None = None,
                  limit: int | None = None) -> dict[str, _Chunk] | None:
    """The fetch script's output -> chunks per file; None when it is cut (no end mark).

    The answer is untrusted: an entry whose header or data is malformed (a name with a newline
    spills into the data, a count that does not match, more than ``limit`` bytes) is dropped
    and noted in ``rejected`` as (name, why); the entries after it still count. Lines before
    the first header (a login banner) are ignored."""
    chunks: dict[str, _Chunk] = {}
    header: list[str] | None = None
    b64: list[str] = []
    note = rejected if rejected is not None else []

    def close() -> None:
        if header is None:
            return
        start, count, size, name = int(header[0]), int(header[1]), int(header[2]), header[3]
        if limit is not None and count > limit:
            note.append((name, f"{count} bytes, more than the {limit} asked for"))
            return
        if count > size or start > size:
            note.append((name, "offsets past the file's size"))
            return
        try:
            data = base64.b64decode("".join(b64), validate=True)
        except (binascii.Error, ValueError):
            note.append((name, "its data is not base64 (a garbled entry)"))
            return
        if len(data) != count:
            note.append((name, f"{len(data)} bytes where the header said {count}"))
            return
        chunks[name] = _Chunk(start, data, size)

    lines = _after_begin(stdout)
    for line in lines:
        if line.startswith("@"):
            close()
            header, b64 = None, []
            if line == "@end":
                return chunks
            parts = line[1:].split(" ", 3)
            if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
                if chunks or note:  # after the first entry: a bad header, not a banner
                    note.append((line[:80], "a malformed header"))
                continue  # its data lines are skipped until the next header
            header = parts
        elif header is not None:
            b64.append(line.strip())
    return None  # no end mark: the session died mid-answer


@dataclass
class _FileState:
    offset: int = 0  # remote bytes consumed (up to the end of a complete line)
    cached: int = 0  # bytes in the local cache file
    last_seq: int = -1  # events only: the highest seq kept


# --- the shared machinery: remote files -> durable local cache ----------------------------------


class _CachedTail:
    """Fetches the complete lines of ``<run_dir>/<sub>/<glob>`` into ``cache/<sub>/<name>``."""

    sub = ""
    glob = ""

    def __init__(self, runner: CommandRunner, run_dir: str, cache_dir: Path, *,
                 poll_s: float = 0.25, read_limit: int = READ_LIMIT) -> None:
        self.runner = runner
        self.run_dir = run_dir
        self.poll_s = poll_s
        self.read_limit = read_limit
        self.link_errors = 0  # polls lost to the link (each one's bytes came the poll after)
        self.last_error = ""
        self.bad_lines = 0
        # Entries of poll answers refused (a name that is no plain *.jsonl / *.log file name,
        # a garbled entry): (name, why), the latest last; the rest of each answer still counts.
        self.refused: list[tuple[str, str]] = []
        self.cache = Path(cache_dir) / safe_run_id(runner.name, run_dir)
        self._files_dir = self.cache / self.sub
        self._state_path = self.cache / f"{self.sub}.offsets.json"
        self._lock_path = self.cache / f"{self.sub}.lock"
        private_dir(self.cache)  # caches are private to the user: 0700 folders, 0600 files
        private_dir(self._files_dir)
        self._state: dict[str, _FileState] = {}
        self._more = False  # a file had more than read_limit waiting
        self._runner_start = self._runner_count()
        with self._locked():
            self._load()
        # What this tail "has received": everything cached now (history() shows it).
        self._delivered = {name: st.cached for name, st in self._state.items()}

    @property
    def reconnects(self) -> int:
        """Link drops seen: polls lost to the link, or the runner's own reconnect count since
        this tail started where it keeps one (an ``SSHRunner`` reconnects and retries by itself
        when a drop is noticed before a command starts, hiding it from the poll)."""
        return max(self.link_errors, self._runner_count() - self._runner_start)

    @property
    def offsets(self) -> dict[str, int]:
        """Remote byte offset per file name: where the next poll reads from."""
        return {name: st.offset for name, st in self._state.items()}

    # What subclasses define: which bytes of the new complete lines to keep, and how to read them.

    def _accept(self, name: str, st: _FileState, lines: bytes) -> tuple[bytes, list[Any]]:
        raise NotImplementedError

    def _decode(self, name: str, data: bytes) -> list[Any]:
        raise NotImplementedError

    def _line_end(self, data: bytes) -> int:
        """Index just past the last complete line in ``data`` (0: none)."""
        return data.rfind(b"\n") + 1

    # --- the cache on disk

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with private_open(self._lock_path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _load(self) -> None:
        """Read the offsets and cut each cache file back to what they vouch for."""
        state: dict[str, _FileState] = {}
        try:
            raw = json.loads(self._state_path.read_text())
            for name, d in raw.get("files", {}).items():
                if not self._plain(name):
                    continue  # a name no poll would accept now: not ours to touch
                state[name] = _FileState(int(d["offset"]), int(d["cached"]),
                                         int(d.get("last_seq", -1)))
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, KeyError, AttributeError):
            state = {}  # an unreadable offsets file: fetch everything again
        for path in self._files_dir.iterdir():
            if path.name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            if not self._plain(path.name):
                continue
            st = state.get(path.name)
            have = path.stat().st_size
            want = st.cached if st else 0
            if have > want:
                # Appended after the last commit of the offsets (a crash between the two
                # writes): those bytes will be fetched again, so drop them here.
                with open(path, "r+b") as fh:
                    fh.truncate(want)
                    os.fsync(fh.fileno())
            elif have < want and st is not None:
                # The cache lost data it had fsynced (restored from a backup?): start over.
                with open(path, "r+b") as fh:
                    fh.truncate(0)
                state[path.name] = _FileState()
        for name, st in state.items():
            if st.cached and not (self._files_dir / name).exists():
                state[name] = _FileState()
        self._state = state

    def _commit(self) -> None:
        body = {"run_dir": self.run_dir, "runner": self.runner.name, "files": {
            name: {"offset": st.offset, "cached": st.cached, "last_seq": st.last_seq}
            for name, st in sorted(self._state.items())}}
        tmp = self._state_path.with_name(f".{self._state_path.name}.{os.getpid()}.tmp")
        with private_open(tmp, "w") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._state_path)
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
            fd = os.open(self.cache, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # --- one poll

    def _runner_count(self) -> int:
        # A runner that reconnects and retries by itself may hide a drop from us; count its own.
        value = getattr(self.runner, "reconnects", 0)
        return value if isinstance(value, int) else 0

    def _plain(self, name: str) -> bool:
        try:
            safe_join(self._files_dir, safe_name(name, self.glob))
        except UnsafeRemotePath:
            return False
        return True

    def _local_path(self, name: str) -> Path | None:
        """The cache file of a remote file name, or None (noted in ``refused``) unless it is a
        plain file name matching ``glob`` whose path stays inside the cache folder."""
        try:
            return safe_join(self._files_dir, safe_name(name, self.glob))
        except UnsafeRemotePath as exc:
            self._refuse(name, exc.why)
            return None

    def _refuse(self, name: str, why: str) -> None:
        self.refused.append((name, why))
        del self.refused[:-100]
        self.last_error = f"refused {name!r} from {self.runner.name}: {why}"

    def _fetch(self) -> dict[str, tuple[int, list[Any]]]:
        """Fetch new complete lines into the cache. -> {name: (cache size before, items)}."""
        fresh: dict[str, tuple[int, list[Any]]] = {}
        with self._locked():
            self._load()  # another tail on this cache may have moved on
            script = _fetch_script(posixpath.join(self.run_dir, self.sub), self.glob,
                                   self.offsets, self.read_limit)
            chunks = None
            try:
                # idempotent: the script only reads (offsets travel in it), so running it
                # again after a dropped link can neither lose nor repeat a line.
                result = run_capped(self.runner, ["sh", "-c", script],
                                    max_bytes=answer_cap(self.read_limit),
                                    timeout=COMMAND_TIMEOUT_S, idempotent=True,
                                    what=f"polling {self.sub} of {self.run_dir}")
            except _LINK_ERRORS as exc:
                self.last_error = str(exc)
            except OutputTooLarge as exc:
                self.last_error = str(exc)
                raise RemoteSetupError(f"{exc}; the tail stops here") from None
            else:
                body = _after_begin(result.stdout)
                error = next((line for line in body[:50] if line.startswith("@error ")), None)
                if error is not None and "@end" not in body:
                    raise RemoteSetupError(f"{self.runner.name}: cannot tail {self.run_dir}: "
                                           f"{error[7:].strip()[:300]}")
                # A non-zero exit (-1: the session was killed under the command) or a cut
                # answer: take nothing, the next poll reads the same bytes again.
                rejected: list[tuple[str, str]] = []
                chunks = (_parse_answer(result.stdout, rejected, self.read_limit)
                          if result.ok else None)
                for name, why in rejected:
                    self._refuse(name, why)
                if chunks is None:
                    self.last_error = (f"exit {result.returncode}: {result.stderr.strip()[-300:]}"
                                       if not result.ok else "a cut or garbled answer")
            if chunks is None:
                self.link_errors += 1
                self._more = False
                return fresh
            self._more = False
            changed = False
            for name, chunk in sorted(chunks.items()):
                local = self._local_path(name)
                if local is None:
                    continue  # refused; the other entries of the answer still count
                st = self._state.get(name, _FileState())
                if chunk.start not in (st.offset, 0):
                    self._refuse(name, f"starts at byte {chunk.start}, we asked for "
                                       f"{st.offset} (or 0 for a replaced file)")
                    continue
                self._state[name] = st
                if chunk.start != st.offset:  # the script restarted a replaced file at 0
                    st.offset = chunk.start
                end = self._line_end(chunk.data)
                if chunk.start + len(chunk.data) < chunk.size:
                    # More waiting. A full read with no line end at all would never advance:
                    # such a line (longer than read_limit) is cut here and counted as bad.
                    self._more = True
                    if end == 0 and len(chunk.data) >= self.read_limit:
                        st.offset += len(chunk.data)
                        self.bad_lines += 1
                        changed = True
                        continue
                if end == 0:
                    continue
                keep, items = self._accept(name, st, chunk.data[:end])
                before = st.cached
                if keep:
                    with private_open(local, "ab") as fh:
                        fh.write(keep)
                        fh.flush()
                        os.fsync(fh.fileno())
                    st.cached += len(keep)
                    fresh[name] = (before, items)
                st.offset += end  # only now: the lines are durable in the cache
                changed = True
            if changed:
                self._commit()
        return fresh

    def _deliver(self, fresh: dict[str, tuple[int, list[Any]]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for name, st in self._state.items():
            done = self._delivered.get(name, 0)
            if done > st.cached:  # the cache was reset under us
                done = 0
            if done == st.cached:
                continue
            if name in fresh and fresh[name][0] == done:
                items = fresh[name][1]  # what this poll appended: parsed already
            else:  # another tail on this cache fetched it: read it from the cache
                with open(self._files_dir / name, "rb") as fh:
                    fh.seek(done)
                    items = self._decode(name, fh.read(st.cached - done))
            self._delivered[name] = st.cached
            if items:
                out[name] = items
        return out

    def _poll(self) -> dict[str, list[Any]]:
        return self._deliver(self._fetch())

    def _history(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for name, upto in sorted(self._delivered.items()):
            path = self._files_dir / name
            if upto <= 0 or not path.exists():
                continue
            with open(path, "rb") as fh:
                out[name] = self._decode(name, fh.read(upto))
        return out

    def _follow(self, stop: Callable[[], bool], emit: Callable[[], None]) -> None:
        while not stop():
            emit()
            if not self._more:
                time.sleep(self.poll_s)

    def _drain(self, deliver: Callable[[dict[str, list[Any]]], None],
               timeout_s: float) -> bool:
        """Poll until one poll goes through (not lost to the link) and no file has more
        waiting; ``deliver`` gets each poll's items as they come. Waits ``poll_s``, doubling
        up to 5 s, between polls the link lost. -> False when none went through within
        ``timeout_s`` (``last_error`` says why)."""
        deadline = time.monotonic() + timeout_s
        wait = self.poll_s
        while True:
            lost = self.link_errors
            got = self._poll()
            if got:
                deliver(got)
            if self.link_errors == lost:
                if not self._more:
                    return True
                continue  # a file had more than one read's worth: read on at once
            if time.monotonic() >= deadline:
                return False
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


# --- events ----------------------------------------------------------------------------------


def _ordered(per_file: dict[str, list[Event]]) -> list[Event]:
    rows = [(e.t, name, e.seq, e) for name, events in per_file.items() for e in events]
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]


class EventTail(_CachedTail):
    """The events of one run (``events/*.jsonl``), merged in time order (``t``, file, ``seq``)."""

    sub = EVENTS
    glob = "*.jsonl"

    def poll(self) -> list[Event]:
        """Events that arrived since the last poll, from every file. Never raises on a
        transient link error: returns [] (and counts it in ``reconnects``)."""
        return _ordered(self._poll())

    def history(self) -> list[Event]:
        """Everything this tail has received (the cache at start plus every poll since)."""
        return _ordered(self._history())

    def follow(self, stop: Callable[[], bool], on_events: Callable[[list[Event]], None]) -> None:
        """Poll until ``stop()``; ``on_events`` gets each non-empty batch."""

        def emit() -> None:
            events = self.poll()
            if events:
                on_events(events)

        self._follow(stop, emit)

    def drain(self, on_events: Callable[[list[Event]], None],
              timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """The last poll of a run that ended: polls until one goes through with nothing left
        waiting (retrying a dropped link with backoff); ``on_events`` gets each non-empty
        batch. -> False when the link stayed down for ``timeout_s`` (``last_error``)."""
        return self._drain(lambda per_file: on_events(_ordered(per_file)), timeout_s)

    def _accept(self, name: str, st: _FileState, lines: bytes) -> tuple[bytes, list[Event]]:
        keep: list[bytes] = []
        events: list[Event] = []
        for line in lines.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = parse_event(line)
            except ValidationError:
                self.bad_lines += 1  # a broken record: skipped, the stream goes on
                continue
            if event.seq <= st.last_seq:
                continue  # seen already (a replaced file read again)
            st.last_seq = event.seq
            keep.append(line + b"\n")
            events.append(event)
        return b"".join(keep), events

    def _decode(self, name: str, data: bytes) -> list[Event]:
        return parse_lines(data)[0]


# --- logs ------------------------------------------------------------------------------------


class LogTail(_CachedTail):
    """The logs of one run (``logs/*.log``), as text per file name.

    Same offsets and cache as ``EventTail``. A line counts once it ends in ``\\n`` or ``\\r``
    (progress bars redraw with ``\\r``). Bytes that are not UTF-8 show as U+FFFD.
    """

    sub = LOGS
    glob = "*.log"

    def poll(self) -> dict[str, str]:
        """New text per log file since the last poll ({} on a transient link error)."""
        return {name: "".join(parts) for name, parts in self._poll().items()}

    def history(self) -> dict[str, str]:
        return {name: "".join(parts) for name, parts in self._history().items()}

    def follow(self, stop: Callable[[], bool], on_text: Callable[[dict[str, str]], None]) -> None:
        def emit() -> None:
            text = self.poll()
            if text:
                on_text(text)

        self._follow(stop, emit)

    def drain(self, on_text: Callable[[dict[str, str]], None],
              timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Like ``EventTail.drain``: the last poll, retried until it goes through."""
        return self._drain(
            lambda per_file: on_text({n: "".join(parts) for n, parts in per_file.items()}),
            timeout_s)

    def _line_end(self, data: bytes) -> int:
        return max(data.rfind(b"\n"), data.rfind(b"\r")) + 1

    def _accept(self, name: str, st: _FileState, lines: bytes) -> tuple[bytes, list[str]]:
        return lines, [lines.decode("utf-8", errors="replace")]

    def _decode(self, name: str, data: bytes) -> list[str]:
        return [data.decode("utf-8", errors="replace")]
