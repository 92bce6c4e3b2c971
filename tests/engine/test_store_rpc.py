"""engine/store_rpc.py and ``python -m engine query``: the data browser's requests as JSON.

Run: .venv/bin/python -m pytest tests/engine/test_store_rpc.py -q

Every answer is compared with what the store (or engine/rollouts.py) itself returns for the
same question, in process (``answer``) and through the real command in a subprocess. The run
is tests/sample_run.py's.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sample_run import BIG_INPUT, SEED_CODE, TITLE_1, build_sample_run

from engine import rollouts as rollout_files
from engine.store import PageCursor, Store, StoreError, TaskQuery
from engine.store_rpc import (
    CUT_KEY,
    RequestError,
    StoreReader,
    answer,
    decode_answer,
    encode,
    request,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path):
    return build_sample_run(tmp_path / "run")


def ask(reader: StoreReader, kind: str, **args):
    """A request through JSON text both ways, as it travels."""
    req = json.loads(json.dumps(request(kind, **args)))
    return decode_answer(kind, json.loads(json.dumps(answer(reader, req))))


def query_cli(store: Path, req: dict | str, *extra: str) -> subprocess.CompletedProcess:
    text = req if isinstance(req, str) else json.dumps(req)
    return subprocess.run([sys.executable, "-m", "engine", "query", str(store), *extra],
                          input=text, capture_output=True, text=True, cwd=REPO, timeout=60)


QUERIES = [
    TaskQuery(limit=3),
    TaskQuery(status="rejected", limit=2),
    TaskQuery(search="grid", sort="agreement", descending=True, limit=3),
    TaskQuery(sort="created_at", limit=2, after=PageCursor(1000.0 + 2 / 3, 2)),
    TaskQuery(from_end=True, limit=3),
    TaskQuery(agreement_min=0.5, style="codeforces", limit=5),
]


@pytest.mark.parametrize("q", QUERIES, ids=range(len(QUERIES)))
def test_pages_through_json_equal_the_stores_own(run, q):
    with Store(run.store_path, readonly=True) as s, StoreReader(run.store_path) as reader:
        want = s.query_tasks(q)
        got = ask(reader, "query_tasks", query=q)
        assert got == want and got.rows
        if want.next_cursor is not None:  # the cursor that came back pages on the same way
            nxt = TaskQuery(**{**encode(q), "after": got.next_cursor, "before": None,
                               "from_end": False, "offset": 0})
            assert ask(reader, "query_tasks", query=nxt) == s.query_tasks(nxt)


def test_task_detail_lineage_and_reasons_equal_the_stores_own(run):
    tid = run.ids["task"]
    with Store(run.store_path, readonly=True) as s, StoreReader(run.store_path) as reader:
        detail = ask(reader, "get_task", task_id=tid)
        assert detail == s.get_task(tid) and detail.title == TITLE_1
        assert detail.tests[1].input == BIG_INPUT and detail.verdicts
        assert ask(reader, "get_task", task_id=999) is None
        assert ask(reader, "lineage_of", node_kind="task", node_id=tid) == s.lineage_of(
            "task", tid)
        assert ask(reader, "reject_reasons") == s.reject_reasons() == [
            ("no_agreement", 2), ("too_few_tests", 1)]
        golden = ask(reader, "golden_solution", task_id=tid)
        assert golden.id == run.ids["golden"] and golden.code.startswith("def main")
        assert ask(reader, "golden_solution", task_id=2) is None  # not verified
        seed = ask(reader, "golden_solution", task_id=-run.ids["seed"])  # a seed problem
        assert seed.code == SEED_CODE and seed.task_id == -run.ids["seed"]
        assert ask(reader, "golden_solution", task_id=-99) is None


def test_cut_tests_keep_their_full_sizes_in_meta(run):
    with StoreReader(run.store_path) as reader:
        detail = ask(reader, "get_task", task_id=run.ids["task"], max_test_chars=100)
    small, big, _ = detail.tests
    assert CUT_KEY not in small.meta and small.input == "1\n"
    assert big.input == BIG_INPUT[:100]
    assert big.meta == {"gen": "random", CUT_KEY: {"input": 6000, "expected_output": 3}}


META = {"samples": {"in_statement": 2, "as_tests": 2, "added": 1},
        "compile_errors": {"3": "solution.cpp:3:5: error: ‘x’ was not declared"},
        "candidates": {"1": {"eligible": True, "weight": 1.0, "exposures": 0,
                             "biggest_input_cpu_s": 0.12}},
        "unusable_tests": 0}


def test_verify_meta_travels_through_json_and_the_command(run):
    tid = run.ids["task"]
    with Store(run.store_path) as s:
        s.set_task_result(tid, "accepted", agreement=1.0, golden_solution_id=run.ids["golden"],
                          meta=META)
    with StoreReader(run.store_path) as reader:
        assert ask(reader, "get_task", task_id=tid).verify_meta == META
        assert ask(reader, "get_task", task_id=tid, max_test_chars=10).verify_meta == META
    proc = query_cli(run.store_path, request("get_task", task_id=tid))
    assert proc.returncode == 0 and proc.stdout.isascii(), proc.stderr  # \u escapes
    assert decode_answer("get_task", json.loads(proc.stdout)).verify_meta == META


def test_a_task_answer_from_an_engine_before_verify_meta_still_decodes(run):
    tid = run.ids["task"]
    with Store(run.store_path, readonly=True) as s, StoreReader(run.store_path) as reader:
        ans = json.loads(json.dumps(answer(reader, request("get_task", task_id=tid))))
        del ans["result"]["verify_meta"]  # what an older engine sends
        detail = decode_answer("get_task", ans)
        assert detail.verify_meta == {} and detail == s.get_task(tid)


def test_rollout_requests_answer_from_the_runs_rollout_files(run):
    with StoreReader(run.store_path) as reader:
        assert ask(reader, "rollout_steps") == [1, 2]
        groups = ask(reader, "rollout_groups", step=2)
        records = rollout_files.read_rollouts(run.rollouts, step=2)
        assert groups == rollout_files.groups(records)
        assert [(g.task_id, g.all_fail, g.all_pass) for g in groups] == [
            (1, False, False), (2, True, False), (1, False, True)]
        got = ask(reader, "rollout_group", step=2, rank=0, group=1)
        assert got == rollout_files.group_records(records, 0, 1) and len(got) == 3
        assert got[0].code is None and got[0].reason.startswith("no_code_block")
        assert ask(reader, "rollout_groups", step=7) == []


def test_rollouts_answer_without_a_store_and_store_requests_say_it_is_missing(tmp_path):
    run = build_sample_run(tmp_path / "run")
    run.store_path.unlink()
    with StoreReader(run.store_path) as reader:
        assert ask(reader, "rollout_steps") == [1, 2]
        with pytest.raises(StoreError, match="no store at"):
            ask(reader, "reject_reasons")
    # A store file elsewhere has no run dir around it: no rollouts, no error.
    loose = tmp_path / "copy.sqlite"
    loose.write_bytes(b"")
    assert ask(StoreReader(loose), "rollout_steps") == []


@pytest.mark.parametrize("req, match", [
    ({"kind": "drop_tables"}, "does not answer 'drop_tables'.*update the engine bundle"),
    ({"v": 2, "kind": "reject_reasons"}, "version 2 is newer"),
    ({"kind": "get_task", "args": {"task_id": "1; DROP"}}, "get_task: expected an integer"),
    ({"kind": "get_task", "args": {}}, "get_task: .*task_id"),
    ({"kind": "get_task", "args": {"task_id": 1, "sql": "x"}}, "unknown argument.*sql"),
    ({"kind": "query_tasks", "args": {"query": {"limit": 0}}}, r"limit=0: use 1\.\.500"),
    ([1, 2], "a JSON object"),
], ids=["kind", "version", "type", "missing", "extra", "bad-query", "not-object"])
def test_bad_requests_get_error_answers_that_say_what_is_wrong(run, req, match):
    with StoreReader(run.store_path) as reader:
        ans = answer(reader, req)
    assert ans["ok"] is False and ans["error"]["type"] == "RequestError"
    with pytest.raises(RequestError, match=match):
        decode_answer("get_task", ans)


def test_store_problems_are_store_errors(run, tmp_path):
    conn = sqlite3.connect(run.store_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with StoreReader(run.store_path) as reader:
        ans = answer(reader, request("reject_reasons"))
    assert ans["error"]["type"] == "StoreError" and "newer than this engine" in \
        ans["error"]["message"]
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all" * 100)
    with StoreReader(junk) as reader:
        ans = answer(reader, request("reject_reasons"))
    assert ans["error"]["type"] == "StoreError" and "not a database" in ans["error"]["message"]


# ---------------------------------------------------------------------------------------------
# The command


def test_the_query_command_answers_one_request_in_ascii_json(run):
    tid = run.ids["task"]
    proc = query_cli(run.store_path, request("get_task", task_id=tid))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii() and proc.stdout.count("\n") == 1
    ans = json.loads(proc.stdout)
    assert ans["ok"] and ans["seconds"] >= 0
    with Store(run.store_path, readonly=True) as s:
        assert decode_answer("get_task", ans) == s.get_task(tid)
    # --request instead of stdin
    proc = subprocess.run([sys.executable, "-m", "engine", "query", str(run.store_path),
                           "--request", json.dumps(request("rollout_steps"))],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert json.loads(proc.stdout)["result"] == [1, 2]


def test_the_query_command_exits_1_with_the_reason_for_errors(run, tmp_path):
    for req, kind, text in [
        (request("reject_reasons"), "StoreError", "no store at"),
        ("{not json", "RequestError", "not JSON"),
        ("", "RequestError", "no request"),
    ]:
        proc = query_cli(tmp_path / "missing.sqlite", req)
        assert proc.returncode == 1, proc.stderr
        err = json.loads(proc.stdout)["error"]
        assert err["type"] == kind and text in err["message"]


def test_the_query_command_starts_without_pydantic(run):
    code = ("import sys, io, contextlib\n"
            "from engine.__main__ import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = main(['query', {str(run.store_path)!r}, '--request', "
            "'{\"kind\": \"reject_reasons\"}'])\n"
            "print(rc, 'pydantic' in sys.modules, 'engine.schema' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.stdout.split() == ["0", "False", "False"], proc.stderr
    # The other commands still work with their lazy imports.
    proc = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and "query" in proc.stdout and "validate" in proc.stdout
