"""The seeds stage and the bundled seed set: layouts, formats, bad records, limits, resuming."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.context import StageContext, StageError
from engine.events import EventWriter
from engine.paths import ASSETS_DIR, resolve_data_path
from engine.rundir import RunDir
from engine.schema import config_from_dict
from engine.stages import seeds
from engine.store import Store, TaskQuery

BUNDLED = ASSETS_DIR / "seeds" / "seeds.jsonl"
BUNDLED_RECORDS = [json.loads(line) for line in BUNDLED.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------
# Helpers


def make_ctx(tmp_path, sources, max_seeds=None, name="run"):
    cfg = config_from_dict({"seeds": {"sources": sources, "max_seeds": max_seeds}})
    run = RunDir(tmp_path / name)
    run.create()
    events = EventWriter.for_run(run.events_dir, "seeds", 0)
    return StageContext(config=cfg, run=run, stage="seeds", events=events,
                        log=logging.getLogger("test.seeds"))


def run_stage(ctx):
    try:
        return seeds.run(ctx)
    finally:
        ctx.close()
        ctx.events.close()


def events_of(ctx, kind):
    lines = (ctx.run.events_dir / "seeds.0.jsonl").read_text().splitlines()
    return [e["data"] for e in map(json.loads, lines) if e["kind"] == kind]


def stored_seeds(ctx):
    with Store(ctx.run.store_path) as store:
        return list(store.iter_seeds())


def taco(question, solutions=("print(1)",), io=None, **extra):
    rec = {"question": question, "solutions": json.dumps(list(solutions))}
    if io is not None:
        rec["input_output"] = json.dumps(io)
    rec.update(extra)
    return rec


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


# ---------------------------------------------------------------------------------------------
# The bundled set


def test_the_bundled_set_has_at_least_thirty_complete_problems_with_distinct_ids():
    assert len(BUNDLED_RECORDS) >= 30
    assert len({r["id"] for r in BUNDLED_RECORDS}) == len(BUNDLED_RECORDS)
    for rec in BUNDLED_RECORDS:
        for section in ("Input", "Output", "Constraints", "Sample Input", "Sample Output"):
            assert f"\n{section}\n" in rec["problem"], (rec["id"], section)
        assert len(rec["tests"]) >= 3, rec["id"]
        sample = rec["problem"].split("Sample Input\n")[1].split("\n\nSample Output")[0]
        assert sample.strip() == rec["tests"][0]["input"].strip(), rec["id"]
        assert rec["tags"] and all(isinstance(t, str) and t for t in rec["tags"]), rec["id"]


@pytest.mark.parametrize("rec", BUNDLED_RECORDS, ids=[r["id"] for r in BUNDLED_RECORDS])
def test_every_bundled_solution_prints_the_expected_output_of_each_test(rec):
    for i, test in enumerate(rec["tests"]):
        done = subprocess.run([sys.executable, "-c", rec["solution"]], input=test["input"],
                              capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, (rec["id"], i, done.stderr)
        assert done.stdout.strip() == test["output"].strip(), (rec["id"], i)


def test_the_bundled_seeds_import_through_the_assets_path(tmp_path):
    ctx = make_ctx(tmp_path, [{"path": "assets://seeds/seeds.jsonl"}])
    summary = run_stage(ctx)
    expected = (len(BUNDLED_RECORDS), 0, False)
    assert (summary["imported"], summary["bad"], summary["interrupted"]) == expected
    first = stored_seeds(ctx)[0]
    assert first.source_key == "assets://seeds/seeds.jsonl:1"
    assert first.meta["layout"] == "plain" and first.meta["id"] == BUNDLED_RECORDS[0]["id"]
    assert first.tests["inputs"][0] == BUNDLED_RECORDS[0]["tests"][0]["input"]


def test_paths_resolve_from_assets_absolute_or_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path("assets://seeds/seeds.jsonl") == BUNDLED
    assert resolve_data_path("data/x.jsonl") == tmp_path / "data" / "x.jsonl"
    assert resolve_data_path("/abs/x.jsonl").as_posix() == "/abs/x.jsonl"
    with pytest.raises(ValueError, match="climbs out"):
        resolve_data_path("assets://../secrets")


# ---------------------------------------------------------------------------------------------
# Layouts and formats


def test_taco_jsonl_keeps_every_solution_the_tests_and_the_metadata(tmp_path):
    src = write_jsonl(tmp_path / "taco.jsonl", [
        taco("Add a and b.", ["print(sum(map(int, input().split())))", "a,b=map(int,input().split());print(a+b)"],
             {"inputs": ["1 2\n"], "outputs": ["3\n"]}, difficulty="EASY", tags="['Math']"),
        taco("Call f.", ["def f(x): return x"], {"inputs": [[1]], "outputs": [1], "fn_name": "f"}),
    ])
    ctx = make_ctx(tmp_path, [{"path": src}])
    assert run_stage(ctx)["imported"] == 2
    a, b = stored_seeds(ctx)
    assert len(a.solutions) == 2 and a.tests == {"inputs": ["1 2\n"], "outputs": ["3\n"]}
    assert a.meta == {"layout": "taco", "difficulty": "EASY", "tags": "['Math']"}
    assert b.tests["fn_name"] == "f"
    assert a.source_key == f"{src}:1"


def test_taco_parquet_is_read_in_batches_with_row_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "BATCH", 4)
    rows = [taco(f"Problem number {i}.", [f"print({i})"], {"inputs": [""], "outputs": [f"{i}\n"]})
            for i in range(10)]
    path = tmp_path / "taco.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)
    ctx = make_ctx(tmp_path, [{"path": str(path)}])
    summary = run_stage(ctx)
    assert summary["imported"] == 10 and summary["sources"][0]["format"] == "parquet"
    got = stored_seeds(ctx)
    assert [s.source_key for s in got] == [f"{path}:{i}" for i in range(10)]
    assert got[7].solutions == ["print(7)"]
    progress = events_of(ctx, "progress")
    assert [p["done"] for p in progress] == [4, 8, 10]  # one per committed batch
    assert all(p["total"] == 10 and p["unit"] == "seeds" for p in progress)


def test_plain_layout_with_and_without_tests(tmp_path):
    src = write_jsonl(tmp_path / "plain.jsonl", [
        {"problem": "Echo the input.", "solution": "print(input())",
         "tests": [{"input": "hi\n", "output": "hi\n"}], "id": "echo"},
        {"problem": "Print 7.", "solution": "print(7)"},
    ])
    ctx = make_ctx(tmp_path, [{"path": src, "layout": "plain"}])
    assert run_stage(ctx)["imported"] == 2
    echo, seven = stored_seeds(ctx)
    assert echo.tests == {"inputs": ["hi\n"], "outputs": ["hi\n"]} and echo.meta["id"] == "echo"
    assert seven.solutions == ["print(7)"] and seven.tests == {"inputs": [], "outputs": []}


def test_auto_layout_is_decided_record_by_record(tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", [
        taco("A TACO one."), {"problem": "A plain one.", "solution": "print(2)"},
    ])
    ctx = make_ctx(tmp_path, [{"path": src}])
    assert run_stage(ctx)["imported"] == 2
    assert [s.meta["layout"] for s in stored_seeds(ctx)] == ["taco", "plain"]


# ---------------------------------------------------------------------------------------------
# Bad records


def test_bad_lines_are_reported_with_their_line_numbers_and_skipped(tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [
        taco("Good one."),                                       # 1
        '{"question": "broken',                                  # 2 invalid JSON
        "[1, 2]",                                                # 3 not an object
        {"solutions": "[]", "difficulty": "EASY"},              # 4 no problem field
        {"question": "Q", "solutions": "[not json"},            # 5 unparsable solutions
        {"problem": 42, "solution": "x"},                        # 6 wrong type
        "",                                                      # 7 blank: not a record
        taco("No solutions here.", []),                          # 8 nothing to learn from
        {"problem": "P", "solution": "s", "tests": [{"input": 1}]},  # 9 bad tests
        taco("Good two."),                                       # 10
    ])
    ctx = make_ctx(tmp_path, [{"path": src}])
    summary = run_stage(ctx)
    assert (summary["imported"], summary["bad"]) == (2, 7)
    assert [b["line"] for b in summary["bad_examples"]] == [2, 3, 4, 5, 6, 8, 9]
    reasons = {b["line"]: b["reason"] for b in summary["bad_examples"]}
    assert "invalid JSON" in reasons[2]
    assert "not an object" in reasons[3]
    assert "neither TACO" in reasons[4]
    assert "'solutions' is not a JSON list" in reasons[5]
    assert "'problem' is a int" in reasons[6]
    assert "no solution" in reasons[8]
    assert "tests[0]" in reasons[9]
    assert [s.source_key for s in stored_seeds(ctx)] == [f"{src}:1", f"{src}:10"]
    warnings = [e["message"] for e in events_of(ctx, "log") if e["level"] == "warning"]
    assert warnings[0].startswith(f"{src}:2: skipped a bad record")
    assert any(a["code"] == "seeds/bad_records" for a in events_of(ctx, "alert"))


def test_bad_parquet_rows_are_reported_by_row(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"question": "Fine.", "solutions": '["print(1)"]'},
        {"question": "", "solutions": '["print(1)"]'},
        {"question": "Also fine.", "solutions": '["print(2)"]'},
    ]), path)
    ctx = make_ctx(tmp_path, [{"path": str(path)}])
    summary = run_stage(ctx)
    assert summary["imported"] == 2
    assert summary["bad_examples"] == [{"source": str(path), "row": 1, "reason": "'question' is empty"}]


def test_past_twenty_bad_records_only_a_summary_is_logged(tmp_path):
    src = write_jsonl(tmp_path / "many.jsonl", ["{oops"] * 30 + [taco("Good.")])
    ctx = make_ctx(tmp_path, [{"path": src}])
    summary = run_stage(ctx)
    assert summary["bad"] == 30 and len(summary["bad_examples"]) == 20
    warnings = [e["message"] for e in events_of(ctx, "log") if e["level"] == "warning"]
    assert len(warnings) == 21
    assert warnings[-1].startswith("30 bad records skipped in all")


def test_a_file_with_no_usable_seeds_fails_the_stage(tmp_path):
    src = write_jsonl(tmp_path / "junk.jsonl", [{"title": "x"}, "{"])
    with pytest.raises(StageError, match="no usable seeds.*neither TACO"):
        run_stage(make_ctx(tmp_path, [{"path": src}]))


def test_a_missing_source_file_fails_the_stage_naming_the_path_and_key(tmp_path):
    ctx = make_ctx(tmp_path, [{"path": "assets://seeds/seeds.jsonl"},
                              {"path": str(tmp_path / "nope.jsonl")}])
    with pytest.raises(StageError, match=r"nope\.jsonl does not exist.*seeds\.sources\.1\.path"):
        run_stage(ctx)
    assert stored_seeds(ctx) == []  # checked before anything was imported


def test_an_unknown_extension_asks_for_the_format(tmp_path):
    src = tmp_path / "seeds.txt"
    src.write_text(json.dumps(taco("Q")) + "\n")
    with pytest.raises(StageError, match=r"seeds\.sources\.0\.format"):
        run_stage(make_ctx(tmp_path, [{"path": str(src)}]))
    ctx = make_ctx(tmp_path, [{"path": str(src), "format": "jsonl"}], name="run2")
    assert run_stage(ctx)["imported"] == 1


# ---------------------------------------------------------------------------------------------
# Limits, duplicates, reruns


def test_limit_reads_at_most_that_many_records_of_a_file(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", ["{bad"] + [taco(f"Q{i}") for i in range(9)])
    ctx = make_ctx(tmp_path, [{"path": src, "limit": 4}])
    summary = run_stage(ctx)
    assert (summary["imported"], summary["bad"], summary["sources"][0]["read"]) == (3, 1, 4)


def test_max_seeds_caps_the_seeds_kept_over_all_sources(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [taco(f"A{i}") for i in range(3)])
    b = write_jsonl(tmp_path / "b.jsonl", [taco(f"B{i}") for i in range(5)])
    ctx = make_ctx(tmp_path, [{"path": a}, {"path": b}], max_seeds=5)
    assert run_stage(ctx)["imported"] == 5
    assert [s.problem for s in stored_seeds(ctx)] == ["A0", "A1", "A2", "B0", "B1"]


def test_the_same_problem_in_two_files_is_kept_once(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [taco("Sum two numbers."), taco("Other.")])
    b = write_jsonl(tmp_path / "b.jsonl", [taco("Sum  two numbers.\n")])
    summary = run_stage(make_ctx(tmp_path, [{"path": a}, {"path": b}]))
    assert (summary["imported"], summary["duplicates"]) == (2, 1)


def test_a_rerun_imports_nothing_new(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [taco(f"Q{i}") for i in range(6)])
    first = run_stage(make_ctx(tmp_path, [{"path": src}]))
    again = run_stage(make_ctx(tmp_path, [{"path": src}]))
    assert first["imported"] == 6
    assert (again["imported"], again["skipped_existing"], again["duplicates"]) == (0, 6, 0)


def test_an_interrupted_import_commits_its_batch_and_a_rerun_finishes_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "BATCH", 3)
    src = write_jsonl(tmp_path / "s.jsonl", [taco(f"Q{i}") for i in range(8)])
    ctx = make_ctx(tmp_path, [{"path": src}])
    ctx.stop_event.set()  # as if SIGTERM arrived during the first batch
    first = run_stage(ctx)
    assert first["interrupted"] is True and first["imported"] == 3
    resumed = run_stage(make_ctx(tmp_path, [{"path": src}]))
    assert (resumed["imported"], resumed["skipped_existing"], resumed["interrupted"]) == (5, 3, False)
    keys = [s.source_key for s in stored_seeds(ctx)]
    assert keys == [f"{src}:{i}" for i in range(1, 9)]


def test_main_runs_the_stage_alone_through_the_engine_cli(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [taco("Only one.")])
    config = tmp_path / "c.yaml"
    config.write_text(f"seeds:\n  sources:\n    - path: {src}\n")
    code = seeds.main(["--config", str(config), "--run-dir", str(tmp_path / "r")])
    assert code == 0
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    assert state["stages"]["seeds"]["status"] == "completed"
    assert state["stages"]["seeds"]["summary"]["imported"] == 1
    assert list(state["stages"]) == ["seeds"]


# ---------------------------------------------------------------------------------------------
# seeds.as_tasks: seed problems become tasks with known outputs and a reference candidate


def test_seeds_as_tasks_makes_tasks_with_known_tests_once(tmp_path):
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, [
        taco("Echo\n\nPrint the number.", solutions=("print(input())",),
             io={"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]}),
        taco("No tests here.", solutions=("print(1)",)),
        taco("Function tests", io={"inputs": [[1]], "outputs": [1], "fn_name": "f"}),
        taco("No solution", solutions=("  ",), io={"inputs": ["1\n"], "outputs": ["1\n"]}),
    ])
    for attempt in (1, 2):  # a rerun adds nothing twice
        ctx = make_ctx(tmp_path, [{"path": str(path)}], name="run")
        ctx.config.seeds.as_tasks = True
        summary = run_stage(ctx)
        assert summary["seed_tasks"] == {"tasks": 1, "new": 1 if attempt == 1 else 0}
    with Store(ctx.run.store_path) as store:
        page = store.query_tasks(TaskQuery())
        assert [r.title for r in page.rows] == ["Echo"]
        task = store.get_task(page.rows[0].id)
        assert [(t.input, t.expected_output, t.source) for t in task.tests] == [
            ("1\n", "1\n", "seed"), ("2\n", "2\n", "seed")]
        assert store.seed_reference(task.id) == "print(input())"
        assert task.status == "pending" and task.solutions == []


def test_seeds_as_tasks_is_off_by_default(tmp_path):
    ctx = make_ctx(tmp_path, [{"path": "assets://seeds/seeds.jsonl"}], max_seeds=3)
    summary = run_stage(ctx)
    assert "seed_tasks" not in summary
    with Store(ctx.run.store_path) as store:
        assert store.query_tasks(TaskQuery()).total == 0
