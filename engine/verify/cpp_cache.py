"""A compile cache for C++ solutions: one g++ run per distinct source, ever.

An a+b compile takes ~1.5 s here while the run takes milliseconds, and verification runs
every candidate on every input, so binaries are cached on disk keyed by
``sha256(compiler identity, flags, source[, files])`` under ``~/.cache/synthsmith/cpp`` (or
the directory given). A program's extra files (headers such as ``include/testlib.h``) are
part of the key: they are written next to ``solution.cpp`` in the build directory, where
the compile function finds them (``-I``); a different header is a different binary. Failed
compiles are cached too (their message), so a broken candidate is not recompiled for each
of its inputs.

The compiler itself runs untrusted input (``#include "/etc/shadow"`` would put the file in
the error message), so this module never runs it: the caller passes ``compile_fn``, which
``sandbox.py`` implements by running g++ inside the sandbox with only the build directory
writable. Entries are written with an atomic rename, so concurrent processes sharing a cache
directory at worst compile the same source twice. Leaves out: eviction (delete the directory
to reclaim space), other compilers, and cross-machine sharing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FLAGS = ("-std=gnu++17", "-O2", "-pipe")
SOURCE_NAME = "solution.cpp"
BINARY_NAME = "solution"

# (relative path, content) pairs, already validated (``sandbox.check_files``).
Files = Sequence[tuple[str, bytes]]

# compile_fn(build_dir) compiles build_dir/SOURCE_NAME (beside the program's files, if any)
# into build_dir/BINARY_NAME inside the sandbox and returns (succeeded, compiler messages,
# final): final is False for failures that may not repeat (the compiler ran out of time on a
# busy machine), which are not cached.
CompileFn = Callable[[Path], tuple[bool, str, bool]]


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "synthsmith" / "cpp"


@dataclass(frozen=True)
class CompiledProgram:
    key: str
    binary: Path | None  # None when compilation failed
    cache_hit: bool
    message: str  # compiler stderr (tail); empty on a clean compile
    compile_s: float  # 0.0 on a cache hit

    @property
    def ok(self) -> bool:
        return self.binary is not None


class CppCompileCache:
    def __init__(self, cache_dir: str | Path | None = None, gxx: str = "g++",
                 flags: Sequence[str] = DEFAULT_FLAGS):
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.gxx = shutil.which(gxx) or gxx
        self.flags = tuple(flags)
        self._identity: str | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # --- Keys

    def compiler_identity(self) -> str:
        """Resolved compiler path and its version line: a compiler upgrade changes keys."""
        if self._identity is None:
            try:
                out = subprocess.run([self.gxx, "--version"], capture_output=True, text=True,
                                     timeout=30).stdout.splitlines()
            except OSError as exc:
                raise FileNotFoundError(f"C++ compiler {self.gxx!r} not found: {exc}") from exc
            self._identity = f"{os.path.realpath(self.gxx)} {out[0] if out else ''}"
        return self._identity

    def key(self, source: str, files: Files = ()) -> str:
        if files:  # length-prefixed; cannot collide with the form below (that starts "/")
            return sha256_of_parts([b"with-files", self.compiler_identity().encode(),
                                    "\0".join(self.flags).encode(), source.encode(),
                                    *file_parts(files)])
        h = hashlib.sha256()
        for part in (self.compiler_identity(), "\0".join(self.flags), source):
            h.update(part.encode())
            h.update(b"\0\0")
        return h.hexdigest()

    def binary_path(self, key: str) -> Path:
        return self.dir / f"{key}.bin"

    # --- Lookup and compile

    def lookup(self, key: str) -> CompiledProgram | None:
        binary, error = self.binary_path(key), self.dir / f"{key}.err"
        if binary.exists():
            return CompiledProgram(key, binary, True, "", 0.0)
        if error.exists():
            return CompiledProgram(key, None, True, error.read_text(errors="replace"), 0.0)
        return None

    def get(self, source: str, compile_fn: CompileFn, files: Files = ()) -> CompiledProgram:
        key = self.key(source, files)
        with self._lock_for(key):  # one compile per key in this process
            found = self.lookup(key)
            if found is not None:
                return found
            return self._compile(key, source, compile_fn, files)

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _compile(self, key: str, source: str, compile_fn: CompileFn, files: Files = (),
                 ) -> CompiledProgram:
        self.dir.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix="synthsmith-cpp-"))
        try:
            (build / SOURCE_NAME).write_text(source)
            os.chmod(build / SOURCE_NAME, 0o644)
            for name, data in files:  # ours (root's) when root: the compiler only reads them
                path = build / name
                for parent in reversed(path.relative_to(build).parents[:-1]):
                    (build / parent).mkdir(exist_ok=True)
                    os.chmod(build / parent, 0o755)
                path.write_bytes(data)
                os.chmod(path, 0o444)
            if os.geteuid() == 0:
                # The compiler runs as uid 65534 and must be able to write the binary.
                os.chown(build, 65534, 65534)
            os.chmod(build, 0o755)
            start = time.monotonic()
            ok, message, final = compile_fn(build)
            elapsed = time.monotonic() - start
            produced = build / BINARY_NAME
            if ok and produced.is_file():
                binary = self.binary_path(key)
                self._publish(produced, binary, 0o755)
                return CompiledProgram(key, binary, False, message, elapsed)
            message = message or "compilation failed with no message"
            if final:
                self._publish(message.encode(), self.dir / f"{key}.err", 0o644)
            return CompiledProgram(key, None, False, message, elapsed)
        finally:
            shutil.rmtree(build, ignore_errors=True)

    def _publish(self, src: Path | bytes, final: Path, mode: int) -> None:
        # Write next to the final name, then rename: readers never see a half-written file.
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}")
        if isinstance(src, bytes):
            tmp.write_bytes(src)
        else:
            shutil.copyfile(src, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, final)


def sha256_of_parts(parts: Iterable[bytes]) -> str:
    """sha256 of length-prefixed parts: no two different part lists hash the same input."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def file_parts(files: Files) -> list[bytes]:
    parts = [str(len(files)).encode()]
    for name, data in files:
        parts += [name.encode(), data]
    return parts
