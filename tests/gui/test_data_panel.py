"""gui/panels/data.py: the data browser over a small hand-built store.

The store (``small_store``) has ten tasks across styles, statuses, reject reasons, agreements
and feature categories; task 1 has a lineage (config -> features -> seed / evolution step),
three candidate solutions (golden, plain, rejected), three tests (one big) and a verdict for
most solution x test pairs. Each filter is checked against what ``Store.query_tasks`` answers
for the same query. Every test waits until the panel has no job pending and closes its store,
so no worker thread outlives it. Screenshots: artifacts/screenshots/data*.png. The last tests
open the same store as a remote source (``RemoteStore`` over ``LocalRunner``: a real
``python -m engine query`` per request) and check the same views and the remote errors.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QFontDatabase, QTextDocumentFragment

from engine.store import SeedRecord, Store, TaskQuery, Verdict
from gui.panels import data as data_module
from gui.panels.data import GOLDEN, PREVIEW_CHARS, DataPanel, verdict_colour

PAGE = 4
BIG = "1 2 3\n" * 1000  # 6000 chars: previewed


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "store.sqlite"
    with Store(path) as s:
        s.add_seeds([SeedRecord("f.jsonl", "f.jsonl:1", "Shortest paths on a grid.")])
        seed = next(s.iter_seeds()).id
        bfs = s.add_feature(["algorithms", "graph", "bfs"])
        s.link_seed_features(seed, [bfs])
        step = s.add_evolution_step(1, sampled={"a": 1}, expansion={"b": 2}, n_new_features=1)
        evolved = s.add_feature(["algorithms", "graph", "0-1 bfs"], origin="evolve",
                                created_step=1)
        cfg, _ = s.add_feature_config({"algorithms": ["bfs"]}, shape=(3, 3, 1), n_leaves=2,
                                      rng_seed=1)
        s.add_lineage("feature_config", cfg, "feature", bfs, "contains")
        s.add_lineage("feature_config", cfg, "feature", evolved, "contains")

        specs = [  # style, status, reason, agreement, category, statement words
            ("codeforces", "accepted", None, 1.0, "algorithms", "grid shortest path"),
            ("atcoder", "accepted", None, 0.8, "algorithms", "integer sums"),
            ("leetcode", "rejected", "no_agreement", 0.2, "data_structures", "heap queries"),
            ("codeforces", "rejected", "no_agreement", 0.4, "algorithms", "grid flood fill"),
            ("atcoder", "rejected", "too_few_tests", None, "math", "prime sieve"),
            ("leetcode", "pending", None, None, "math", "modular integer powers"),
            ("codeforces", "accepted", None, 0.6, "data_structures", "segment tree grid"),
            ("atcoder", "pending", None, None, "algorithms", "binary search"),
            ("leetcode", "accepted", None, 0.9, "math", "gcd of integers"),
            ("codeforces", "rejected", "no_agreement", 0.1, "algorithms", "dp on trees"),
        ]
        for i, (style, status, reason, agreement, cat, words) in enumerate(specs, start=1):
            tid = s.add_task(
                style=style, title=f"Task {i}: {words}",
                statement=f"# Task {i}\n\nSolve **{words}** quickly.",
                selected_features={cat: ["leaf_a", "leaf_b"]},
                integration_strategy=f"combine {words}",
                config_id=cfg if i == 1 else None, created_at=1000.0 + i,
            )
            if i == 1:
                golden = s.add_solution(tid, 0, code="def main():\n    print(42)\n")
                plain = s.add_solution(tid, 1, code="print(41)\n")
                rejected = s.add_solution(tid, 2, code=None, status="rejected",
                                          reject_reason="no_code_block")
                t0 = s.add_test(tid, 0, input="1\n", kind="sample", source="direct",
                                expected_output="42\n")
                t1 = s.add_test(tid, 1, input=BIG, kind="stress", source="generator",
                                expected_output="42\n", meta={"gen": "random"})
                t2 = s.add_test(tid, 2, input="0\n", kind="edge", source="direct",
                                expected_output="42\n")
                s.add_verdicts([
                    Verdict(golden, t0, "ok", 0.012, 9000),
                    Verdict(golden, t1, "ok", 0.5, 12000),
                    Verdict(golden, t2, "ok", 0.01, 9000),
                    Verdict(plain, t0, "wrong", 0.011, 8800),
                    Verdict(plain, t1, "time_limit", 2.0, None),
                    Verdict(plain, t2, "runtime_error", None, None),
                    Verdict(rejected, t0, "compile_error"),
                    # rejected x t1, t2: no verdict (white)
                ])
                s.set_task_result(tid, status, reason, agreement, golden_solution_id=golden)
            elif status != "pending":
                s.set_task_result(tid, status, reason, agreement)
    small_store_ids.update(seed=seed, bfs=bfs, evolved=evolved, step=step, cfg=cfg)
    return path


small_store_ids: dict[str, int] = {}


@pytest.fixture
def panel(qtbot):
    # Not qtbot.addWidget: that deletes the widget before this teardown could close its store.
    p = DataPanel(page_size=PAGE)
    yield p
    p.close_store()
    qtbot.waitUntil(lambda: not p.busy(), timeout=5000)
    assert QThreadPool.globalInstance().waitForDone(5000)
    p.close()
    p.deleteLater()


def settle(qtbot, panel: DataPanel) -> None:
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5000)


def expected(path: Path, **filters) -> tuple[list[int], int]:
    """What the store itself answers for these filters: (first page's ids, total)."""
    with Store(path, readonly=True) as s:
        page = s.query_tasks(TaskQuery(limit=PAGE, **filters))
    return [r.id for r in page.rows], page.total


def shown_ids(panel: DataPanel) -> list[int]:
    return [r.id for r in panel.model.rows]


def open_and_wait(qtbot, panel: DataPanel, path: Path) -> None:
    panel.open_store(path)
    qtbot.waitUntil(lambda: panel.page is not None or "Could not" in panel.message.text(),
                    timeout=5000)
    settle(qtbot, panel)


def test_opening_a_store_fills_the_first_page_and_total(qtbot, panel, small_store):
    open_and_wait(qtbot, panel, small_store)
    assert shown_ids(panel) == [1, 2, 3, 4]
    assert panel.total == 10
    assert panel.total_label.text() == "page 1 \u00b7 tasks 1\u20134 of 10"
    assert panel.model.rowCount() == 4 and panel.model.columnCount() == 8
    index = panel.model.index(2, 4)
    assert panel.model.data(index) == "no_agreement"
    assert panel.model.data(panel.model.index(4 - 1, 5)) == "0.40"
    assert [panel.reason_combo.itemData(i) for i in range(panel.reason_combo.count())] == [
        None, "no_agreement", "too_few_tests"]
    assert panel.prev_button.isEnabled() is False and panel.next_button.isEnabled()


@pytest.mark.parametrize("setup, filters", [
    (lambda p: p.style_combo.setCurrentIndex(p.style_combo.findData("atcoder")),
     {"style": "atcoder"}),
    (lambda p: p.status_combo.setCurrentIndex(p.status_combo.findData("rejected")),
     {"status": "rejected"}),
    (lambda p: p.reason_combo.setCurrentIndex(p.reason_combo.findData("no_agreement")),
     {"reject_reason": "no_agreement"}),
    (lambda p: p.agreement_min.setValue(0.5), {"agreement_min": 0.5}),
    (lambda p: p.agreement_max.setValue(0.4), {"agreement_max": 0.4}),
    (lambda p: p.category_edit.setText("math"), {"category": "math"}),
    (lambda p: p.search_edit.setText("grid"), {"search": "grid"}),
    (lambda p: p.search_edit.setText("integers"), {"search": "integers"}),  # stemming
], ids=["style", "status", "reason", "agreement_min", "agreement_max", "category", "search",
        "search-stemmed"])
def test_each_filter_narrows_the_rows_as_the_store_would(qtbot, panel, small_store, setup,
                                                          filters):
    open_and_wait(qtbot, panel, small_store)
    setup(panel)
    settle(qtbot, panel)
    ids, total = expected(small_store, **filters)
    assert 0 < total < 10
    assert shown_ids(panel) == ids and panel.total == total


def test_filters_combine_and_a_cleared_bound_means_any(qtbot, panel, small_store):
    open_and_wait(qtbot, panel, small_store)
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("accepted"))
    panel.agreement_min.setValue(0.7)
    settle(qtbot, panel)
    assert (shown_ids(panel), panel.total) == expected(small_store, status="accepted",
                                                       agreement_min=0.7)
    assert panel.agreement_min.text() == "0.70"
    panel.agreement_min.clear_bound()
    settle(qtbot, panel)
    assert panel.agreement_min.text() == "any"
    assert (shown_ids(panel), panel.total) == expected(small_store, status="accepted")


def test_search_is_debounced_into_one_query(qtbot, panel, small_store, monkeypatch):
    open_and_wait(qtbot, panel, small_store)
    seen: list[TaskQuery] = []
    real = data_module._query

    def recording(store, q):
        seen.append(q)
        return real(store, q)

    monkeypatch.setattr(data_module, "_query", recording)
    for prefix in ("g", "gr", "gri", "grid"):
        panel.search_edit.setText(prefix)
    assert panel.busy() and not seen  # waiting out the debounce
    settle(qtbot, panel)
    assert [q.search for q in seen] == ["grid"]


def test_an_older_answer_arriving_late_is_dropped(qtbot, panel, small_store, monkeypatch):
    open_and_wait(qtbot, panel, small_store)
    real = data_module._query

    def slow_for_accepted(store, q):
        if q.status == "accepted":
            time.sleep(0.4)  # the older query answers last
        return real(store, q)

    monkeypatch.setattr(data_module, "_query", slow_for_accepted)
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("accepted"))
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("pending"))
    settle(qtbot, panel)
    assert (shown_ids(panel), panel.total) == expected(small_store, status="pending")


def test_paging_forward_and_back(qtbot, panel, small_store):
    open_and_wait(qtbot, panel, small_store)
    panel.next_button.click()
    settle(qtbot, panel)
    assert shown_ids(panel) == [5, 6, 7, 8]
    assert panel.total_label.text() == "page 2 \u00b7 tasks 5\u20138 of 10"
    panel.next_button.click()
    settle(qtbot, panel)
    assert shown_ids(panel) == [9, 10] and not panel.next_button.isEnabled()
    assert panel.total_label.text() == "page 3 \u00b7 tasks 9\u201310 of 10"
    panel.prev_button.click()
    settle(qtbot, panel)
    assert shown_ids(panel) == [5, 6, 7, 8]
    panel.prev_button.click()
    settle(qtbot, panel)
    assert shown_ids(panel) == [1, 2, 3, 4] and not panel.prev_button.isEnabled()
    # A filter change starts again at the first page.
    panel.next_button.click()
    settle(qtbot, panel)
    panel.style_combo.setCurrentIndex(panel.style_combo.findData("codeforces"))
    settle(qtbot, panel)
    assert panel.page_index == 0
    assert (shown_ids(panel), panel.total) == expected(small_store, style="codeforces")


def open_task_1(qtbot, panel: DataPanel, path: Path) -> None:
    open_and_wait(qtbot, panel, path)
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=5000)
    settle(qtbot, panel)


def test_selecting_a_task_shows_statement_features_and_lineage(qtbot, panel, small_store):
    open_task_1(qtbot, panel, small_store)
    ids = small_store_ids
    assert panel.detail.id == 1
    assert "Task 1: grid shortest path" in panel.title_label.text()
    text = panel.statement_view.toPlainText()
    assert "Solve grid shortest path quickly." in text  # markdown rendered: no ** left
    assert "combine grid shortest path" in text and "leaf_a" in text
    assert "font-weight:700" in panel.statement_view.toHtml()  # the bold survived as bold

    root = panel.lineage_tree.topLevelItem(0)
    assert root.text(0) == "task #1"
    cfg = root.child(0)
    assert (cfg.text(0), cfg.text(1)) == (f"feature_config #{ids['cfg']}", "sampled_from")
    features = {cfg.child(i).text(0): cfg.child(i) for i in range(cfg.childCount())}
    assert set(features) == {f"feature #{ids['bfs']}", f"feature #{ids['evolved']}"}
    assert features[f"feature #{ids['bfs']}"].child(0).text(0) == f"seed #{ids['seed']}"
    assert features[f"feature #{ids['evolved']}"].child(0).text(0) == (
        f"evolution_step #{ids['step']}")


def test_solutions_show_highlighted_code_the_golden_mark_and_reject_reasons(qtbot, panel,
                                                                              small_store):
    open_task_1(qtbot, panel, small_store)
    labels = [panel.solution_list.item(i).text() for i in range(panel.solution_list.count())]
    assert labels[0].startswith(GOLDEN) and not labels[1].startswith(GOLDEN)
    assert "rejected" in labels[2] and "no_code_block" in labels[2]
    assert panel.solution_list.currentRow() == 0  # the golden one is shown first
    assert "print(42)" in panel.code_view.toPlainText()
    html = panel.code_view.toHtml()
    assert "color:#008000" in html.replace(" ", "").lower()  # pygments' keyword colour
    from gui.highlight import highlight_html
    assert '<span style="color: #008000; font-weight: bold">def</span>' in highlight_html(
        "def f(): pass")
    panel.solution_list.setCurrentRow(2)
    assert panel.code_view.toPlainText() == "(no code extracted)"
    assert "no_code_block" in panel.solution_info.text()


def test_tests_show_input_and_expected_output_and_preview_big_ones(qtbot, panel, small_store):
    open_task_1(qtbot, panel, small_store)
    assert panel.test_list.count() == 3
    assert panel.test_input.toPlainText() == "1\n"
    assert panel.test_expected.toPlainText() == "42\n"
    panel.test_list.setCurrentRow(1)
    assert len(panel.test_input.toPlainText()) == PREVIEW_CHARS
    assert f"first {PREVIEW_CHARS} of {len(BIG)} chars" in panel.test_input_note.text()
    assert "random" in panel.test_list.item(1).toolTip()  # its meta


def test_the_verdict_matrix_is_coloured_by_status_with_details_in_tooltips(qtbot, panel,
                                                                             small_store):
    open_task_1(qtbot, panel, small_store)
    table = panel.verdict_table
    assert (table.rowCount(), table.columnCount()) == (3, 3)
    assert table.verticalHeaderItem(0).text() == f"{GOLDEN} #0  3/3 ok"
    assert table.verticalHeaderItem(1).text() == "#1  0/3 ok"
    assert table.verticalHeaderItem(2).text() == "#2 \u2717  0/3 ok"
    assert table.horizontalHeaderItem(1).text() == "#1 stress"

    def colour(r, c):
        return table.item(r, c).background().color().name()

    assert colour(0, 0) == verdict_colour("ok").name() == "#a8dca0"  # green
    assert colour(1, 0) == verdict_colour("wrong").name() == "#f0a0a0"  # red
    assert colour(1, 1) == verdict_colour("time_limit").name() == "#f5bd6c"  # orange
    assert colour(1, 2) == verdict_colour("runtime_error").name() == "#c4c4c4"  # grey
    assert colour(2, 0) == "#c4c4c4"  # compile_error
    assert colour(2, 1) == colour(2, 2) == "#ffffff"  # missing
    tip = table.item(0, 0).toolTip()
    assert "ok" in tip and "0.012 s" in tip and "9000 KB" in tip
    assert "\u2014" in table.item(1, 1).toolTip()  # no memory recorded
    assert "no verdict" in table.item(2, 1).toolTip()


CPP_ERROR = ("solution.cpp: In function 'int main()':\n"
             "solution.cpp:3:5: error: 'cout' was not declared in this scope\n"
             "    3 |     cout << n * 2;\n"
             "      |     ^~~~")


@pytest.fixture
def verified_store(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """One C++ task as the verify stage leaves it: two statement samples (both used as tests,
    one added by verify), a generated test, three candidates (golden, wrong, not compiling)
    and verify_meta with the samples, the compiler's message and each candidate's record."""
    path = tmp_path / "verified" / "data" / "store.sqlite"
    with Store(path) as s:
        tid = s.add_task(style="codeforces", title="Double it",
                         statement="Print twice n.\n\nSample: 1 -> 2, 5 -> 10.")
        code = "#include <iostream>\nint main() {{ int n; std::cin >> n; std::cout << {}; }}\n"
        golden = s.add_solution(tid, 0, code=code.format("n * 2"), language="cpp")
        wrong = s.add_solution(tid, 1, code=code.format("n + 2"), language="cpp")
        broken = s.add_solution(tid, 2, code="int main() {\n  int n;\n    cout << n * 2;\n}\n",
                                language="cpp")
        tests = [s.add_test(tid, 0, input="1\n", kind="sample", source="direct",
                            expected_output="2\n"),
                 s.add_test(tid, 1, input="5\n", kind="sample", source="direct",
                            expected_output="10\n", meta={"added_by": "verify"}),
                 s.add_test(tid, 2, input="1000000\n", kind="random", source="generator",
                            expected_output="2000000\n")]
        s.add_verdicts([Verdict(golden, t, "ok", 0.01, 3000) for t in tests]
                       + [Verdict(wrong, tests[0], "wrong", 0.01, 3000),
                          Verdict(wrong, tests[1], "wrong", 0.01, 3000),
                          Verdict(wrong, tests[2], "ok", 0.01, 3000)]
                       + [Verdict(broken, t, "compile_error") for t in tests])
        meta = {
            "samples": {"in_statement": 2, "as_tests": 2, "added": 1},
            "compile_errors": {str(broken): CPP_ERROR},
            "candidates": {
                str(golden): {"eligible": True, "weight": 1.0, "exposures": 0,
                              "biggest_input_cpu_s": 0.12},
                str(wrong): {"eligible": False, "weight": 0.5, "exposures": 2,
                             "biggest_input_cpu_s": 0.013},
            },
            "unusable_tests": 0,
        }
        s.set_task_result(tid, "accepted", agreement=0.67, golden_solution_id=golden,
                          meta=meta)
    return path, {"golden": golden, "wrong": wrong, "broken": broken}


def open_verified(qtbot, panel: DataPanel, path: Path) -> None:
    open_and_wait(qtbot, panel, path)
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=5000)
    settle(qtbot, panel)


def test_verification_details_show_samples_compile_errors_candidates_and_a_legend(
        qtbot, panel, verified_store):
    path, ids = verified_store
    open_verified(qtbot, panel, path)
    # the header: samples and how many were added as tests, the rest in a tooltip
    summary = panel.verify_label.text()
    assert not panel.verify_label.isHidden()
    assert ("statement samples: 2 in the statement, 2 used as tests, 1 added as tests by "
            "verify" in summary)
    assert "1 compile error" in summary and "1 of 2 candidates eligible" in summary
    assert "unusable tests: 0" in summary
    assert "biggest_input_cpu_s" in panel.verify_label.toolTip()  # the whole JSON

    # the solution that did not compile: its list entry, and the message above its code
    labels = [panel.solution_list.item(i).text() for i in range(panel.solution_list.count())]
    assert [("compile error" in label) for label in labels] == [False, False, True]
    assert "was not declared" in panel.solution_list.item(2).toolTip()
    assert panel.compile_error_box.isHidden()  # the golden one (shown first) compiled
    assert "eligible (passes every sample)" in panel.solution_info.text()
    assert "weight 1" in panel.solution_info.text()
    assert "biggest input 0.120 s CPU" in panel.solution_info.text()
    assert "tests passed: 3/3 ok" in panel.solution_info.text()
    panel.solution_list.setCurrentRow(1)
    assert "not eligible (fails a sample)" in panel.solution_info.text()
    assert "tests passed: 1/3 ok" in panel.solution_info.text()
    panel.solution_list.setCurrentRow(2)
    assert not panel.compile_error_box.isHidden()
    assert panel.compile_error_title.text() == "Compile error"
    assert panel.compile_error_view.toPlainText() == CPP_ERROR
    fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    assert panel.compile_error_view.font().family() == fixed.family()  # monospace
    assert "cout << n * 2" in panel.code_view.toPlainText()  # the code is still there below
    panel.solution_list.setCurrentRow(0)
    assert panel.compile_error_box.isHidden()

    # the verdict matrix: legend, pass counts, the candidates table
    legend = QTextDocumentFragment.fromHtml(panel.verdict_legend.text()).toPlainText()
    legend = legend.replace("\u00a0", " ")
    for words in ("Legend:", "ok", "wrong answer", "time limit", "error (runtime, compile",
                  "no verdict"):
        assert words in legend, words
    for status in ("ok", "wrong", "time_limit", "runtime_error", None):
        assert verdict_colour(status).name() in panel.verdict_legend.text()
    grid = panel.verdict_table
    assert [grid.verticalHeaderItem(r).text() for r in range(3)] == [
        f"{GOLDEN} #0  3/3 ok", "#1  1/3 ok", "#2  0/3 ok"]
    cands = panel.candidate_table
    head = [cands.horizontalHeaderItem(c).text() for c in range(cands.columnCount())]
    assert head == ["solution", "tests ok", "eligible", "weight", "exposures",
                    "biggest input (CPU)", "compile error"]
    rows = [[cands.item(r, c).text() for c in range(cands.columnCount())] for r in range(3)]
    assert rows[0] == [f"{GOLDEN} #0", "3/3", "yes", "1", "0", "0.120 s", ""]
    assert rows[1] == ["#1", "1/3", "no", "0.5", "2", "0.013 s", ""]
    assert rows[2] == ["#2", "0/3", "", "", "", "",
                       "solution.cpp:3:5: error: 'cout' was not declared in this scope"]
    assert "was not declared" in cands.item(2, 6).toolTip()


def test_a_task_without_verification_details_shows_no_summary(qtbot, panel, small_store):
    open_task_1(qtbot, panel, small_store)
    assert panel.detail.verify_meta == {} and panel.verify_label.isHidden()
    assert panel.compile_error_box.isHidden()
    cands = panel.candidate_table
    assert [cands.horizontalHeaderItem(c).text() for c in range(cands.columnCount())] == [
        "solution", "tests ok"]
    assert [cands.item(r, 1).text() for r in range(3)] == ["3/3", "0/3", "0/3"]


def test_odd_verification_details_still_show(qtbot, panel, tmp_path):
    path = tmp_path / "odd.sqlite"
    with Store(path) as s:
        tid = s.add_task(style="atcoder", title="Odd", statement="x")
        sol = s.add_solution(tid, 0, code="print(1)")
        s.set_task_result(tid, "rejected", "no_valid_candidates", meta={
            "samples": {"in_statement": 0, "parsed_from": "html"}, "compile_errors": [],
            "candidates": {str(sol): {"eligible": "maybe", "notes": ["a", "b"]}, "99": 3},
            "stage_version": 2})
    open_verified(qtbot, panel, path)
    summary = panel.verify_label.text()
    assert "0 in the statement, parsed_from: html" in summary
    assert "0 compile errors" in summary and "stage_version: 2" in summary
    assert "eligible maybe" in panel.solution_info.text()
    cands = panel.candidate_table
    assert [cands.horizontalHeaderItem(c).text() for c in range(cands.columnCount())] == [
        "solution", "tests ok", "eligible", "notes"]
    assert cands.item(0, 3).text() == '["a","b"]'


def test_screenshot_of_the_verification_details(qtbot, panel, verified_store,
                                                 screenshot_dir):
    panel.resize(1400, 820)
    panel.show()
    open_verified(qtbot, panel, verified_store[0])
    panel.tabs.setCurrentIndex(2)  # Solutions
    panel.solution_list.setCurrentRow(2)
    assert panel.grab().save(str(screenshot_dir / "data-verify-solution.png"))
    panel.tabs.setCurrentIndex(4)  # Verdicts
    assert panel.grab().save(str(screenshot_dir / "data-verify-verdicts.png"))


def test_a_missing_store_shows_the_error_and_no_rows(qtbot, panel, tmp_path):
    open_and_wait(qtbot, panel, tmp_path / "nope.sqlite")
    assert "Could not open" in panel.message.text() and "no store at" in panel.message.text()
    assert panel.model.rowCount() == 0 and not panel.table.isEnabled()


def test_a_store_from_a_newer_engine_shows_the_error(qtbot, panel, small_store):
    conn = sqlite3.connect(small_store)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    open_and_wait(qtbot, panel, small_store)
    assert "newer than this engine" in panel.message.text()


def test_reopening_another_store_replaces_the_first(qtbot, panel, small_store, tmp_path):
    open_task_1(qtbot, panel, small_store)
    other = tmp_path / "other.sqlite"
    with Store(other) as s:
        s.add_task(style="atcoder", title="Only one", statement="x")
    open_and_wait(qtbot, panel, other)
    assert [r.title for r in panel.model.rows] == ["Only one"] and panel.total == 1
    assert panel.detail is None and panel.verdict_table.rowCount() == 0


def test_screenshot_with_a_task_open(qtbot, panel, small_store, screenshot_dir):
    panel.resize(1400, 820)
    panel.show()
    open_task_1(qtbot, panel, small_store)
    assert panel.grab().save(str(screenshot_dir / "data.png"))
    for tab in ("Solutions", "Verdicts"):
        panel.tabs.setCurrentIndex(
            [panel.tabs.tabText(i) for i in range(panel.tabs.count())].index(tab))
        assert panel.grab().save(str(screenshot_dir / f"data-{tab.lower()}.png"))


# ---------------------------------------------------------------------------------------------
# A remote source: remote.store_client.RemoteStore, every page one real `python -m engine
# query` subprocess (LocalRunner runs the same command strings a cluster gets over SSH;
# tests/remote/test_store_client.py runs them over real sshd).

REPO = Path(__file__).resolve().parents[2]


def remote_store(path: Path, **kw):
    import sys

    from remote.runner import LocalRunner
    from remote.store_client import RemoteStore

    return RemoteStore(LocalRunner(), str(path), engine_dir=str(REPO), python=sys.executable,
                       **kw)


def open_remote_and_wait(qtbot, panel: DataPanel, source) -> None:
    panel.open_remote(source)
    qtbot.waitUntil(lambda: panel.page is not None or "Could not" in panel.message.text(),
                    timeout=20000)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)


def test_a_remote_store_pages_and_shows_details_like_the_local_one(qtbot, panel, small_store):
    made = []

    def factory():  # called in the worker, as the main window's is
        made.append(remote_store(small_store))
        return made[0]

    open_remote_and_wait(qtbot, panel, factory)
    assert panel.message.text() == f"this computer:{small_store}" and panel.path is None
    assert (shown_ids(panel), panel.total) == expected(small_store)
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("rejected"))
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)
    assert (shown_ids(panel), panel.total) == expected(small_store, status="rejected")
    panel.status_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)
    panel.next_button.click()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)
    assert shown_ids(panel) == [5, 6, 7, 8]
    panel.prev_button.click()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=20000)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)
    with Store(small_store, readonly=True) as s:
        assert panel.detail == s.get_task(1)  # BIG (6000 chars) is under the 8192 cut
        assert panel.lineage == s.lineage_of("task", 1)
    assert panel.verdict_table.rowCount() == 3
    assert made[0].calls >= 7  # open, pages, filter, detail: each its own command


def test_a_remote_detail_with_cut_tests_says_their_real_size(qtbot, panel, small_store):
    open_remote_and_wait(qtbot, panel, remote_store(small_store, max_test_chars=3000))
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=20000)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=20000)
    panel.test_list.setCurrentRow(1)
    assert len(panel.test_input.toPlainText()) == PREVIEW_CHARS
    assert f"first {PREVIEW_CHARS} of {len(BIG)} chars" in panel.test_input_note.text()


def test_a_remote_engine_too_old_for_queries_is_explained(qtbot, panel, small_store, tmp_path):
    old = tmp_path / "old-bundle" / "engine"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("")
    (old / "__main__.py").write_text(  # an engine from before `query`: argparse refuses it
        "import argparse\np = argparse.ArgumentParser(prog='python -m engine')\n"
        "sub = p.add_subparsers(dest='command', required=True)\n"
        "for n in ('validate', 'run', 'status', 'doctor'):\n    sub.add_parser(n)\n"
        "p.parse_args()\n")
    source = remote_store(small_store)
    source.engine_dir = str(old.parent)
    open_remote_and_wait(qtbot, panel, source)
    text = panel.message.text()
    assert text.startswith(f"Could not open this computer:{small_store}")
    assert "predates remote browsing" in text and "engine bundle" in text
    assert panel.model.rowCount() == 0 and not panel.table.isEnabled()


def test_a_remote_run_without_its_store_says_so(qtbot, panel, tmp_path):
    open_remote_and_wait(qtbot, panel, remote_store(tmp_path / "run" / "data" / "store.sqlite"))
    assert "Could not open" in panel.message.text() and "no store at" in panel.message.text()
    qtbot.waitUntil(lambda: "No RL rollouts" in panel.rollouts.message.text(), timeout=20000)


def test_failures_also_go_out_as_notices(qtbot, panel, tmp_path):
    notices = []
    panel.notice.connect(notices.append)
    open_and_wait(qtbot, panel, tmp_path / "nope.sqlite")
    assert [n.level for n in notices] == ["warning"] and "no store at" in notices[0].text
    assert notices[0].source == "Data"


# --- generated text is untrusted: control and bidi characters are shown, never applied ---------


TROJAN = "if is_admin\u202e }\u2066 // only for admins\u2069 \u2066{\n\x1b]0;pwned\x07\x1b[2J"


def test_control_and_bidi_characters_in_task_text_are_made_visible(qtbot, panel, tmp_path):
    from remote.display_text import is_unsafe

    path = tmp_path / "hostile.sqlite"
    with Store(path) as s:
        tid = s.add_task(style="codeforces", title=f"Title {TROJAN}",
                         statement=f"# Statement\n\n{TROJAN}\n",
                         selected_features={"algo\u202e": ["leaf\x1b[31m"]},
                         integration_strategy=f"plan {TROJAN}")
        s.add_solution(tid, 0, code=f"x = 1  # {TROJAN}\nprint(x)\n")
        s.add_solution(tid, 1, code=None, status="rejected", reject_reason=f"why {TROJAN}")
        s.add_test(tid, 0, input=f"1 {TROJAN}\n", kind="sample", source="direct",
                   expected_output="2\n")
        s.set_task_result(tid, "rejected", f"reason {TROJAN}", None)
    open_verified(qtbot, panel, path)
    shown = {
        "title": panel.title_label.text(),
        "row": panel.model.data(panel.model.index(0, 1)),
        "reason": panel.model.data(panel.model.index(0, 4)),
        "statement": panel.statement_view.toPlainText(),
        "code": panel.code_view.toPlainText(),
        "test": panel.test_input.toPlainText(),
    }
    panel.solution_list.setCurrentRow(1)
    shown["solution"] = panel.solution_list.item(1).text()
    for where, text in shown.items():
        bad = [hex(ord(c)) for c in text if is_unsafe(c) and c not in "\n\t"]
        assert not bad, (where, bad)
        assert r"\u202e" in text and r"\x1b" in text or where in ("statement",), (where, text)
    assert r"\u202e" in shown["statement"] and r"\u2066" in shown["statement"]
    assert "print(x)" in shown["code"]  # the code itself, line structure kept


# --- issue 17: sorting, a stale detail, line breaks, never a dead end --------------------------


def test_clicking_a_header_sorts_in_the_store_and_again_reverses(qtbot, panel, small_store):
    open_and_wait(qtbot, panel, small_store)
    header = panel.table.horizontalHeader()
    for column, key in ((5, "agreement"), (3, "status"), (7, "n_tests")):
        header.sectionClicked.emit(column)
        settle(qtbot, panel)
        assert shown_ids(panel) == expected(small_store, sort=key)[0], key
        header.sectionClicked.emit(column)  # the same column again: descending
        settle(qtbot, panel)
        assert shown_ids(panel) == expected(small_store, sort=key, descending=True)[0], key
        assert header.sortIndicatorSection() == column
    before = shown_ids(panel)
    header.sectionClicked.emit(1)  # the title: searched, not sorted; nothing changes
    settle(qtbot, panel)
    assert shown_ids(panel) == before and header.sortIndicatorSection() == 7
    panel.next_page()  # pages follow the sort
    settle(qtbot, panel)
    with Store(small_store, readonly=True) as s:
        everything = [r.id for r in s.query_tasks(TaskQuery(limit=100, sort="n_tests",
                                                            descending=True)).rows]
    assert shown_ids(panel) == everything[PAGE:2 * PAGE]


def test_a_task_the_filter_removes_leaves_the_detail(qtbot, panel, small_store):
    open_task_1(qtbot, panel, small_store)
    assert panel.detail is not None and panel.detail.id == 1
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("rejected"))  # task 1: no
    settle(qtbot, panel)
    assert 1 not in shown_ids(panel)
    assert panel.detail is None and panel.title_label.text() == ""
    assert panel.statement_view.toPlainText() == ""
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("accepted"))
    settle(qtbot, panel)
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=5000)
    settle(qtbot, panel)
    kept = panel.detail.id
    panel.search_edit.setText("grid")  # still lists the task: the detail stays, row selected
    settle(qtbot, panel)
    assert kept in shown_ids(panel) and panel.detail.id == kept
    assert panel.table.currentIndex().row() == shown_ids(panel).index(kept)


def test_a_plain_text_statement_keeps_its_lines(qtbot, panel, tmp_path):
    path = tmp_path / "plain.sqlite"
    with Store(path) as s:
        s.add_task(style="atcoder", title="Plain",
                   statement="Input\nN M\nA_1 ... A_N\n\nOutput\nthe sum\n```\n1 2\n3 4\n```")
    open_verified(qtbot, panel, path)
    text = panel.statement_view.toPlainText()
    assert "Input\nN M\nA_1 ... A_N" in text, text
    assert "1 2\n3 4" in text


def test_the_panel_opens_a_run_folder_and_is_never_a_dead_end(qtbot, panel, small_store):
    assert panel.open_button.isEnabled() and "Open" in panel.message.text()
    assert not panel.table.isEnabled()
    run_dir = small_store.parent.parent  # <run>/data/store.sqlite
    open_and_wait(qtbot, panel, run_dir)
    assert panel.path == small_store and shown_ids(panel) == expected(small_store)[0]
    assert panel.open_button.isEnabled()


def test_the_title_column_is_wide_enough_to_read(qtbot, panel, small_store):
    panel.resize(1100, 600)
    open_and_wait(qtbot, panel, small_store)
    header = panel.table.horizontalHeader()
    assert header.sectionSize(1) >= 200  # it was squeezed to ~50 px
    assert header.sectionSize(1) >= max(header.sectionSize(c) for c in (0, 2, 3, 5, 6))
