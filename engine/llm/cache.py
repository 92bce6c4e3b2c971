"""The persistent LLM response cache: ``<run>/data/cache/llm_responses.sqlite``.

Every successful call is stored under a key that covers everything that decides its answer
(``engine.llm.base.cache_key``): the backend, the model, the messages, the sampling parameters (temperature,
top_p, max_tokens, stop, seed) and the sample index. A rerun of a killed stage asks again,
finds each completed call here and gets the identical text without calling the model.

Inspect it by hand::

    sqlite3 runs/<id>/data/cache/llm_responses.sqlite \
        "SELECT model, finish_reason, count(*) FROM responses GROUP BY 1, 2"

Decisions:

- Only successful results are stored (a truncated ``length`` answer is a success: the same
  call would be cut again). Failures are not, so a rerun retries them.
- Each ``put`` is its own committed transaction, made before the result is handed to the
  stage: a killed process loses only the calls that were in flight. ``synchronous=NORMAL``
  survives a process kill in both journal modes; a power cut may drop the last commits in
  WAL mode, never corrupt the file.
- WAL on local disks; on a network file system (NFS, Lustre, GPFS, ...) the rollback journal,
  detected as ``engine.store`` does it. One writer process per file: sharded workers on
  several nodes must each use their own file (``make_client(..., cache_name=...)``).
- The key leaves out the endpoint URL and the API key: the same model served from another
  host answers from the same distribution, and a secret must never reach a file.
- The request itself is not stored (prompts are large and live in the dataset store).

Left out: eviction and size limits (a run's cache lives as long as the run), and sharing a
cache between runs (copy the file if you want that).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from engine.llm.base import ChatResult, Usage
from engine.store import is_network_fs, mount_fstype

CACHE_FILE = "llm_responses.sqlite"
_CHUNK = 500  # keys per SELECT: under SQLite's default limit of bound parameters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key               TEXT PRIMARY KEY,   -- cache_key(): sha256 hex
    backend           TEXT NOT NULL,
    model             TEXT NOT NULL,
    text              TEXT NOT NULL,
    reasoning         TEXT,
    finish_reason     TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at        REAL NOT NULL
) WITHOUT ROWID;
"""


def _journal_for(path: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    fstype = mount_fstype(path.parent)
    return "delete" if fstype is not None and is_network_fs(fstype) else "wal"


class ResponseCache:
    """The SQLite file of cached responses. Thread-safe; one writer process per file."""

    def __init__(
        self, path: str | os.PathLike[str], *, journal: Literal["auto", "wal", "delete"] = "auto"
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.journal_mode = _journal_for(self.path, journal)
        # Autocommit (isolation_level=None): every put is committed when execute returns.
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                     check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute(f"PRAGMA journal_mode={self.journal_mode}")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    @classmethod
    def in_dir(cls, cache_dir: str | os.PathLike[str], name: str = CACHE_FILE) -> ResponseCache:
        return cls(Path(cache_dir) / name)

    def get_many(self, keys: Sequence[str]) -> dict[str, ChatResult]:
        """The cached results among ``keys``, as cache hits (``cached`` True, 0 attempts)."""
        out: dict[str, ChatResult] = {}
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start:start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT key, text, reasoning, finish_reason, prompt_tokens, "
                    f"completion_tokens FROM responses WHERE key IN ({marks})", chunk)
                for key, text, reasoning, finish, p_tok, c_tok in rows:
                    out[key] = ChatResult(text=text, reasoning=reasoning, finish_reason=finish,
                                          usage=Usage(p_tok, c_tok), cached=True, attempts=0)
        return out

    def get(self, key: str) -> ChatResult | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, backend: str, model: str, result: ChatResult) -> None:
        """Store one successful result, committed before this returns."""
        if not result.ok:
            raise ValueError(f"only successful results are cached, not {result.error!r}")
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, backend, model, result.text, result.reasoning, result.finish_reason,
                 result.usage.prompt_tokens, result.usage.completion_tokens, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
