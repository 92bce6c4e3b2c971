"""Stage ``seeds``: import seed problems with their solutions (and tests) into the store.

Run it alone:

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages seeds

(or ``python -m engine.stages.seeds --config ... --run-dir ...``, which adds ``--stages seeds``).

Reads each of ``seeds.sources`` in order — JSONL (``.jsonl``, ``.ndjson``, optionally ``.gz``)
or Parquet (read in row batches, never whole) — in one of two record layouts, detected per
record when ``layout: auto``:

- TACO: ``question``; ``solutions`` = a JSON list of code strings, stored as a string (a real
  list is taken too); ``input_output`` = a JSON string ``{"inputs": [...], "outputs": [...],
  "fn_name"?: ...}`` (absent or empty: no tests); optional ``difficulty``, ``source``,
  ``tags``, ``skill_types``, ``name``, ``url``, ``starter_code``, ... kept in ``meta``.
- plain: ``problem``, ``solution`` (one code string), optional ``tests`` = a list of
  ``{"input": ..., "output": ...}``; other keys (``id``, ``tags``, ...) go to ``meta``.

Every record gets ``source_key = "<path as given>:<line>"`` (JSONL lines count from 1, blank
lines included) or ``"<path>:<row>"`` (Parquet rows count from 0). Batches of records go in
one transaction each, and a progress event follows each commit (so ``done`` is stored), so a killed import rerun skips what is
stored and finishes the rest without duplicates. A problem text already stored under another
key (the same problem in two files) is dropped as a duplicate.

``limit`` counts the records read from one file (bad ones too); ``max_seeds`` counts the seeds
kept over all sources (imported now or earlier), so a rerun stops at the same place.

A bad record — invalid JSON, not an object, no problem text, solutions that do not parse, no
solution at all, wrong types — is skipped and reported with its line (or row) and the reason:
the first 20 as warning log events, then one summary line; the returned summary holds the
count and up to 20 examples. A source file that does not exist, or has an unknown
extension with ``format: auto``, fails the stage (``StageError``) before anything is read.

Summary returned (lands in state.json)::

    {"imported": 12, "skipped_existing": 0, "duplicates": 0, "bad": 1,
     "bad_examples": [{"source": "x.jsonl", "line": 17, "reason": "..."}],
     "sources": [{"path": "x.jsonl", "read": 13, "imported": 12, ...}], "interrupted": false}

Leaves out: checking that solutions run (the bundled set's test does that; the verify stage
runs code), and fetching datasets from the network (give a local file).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.paths import resolve_data_path
from engine.store import SeedRecord

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.store import Store

BATCH = 500
SHOW_BAD = 20  # bad records logged one by one (and kept as examples) before a summary
TACO_META = ("difficulty", "source", "tags", "raw_tags", "skill_types", "name", "url",
             "starter_code", "time_limit", "memory_limit", "date", "id")


# ---------------------------------------------------------------------------------------------
# Reading records: (position, dict) or (position, reason) for what cannot be a dict


@dataclass
class Bad:
    reason: str


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict | Bad]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, Bad(f"not UTF-8 text ({e.reason} at byte {e.start})")
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield line_no, Bad(f"invalid JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(obj, dict):
                yield line_no, Bad(f"a JSON {type(obj).__name__}, not an object")
                continue
            yield line_no, obj


def _parquet_records(path: Path) -> Iterator[tuple[int, dict | Bad]]:
    import pyarrow.parquet as pq  # only Parquet sources need pyarrow

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise StageError(f"seed file {path} is not a readable Parquet file: {e}") from None
    row = 0
    for batch in pf.iter_batches(batch_size=BATCH):
        for rec in batch.to_pylist():
            yield row, rec
            row += 1


def _count_records(path: Path, fmt: str) -> int:
    """Records in a file, for the progress total (Parquet: from its footer)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return 0  # _parquet_records raises the clear error
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    with opener(path, "rb") as fh:
        for raw in fh:
            n += bool(raw.strip())
    return n


def _format_of(src: Any, path: Path, index: int) -> str:
    if src.format != "auto":
        return src.format
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".parquet", ".pq"):
        return "parquet"
    raise StageError(
        f"cannot tell the format of seed file {src.path} from its extension {last or '(none)'}:"
        f" set seeds.sources.{index}.format to jsonl or parquet"
    )


# ---------------------------------------------------------------------------------------------
# Layouts: a raw record -> (problem, solutions, tests, meta) or a reason it is bad


def _detect_layout(rec: dict) -> str | None:
    if "question" in rec:
        return "taco"
    if "problem" in rec:
        return "plain"
    return None


def _text(rec: dict, key: str) -> str | Bad:
    value = rec.get(key)
    if value is None:
        return Bad(f"no '{key}' field")
    if not isinstance(value, str):
        return Bad(f"'{key}' is a {type(value).__name__}, not a string")
    if not value.strip():
        return Bad(f"'{key}' is empty")
    return value


def _plain_meta(value: Any) -> Any:
    # meta must be JSON; Parquet may hand back dates or bytes.
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _parse_taco(rec: dict) -> tuple[str, list[str], dict, dict] | Bad:
    problem = _text(rec, "question")
    if isinstance(problem, Bad):
        return problem
    sols = rec.get("solutions")
    if isinstance(sols, str):
        try:
            sols = json.loads(sols) if sols.strip() else []
        except json.JSONDecodeError as e:
            return Bad(f"'solutions' is not a JSON list: {e.msg} at column {e.colno}")
    if sols is None:
        sols = []
    if not isinstance(sols, list) or not all(isinstance(s, str) for s in sols):
        return Bad("'solutions' must be a list of code strings")
    sols = [s for s in sols if s.strip()]
    if not sols:
        return Bad("no solution (a seed needs at least one)")
    io = rec.get("input_output")
    tests: dict[str, Any] = {"inputs": [], "outputs": []}
    if isinstance(io, str) and io.strip():
        try:
            io = json.loads(io)
        except json.JSONDecodeError as e:
            return Bad(f"'input_output' is not JSON: {e.msg} at column {e.colno}")
    if isinstance(io, dict):
        ins, outs = io.get("inputs", []), io.get("outputs", [])
        if not isinstance(ins, list) or not isinstance(outs, list):
            return Bad("'input_output' needs 'inputs' and 'outputs' lists")
        if len(ins) != len(outs):
            return Bad(f"'input_output' has {len(ins)} inputs but {len(outs)} outputs")
        tests = {"inputs": ins, "outputs": outs}
        if io.get("fn_name"):
            tests["fn_name"] = io["fn_name"]
    elif io not in (None, ""):
        return Bad(f"'input_output' is a {type(io).__name__}, not a JSON object")
    meta = {"layout": "taco"}
    meta.update({k: _plain_meta(rec[k]) for k in TACO_META if rec.get(k) not in (None, "")})
    return problem, sols, tests, meta


def _parse_plain(rec: dict) -> tuple[str, list[str], dict, dict] | Bad:
    problem = _text(rec, "problem")
    if isinstance(problem, Bad):
        return problem
    solution = _text(rec, "solution")
    if isinstance(solution, Bad):
        return solution
    raw_tests = rec.get("tests")
    tests: dict[str, Any] = {"inputs": [], "outputs": []}
    if raw_tests is not None:
        if not isinstance(raw_tests, list):
            return Bad(f"'tests' is a {type(raw_tests).__name__}, not a list")
        for i, t in enumerate(raw_tests):
            if not (isinstance(t, dict) and isinstance(t.get("input"), str)
                    and isinstance(t.get("output"), str)):
                return Bad(f"tests[{i}] must be an object with string 'input' and 'output'")
            tests["inputs"].append(t["input"])
            tests["outputs"].append(t["output"])
    meta = {"layout": "plain"}
    meta.update({k: _plain_meta(v) for k, v in rec.items()
                 if k not in ("problem", "solution", "tests")})
    return problem, [solution], tests, meta


def parse_record(rec: dict, layout: str) -> tuple[str, list[str], dict, dict] | Bad:
    """One raw record in ``layout`` (taco, plain or auto) -> its seed parts, or why not."""
    chosen = _detect_layout(rec) if layout == "auto" else layout
    if chosen is None:
        keys = ", ".join(sorted(map(str, rec))[:8]) or "none"
        return Bad(f"neither TACO ('question') nor plain ('problem') fields; keys: {keys}")
    return _parse_taco(rec) if chosen == "taco" else _parse_plain(rec)


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class _Tally:
    imported: int = 0
    skipped_existing: int = 0
    duplicates: int = 0
    bad: int = 0
    read: int = 0
    bad_examples: list[dict] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.imported + self.skipped_existing


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.seeds
    ev, log = ctx.events, ctx.log

    # Check every source before importing any, so a typo fails fast and whole.
    plan = []
    for i, src in enumerate(cfg.sources):
        try:
            path = resolve_data_path(src.path)
        except ValueError as e:
            raise StageError(f"seeds.sources.{i}.path: {e}") from None
        if not path.is_file():
            raise StageError(
                f"seed file {src.path} does not exist (looked at {path}): "
                f"fix seeds.sources.{i}.path"
            )
        plan.append((src, path, _format_of(src, path, i)))

    expected = 0
    for src, path, fmt in plan:
        n = _count_records(path, fmt)
        expected += min(n, src.limit) if src.limit else n
    if cfg.max_seeds:
        expected = min(expected, cfg.max_seeds)

    store = ctx.store()
    total = _Tally()
    per_source = []
    done = 0
    interrupted = False

    def flush(batch: list[SeedRecord], tally: _Tally) -> None:
        if not batch:
            return
        with store.transaction():
            existing = store.existing_seed_keys(r.source_key for r in batch)
            fresh = [r for r in batch if r.source_key not in existing]
            inserted = store.add_seeds(fresh)
        for t in (tally, total):
            t.skipped_existing += len(existing)
            t.imported += inserted
            t.duplicates += len(fresh) - inserted
        batch.clear()

    def report_bad(src_path: str, pos_key: str, pos: int, reason: str, tally: _Tally) -> None:
        tally.bad += 1
        total.bad += 1
        if total.bad <= SHOW_BAD:
            ev.log(f"{src_path}:{pos}: skipped a bad record: {reason}", level="warning")
            total.bad_examples.append({"source": src_path, pos_key: pos, "reason": reason})

    for src, path, fmt in plan:
        tally = _Tally()
        pos_key = "row" if fmt == "parquet" else "line"
        log.info("importing %s (%s, layout %s) from %s", src.path, fmt, src.layout, path)
        records = _parquet_records(path) if fmt == "parquet" else _jsonl_records(path)
        batch: list[SeedRecord] = []
        for pos, rec in records:
            if src.limit and tally.read >= src.limit:
                break
            if cfg.max_seeds and total.kept + len(batch) >= cfg.max_seeds:
                flush(batch, tally)  # some of the batch may be duplicates that do not count
                if total.kept >= cfg.max_seeds:
                    break
            tally.read += 1
            total.read += 1
            done += 1
            parsed = rec if isinstance(rec, Bad) else parse_record(rec, src.layout)
            if isinstance(parsed, Bad):
                report_bad(src.path, pos_key, pos, parsed.reason, tally)
                continue
            problem, sols, tests, meta = parsed
            batch.append(SeedRecord(source=src.path, source_key=f"{src.path}:{pos}",
                                    problem=problem, solutions=sols, tests=tests, meta=meta))
            if len(batch) >= BATCH:
                flush(batch, tally)
                _emit(ev, total, done, expected)
                if ctx.stop_requested():
                    interrupted = True
                    break
        if not interrupted:
            flush(batch, tally)
            _emit(ev, total, done, expected)
            interrupted = ctx.stop_requested()
        per_source.append({"path": src.path, "format": fmt, "read": tally.read,
                           "imported": tally.imported, "skipped_existing": tally.skipped_existing,
                           "duplicates": tally.duplicates, "bad": tally.bad})
        log.info("%s: read %d, imported %d, already stored %d, duplicates %d, bad %d",
                 src.path, tally.read, tally.imported, tally.skipped_existing,
                 tally.duplicates, tally.bad)
        if tally.read and tally.bad * 10 > tally.read:
            ev.alert(f"{tally.bad} of {tally.read} records in {src.path} were bad "
                     f"(first reasons in the log)", level="warning", code="seeds/bad_records")
        if interrupted:
            break

    if total.bad > SHOW_BAD:
        ev.log(f"{total.bad} bad records skipped in all ({SHOW_BAD} shown above)",
               level="warning")
    summary = {
        "imported": total.imported,
        "skipped_existing": total.skipped_existing,
        "duplicates": total.duplicates,
        "bad": total.bad,
        "bad_examples": total.bad_examples,
        "sources": per_source,
        "interrupted": interrupted,
    }
    if cfg.as_tasks and not interrupted:
        summary["seed_tasks"] = add_seed_tasks(store, ctx.run.store_path)
        log.info("seeds as tasks: %d tasks (%d new)", *summary["seed_tasks"].values())
    if not interrupted and total.kept == 0:
        first = total.bad_examples[0] if total.bad_examples else None
        hint = f"; first problem: {first}" if first else "; the files hold no records"
        raise StageError(
            f"no usable seeds: read {total.read} records, {total.bad} bad, "
            f"{total.duplicates} duplicates{hint}. Check seeds.sources (layout, format)"
        )
    return summary


SEED_TASK_MAX_TESTS = 50  # a TACO seed may carry hundreds; verification needs a handful


def add_seed_tasks(store: Store, store_path: Path) -> dict[str, int]:
    """``seeds.as_tasks``: every stored seed with a reference solution and stdin/stdout tests
    (what curation counts as such: ``engine.store.seed_problems``) becomes a pending task (key
    ``seed:<id>``, so a rerun adds nothing twice) whose tests keep their known outputs (source
    ``seed``: verification passes them to the vote as known) and whose lineage says
    ``seed_problem``; the solutions stage adds the reference solution to its candidates
    (``Store.seed_reference``). -> {"tasks": n, "new": m}."""
    from engine.store.seed_problems import SeedReader

    n = new = 0
    with SeedReader(store_path) as reader:
        for batch in reader.iter_candidates():
            usable = [c.id for c in batch if c.has_solution and c.has_tests]
            for seed in reader.export_batch(usable):
                n += 1
                key = f"seed:{seed.id}"
                if store.task_id_for_key(key) is not None:
                    continue
                title = next((line.strip() for line in seed.problem.splitlines()
                              if line.strip()), seed.source_key)[:120]
                with store.transaction():
                    tid = store.add_task(style="codeforces", title=title,
                                         statement=seed.problem, selected_features={}, key=key,
                                         integration_strategy=f"seed problem {seed.source_key}")
                    pairs = list(zip(seed.inputs, seed.outputs, strict=True))
                    for j, (inp, out) in enumerate(pairs[:SEED_TASK_MAX_TESTS]):
                        store.add_test(tid, j, input=inp, kind="random", source="seed",
                                       expected_output=out, meta={"seed": seed.source_key})
                    store.add_lineage("task", tid, "seed", seed.id, "seed_problem")
                new += 1
    return {"tasks": n, "new": new}


def _emit(ev: Any, total: _Tally, done: int, expected: int) -> None:
    ev.progress(done, max(expected, done), unit="seeds")
    ev.metric(done, {"seeds/imported": total.imported, "seeds/skipped_existing":
                     total.skipped_existing, "seeds/duplicates": total.duplicates,
                     "seeds/bad": total.bad})


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages seeds``)."""
    return run_stage_alone("seeds", argv)


if __name__ == "__main__":
    sys.exit(main())
