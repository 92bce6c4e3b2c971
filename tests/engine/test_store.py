"""The dataset store: schema, journal mode, writes, lineage, and the task table's pages."""

from __future__ import annotations

import random
import sqlite3

import pytest

from engine.store import (
    MAX_PAGE_SIZE,
    SCHEMA_VERSION,
    SNIPPET_CLOSE,
    SNIPPET_OPEN,
    PageCursor,
    SeedRecord,
    Store,
    StoreError,
    TaskQuery,
    Verdict,
    fts_query,
    is_network_fs,
    join_feature_path,
    mount_fstype,
    split_feature_path,
)

# ---------------------------------------------------------------------------------------------
# Schema, journal mode, file systems


def test_a_new_store_creates_every_table_and_the_schema_version(tmp_path):
    path = tmp_path / "data" / "store.sqlite"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    names = {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_schema")
    }
    for table in (
        "seeds", "features", "seed_features", "evolution_steps", "feature_configs", "tasks",
        "task_texts", "task_categories", "tasks_fts", "solutions", "tests", "verdicts",
        "lineage", "tasks_full", "synth_items",
    ):
        assert table in names, table


def test_a_v1_store_is_migrated_to_the_current_version_keeping_its_rows(tmp_path):
    from engine.store.tables import _create_v1

    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    _create_v1(conn)  # exactly what the v1 engine made
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO tasks(style, created_at) VALUES ('atcoder', 0)")
    conn.execute("INSERT INTO task_texts(task_id, title, statement) VALUES (1, 'T', 'S')")
    conn.close()
    with pytest.raises(StoreError, match="open it once writable to migrate it"):
        Store(path, readonly=True)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_task(1).title == "T"
        store.record_item("features", "seed:1", "rejected", reason="extract_invalid: x",
                          raw="{")
        assert store.item_reasons() == [("features", "extract_invalid", 1)]
    with Store(path, readonly=True) as store:
        assert store.done_items("features") == {"seed:1"}


def test_a_v2_store_is_migrated_to_v3_with_empty_verify_meta_for_its_tasks(tmp_path):
    from engine.store.tables import _create_v1, _migrate_v1_to_v2

    path = tmp_path / "v2.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    _create_v1(conn)  # exactly what the v2 engine made: v1 plus its one migration
    _migrate_v1_to_v2(conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO tasks(style, created_at, status, agreement)"
                 " VALUES ('atcoder', 0, 'accepted', 0.5)")
    conn.execute("INSERT INTO task_texts(task_id, title, statement) VALUES (1, 'T', 'S')")
    conn.close()
    with pytest.raises(StoreError, match="open it once writable to migrate it"):
        Store(path, readonly=True)
    with Store(path) as store:
        assert store.schema_version == 3
        old = store.get_task(1)
        assert (old.title, old.status, old.agreement, old.verify_meta) == ("T", "accepted",
                                                                           0.5, {})
        store.set_task_result(1, "rejected", "compile_error", meta={"unusable_tests": 2})
    with Store(path, readonly=True) as store:
        assert store.get_task(1).verify_meta == {"unusable_tests": 2}
        row = store._conn.execute("SELECT title, verify_meta FROM tasks_full").fetchone()
        assert row == ("T", '{"unusable_tests": 2}')  # the view shows it too


VERIFY_META = {
    "samples": {"in_statement": 2, "as_tests": 2, "added": 1},
    "compile_errors": {"7": "solution.cpp:3:5: error: expected ';' — «x»"},
    "candidates": {"7": {"eligible": False, "weight": 0.0, "exposures": 0,
                         "biggest_input_cpu_s": None},
                   "8": {"eligible": True, "weight": 1.0, "exposures": 3,
                         "biggest_input_cpu_s": 0.12}},
    "unusable_tests": 0,
}


def test_set_task_result_keeps_verify_meta_and_none_leaves_it_as_it_is(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        tid = store.add_task(style="atcoder", title="T", statement="S")
        other = store.add_task(style="atcoder", title="U", statement="S")
        assert store.get_task(tid).verify_meta == {}  # before verification
        store.set_task_result(tid, "accepted", agreement=1.0, meta=VERIFY_META)
        assert store.get_task(tid).verify_meta == VERIFY_META
        assert store.get_task(other).verify_meta == {}
        # a later stage that changes only the status (curate) keeps verify's details
        store.set_task_result(tid, "rejected", "near_duplicates", 1.0)
        detail = store.get_task(tid)
        assert (detail.status, detail.verify_meta) == ("rejected", VERIFY_META)
        store.set_task_result(tid, "pending", meta={})  # {} clears
        assert store.get_task(tid).verify_meta == {}
        with pytest.raises(TypeError):  # not JSON: refused, nothing written
            store.set_task_result(tid, "accepted", meta={"x": object()})
        assert store.get_task(tid).status == "pending"


def test_a_v1_shard_file_is_upgraded_when_reopened_and_still_merges(tmp_path):
    from engine.store import ShardOutbox
    from engine.store.shard_outbox import _OUTBOX_SCHEMA

    shard = tmp_path / "verify.0of2.sqlite"
    conn = sqlite3.connect(shard, isolation_level=None)
    conn.executescript("BEGIN;" + _OUTBOX_SCHEMA + "PRAGMA user_version = 1; COMMIT;")
    conn.close()
    with Store(tmp_path / "s.sqlite") as store:
        tid = store.add_task(style="atcoder", title="T", statement="S")
        assert store.merge_from(shard)["task_results"] == 0  # v1 as it is
        with ShardOutbox(shard) as out:  # reopened by a newer engine: upgraded in place
            out.set_task_result(tid, "rejected", "no votes")
            out.record_item("tasks", "cfg:x", "rejected", reason="select_invalid: y")
        counts = store.merge_from(shard)
        assert counts["task_results"] == 1 and counts["synth_items"] == 1
        assert store.get_task(tid).status == "rejected"
        assert store.done_items("tasks") == {"cfg:x"}


def test_reopening_a_store_keeps_its_rows(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_seeds([SeedRecord("f.jsonl", "f.jsonl:1", "Add two numbers.")])
    with Store(path) as store:
        assert store.counts()["seeds"] == 1


def test_a_store_from_a_newer_engine_is_refused_with_a_way_out(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer SynthSmith engine"):
        Store(path)


def test_an_sqlite_file_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE x(a)")
    conn.close()
    with pytest.raises(StoreError, match="not a SynthSmith store"):
        Store(path)


def test_a_local_file_system_gets_wal_with_normal_sync(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTHSMITH_STORE_JOURNAL", raising=False)
    with Store(tmp_path / "s.sqlite") as store:
        assert store.journal_mode == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_the_environment_can_force_a_rollback_journal(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_STORE_JOURNAL", "delete")
    with Store(tmp_path / "s.sqlite") as store:
        assert store.journal_mode == "delete"


def test_a_bad_journal_override_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_STORE_JOURNAL", "memory")
    with pytest.raises(StoreError, match="SYNTHSMITH_STORE_JOURNAL"):
        Store(tmp_path / "s.sqlite")


@pytest.mark.parametrize(
    "fstype", ["nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "beegfs", "ceph", "fuse.sshfs",
               "NFS4", "fuse.glusterfs"],
)
def test_network_file_systems_are_recognised(fstype):
    assert is_network_fs(fstype)


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "tmpfs", "zfs", "overlay", "fuse.lxcfs"])
def test_local_file_systems_are_not_taken_for_network_ones(fstype):
    assert not is_network_fs(fstype)


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /shared nfs4 rw,relatime 0 0
mds@tcp:/scratch /shared/scratch lustre rw 0 0
/dev/vdb /shared/scratch/local\\040disk xfs rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/home/u/run", "ext4"),
        ("/shared/runs/1", "nfs4"),
        ("/shared", "nfs4"),
        ("/sharedother/x", "ext4"),  # a prefix of the name is not a parent folder
        ("/shared/scratch/r", "lustre"),
        ("/shared/scratch/local disk/r", "xfs"),  # \040 in /proc/mounts is a space
        ("/tmp/x", "tmpfs"),
    ],
)
def test_the_longest_mount_point_holding_the_path_decides(path, fstype):
    assert mount_fstype(path, MOUNTS) == fstype


# ---------------------------------------------------------------------------------------------
# Writes


def test_seeds_with_a_stored_source_key_are_skipped(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        recs = [SeedRecord("a.jsonl", f"a.jsonl:{i}", f"problem {i}", ["print(1)"]) for i in range(5)]
        assert store.add_seeds(recs[:3]) == 3
        assert store.add_seeds(recs) == 2
        assert store.add_seeds(recs) == 0
        seeds = list(store.iter_seeds(batch=2))
        assert [s.source_key for s in seeds] == [f"a.jsonl:{i}" for i in range(5)]
        assert seeds[0].solutions == ["print(1)"]
        assert seeds[0].tests == {"inputs": [], "outputs": []}


def test_the_same_problem_text_under_another_key_is_not_stored_twice(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.add_seeds([SeedRecord("a", "a:1", "Sum two  numbers.")]) == 1
        assert store.add_seeds([SeedRecord("b", "b:1", "sum two numbers.\n")]) == 0
        assert store.add_seeds([SeedRecord("b", "b:2", "Sum three numbers.")]) == 1
        assert store.existing_seed_keys(["a:1", "b:1", "b:2", "c:9"]) == {"a:1", "b:2"}


def test_a_failed_transaction_leaves_nothing_behind_and_savepoints_nest(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.add_seeds([SeedRecord("a", "a:1", "p")])
            raise RuntimeError("boom")
        assert store.counts()["seeds"] == 0
        with store.transaction():
            store.add_seeds([SeedRecord("a", "a:1", "p")])
            with pytest.raises(RuntimeError), store.transaction():
                store.add_seeds([SeedRecord("a", "a:2", "p")])
                raise RuntimeError("inner")
        assert [s.source_key for s in store.iter_seeds()] == ["a:1"]


@pytest.mark.parametrize("parts", [["algorithms"], ["algorithms", "graph", "bfs"],
                                   ["a/b", "c\\d", "e"], ["x", "input/output handling"]])
def test_feature_paths_round_trip_with_slashes_in_names(parts):
    assert split_feature_path(join_feature_path(parts)) == parts


def test_add_feature_creates_ancestors_once_and_links_count_frequency(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        bfs = store.add_feature(["algorithms", "graph", "bfs"])
        assert store.add_feature(["algorithms", "graph", "bfs"], origin="evolve") == bfs
        dfs = store.add_feature(["algorithms", "graph", "dfs"], origin="evolve", created_step=3)
        assert store.counts()["features"] == 4
        rows = store._conn.execute(
            "SELECT path, depth, origin, created_step, parent_id IS NULL FROM features ORDER BY id"
        ).fetchall()
        assert rows == [
            ("algorithms", 0, "seed", None, 1), ("algorithms/graph", 1, "seed", None, 0),
            ("algorithms/graph/bfs", 2, "seed", None, 0),
            ("algorithms/graph/dfs", 2, "evolve", 3, 0),
        ]
        store.add_seeds([SeedRecord("a", "a:1", "p"), SeedRecord("a", "a:2", "q")])
        assert store.link_seed_features(1, [bfs, dfs, bfs]) == 2
        assert store.link_seed_features(1, [bfs]) == 0
        assert store.link_seed_features(2, [bfs]) == 1
        freq = dict(store._conn.execute("SELECT id, frequency FROM features"))
        assert (freq[bfs], freq[dfs]) == (2, 1)


def test_feature_configs_are_deduplicated_by_canonical_json(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        a, new_a = store.add_feature_config({"x": ["1", "2"], "y": {}}, shape=(3, 3, 1),
                                            n_leaves=2, rng_seed=5)
        b, new_b = store.add_feature_config({"y": {}, "x": ["1", "2"]}, shape=(3, 3, 1),
                                            n_leaves=2, rng_seed=6)
        assert (a, new_a, new_b) == (b, True, False)


def test_a_task_key_makes_add_task_idempotent(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        first = store.add_task(style="atcoder", title="T", statement="S", key="cfg1/0")
        again = store.add_task(style="atcoder", title="T2", statement="S2", key="cfg1/0")
        assert first == again
        assert store.counts()["tasks"] == 1


def _task_with_children(store: Store) -> tuple[int, list[int], list[int]]:
    tid = store.add_task(
        style="codeforces", title="Grid walk", statement="Walk the grid.",
        selected_features={"algorithms": {"graph": ["bfs"]}, "mathematics": [], "data_structures": ["queue"]},
        integration_strategy="BFS over cells",
    )
    sols = [store.add_solution(tid, i, code=f"print({i})", reasoning="think") for i in range(3)]
    tests = [store.add_test(tid, i, input=f"{i}\n", kind="edge", source="direct") for i in range(2)]
    return tid, sols, tests


def test_get_task_returns_solutions_tests_and_verdicts(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        tid, sols, tests = _task_with_children(store)
        store.add_verdicts(Verdict(s, t, "ok", 0.01, 900, f"h{s}{t}") for s in sols for t in tests)
        store.set_task_result(tid, "accepted", None, 0.75, sols[1])
        task = store.get_task(tid)
        assert task is not None
        assert (task.title, task.statement, task.status, task.agreement) == (
            "Grid walk", "Walk the grid.", "accepted", 0.75)
        assert task.categories == ["algorithms", "data_structures"]  # empty branches left out
        assert task.selected_features["algorithms"] == {"graph": ["bfs"]}
        assert [s.code for s in task.solutions] == ["print(0)", "print(1)", "print(2)"]
        assert [t.input for t in task.tests] == ["0\n", "1\n"]
        assert len(task.verdicts) == 6 and task.golden_solution_id == sols[1]
        assert (task.n_solutions, task.n_tests) == (3, 2)
        assert store.get_task(tid + 100) is None


def test_re_adding_a_solution_or_test_replaces_it_without_recounting(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        tid, sols, tests = _task_with_children(store)
        again = store.add_solution(tid, 0, code=None, status="rejected", reject_reason="no code block")
        relabel = store.add_test(tid, 1, input="1\n", kind="edge", source="direct",
                                 expected_output="42", meta={"votes": {"42": 3}})
        task = store.get_task(tid)
        assert (again, relabel) == (sols[0], tests[1])
        assert (task.n_solutions, task.n_tests) == (3, 2)
        assert task.solutions[0].reject_reason == "no code block"
        assert task.tests[1].expected_output == "42" and task.tests[1].meta == {"votes": {"42": 3}}


def test_verdicts_upsert_replaces_the_earlier_run(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        tid, sols, tests = _task_with_children(store)
        store.add_verdicts([Verdict(sols[0], tests[0], "timeout", 10.0)])
        store.add_verdicts([Verdict(sols[0], tests[0], "ok", 0.2, 1000, "abc")])
        verdicts = store.get_task(tid).verdicts
        assert verdicts == [Verdict(sols[0], tests[0], "ok", 0.2, 1000, "abc")]


def test_set_task_result_on_a_missing_task_raises(tmp_path):
    with Store(tmp_path / "s.sqlite") as store, pytest.raises(KeyError):
        store.set_task_result(99, "rejected", "low_agreement", 0.1)


def test_lineage_walks_task_to_config_to_features_to_seed_and_step(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_seeds([SeedRecord("a", "a:1", "seed problem")])
        seed = next(store.iter_seeds()).id
        bfs = store.add_feature(["algorithms", "graph", "bfs"])
        store.link_seed_features(seed, [bfs])
        step = store.add_evolution_step(1, sampled={"a": 1}, expansion={"b": 2}, n_new_features=1)
        evolved = store.add_feature(["algorithms", "graph", "0-1 bfs"], origin="evolve",
                                    created_step=1)
        cfg, _ = store.add_feature_config({"algorithms": ["bfs"]}, shape=(3, 3, 1), n_leaves=2,
                                          rng_seed=1)
        store.add_lineage("feature_config", cfg, "feature", bfs, "contains")
        store.add_lineage("feature_config", cfg, "feature", evolved, "contains")
        tid = store.add_task(style="atcoder", title="T", statement="S", config_id=cfg)
        edges = store.lineage_of("task", tid)
        got = {(e.child_kind, e.child_id, e.parent_kind, e.parent_id, e.depth) for e in edges}
        assert got == {
            ("task", tid, "feature_config", cfg, 1),
            ("feature_config", cfg, "feature", bfs, 2),
            ("feature_config", cfg, "feature", evolved, 2),
            ("feature", bfs, "seed", seed, 3),
            ("feature", evolved, "evolution_step", step, 3),
        }
        assert [e.depth for e in edges] == sorted(e.depth for e in edges)
        assert store.lineage_of("task", tid, max_edges=2)[-1].depth == 2


def test_a_readonly_store_browses_and_refuses_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_task(style="atcoder", title="Sum", statement="add numbers")
    with Store(path, readonly=True) as ro:
        assert ro.query_tasks(TaskQuery(search="numbers")).total == 1
        with pytest.raises(sqlite3.OperationalError):
            ro.add_task(style="atcoder", title="x", statement="y")
    with pytest.raises(StoreError, match="no store"):
        Store(tmp_path / "missing.sqlite", readonly=True)


# ---------------------------------------------------------------------------------------------
# Full-text search


def test_search_finds_a_word_in_the_statement_or_title_and_not_absent_words(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        a = store.add_task(style="codeforces", title="Lanterns", statement="Count the integers on a grid.")
        b = store.add_task(style="leetcode", title="Rivers", statement="Find the longest river path.")
        ids = lambda text: [r.id for r in store.query_tasks(TaskQuery(search=text)).rows]  # noqa: E731
        assert ids("grid") == [a]
        assert ids("integer") == [a]  # stemming: integer ~ integers
        assert ids("rivers") == [b]
        assert ids("lanterns") == [a]
        assert ids("the") == [a, b]
        assert ids("grid river") == []  # words are ANDed
        assert ids('"longest river"') == [b]
        assert ids('"river longest"') == []  # a phrase keeps its order
        assert ids("volcano") == []


def test_search_snippets_mark_the_hit(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_task(style="codeforces", title="T", statement="Alice walks across the grid twice.")
        row = store.query_tasks(TaskQuery(search="grid")).rows[0]
        assert f"{SNIPPET_OPEN}grid{SNIPPET_CLOSE}" in row.snippet
        assert store.query_tasks(TaskQuery()).rows[0].snippet.startswith("Alice walks")


NASTY = ['"', '""', '"unclosed phrase', "a*", "*", "-grid", "grid -river", "OR", "a OR b",
         "NOT x", "AND", "NEAR(a b)", "(", ")", "col:grid", "title:grid", "^grid", "a + b",
         "'; DROP TABLE tasks; --", "grid\"river", "{a b}", ":", "\\", "\u00e9l\u00e8ve", "日本"]


@pytest.mark.parametrize("text", NASTY)
def test_search_text_with_quotes_or_operators_never_raises(tmp_path, text):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_task(style="codeforces", title="T", statement="grid river a b x OR élève 日本")
        page = store.query_tasks(TaskQuery(search=text))
        assert page.total == len(page.rows)


def test_search_text_without_words_means_no_search():
    assert fts_query('" * - ( )') is None
    assert fts_query("two words") == '"two" AND "words"'
    assert fts_query('say "a b" OR c') == '"say" AND "a b" AND "OR" AND "c"'


def test_search_sees_tasks_added_after_an_earlier_search(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_task(style="codeforces", title="T", statement="grid one")
        assert store.query_tasks(TaskQuery(search="grid")).total == 1
        store.add_task(style="codeforces", title="T", statement="grid two")
        assert store.query_tasks(TaskQuery(search="grid")).total == 2


def test_search_sees_tasks_another_connection_added(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as writer, Store(path, readonly=True) as reader:
        writer.add_task(style="codeforces", title="T", statement="grid one")
        assert reader.query_tasks(TaskQuery(search="grid")).total == 1
        writer.add_task(style="codeforces", title="T", statement="grid two")
        assert reader.query_tasks(TaskQuery(search="grid")).total == 2


# ---------------------------------------------------------------------------------------------
# Filters, sorts and pages against a Python-side computation

WORDS = ["apple", "banana", "cherry", "delta", "echo", "golf", "hotel", "india", "kilo", "lima"]
CATS = ["algorithms", "mathematics", "data_structures", "problem_domain"]
STYLES = ["codeforces", "leetcode", "atcoder"]
REASONS = ["low_agreement", "holdout_failed", "no_solutions"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(1234)
    store = Store(tmp_path_factory.mktemp("corpus") / "store.sqlite")
    truth = []
    with store.transaction():
        for i in range(2000):
            words = rng.choices(WORDS, k=rng.randint(3, 12))
            cats = rng.sample(CATS, rng.randint(0, 3))
            style = rng.choice(STYLES)
            created = 1000.0 + rng.randint(0, 500)  # ties on purpose
            tid = store.add_task(style=style, title=f"Task {i}", statement=" ".join(words),
                                 selected_features={c: ["x"] for c in cats}, created_at=created)
            status, reason, agreement = "pending", None, None
            r = rng.random()
            if r < 0.4:
                status, agreement = "accepted", round(rng.uniform(0.5, 1.0), 1)
            elif r < 0.8:
                status, reason = "rejected", rng.choice(REASONS)
                agreement = round(rng.uniform(0.0, 0.6), 1) if rng.random() < 0.9 else None
            if status != "pending":
                store.set_task_result(tid, status, reason, agreement)
            truth.append(dict(id=tid, style=style, status=status, reject_reason=reason,
                              agreement=agreement, created_at=created, cats=set(cats),
                              text=" ".join(words)))
    store.optimize()
    yield store, truth
    store.close()


def _expected(truth, q: TaskQuery) -> list[int]:
    def keep(t):
        if q.style is not None and t["style"] != q.style:
            return False
        if q.status is not None and t["status"] != q.status:
            return False
        if q.reject_reason is not None and t["reject_reason"] != q.reject_reason:
            return False
        a = t["agreement"]
        if q.agreement_min is not None and (a is None or a < q.agreement_min):
            return False
        if q.agreement_max is not None and (a is None or a > q.agreement_max):
            return False
        if q.category is not None and q.category not in t["cats"]:
            return False
        if q.search:
            text = f" {t['text']} "
            pieces = q.search.split('"')  # odd pieces were inside quotes: phrases
            terms = [p for i, p in enumerate(pieces) if i % 2] + [
                w for i, p in enumerate(pieces) if not i % 2 for w in p.split()]
            for term in terms:
                if term.strip() and f" {' '.join(term.split())} " not in text:
                    return False
        return True

    sort_key = {
        "id": lambda t: t["id"],
        "agreement": lambda t: -1.0 if t["agreement"] is None else t["agreement"],
        "created_at": lambda t: t["created_at"],
        "style": lambda t: t["style"],
    }[q.sort]
    rows = sorted((t for t in truth if keep(t)), key=lambda t: (sort_key(t), t["id"]),
                  reverse=q.descending)
    return [t["id"] for t in rows]


QUERIES = {
    "everything by id": {},
    "newest first": {"sort": "created_at", "descending": True},
    "by agreement, nulls first": {"sort": "agreement"},
    "by agreement descending": {"sort": "agreement", "descending": True},
    "by style": {"sort": "style"},
    "one style": {"style": "leetcode"},
    "accepted by agreement": {"status": "accepted", "sort": "agreement", "descending": True},
    "one reject reason": {"reject_reason": "holdout_failed"},
    "agreement range": {"agreement_min": 0.3, "agreement_max": 0.6, "sort": "agreement"},
    "agreement minimum only": {"agreement_min": 0.9},
    "agreement maximum only": {"agreement_max": 0.2},
    "one category": {"category": "mathematics"},
    "a word": {"search": "apple"},
    "two words": {"search": "apple golf", "sort": "created_at"},
    "a phrase": {"search": '"delta echo"', "sort": "agreement"},
    "everything combined": {"search": "kilo", "status": "rejected", "category": "algorithms",
                            "agreement_max": 0.5, "sort": "agreement", "descending": True},
    "style and search by style": {"search": "lima", "style": "atcoder", "sort": "style"},
}


def _walk_forward(store, base, limit):
    ids, page = [], store.query_tasks(TaskQuery(**base, limit=limit))
    total = page.total
    while True:
        ids += [r.id for r in page.rows]
        if page.next_cursor is None:
            return ids, total
        page = store.query_tasks(TaskQuery(**base, limit=limit, after=page.next_cursor,
                                           with_total=False))


@pytest.mark.parametrize("name", list(QUERIES))
def test_filters_and_sorts_match_a_python_computation(corpus, name):
    store, truth = corpus
    base = QUERIES[name]
    want = _expected(truth, TaskQuery(**base))
    assert want, "the corpus should give every query some rows"
    page = store.query_tasks(TaskQuery(**base, limit=MAX_PAGE_SIZE))
    assert page.total == len(want)
    assert [r.id for r in page.rows] == want[:MAX_PAGE_SIZE]


@pytest.mark.parametrize("name", list(QUERIES))
def test_keyset_pages_cover_every_row_exactly_once_in_order(corpus, name):
    store, truth = corpus
    base = QUERIES[name]
    want = _expected(truth, TaskQuery(**base))
    ids, total = _walk_forward(store, base, limit=37)
    assert ids == want and total == len(want)


@pytest.mark.parametrize("name", ["everything by id", "by agreement, nulls first",
                                  "newest first", "a phrase", "everything combined"])
def test_walking_back_from_the_last_page_covers_every_row_once(corpus, name):
    store, truth = corpus
    base = QUERIES[name]
    want = _expected(truth, TaskQuery(**base))
    page = store.query_tasks(TaskQuery(**base, limit=41, from_end=True))
    assert page.next_cursor is None
    got = []
    while True:
        got = [r.id for r in page.rows] + got
        if page.prev_cursor is None:
            break
        page = store.query_tasks(TaskQuery(**base, limit=41, before=page.prev_cursor))
    assert got == want


@pytest.mark.parametrize("name", ["everything by id", "by agreement descending", "one category",
                                  "two words"])
def test_offset_pages_agree_with_the_python_computation(corpus, name):
    store, truth = corpus
    base = QUERIES[name]
    want = _expected(truth, TaskQuery(**base))
    for offset in (0, 50, len(want) // 2, max(0, len(want) - 10), len(want) + 5):
        page = store.query_tasks(TaskQuery(**base, limit=25, offset=offset))
        assert [r.id for r in page.rows] == want[offset: offset + 25]
        assert (page.next_cursor is None) == (offset + 25 >= len(want))


def test_a_page_reports_no_cursors_past_either_end(corpus):
    store, truth = corpus
    first = store.query_tasks(TaskQuery(limit=10))
    assert first.prev_cursor is None and first.next_cursor == PageCursor(10, 10)
    empty = store.query_tasks(TaskQuery(search="zzzunknown"))
    assert (empty.rows, empty.total, empty.next_cursor, empty.prev_cursor) == ([], 0, None, None)
    assert store.query_tasks(TaskQuery(limit=10, with_total=False)).total is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit"), ({"limit": MAX_PAGE_SIZE + 1}, "limit"), ({"sort": "title"}, "sort"),
     ({"status": "done"}, "status"), ({"agreement_min": 1.5}, "agreement_min"),
     ({"offset": 10, "from_end": True}, "at most one")],
)
def test_a_bad_query_names_the_field_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskQuery(**kwargs)


def test_counts_and_reject_reasons_summarise_the_table(corpus):
    store, truth = corpus
    counts = store.counts()
    assert counts["tasks"] == len(truth)
    assert counts["tasks/accepted"] == sum(t["status"] == "accepted" for t in truth)
    reasons = dict(store.reject_reasons())
    assert reasons == {r: sum(t["reject_reason"] == r for t in truth) for r in REASONS}
