"""Loading LiveCodeBench-format problem files: ``load_problems``.

    load_problems("test6.jsonl")                                    # one file
    load_problems("lcb/", release="release_v6", start_date="2024-08-01")  # LiveCodeBench's set

Input: a JSONL file (one JSON object per line) or a Parquet file (``.parquet``, one row per
problem, as in LiveCodeBench's Hugging Face dataset), or a folder holding LiveCodeBench's
release files, chosen by ``release`` exactly as its ``code_generation_lite`` loader does:
``release_v1`` = test.jsonl, ``release_vN`` = test.jsonl .. testN.jsonl (cumulative),
``release_latest`` = all six, ``vN`` = testN.jsonl alone, ``vN_vM`` = testN .. testM (test1
is test.jsonl; each name as .jsonl or .parquet). ``start_date`` / ``end_date``
(``YYYY-MM-DD``) then keep problems with ``start <= contest_date <= end``, compared as
LiveCodeBench does (the end date means its midnight). Rows have the fields of
LiveCodeBench's ``code_generation`` release::

    question_title, question_content, question_id, platform, difficulty, starter_code,
    contest_date        ISO date-time (needed only for a date window)
    public_test_cases   a JSON string: [{"input": str, "output": str, "testtype": ...}, ...]
    private_test_cases  the same, OR LiveCodeBench's compressed form (below)
    metadata            a JSON string, e.g. {"func_name": "maxSum"} for function-style problems

``testtype`` is ``stdin`` (the input is the program's standard input, the output its expected
standard output) or ``functional`` (the input is one JSON value per line, the arguments of
the function named in the metadata; the output is the JSON of its return value). The function
name is read from ``metadata.func_name`` (LiveCodeBench's key) or ``metadata.fn_name``.

How: every row is checked strictly; a problem is a ``ProblemFormatError`` naming the file,
the line and the field (``smoke.jsonl:3: private_test_cases: ...``), never a silent skip.
Test lists may also be given already decoded (a JSON list instead of a string holding one).

The compressed form is ``base64(zlib(pickle(json_string)))``. Unpickling data from a file
runs code unless restricted, so ``_PlainUnpickler`` refuses every global and class (no
``find_class``, no persistent ids): only the opcodes for str, bytes, list, dict and plain
scalars can succeed, and the result must be a str/bytes holding JSON, or the list itself.
Decompression is capped at ``MAX_DECOMPRESSED_BYTES`` (a zip bomb is an error, not an OOM).

Left out: test cases other than stdin / functional, and downloading: the files are the
user's (LiveCodeBench's dataset is not bundled).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "MAX_DECOMPRESSED_BYTES", "RELEASE_PATTERN", "EvalProblem", "ProblemFormatError",
    "TestCase", "decode_test_cases", "load_problems", "parse_problem", "release_files",
]

TestType = Literal["stdin", "functional"]
TEST_TYPES: tuple[str, ...] = ("stdin", "functional")
MAX_DECOMPRESSED_BYTES = 1 << 30  # LiveCodeBench's largest private sets are tens of MB
REQUIRED_TEXT = ("question_title", "question_content", "question_id", "platform", "difficulty")
RELEASES = 6  # LiveCodeBench's test.jsonl .. test6.jsonl (release_v6, 2025)
RELEASE_PATTERN = r"^(release_(v[1-6]|latest)|v[1-6](_v[1-6])?)$"


class ProblemFormatError(ValueError):
    """A row of a problems file is not in LiveCodeBench format; the message says where."""


@dataclass(frozen=True)
class TestCase:
    input: str
    output: str
    testtype: TestType


@dataclass(frozen=True)
class EvalProblem:
    question_id: str
    title: str
    content: str
    platform: str
    difficulty: str
    starter_code: str
    public_tests: tuple[TestCase, ...]
    private_tests: tuple[TestCase, ...]
    fn_name: str | None  # set for function-style (LeetCode) problems
    contest_date: str = ""  # ISO date-time as in the row ("" when the row has none)

    @property
    def tests(self) -> tuple[TestCase, ...]:
        """Every test a sample must pass: public first, then private."""
        return self.public_tests + self.private_tests

    @property
    def functional(self) -> bool:
        return self.fn_name is not None


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that can build only built-in plain data: any global or class is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data "
                                     "(str, bytes, list, dict) may be unpickled")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id: only plain data may be unpickled")


def _plain_only(value: Any) -> bool:
    """True when ``value`` is made of str/bytes/list/dict (and JSON scalars) only."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif v is not None and type(v) not in (str, bytes, int, float, bool):
            return False
    return True


def _decompress(blob: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(blob, MAX_DECOMPRESSED_BYTES)
    if d.unconsumed_tail:
        raise ValueError(f"decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes")
    if not d.eof:
        raise ValueError("the zlib stream is incomplete")
    return out


def _uncompress_tests(text: str) -> Any:
    """LiveCodeBench's compressed test list: base64 -> zlib -> restricted pickle -> JSON."""
    try:
        blob = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is neither a JSON list nor base64 (LiveCodeBench's compressed "
                         "form)") from None
    try:
        raw = _decompress(blob)
    except zlib.error as e:
        raise ValueError(f"is base64 but not zlib data ({e})") from None
    try:
        value = _PlainUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"holds a pickle that is not plain data: {e}") from None
    except Exception as e:  # a malformed pickle can fail in many ways; none of them is ours
        raise ValueError(f"holds a broken pickle ({type(e).__name__}: {e})") from None
    if not _plain_only(value):
        raise ValueError("holds a pickle with something other than str/bytes/list/dict")
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"decompresses to text that is not JSON ({e})") from None
    return value


def decode_test_cases(value: Any, *, allow_compressed: bool) -> list[TestCase]:
    """A test list as stored in a row (JSON string, compressed string or list) -> TestCases.

    Raises ``ValueError`` with a message that reads after the field's name.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"is not valid JSON ({e})") from None
        elif allow_compressed and text:
            value = _uncompress_tests(text)
        else:
            raise ValueError("must be a JSON string holding a list of test cases")
    if not isinstance(value, list):
        raise ValueError(f"must hold a list of test cases, not {type(value).__name__}")
    tests = []
    for i, case in enumerate(value):
        if not isinstance(case, dict):
            raise ValueError(f"test {i} is a {type(case).__name__}, not an object")
        missing = [k for k in ("input", "output", "testtype") if k not in case]
        if missing:
            raise ValueError(f"test {i} lacks {', '.join(missing)}")
        for key in ("input", "output"):
            if not isinstance(case[key], str):
                raise ValueError(f"test {i}: {key} must be a string, not "
                                 f"{type(case[key]).__name__}")
        if case["testtype"] not in TEST_TYPES:
            raise ValueError(f"test {i}: testtype is {case['testtype']!r}; expected stdin or "
                             "functional")
        tests.append(TestCase(case["input"], case["output"], case["testtype"]))
    return tests


def _metadata(value: Any) -> dict:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"must hold a JSON object, not {type(value).__name__}")
    return value


def parse_problem(row: Any) -> EvalProblem:
    """One decoded JSONL row -> EvalProblem; ``ValueError("<field>: <what>")`` if it is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"a row must be a JSON object, not {type(row).__name__}")
    for key in REQUIRED_TEXT:
        if key not in row:
            raise ValueError(f"{key}: missing")
        if not isinstance(row[key], str) or (key == "question_id" and not row[key].strip()):
            raise ValueError(f"{key}: must be a non-empty string" if key == "question_id"
                             else f"{key}: must be a string")
    starter = row.get("starter_code") or ""
    if not isinstance(starter, str):
        raise ValueError("starter_code: must be a string")
    parsed: dict[str, Any] = {}
    for key, compressed in (("public_test_cases", False), ("private_test_cases", True),
                            ("metadata", False)):
        if key not in row:
            raise ValueError(f"{key}: missing")
        try:
            parsed[key] = (_metadata(row[key]) if key == "metadata" else
                           decode_test_cases(row[key], allow_compressed=compressed))
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    meta = parsed["metadata"]
    fn_name = meta.get("func_name", meta.get("fn_name"))
    if fn_name is not None and (not isinstance(fn_name, str) or not fn_name.isidentifier()):
        raise ValueError(f"metadata: func_name {fn_name!r} is not a Python identifier")
    tests = parsed["public_test_cases"] + parsed["private_test_cases"]
    if not tests:
        raise ValueError("public_test_cases: the problem has no tests at all")
    want = "functional" if fn_name else "stdin"
    odd = [t.testtype for t in tests if t.testtype != want]
    if odd:
        why = (f"metadata names the function {fn_name!r}" if fn_name else
               "metadata names no func_name")
        raise ValueError(f"public_test_cases/private_test_cases: a {odd[0]} test, but {why} "
                         f"(every test must be {want})")
    date = row.get("contest_date") or ""
    if not isinstance(date, str):  # Parquet may hold a timestamp
        date = date.isoformat() if hasattr(date, "isoformat") else str(date)
    if date:
        try:
            datetime.fromisoformat(date)
        except ValueError:
            raise ValueError(f"contest_date: {date!r} is not an ISO date-time "
                             "(e.g. 2024-08-03T00:00:00)") from None
    return EvalProblem(
        contest_date=date,
        question_id=row["question_id"], title=row["question_title"],
        content=row["question_content"], platform=row["platform"],
        difficulty=row["difficulty"], starter_code=starter,
        public_tests=tuple(parsed["public_test_cases"]),
        private_tests=tuple(parsed["private_test_cases"]), fn_name=fn_name,
    )


def release_files(release: str) -> list[str]:
    """LiveCodeBench's file names for a release (module doc), in order."""
    if not re.match(RELEASE_PATTERN, release):
        raise ValueError(f"release {release!r} is not one of release_v1..release_v{RELEASES}, "
                         "release_latest, v1..v6 or vN_vM")
    name = ["test.jsonl"] + [f"test{i}.jsonl" for i in range(2, RELEASES + 1)]
    if release == "release_latest":
        return name
    if release.startswith("release_v"):
        return name[:int(release[-1])]
    first, _, last = release.partition("_")
    lo, hi = int(first[1]), int((last or first)[1])
    if hi < lo:
        raise ValueError(f"release {release!r} ends before it starts: write v{hi}_v{lo}")
    return name[lo - 1:hi]


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    where = f"{path.name}:{number}"
                    try:
                        yield where, json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ProblemFormatError(f"{where}: not a JSON object ({e})") from None
    except UnicodeDecodeError:
        raise ProblemFormatError(
            f"{path}: is not UTF-8 JSON lines; if it is a Parquet file (LiveCodeBench's "
            "Hugging Face files are), name it *.parquet") from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq  # only Parquet inputs need pyarrow

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise ProblemFormatError(f"{path}: not a readable Parquet file ({e})") from None
    number = 0
    for batch in pf.iter_batches(batch_size=256):
        for rec in batch.to_pylist():
            number += 1
            yield f"{path.name}:row {number}", rec


def _files(path: Path, release: str | None) -> list[Path]:
    if path.is_dir():
        if release is None:
            raise ProblemFormatError(f"{path}: is a folder; set a release (e.g. release_v6) to "
                                     "choose LiveCodeBench's files in it, or name one file")
        try:
            names = release_files(release)
        except ValueError as e:
            raise ProblemFormatError(str(e)) from None
        found = []
        for name in names:
            options = [path / name, path / name.replace(".jsonl", ".parquet")]
            hit = next((p for p in options if p.is_file()), None)
            if hit is None:
                raise ProblemFormatError(f"{path}: release {release} needs {name} (or "
                                         f"{options[1].name}), which is not there")
            found.append(hit)
        return found
    if not path.is_file():
        raise ProblemFormatError(f"{path}: no such problems file or folder")
    if release is not None:
        raise ProblemFormatError(f"{path}: a release chooses files in a folder; set the "
                                 "problems path to the folder holding test.jsonl .. test6.jsonl,"
                                 " or leave the release empty")
    return [path]


def _day(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ProblemFormatError(f"{what} {value!r} is not a date like 2024-08-01") from None


def load_problems(path: str | Path, max_problems: int | None = None, *,
                  release: str | None = None, start_date: str | None = None,
                  end_date: str | None = None) -> list[EvalProblem]:
    """The problems of a LiveCodeBench-format JSONL or Parquet file, or of a release's files
    in a folder (module doc), in file order, inside the contest-date window when one is
    given; the first ``max_problems`` of those when given. ``ProblemFormatError`` names the
    line (or Parquet row) and field of the first bad row; a question_id seen twice is an
    error too."""
    path = Path(path)
    start, end = _day(start_date, "start_date"), _day(end_date, "end_date")
    if start and end and end < start:
        raise ProblemFormatError(f"end_date {end_date} is before start_date {start_date}")
    problems: list[EvalProblem] = []
    seen: dict[str, str] = {}
    total = 0
    for file in _files(path, release):
        if max_problems is not None and len(problems) >= max_problems:
            break
        rows = _parquet_rows(file) if file.suffix == ".parquet" else _jsonl_rows(file)
        for where, row in rows:
            if max_problems is not None and len(problems) >= max_problems:
                break
            total += 1
            try:
                problem = parse_problem(row)
            except ValueError as e:
                raise ProblemFormatError(f"{where}: {e}") from None
            if problem.question_id in seen:
                raise ProblemFormatError(f"{where}: question_id {problem.question_id!r} is "
                                         f"also at {seen[problem.question_id]}")
            seen[problem.question_id] = where
            if start or end:
                if not problem.contest_date:
                    raise ProblemFormatError(f"{where}: contest_date: missing, but a date "
                                             "window is set (start_date / end_date)")
                when = datetime.fromisoformat(problem.contest_date)
                if (start and when < start) or (end and when > end):
                    continue
            problems.append(problem)
    if not problems:
        window = f" between {start_date or 'the start'} and {end_date or 'the end'}" if (
            start or end) else ""
        raise ProblemFormatError(f"{path}: holds no problems{window} ({total} rows read)")
    return problems
