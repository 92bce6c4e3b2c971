"""Reading a folder of tasks for ``verify-folder``: the layout, and nothing read that is not
a regular file inside the folder.

    tasks = load_folder("archive/")       # -> [TaskFolder]; FolderError lists every problem

One sub-folder per task (hidden ones are skipped):

    TASK/statement.md         the statement; every sample pair in it ("Sample Input 1" /
                              "Sample Output 1", an "Examples" section with Input/Output
                              blocks, ...: ``engine/verify/samples.py``) is a test of kind
                              "sample" with its known output, whether or not an input file
                              equals it (then that file is the sample)
    TASK/inputs/*.txt         test inputs; a name starting with sample, edge, random or
                              stress gives the kind (else random)
    TASK/tests/NN.in, NN.out  tests as archives ship them: NN.out is a known answer, used to
                              score; with ``trust_answers`` it also decides (a known output,
                              like a sample's). An .in without .out is a plain input.
    TASK/expected/*.txt       known answers by input name: used only to score, never to vote
    TASK/solutions/*.py|*.cpp candidates (Python 3 standard library, C++17)
    TASK/checker.py|.cpp      optional: ``checker INPUT OUTPUT ANSWER`` (testlib's exit codes:
                              0 accepted, 1 wrong answer, 2 presentation error, 3 the
                              checker's own failure); the 2-argument form works too (the third
                              argument is simply ignored)
    TASK/include/**           optional: extra files (headers such as testlib.h, data files),
                              present at compile and run time for solutions and the checker
    TASK/limits.json          optional: {"time_limit_s": 2, "memory_mb": 256,
                              "max_output_mb": 64} for this task

Safety: a folder may come from anywhere. Only regular files are read (a FIFO, a device or a
socket is refused, never opened for reading), a symbolic link must resolve inside the
folder, each file is capped at ``max_file_bytes``, and names in any encoding are shown
with their undecodable bytes escaped. Every problem is collected and raised at once.

Leaves out: interactive tasks, per-test limits, archive formats with other names (Polygon
packages: copy tests/ and files/ into this layout).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.verify.samples import parse_samples
from engine.verify.sandbox import Program
from engine.verify.voting import KINDS

__all__ = [
    "LANGUAGES", "LIMIT_KEYS", "MAX_FILE_BYTES", "FolderError", "TaskFolder", "TaskLimits",
    "display_name", "input_kind", "load_folder",
]

LANGUAGES = {".py": "python", ".cpp": "cpp"}
MAX_FILE_BYTES = 256 << 20
LIMIT_KEYS = {"time_limit_s": float, "memory_mb": int, "max_output_mb": float}


class FolderError(ValueError):
    """The folder cannot be verified; ``problems`` lists every reason, each naming a path."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("cannot verify this folder:\n" +
                         "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class TaskLimits:
    """A task's own limits (limits.json); None: the command's or the config's."""

    time_limit_s: float | None = None
    memory_mb: int | None = None
    max_output_mb: float | None = None


@dataclass(frozen=True)
class TaskFolder:
    name: str  # shown name (undecodable bytes escaped)
    path: Path
    statement: str
    input_names: tuple[str, ...]  # inputs/ stems, then tests/ stems, then statement samples
    inputs: tuple[bytes, ...]
    kinds: tuple[str, ...]
    solution_names: tuple[str, ...]  # file names, sorted
    solutions: tuple[Program, ...]
    checker: Program | None
    expected: dict[int, str]  # input index -> known answer (scoring only)
    known: dict[int, str]  # input index -> known output that decides (samples, trusted)
    samples: int = 0  # sample pairs found in the statement
    sample_problems: tuple[str, ...] = ()  # malformed sample blocks, in words
    answers: frozenset[int] = frozenset()  # inputs with a tests/NN.out answer
    limits: TaskLimits = field(default_factory=TaskLimits)
    files: tuple[tuple[str, bytes], ...] = ()  # include/ files

    @property
    def seed(self) -> int:
        """Seeds the hold-out split: the same task name always splits the same way."""
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "big")

    @property
    def sizes(self) -> list[int]:
        return [len(data) for data in self.inputs]


def display_name(name: str) -> str:
    """A file name fit to print: undecodable bytes (from any encoding) as \\xNN escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def input_kind(stem: str) -> str:
    """The test kind a file name says: sample_1 -> sample, edge-n1 -> edge, else random."""
    low = stem.lower()
    return next((kind for kind in KINDS if low.startswith(kind)), "random")


# --- Reading files safely

class _Reader:
    """Reads files of one folder, collecting problems instead of raising."""

    def __init__(self, root: Path, max_file_bytes: int, problems: list[str]):
        self.root = root.resolve()
        self.max = max_file_bytes
        self.problems = problems

    def _inside(self, path: Path) -> Path | None:
        """The path a link resolves to, if inside the folder; else a problem and None."""
        real = path.resolve()
        if real != self.root and self.root not in real.parents:
            self.problems.append(f"{display_name(str(path))}: a symbolic link to "
                                 f"{display_name(str(real))}, outside the folder: copy the "
                                 "file in instead")
            return None
        return real

    def entries(self, folder: Path) -> list[Path]:
        """Regular files and folders directly in ``folder`` (links resolved inside)."""
        if not folder.exists() and not folder.is_symlink():
            return []
        real = self._inside(folder) if folder.is_symlink() else folder
        if real is None or not real.is_dir():
            return []
        out = []
        for entry in sorted(os.scandir(real), key=lambda e: _natural(e.name)):
            path = folder / entry.name
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and self._inside(Path(entry.path)) is None:
                continue
            out.append(path)
        return out

    def read(self, path: Path) -> bytes | None:
        shown = display_name(str(path))
        real = self._inside(path) if path.is_symlink() else path
        if real is None:
            return None
        try:
            # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; O_NOFOLLOW:
            # the path was resolved above, a link swapped in since is refused.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self.problems.append(f"{shown}: cannot open it ({exc.strerror})")
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else
                        "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                        else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
                self.problems.append(f"{shown}: {kind}, not a regular file: only regular "
                                     "files are read")
                return None
            if info.st_size > self.max:
                self.problems.append(f"{shown}: {info.st_size} bytes, over the "
                                     f"{self.max >> 20} MB cap per file")
                return None
            chunks, left = [], info.st_size
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def text(self, path: Path) -> str | None:
        data = self.read(path)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problems.append(f"{display_name(str(path))}: not UTF-8 text ({exc})")
            return None

    def files_under(self, folder: Path, prefix: str) -> list[tuple[str, bytes]]:
        out = []
        for path in self.entries(folder):
            if path.is_dir():
                out += self.files_under(path, f"{prefix}{path.name}/")
            else:
                data = self.read(path)
                if data is not None:
                    out.append((f"{prefix}{display_name(path.name)}", data))
        return out


# --- One task

def _limits(reader: _Reader, path: Path) -> TaskLimits:
    if not path.exists():
        return TaskLimits()
    text = reader.text(path)
    if text is None:
        return TaskLimits()
    shown = display_name(str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reader.problems.append(f"{shown}: not JSON ({exc})")
        return TaskLimits()
    if not isinstance(data, dict):
        reader.problems.append(f"{shown}: expected an object like "
                               '{"time_limit_s": 2, "memory_mb": 256, "max_output_mb": 64}')
        return TaskLimits()
    unknown = sorted(set(data) - set(LIMIT_KEYS))
    if unknown:
        reader.problems.append(f"{shown}: unknown keys {unknown}; use {sorted(LIMIT_KEYS)}")
    values = {}
    for key, kind in LIMIT_KEYS.items():
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or \
                (kind is int and value != int(value)):
            reader.problems.append(f"{shown}: {key} must be a positive "
                                   f"{'integer' if kind is int else 'number'} (got {value!r})")
            continue
        values[key] = kind(value)
    return TaskLimits(**values)


def _program(reader: _Reader, path: Path, files) -> Program | None:
    source = reader.text(path)
    if source is None:
        return None
    try:
        return Program(LANGUAGES[path.suffix], source, files=tuple(files))
    except ValueError as exc:
        reader.problems.append(f"{display_name(str(path))}: {exc}")
        return None


def _load_task(reader: _Reader, path: Path, trust_answers: bool) -> TaskFolder | None:
    problems = reader.problems
    before = len(problems)
    shown = display_name(str(path))
    statement = ""
    if (path / "statement.md").is_file():
        statement = reader.text(path / "statement.md") or ""
    else:
        problems.append(f"{shown}: no statement.md")
    files = reader.files_under(path / "include", "include/")
    names: list[str] = []
    inputs: list[bytes] = []
    expected: dict[int, str] = {}
    answers: set[int] = set()
    for p in reader.entries(path / "inputs"):
        if p.suffix == ".txt" and not p.is_dir():
            data = reader.read(p)
            if data is not None:
                names.append(display_name(p.stem))
                inputs.append(data)
    test_files = [p for p in reader.entries(path / "tests") if not p.is_dir()]
    outs = {p.stem: p for p in test_files if p.suffix in (".out", ".ans")}
    for p in test_files:
        if p.suffix != ".in":
            continue
        data = reader.read(p)
        if data is None:
            continue
        name = f"tests/{display_name(p.stem)}"
        names.append(name)
        inputs.append(data)
        if p.stem in outs:
            answer = reader.text(outs[p.stem])
            if answer is not None:
                expected[len(inputs) - 1] = answer
                answers.add(len(inputs) - 1)
    for stem in sorted(set(outs) - {p.stem for p in test_files if p.suffix == ".in"}):
        problems.append(f"{display_name(str(outs[stem]))}: no tests/{display_name(stem)}.in "
                        "beside it")
    parsed = parse_samples(statement)
    if not inputs and not parsed.pairs:
        problems.append(f"{shown}: no inputs (expected inputs/*.txt, tests/NN.in or samples "
                        "in statement.md)")
    for p in reader.entries(path / "expected"):
        if p.suffix != ".txt" or p.is_dir():
            continue
        stem = display_name(p.stem)
        if stem not in names:
            problems.append(f"{display_name(str(p))}: no input inputs/{stem}.txt to compare "
                            "it with")
            continue
        text = reader.text(p)
        if text is not None:
            expected[names.index(stem)] = text
    solution_paths = [p for p in reader.entries(path / "solutions")
                      if p.suffix in LANGUAGES and not p.is_dir()]
    if not solution_paths:
        problems.append(f"{shown}: no solutions (expected solutions/*.py or *.cpp)")
    programs = [_program(reader, p, files) for p in solution_paths]
    checkers = [path / f"checker{suffix}" for suffix in LANGUAGES
                if (path / f"checker{suffix}").exists()]
    if len(checkers) > 1:
        problems.append(f"{shown}: both checker.py and checker.cpp; keep one")
    checker = _program(reader, checkers[0], files) if len(checkers) == 1 else None
    limits = _limits(reader, path / "limits.json")
    if len(problems) > before:
        return None

    kinds = [input_kind(n.rsplit("/", 1)[-1]) for n in names]
    known: dict[int, str] = {j: expected[j] for j in answers} if trust_answers else {}
    normalised = [" ".join(data.decode("utf-8", errors="replace").split()) for data in inputs]
    for k, sample in enumerate(parsed.pairs, start=1):
        key = " ".join(sample.input.split())
        if not key:
            continue
        # The sample is a test whether or not an input file equals it: its known output is
        # the one thing candidates cannot outvote.
        j = next((j for j, text in enumerate(normalised) if text == key), None)
        if j is None:
            names.append(f"statement_sample_{k}")
            inputs.append((sample.input.strip("\n") + "\n").encode())
            normalised.append(key)
            kinds.append("sample")
            j = len(inputs) - 1
        elif j in known:
            continue
        known[j] = sample.output
        kinds[j] = "sample"
    return TaskFolder(display_name(path.name), path, statement, tuple(names), tuple(inputs),
                      tuple(kinds), tuple(display_name(p.name) for p in solution_paths),
                      tuple(p for p in programs if p is not None), checker, expected, known,
                      len(parsed.pairs), tuple(parsed.problems), frozenset(answers), limits,
                      tuple(files))


def load_folder(path: str | Path, *, trust_answers: bool = False,
                max_file_bytes: int = MAX_FILE_BYTES) -> list[TaskFolder]:
    """Every task sub-folder of ``path``; FolderError lists all that is wrong at once."""
    root = Path(path)
    if not root.is_dir():
        raise FolderError([f"{display_name(str(root))}: not a folder (give the folder that "
                           "holds one sub-folder per task)"])
    problems: list[str] = []
    reader = _Reader(root, max_file_bytes, problems)
    tasks = [_load_task(reader, sub, trust_answers) for sub in reader.entries(root)
             if sub.is_dir()]
    if not tasks and not problems:
        problems.append(f"{display_name(str(root))}: no task sub-folders (each holds "
                        "statement.md, inputs/ or tests/, and solutions/)")
    if problems:
        raise FolderError(problems)
    return [t for t in tasks if t is not None]
