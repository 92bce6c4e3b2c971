"""What verification keeps of a run's stdout: small outputs whole, big ones on disk.

Real problems print megabytes (all prefix sums of 10^6 numbers), and verification holds one
output per candidate per test. So an output over ``inline_bytes`` is kept in memory as its
first ``HEAD_CHARS`` characters and two digests (its comparison form, which votes, and its
raw bytes, which name its file), and its bytes go once per distinct content to a spool
directory. Equal outputs of several candidates share one file. Whoever needs the whole text
(a checker's output file, a label written to the store, an answer compared for accuracy)
reads it back from the spool.

    with OutputSpool() as spool:
        out = spool.keep(result.stdout, cfg)   # -> KeptOutput
        cell = out.cell(result.status, result.cpu_s)
        spool.read(out)                        # the bytes again

Leaves out: compression, and sharing a spool between processes (each verify process has
its own temporary directory, removed on close).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.schema import VerifyConfig
from engine.verify.voting import Cell, output_digest

INLINE_BYTES = 1 << 20  # outputs up to this size stay whole in memory
HEAD_CHARS = 4096  # what is kept in memory of a bigger one


@dataclass(frozen=True)
class KeptOutput:
    text: str  # the whole output, or its first HEAD_CHARS characters when spooled
    size: int  # bytes
    digest: str | None = None  # comparison-form digest; set when spooled
    raw_sha256: str | None = None  # names the spool file; set when spooled

    @property
    def spooled(self) -> bool:
        return self.raw_sha256 is not None

    def cell(self, status: str, cpu_s: float, **extra) -> Cell:
        return Cell(status, self.text, cpu_s=cpu_s, digest=self.digest, **extra)


class OutputSpool:
    def __init__(self, inline_bytes: int = INLINE_BYTES, directory: str | Path | None = None):
        self.inline_bytes = inline_bytes
        self._parent = directory
        self._dir: Path | None = None
        self._lock = threading.Lock()

    def keep(self, data: bytes, cfg: VerifyConfig) -> KeptOutput:
        """Thread-safe: the sandbox pool's threads call it as their runs end."""
        if len(data) <= self.inline_bytes:
            return KeptOutput(data.decode("utf-8", errors="replace"), len(data))
        text = data.decode("utf-8", errors="replace")
        raw = hashlib.sha256(data).hexdigest()
        path = self._path(raw)
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # equal contents: whichever thread wins, the file is right
        return KeptOutput(text[:HEAD_CHARS], len(data), output_digest(text, cfg), raw)

    def read(self, out: KeptOutput) -> bytes:
        if out.raw_sha256 is None:
            return out.text.encode()
        return self._path(out.raw_sha256).read_bytes()

    def read_text(self, out: KeptOutput) -> str:
        return out.text if out.raw_sha256 is None else \
            self.read(out).decode("utf-8", errors="replace")

    def _path(self, raw_sha256: str) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="synthsmith-outputs-",
                                                  dir=self._parent))
            return self._dir / raw_sha256

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> OutputSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
