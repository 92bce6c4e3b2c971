"""The RL export's held-out validation file and the exports' dataset card (issue 18).

Run: .venv/bin/python -m pytest tests/engine/test_rl_split_and_card.py -q

The split rule is checked as a function (deterministic, disjoint, counts, stable as tasks are
added) and through real curate runs; the card from a real curate run, parsed as a hub would.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from engine.context import StageContext
from engine.curate.exports import split_draw, split_rl
from engine.events import EventWriter
from engine.rundir import RunDir
from engine.schema import config_from_dict
from engine.stages import curate
from engine.store import SeedRecord, Store, Verdict

VOCAB = [f"w{i}" for i in range(4000)]
EVIL = "evil | `tick` *star* [link](http://x.invalid) <b>html</b> # head"


def text(seed: int, n_words: int = 120) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(n_words))


def add_task(store: Store, statement: str, key: str | None, tests: int = 2) -> int:
    tid = store.add_task(style="codeforces", title="T", statement=statement, key=key)
    sid = store.add_solution(tid, 0, code="print(input())", reasoning="Echo.")
    ids = [store.add_test(tid, i, input=f"{i}\n", kind="random", source="generator",
                          expected_output=f"{i}") for i in range(tests)]
    store.add_verdicts(Verdict(sid, t, "ok") for t in ids)
    store.set_task_result(tid, "accepted", agreement=1.0, golden_solution_id=sid)
    return tid


def run_curate(run: RunDir, raw: dict) -> dict:
    cfg = config_from_dict(raw)
    events = EventWriter.for_run(run.events_dir, "curate", 0)
    ctx = StageContext(config=cfg, run=run, stage="curate", events=events,
                       log=logging.getLogger("test.rl_split"))
    try:
        return curate.run(ctx)
    finally:
        ctx.close()
        events.close()


def make_run(tmp_path: Path, n_tasks: int, name: str = "run") -> RunDir:
    run = RunDir(tmp_path / name)
    run.create()
    with Store(run.store_path) as store:
        for i in range(n_tasks):
            add_task(store, text(1000 + i), key=f"task-{i}")
    return run


def rows(run: RunDir, name: str) -> list[dict]:
    return pq.read_table(run.exports_dir / name).to_pylist()


# ---------------------------------------------------------------------------------------------
# The rule


def test_the_split_is_deterministic_disjoint_and_seeded():
    keys = [f"task:k{i}" for i in range(1000)]
    held = split_rl(keys, 0.1, 0, seed=7)
    assert held == split_rl(keys, 0.1, 0, seed=7)
    assert held != split_rl(keys, 0.1, 0, seed=8)
    # Held exactly when the draw is under the fraction: about 10%, no fix-up needed here.
    assert held == [split_draw(7, k) < 0.1 for k in keys]
    assert 60 < sum(held) < 140
    assert all(0.0 <= split_draw(7, k) < 1.0 for k in keys)


def test_a_tasks_side_does_not_depend_on_the_other_tasks():
    keys = [f"task:k{i}" for i in range(2000)]
    small = split_rl(keys[:500], 0.1, 0, seed=1)
    assert split_rl(keys, 0.1, 0, seed=1)[:500] == small
    assert split_rl(list(reversed(keys[:500])), 0.1, 0, seed=1) == small[::-1]


@pytest.mark.parametrize(("n", "fraction", "cap", "val"), [
    (0, 0.02, 500, 0),    # nothing to split
    (1, 0.02, 500, 0),    # one task: it trains
    (1, 0.5, 500, 0),
    (2, 0.02, 500, 1),    # at least one held out from two on (verl needs a validation row)
    (2, 0.5, 500, 1),     # never all of them
    (10, 0.02, 500, 1),
    (1000, 0.5, 20, 20),  # the cap keeps the lowest draws
    (50, 0.0, 500, 0),    # 0 holds out nothing
])
def test_counts_on_tiny_and_capped_runs(n, fraction, cap, val):
    keys = [f"task:t{i}" for i in range(n)]
    held = split_rl(keys, fraction, cap, seed=3)
    assert sum(held) == val and len(held) == n
    if n:
        assert sum(not h for h in held) >= 1  # never an empty training set


def test_the_cap_and_the_minimum_pick_the_lowest_draws():
    keys = [f"task:t{i}" for i in range(300)]
    draws = [split_draw(5, k) for k in keys]
    lowest = sorted(range(300), key=draws.__getitem__)
    capped = split_rl(keys, 0.5, 7, seed=5)
    assert {i for i, h in enumerate(capped) if h} == set(lowest[:7])
    one = split_rl(keys, 1e-9, 0, seed=5)
    assert [i for i, h in enumerate(one) if h] == [lowest[0]]


# ---------------------------------------------------------------------------------------------
# Through curate


def test_curate_writes_disjoint_train_and_validation_files_that_cover_the_rl_set(tmp_path):
    run = make_run(tmp_path, 60)
    summary = run_curate(run, {"curate": {"rl_val_fraction": 0.1}})
    train, val = rows(run, "rl.parquet"), rows(run, "rl_val.parquet")
    ids = lambda rs: [r["extra_info"]["task_id"] for r in rs]  # noqa: E731
    assert not set(ids(train)) & set(ids(val))
    assert sorted(ids(train) + ids(val)) == list(range(1, 61))
    assert ids(train) == sorted(ids(train)) and ids(val) == sorted(ids(val))  # id order kept
    assert [r["extra_info"]["index"] for r in train] == list(range(len(train)))
    assert [r["extra_info"]["index"] for r in val] == list(range(len(val)))
    assert {r["extra_info"]["split"] for r in train} == {"train"}
    assert {r["extra_info"]["split"] for r in val} == {"test"}
    keys = [f"task:task-{i}" for i in range(60)]
    expected = [i + 1 for i, h in enumerate(split_rl(keys, 0.1, 500, seed=42)) if h]
    assert ids(val) == expected  # the documented rule, with run.seed (42 by default)
    assert (summary["exported_rl"], summary["exported_rl_val"]) == (60, len(val))
    again = run_curate(run, {"curate": {"rl_val_fraction": 0.1}})
    assert rows(run, "rl_val.parquet") == val and again["exported_rl_val"] == len(val)
    other_seed = run_curate(run, {"run": {"seed": 7}, "curate": {"rl_val_fraction": 0.1}})
    assert ids(rows(run, "rl_val.parquet")) != ids(val)
    assert other_seed["exported_rl"] == 60


def test_a_tiny_run_keeps_a_training_row_and_holds_out_one(tmp_path):
    run = make_run(tmp_path, 2)
    run_curate(run, {})  # the default share, 2%, of two tasks
    assert (len(rows(run, "rl.parquet")), len(rows(run, "rl_val.parquet"))) == (1, 1)
    single = make_run(tmp_path, 1, "single")
    summary = run_curate(single, {})
    assert (len(rows(single, "rl.parquet")), len(rows(single, "rl_val.parquet"))) == (1, 0)
    assert summary["exported_rl_val"] == 0


def test_a_zero_share_removes_a_stale_validation_file(tmp_path):
    run = make_run(tmp_path, 5)
    run_curate(run, {})
    assert (run.exports_dir / "rl_val.parquet").exists()
    summary = run_curate(run, {"curate": {"rl_val_fraction": 0}})
    assert not (run.exports_dir / "rl_val.parquet").exists()
    assert "rl_val.parquet" not in summary["exports"] and len(rows(run, "rl.parquet")) == 5


def test_seed_problems_split_by_their_source_key(tmp_path):
    run = make_run(tmp_path, 3)
    with Store(run.store_path) as store:
        store.add_seeds([SeedRecord(source="s.jsonl", source_key=f"s.jsonl:{i}",
                                    problem=text(5000 + i), solutions=["print(1)"],
                                    tests={"inputs": ["1\n"], "outputs": ["1"]})
                         for i in range(1, 9)])
    run_curate(run, {"curate": {"include_seed_problems": True, "rl_val_fraction": 0.3}})
    every = rows(run, "rl.parquet") + rows(run, "rl_val.parquet")
    keys = [("task:" + r["extra_info"]["task_key"]) if r["extra_info"]["origin"] == "task"
            else "seed:" + r["extra_info"]["seed_key"] for r in every]
    assert len(set(keys)) == 11
    held = {k for k, r in zip(keys, every, strict=True) if r["extra_info"]["split"] == "test"}
    order = [f"task:task-{i}" for i in range(3)] + [f"seed:s.jsonl:{i}" for i in range(1, 9)]
    assert held == {k for k, h in zip(order, split_rl(order, 0.3, 500, 42), strict=True) if h}


# ---------------------------------------------------------------------------------------------
# The dataset card


def front_matter(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_the_card_describes_a_real_run_and_its_front_matter_parses(tmp_path):
    run = make_run(tmp_path, 6)
    with Store(run.store_path) as store:
        add_task(store, text(1000) + " tail", key="dup")  # a near duplicate of task 1
        leak = text(77, 40)
        add_task(store, f"{text(2000)} {leak}", key="leak")
        add_task(store, text(2001), key="no-tests", tests=0)
    bench = tmp_path / "lcb v6.jsonl"
    bench.write_text(json.dumps({"question_id": "q1", "question_content": leak}) + "\n")
    raw = {
        "run": {"name": "card-run", "seed": 11},
        "llms": {"generator": {"backend": "openai", "base_url": "http://10.0.0.5:8000/v1",
                               "model": EVIL},
                 "solver": {"backend": "openai", "base_url": "http://10.0.0.6:8000/v1",
                            "model": "deepseek-ai/DeepSeek-R1-0528"}},
        "verify": {"min_agreement": 0.6, "compare": "strip", "time_limit_s": 4},
        "rl": {"reward": "all_pass", "judge_time_limit_s": 6, "reward_tests_per_call": 8},
        "curate": {"decontaminate_file": str(bench), "dataset_license": "cc-by-4.0",
                   "rl_val_fraction": 0.2, "rl_data_source": "taco"},
    }
    summary = run_curate(run, raw)
    card = (run.exports_dir / "README.md").read_text(encoding="utf-8")
    meta, body = front_matter(card)
    assert meta["license"] == "cc-by-4.0" and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    configs = {c["config_name"]: c["data_files"] for c in meta["configs"]}
    assert configs == {"sft": [{"split": "train", "path": "sft.parquet"}],
                       "rl": [{"split": "train", "path": "rl.parquet"},
                              {"split": "test", "path": "rl_val.parquet"}]}
    for files in configs.values():
        assert all((run.exports_dir / f["path"]).is_file() for f in files)
    # Counts: 9 accepted, 1 contaminated, 1 near duplicate, 7 kept, one without tests.
    assert (summary["contaminated"], summary["near_duplicates"], summary["kept"]) == (1, 1, 7)
    val = summary["exported_rl_val"]
    for line in ["| accepted tasks with a golden solution | 9 |",
                 "| tasks kept after curation | 7 |", "| removed as contaminated | 1 |",
                 "| removed as near duplicates | 1 |",
                 "| kept tasks without a labelled test (SFT only) | 1 |",
                 "| SFT rows | 7 |",
                 f"| RL training rows (`rl.parquet`, split `train`) | {6 - val} |",
                 f"| RL validation rows (`rl_val.parquet`, split `test`) | {val} |"]:
        assert line in body
    # Thresholds as configured, decontamination by file name only, the reward and its use.
    assert "mean agreement >= 0.6" in body and "4 s CPU" in body and "`strip`" in body
    assert "Against `lcb v6.jsonl` (1 benchmark problems)" in body
    assert str(tmp_path) not in card  # no absolute path of the run's machine
    assert "10.0.0.5" not in card  # endpoint addresses stay private
    assert "5 when every sampled test passes, else 0" in body
    assert "custom_reward_function.path=<synthsmith>/engine/train/verl_reward.py" in body
    assert "+custom_reward_function.reward_kwargs.judge_time_limit_s=6.0" in body
    assert "`prime_code`" in body and "`taco`" in body
    # A model id is data: inside a code span, never live Markdown.
    evil_line = next(line for line in body.splitlines() if "- features:" in line)
    assert evil_line == "- features: `generator` = `openai` ``evil | `tick` *star* " \
        "[link](http://x.invalid) <b>html</b> # head``"
    assert all(row.count("|") == 3 for row in body.splitlines() if row.startswith("| "))


def test_the_card_is_rewritten_identically_and_names_an_unchosen_licence(tmp_path):
    run = make_run(tmp_path, 3)
    run_curate(run, {})
    first = (run.exports_dir / "README.md").read_bytes()
    run_curate(run, {})
    assert (run.exports_dir / "README.md").read_bytes() == first
    meta, body = front_matter(first.decode())
    assert meta["license"] == "other" and "set `curate.dataset_license`" in body
    assert "**Not decontaminated**" in body
    assert "verl's built-in scorer does not know `synthsmith`" in body
    assert not list(run.exports_dir.glob(".*"))  # no temporary file left behind
