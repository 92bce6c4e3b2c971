"""gui/panels/rollouts.py, as the Data panel's "RL rollouts" tab, over tests/sample_run.py's run.

Step 2 has three groups: task 1 with mixed rewards (5, 5, 0), task 2 where nothing passes
(one rollout without code) and task 1 again where all pass. Task 1 has a golden solution in
the store, task 2 none. Each test waits until the panel has nothing pending and closes its
store. Screenshot: artifacts/screenshots/rollouts.png.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QThreadPool
from sample_run import GOLDEN_CODE, STEP2_GROUPS, build_sample_run

from engine.rollouts import group_advantages
from gui.panels.data import DataPanel
from gui.panels.rollouts import (
    ALL_FAIL,
    ALL_PASS,
    NEGATIVE,
    POSITIVE,
    RolloutView,
    advantage_colour,
    rollout_diff,
)


@pytest.fixture
def run(tmp_path):
    return build_sample_run(tmp_path / "run")


@pytest.fixture
def panel(qtbot):
    p = DataPanel(page_size=4)
    yield p
    p.close_store()
    qtbot.waitUntil(lambda: not p.busy(), timeout=10000)
    assert QThreadPool.globalInstance().waitForDone(5000)
    p.close()
    p.deleteLater()


def settle(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: not panel.busy(), timeout=10000)


def open_rollouts(qtbot, panel: DataPanel, path) -> RolloutView:
    panel.open_store(path)
    panel.show_rollouts()
    view = panel.rollouts
    qtbot.waitUntil(lambda: bool(view.rollouts) or "No RL" in view.message.text(),
                    timeout=10000)
    settle(qtbot, panel)
    return view


def cells(table, col: int) -> list[str]:
    return [table.item(r, col).text() for r in range(table.rowCount())]


def select_rollout(qtbot, panel, view: RolloutView, group_row: int, sample: int) -> None:
    view.group_table.setCurrentCell(group_row, 0)
    qtbot.waitUntil(lambda: bool(view.rollouts) and view.rollouts[0].group == group_row,
                    timeout=10000)
    settle(qtbot, panel)
    view.rollout_table.setCurrentCell(sample, 0)
    settle(qtbot, panel)


def test_the_latest_step_shows_its_groups_with_rewards_and_marks(qtbot, panel, run):
    view = open_rollouts(qtbot, panel, run.store_path)
    assert [view.step_combo.itemData(i) for i in range(view.step_combo.count())] == [1, 2]
    assert view.step_combo.currentData() == 2
    g = view.group_table
    assert cells(g, 1) == ["1", "2", "1"]
    assert cells(g, 2) == ["3.33", "-0.667", "5"]  # mean rewards
    assert cells(g, 4) == ["2/3", "0/3", "3/3"]
    assert cells(g, 5) == ["", ALL_FAIL, ALL_PASS]
    assert g.item(1, 5).background().color().name() == NEGATIVE
    assert g.item(2, 5).background().color().name() == POSITIVE
    label = view.step_label.text()
    assert "3 groups" in label and "9 rollouts" in label and "1 all-fail" in label


def test_a_groups_rollouts_show_rewards_and_coloured_advantages(qtbot, panel, run):
    view = open_rollouts(qtbot, panel, run.store_path)
    r = view.rollout_table  # the first group is selected: rewards 5, 5, 0
    assert cells(r, 0) == ["0", "1", "2"] and cells(r, 1) == ["5", "5", "0"]
    want = group_advantages([5.0, 5.0, 0.0])[2]
    assert cells(r, 2) == [f"{a:+.3f}" for a in want] == ["+0.577", "+0.577", "-1.155"]
    assert r.item(0, 2).background().color() == advantage_colour(want[0])
    assert r.item(0, 2).background().color().name() == POSITIVE
    assert r.item(2, 2).background().color().name() == NEGATIVE
    assert cells(r, 3) == ["2/2", "2/2", "0/2"] and cells(r, 5)[2] == "wrong wrong"
    assert "group mean" in r.item(0, 2).toolTip()
    zero = advantage_colour(0.0)
    assert zero is None


def test_a_rollout_shows_highlighted_code_and_its_diff_against_the_golden(qtbot, panel, run):
    view = open_rollouts(qtbot, panel, run.store_path)
    qtbot.waitUntil(lambda: 1 in view.golden, timeout=10000)
    assert view.current.sample == 0
    assert view.diff_view.toPlainText() == "Identical to the golden solution."
    view.rollout_table.setCurrentCell(2, 0)  # print(n * 3): one line differs
    assert "print(n * 3)" in view.code_view.toPlainText()
    assert "color:#008000" in view.code_view.toHtml().replace(" ", "").lower()  # keywords
    text = view.diff_view.toPlainText()
    assert "-    print(n * 2)" in text and "+    print(n * 3)" in text
    assert "golden (solution #0)" in text and "step 2 group 0 sample 2" in text
    html = view.diff_view.toHtml().lower().replace(" ", "")
    assert "color:#a00000" in html and "color:#008400" in html  # pygments' diff colours
    assert text.strip() == rollout_diff(GOLDEN_CODE, STEP2_GROUPS[0][1][2][0],
                                        "golden (solution #0)",
                                        "step 2 group 0 sample 2").strip()
    assert "advantage -1.155" in view.rollout_info.text()


def test_a_task_without_golden_and_a_rollout_without_code_say_so(qtbot, panel, run):
    view = open_rollouts(qtbot, panel, run.store_path)
    select_rollout(qtbot, panel, view, 1, 0)
    rec = view.current
    assert rec.task_id == 2 and rec.code is None
    assert view.code_view.toPlainText() == "I think the answer is 42."
    assert "no code judged: no_code_block" in view.rollout_info.text()
    assert "(truncated)" in view.rollout_info.text()
    view.rollout_table.setCurrentCell(1, 0)
    assert view.diff_view.toPlainText().startswith("No diff: the task has no golden solution")


def test_another_step_replaces_the_groups(qtbot, panel, run):
    view = open_rollouts(qtbot, panel, run.store_path)
    view.select_step(1)
    qtbot.waitUntil(lambda: view.group_table.rowCount() == 2, timeout=10000)
    settle(qtbot, panel)
    assert view.step_label.text().startswith("step 1 \u00b7 2 groups")
    assert [r.step for r in view.rollouts] == [1, 1, 1]
    # The seed problem's group: its reference solution stands in for the golden one.
    assert cells(view.group_table, 1) == ["1", f"seed #{run.ids['seed']}"]
    select_rollout(qtbot, panel, view, 1, 0)
    qtbot.waitUntil(lambda: -run.ids["seed"] in view.golden, timeout=10000)
    text = view.diff_view.toPlainText()
    assert f"seed #{run.ids['seed']} reference solution" in text
    assert "-print(2 * n)" in text and "+print(n + n)" in text
    assert f"seed #{run.ids['seed']}" in view.rollout_info.text()


def test_without_a_store_the_rollouts_still_show_and_the_diff_says_why(qtbot, panel, run):
    run.store_path.unlink()
    view = open_rollouts(qtbot, panel, run.store_path)
    assert "Could not open" in panel.message.text() and "no store at" in panel.message.text()
    assert not panel.table.isEnabled()
    assert view.group_table.rowCount() == 3
    qtbot.waitUntil(lambda: 1 in view.golden, timeout=10000)
    assert "No diff: " in view.diff_view.toPlainText()
    assert "no store at" in view.diff_view.toPlainText()


def test_a_run_without_rollouts_says_none_were_recorded(qtbot, panel, run):
    for f in run.rollouts.iterdir():
        f.unlink()
    view = open_rollouts(qtbot, panel, run.store_path)
    assert "No RL rollouts recorded" in view.message.text()
    assert view.group_table.rowCount() == 0 and panel.total == 8  # the tasks are there


def test_closing_the_store_clears_the_rollouts(qtbot, panel, run):
    view = open_rollouts(qtbot, panel, run.store_path)
    panel.close_store()
    settle(qtbot, panel)
    assert view.group_table.rowCount() == 0 and view.rollout_table.rowCount() == 0
    assert view.step_combo.count() == 0 and view.current is None


def test_screenshot_of_the_rollout_view(qtbot, panel, run, screenshot_dir):
    panel.resize(1400, 820)
    panel.show()
    view = open_rollouts(qtbot, panel, run.store_path)
    view.rollout_table.setCurrentCell(2, 0)
    view.code_tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: "print(n * 3)" in view.diff_view.toPlainText(), timeout=10000)
    assert panel.grab().save(str(screenshot_dir / "rollouts.png"))

