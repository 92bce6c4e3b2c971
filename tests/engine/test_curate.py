"""The curate stage: near duplicates, decontamination, the SFT/RL exports, reruns, the CLI.

Run: .venv/bin/python -m pytest tests/engine/test_curate.py -q

Every test fills a real SQLite store through the Store API and runs the real stage on it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.context import StageContext, StageError
from engine.curate.decontaminate import BenchmarkIndex
from engine.curate.near_duplicates import NearDuplicateFilter
from engine.curate.word_ngrams import WordHasher, ngram_hashes, shingles, words_of
from engine.events import EventWriter
from engine.paths import ASSETS_DIR
from engine.rundir import RunDir
from engine.schema import config_from_dict
from engine.stages import curate
from engine.store import SeedRecord, Store, Verdict

REPO = Path(__file__).resolve().parents[2]
VOCAB = [f"w{i}" for i in range(4000)]
# 20 words of stock phrasing, as Codeforces-style statements (synthetic or not) all repeat it.
STOCK = ("the first line of the input contains a single integer t the number of test cases "
         "description of the test cases follows")


# ---------------------------------------------------------------------------------------------
# Helpers


def text(seed: int, n_words: int = 150) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(n_words))


def edit_words(statement: str, positions: list[int]) -> str:
    words = statement.split()
    for p in positions:
        words[p] = "changed"
    return " ".join(words)


def add_verified_task(store: Store, statement: str, *, title: str = "T", status="accepted",
                      golden: bool = True, tests: int = 3, unlabelled: int = 0,
                      candidates: int = 1, golden_idx: int = 0, wrong: tuple[int, ...] = (),
                      reasoning: str | None = "Think it through.", key: str | None = None,
                      ) -> int:
    """A task as verify leaves it: candidates with verdicts on labelled tests, a golden one."""
    tid = store.add_task(style="codeforces", title=title, statement=statement, key=key)
    sids = [store.add_solution(tid, i, code=f"print(input())  # candidate {i}",
                               reasoning=reasoning) for i in range(candidates)]
    test_ids = [store.add_test(tid, i, input=f"{tid} {i}\n", kind="random", source="generator",
                               expected_output=f"{tid} {i}") for i in range(tests)]
    for j in range(unlabelled):
        store.add_test(tid, tests + j, input=f"unlabelled {j}\n", kind="stress",
                       source="generator")
    store.add_verdicts(
        Verdict(sid, test_id, "wrong" if (i in wrong and k == 0) else "ok")
        for i, sid in enumerate(sids) for k, test_id in enumerate(test_ids)
    )
    store.set_task_result(tid, status, reason=None if status == "accepted" else "low_agreement",
                          agreement=0.75, golden_solution_id=sids[golden_idx] if golden else None)
    return tid


def add_seed(store: Store, problem: str, *, solutions: list | None = None,
             tests: dict | None = None) -> int:
    """A seed as the seeds stage imports it; -> its id."""
    n = store.counts()["seeds"]
    key = f"seeds.jsonl:{n + 1}"
    if solutions is None:
        solutions = [f"print(sum(map(int, input().split())))  # seed {n + 1}"]
    if tests is None:
        tests = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
    assert store.add_seeds([SeedRecord(source="seeds.jsonl", source_key=key, problem=problem,
                                       solutions=solutions, tests=tests)]) == 1
    return next(s.id for s in store.iter_seeds() if s.source_key == key)


def make_run(tmp_path: Path, name: str = "run") -> RunDir:
    run = RunDir(tmp_path / name)
    run.create()
    return run


def run_curate(run: RunDir, stop: bool = False, **curate_cfg) -> dict:
    cfg = config_from_dict({"curate": curate_cfg})
    events = EventWriter.for_run(run.events_dir, "curate", 0)
    ctx = StageContext(config=cfg, run=run, stage="curate", events=events,
                       log=logging.getLogger("test.curate"))
    if stop:
        ctx.stop_event.set()
    try:
        return curate.run(ctx)
    finally:
        ctx.close()
        events.close()


def statuses(run: RunDir) -> dict[int, tuple[str, str | None]]:
    with Store(run.store_path) as store:
        out = {}
        for tid in range(1, store.counts()["tasks"] + 1):
            t = store.get_task(tid)
            out[tid] = (t.status, t.reject_reason)
        return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def events_of(run: RunDir, kind: str) -> list[dict]:
    lines = run.event_file("curate", 0).read_text().splitlines()
    return [e["data"] for e in map(json.loads, lines) if e["kind"] == kind]


def write_benchmark(path: Path, records: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------
# Near duplicates


def test_statements_differing_by_a_few_words_collapse_into_the_lowest_id(tmp_path):
    run = make_run(tmp_path)
    base = text(1, 200)
    with Store(run.store_path) as store:
        first = add_verified_task(store, base)
        distinct = add_verified_task(store, text(2, 200))
        twin = add_verified_task(store, edit_words(base, [20, 90, 160]))
    summary = run_curate(run)
    got = statuses(run)
    assert got[twin] == ("rejected", f"near_duplicate_of:{first}")
    assert got[first] == ("accepted", None)
    assert got[distinct] == ("accepted", None)
    assert summary["near_duplicates"] == 1 and summary["kept"] == 2
    with Store(run.store_path) as store:
        assert store.get_task(twin).golden_solution_id is not None  # verify's result is kept


def test_distinct_statements_sharing_stock_phrasing_are_all_kept(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        ids = [add_verified_task(store, f"{text(s, 120)} {STOCK} {text(s + 50, 60)}")
               for s in range(4)]
    summary = run_curate(run)
    assert summary["near_duplicates"] == 0
    assert all(statuses(run)[i] == ("accepted", None) for i in ids)


def test_a_removed_task_always_names_a_task_that_stays():
    # Jaccard: A~B 0.82, B~C 0.82, A~C 0.67. B goes (a twin of A); C is compared with the
    # kept A only, so it stays instead of following B out (no chains through removed tasks).
    flt = NearDuplicateFilter(threshold=0.75, num_perm=256)
    a, b, c = (np.arange(lo, lo + 1000, dtype=np.uint32) for lo in (0, 100, 200))
    assert [flt.check(1, a), flt.check(2, b), flt.check(3, c)] == [None, 1, None]
    assert flt.kept == 2


def test_exact_duplicates_collapse_even_where_lsh_finds_no_banding():
    # threshold 1.0 with 16 permutations gives datasketch one band, which it refuses.
    flt = NearDuplicateFilter(threshold=1.0, num_perm=16)
    hasher = WordHasher()
    sh = [shingles(hasher.hashes(words_of(s)), 5) for s in (text(4), text(4), text(5))]
    assert [flt.check(i, s) for i, s in enumerate(sh, start=1)] == [None, 1, None]


def test_words_ignore_case_and_punctuation_and_short_texts_make_one_shingle():
    assert words_of("Given $N$ (1 <= N <= 10^5).") == ["given", "n", "1", "n", "10", "5"]
    hasher = WordHasher()
    assert len(shingles(hasher.hashes(["a", "b"]), 5)) == 1
    assert len(shingles(hasher.hashes([]), 5)) == 0
    assert len(ngram_hashes(hasher.hashes(["a", "b"]), 5)) == 0
    assert len(ngram_hashes(hasher.hashes(list("abcdef")), 5)) == 2


# ---------------------------------------------------------------------------------------------
# Decontamination


def test_a_task_holding_a_benchmark_passage_is_removed_and_an_unrelated_one_kept(tmp_path):
    run = make_run(tmp_path)
    passage = text(10, 60)
    bench = write_benchmark(tmp_path / "lcb.jsonl", [
        {"question_id": "abc301_a", "question_title": "Leak", "platform": "atcoder",
         "question_content": f"{text(11, 40)} {passage} {text(12, 40)}"},
        {"question_id": "2850", "question_content": text(13, 120)},
    ])
    with Store(run.store_path) as store:
        leaked = add_verified_task(store, f"{text(20, 80)} {passage} {text(21, 50)}")
        clean = add_verified_task(store, text(22, 200))
    summary = run_curate(run, decontaminate_file=bench)
    got = statuses(run)
    assert got[leaked] == ("rejected", "contaminated:abc301_a")
    assert got[clean] == ("accepted", None)
    assert summary["contaminated"] == 1
    assert summary["benchmark"]["problems"] == 2


def test_ngrams_in_many_benchmark_problems_are_boilerplate_and_do_not_count(tmp_path):
    bench_file = write_benchmark(tmp_path / "b.jsonl", [
        {"question_id": f"p{i}", "question_content": f"{text(30 + i, 80)} {STOCK}"}
        for i in range(3)
    ])
    task = f"{text(40, 80)} {STOCK} {text(41, 30)}"
    hasher = WordHasher()
    grams = ngram_hashes(hasher.hashes(words_of(task)), 13).tolist()
    three = BenchmarkIndex(Path(bench_file), ngram_size=13, boilerplate_problems=3,
                           hasher=hasher)
    four = BenchmarkIndex(Path(bench_file), ngram_size=13, boilerplate_problems=4,
                          hasher=hasher)
    assert three.match(grams) is None
    assert three.stats.boilerplate_ngrams == len(STOCK.split()) - 12
    assert four.match(grams) == "p0"  # below the cut-off the stock phrase does count


def test_a_task_must_share_min_matches_ngrams_with_one_problem(tmp_path):
    bench_file = write_benchmark(tmp_path / "b.jsonl", [{"id": 7, "problem": text(50, 100)}])
    shared = " ".join(text(50, 100).split()[30:43])  # exactly one 13-gram
    hasher = WordHasher()
    grams = ngram_hashes(hasher.hashes(words_of(f"{text(51, 50)} {shared}")), 13).tolist()
    index = BenchmarkIndex(Path(bench_file), ngram_size=13, boilerplate_problems=3,
                           hasher=hasher)
    assert index.match(grams, min_matches=1) == "7"
    assert index.match(grams, min_matches=2) is None


def test_benchmark_lines_in_taco_or_plain_layout_are_read_and_bad_ones_counted(tmp_path):
    bench_file = write_benchmark(tmp_path / "b.jsonl", [
        {"question": text(60, 30)},
        {"problem": text(61, 30), "task_id": "X/1"},
        {"title": "no text here"},
        "{not json",
        {"question_content": "too short"},
    ])
    index = BenchmarkIndex(Path(bench_file), ngram_size=13, boilerplate_problems=3,
                           hasher=WordHasher())
    assert index.ids == ["line1", "X/1", "line5"]
    assert (index.stats.bad_lines, index.stats.too_short) == (2, 1)


def test_a_benchmark_path_that_does_not_exist_fails_before_any_task_is_touched(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        tid = add_verified_task(store, text(70))
    with pytest.raises(StageError, match="curate.decontaminate_file"):
        run_curate(run, decontaminate_file=str(tmp_path / "missing.jsonl"))
    assert statuses(run)[tid] == ("accepted", None)
    assert not (run.exports_dir / "rl.parquet").exists()


def test_a_benchmark_file_without_any_problem_fails_the_stage(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(71))
    bench = write_benchmark(tmp_path / "b.jsonl", [{"title": "x"}])
    with pytest.raises(StageError, match="no problems"):
        run_curate(run, decontaminate_file=bench)


def test_without_a_benchmark_file_decontamination_is_skipped_with_a_log_line(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(72))
    summary = run_curate(run)
    assert summary["benchmark"] is None
    assert any("decontamination skipped" in e["message"] for e in events_of(run, "log"))


# ---------------------------------------------------------------------------------------------
# Exports


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_trl_sft_trainer_trains_on_the_sft_export_as_written(tmp_path, kind):
    """Issue 18: TRL's SFTTrainer takes the export with no mapping (it failed with
    KeyError 'text' on {query, response}); 2 steps of a tiny random model."""
    pytest.importorskip("torch")
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    from engine.llm.transformers_local import build_tiny_random

    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        for i in range(4):
            add_verified_task(store, text(300 + i))
    run_curate(run)
    export = run.exports_dir / f"sft.{kind}"
    dataset = datasets.load_dataset("json" if kind == "jsonl" else "parquet",
                                    data_files=str(export), split="train")
    assert len(dataset) == 4, export.read_bytes()[:300]
    model, tok = build_tiny_random()
    args = trl.SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=2,
                         per_device_train_batch_size=2, report_to=[], use_cpu=True,
                         save_strategy="no", logging_steps=1, max_length=4096)
    trainer = trl.SFTTrainer(model=model, processing_class=tok, args=args,
                             train_dataset=dataset)
    result = trainer.train()
    assert trainer.state.global_step == 2 and result.training_loss > 0


def test_verl_sft_dataset_reads_the_export_where_verl_is_installed(tmp_path):
    verl_sft = pytest.importorskip("verl.utils.dataset.multiturn_sft_dataset")
    pytest.importorskip("torch")
    from engine.llm.transformers_local import build_tiny_random

    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(310))
    run_curate(run)
    _, tok = build_tiny_random()
    dataset = verl_sft.MultiTurnSFTDataset(
        parquet_files=str(run.exports_dir / "sft.parquet"), tokenizer=tok,
        config={"messages_key": "messages", "max_length": 512, "truncation": "right"})
    assert len(dataset) == 1 and "input_ids" in dataset[0]



def test_sft_rows_are_exactly_query_and_response_with_the_code_fenced(tmp_path):
    run = make_run(tmp_path)
    statements = [text(80), text(81)]
    with Store(run.store_path) as store:
        for s in statements:
            add_verified_task(store, s)
        add_verified_task(store, text(82), reasoning=None)
    run_curate(run)
    rows = read_jsonl(run.exports_dir / "sft.jsonl")
    assert all(set(r) == {"query", "response", "messages", "prompt", "completion"}
               for r in rows)
    assert all(r["messages"] == r["prompt"] + r["completion"] == [
        {"role": "user", "content": r["query"]},
        {"role": "assistant", "content": r["response"]}] for r in rows)
    assert [r["query"] for r in rows[:2]] == statements
    assert rows[0]["response"] == ("<think>\nThink it through.\n</think>\n\n"
                                   "```python\nprint(input())  # candidate 0\n```")
    assert rows[2]["response"] == "```python\nprint(input())  # candidate 0\n```"
    table = pq.read_table(run.exports_dir / "sft.parquet")
    assert table.schema.names == ["query", "response", "messages", "prompt", "completion"]
    assert table.to_pylist() == rows


def test_rl_rows_have_the_verl_columns_and_the_labelled_tests_as_ground_truth(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        tid = add_verified_task(store, text(90), tests=4, unlabelled=2, key="task-a")
    run_curate(run)
    table = pq.read_table(run.exports_dir / "rl.parquet")
    assert table.schema.names == ["data_source", "prompt", "ability", "reward_model",
                                  "extra_info"]
    assert table.schema.field("prompt").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())]))
    (row,) = table.to_pylist()
    assert row["prompt"] == [{"role": "user", "content": text(90)}]
    assert (row["data_source"], row["ability"]) == ("synthsmith", "code")
    assert row["reward_model"]["style"] == "rule"
    truth = json.loads(row["reward_model"]["ground_truth"])
    assert set(truth) == {"inputs", "outputs"}
    assert len(truth["inputs"]) == len(truth["outputs"]) == 4  # the unlabelled ones left out
    assert truth["inputs"][0] == f"{tid} 0\n" and truth["outputs"][0] == f"{tid} 0"
    extra = row["extra_info"]
    assert (extra["index"], extra["task_id"], extra["task_key"], extra["n_tests"]) == \
        (0, tid, "task-a", 4)
    assert extra["pass_rate"] == 1.0 and extra["agreement"] == 0.75


def test_only_accepted_tasks_with_a_golden_solution_are_exported(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        good = add_verified_task(store, text(100))
        add_verified_task(store, text(101), status="rejected")
        add_verified_task(store, text(102), status="pending", golden=False)
        add_verified_task(store, text(103), golden=False)
    summary = run_curate(run)
    assert [r["query"] for r in read_jsonl(run.exports_dir / "sft.jsonl")] == [text(100)]
    rl = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert [r["extra_info"]["task_id"] for r in rl] == [good]
    assert summary["accepted_without_golden"] == 1


def test_more_solutions_per_task_adds_the_other_correct_candidates_after_the_golden(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(110), candidates=4, golden_idx=2, wrong=(1,))
    run_curate(run, sft_solutions_per_task=3)
    responses = [r["response"] for r in read_jsonl(run.exports_dir / "sft.jsonl")]
    assert [r.rsplit("# candidate ", 1)[1][0] for r in responses] == ["2", "0", "3"]
    (row,) = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert row["extra_info"]["pass_rate"] == 0.75


def test_the_default_exports_one_row_per_task_from_the_golden_solution(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(111), candidates=3, golden_idx=1)
    run_curate(run)
    (row,) = read_jsonl(run.exports_dir / "sft.jsonl")
    assert "# candidate 1" in row["response"]


def test_rl_max_tasks_caps_the_rl_set_and_not_the_sft_set(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        for s in range(5):
            add_verified_task(store, text(120 + s))
    summary = run_curate(run, rl_max_tasks=2, rl_val_fraction=0)
    assert (summary["exported_sft"], summary["exported_rl"]) == (5, 2)
    rl = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert [r["extra_info"]["index"] for r in rl] == [0, 1]
    # The cap counts both files: 2 rows, one of them held out for validation.
    summary = run_curate(run, rl_max_tasks=2)
    val = pq.read_table(run.exports_dir / "rl_val.parquet").to_pylist()
    rl = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert (summary["exported_rl"], summary["exported_rl_val"], len(rl), len(val)) == \
        (2, 1, 1, 1)


def test_a_task_without_labelled_tests_is_left_out_of_the_rl_set_only(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(130), tests=0, unlabelled=2)
        add_verified_task(store, text(131))
    summary = run_curate(run)
    assert (summary["exported_sft"], summary["exported_rl"]) == (2, 1)
    assert summary["rl_without_tests"] == 1


def test_export_formats_pick_the_sft_files_and_a_dropped_format_is_removed(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(140))
    run_curate(run)
    assert (run.exports_dir / "sft.parquet").exists()
    assert (run.exports_dir / "rl_val.parquet").exists()
    summary = run_curate(run, export_formats=["jsonl"], rl_val_fraction=0)
    assert sorted(summary["exports"]) == ["README.md", "rl.parquet", "sft.jsonl"]
    assert sorted(p.name for p in run.exports_dir.iterdir()) == [
        "README.md", "rl.parquet", "sft.jsonl"]


def test_a_rerun_rewrites_identical_exports_and_rejects_nothing_twice(tmp_path):
    run = make_run(tmp_path)
    base = text(150, 200)
    with Store(run.store_path) as store:
        for s in (base, text(151, 200), edit_words(base, [5, 50]), f"{text(152)} {base}"):
            add_verified_task(store, s)
    first = run_curate(run)
    files = {p.name: p.read_bytes() for p in run.exports_dir.iterdir()}
    before = statuses(run)
    second = run_curate(run)
    assert {p.name: p.read_bytes() for p in run.exports_dir.iterdir()} == files
    assert statuses(run) == before
    assert second["removed_now"] == {"contaminated": 0, "near_duplicates": 0}
    assert second["near_duplicates"] == first["near_duplicates"] == 1
    assert second["kept"] == first["kept"] == 3


def test_an_interrupted_run_leaves_the_previous_exports_whole(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(160))
    run_curate(run)
    files = {p.name: p.read_bytes() for p in run.exports_dir.iterdir()}
    with Store(run.store_path) as store:
        add_verified_task(store, text(161))
    summary = run_curate(run, stop=True)
    assert summary["interrupted"] is True
    assert {p.name: p.read_bytes() for p in run.exports_dir.iterdir()} == files


def test_events_carry_the_counts_progress_and_one_artifact_per_export(tmp_path):
    run = make_run(tmp_path)
    base = text(170, 200)
    with Store(run.store_path) as store:
        add_verified_task(store, base)
        add_verified_task(store, edit_words(base, [7]))
        add_verified_task(store, text(171))
    run_curate(run)
    last = events_of(run, "metric")[-1]
    assert last["curate/near_duplicates"] == 1 and last["curate/contaminated"] == 0
    assert (last["curate/exported_sft"], last["curate/exported_rl"]) == (2, 2)
    assert events_of(run, "progress")[0] == {"done": 3, "total": 3, "unit": "tasks checked"}
    assert {(a["name"], a["path"], a["kind"]) for a in events_of(run, "artifact")} == {
        ("sft.jsonl", "exports/sft.jsonl", "export"),
        ("sft.parquet", "exports/sft.parquet", "export"),
        ("rl.parquet", "exports/rl.parquet", "export"),
        ("rl_val.parquet", "exports/rl_val.parquet", "export"),
        ("README.md", "exports/README.md", "export"),
    }


def test_a_store_with_nothing_accepted_fails_the_stage_with_a_next_step(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(180), status="rejected")
    with pytest.raises(StageError, match="run verify first"):
        run_curate(run)


def test_a_run_dir_without_a_store_fails_the_stage(tmp_path):
    with pytest.raises(StageError, match="no dataset store"):
        run_curate(make_run(tmp_path))


# ---------------------------------------------------------------------------------------------
# Seed problems (curate.include_seed_problems)


def test_included_seed_problems_follow_the_tasks_in_both_exports(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        tid = add_verified_task(store, text(200))
        first = add_seed(store, text(201), solutions=["print(1)\n", "print(2)"])
        second = add_seed(store, text(202))
    summary = run_curate(run, include_seed_problems=True, rl_val_fraction=0)  # all in one file
    sft = read_jsonl(run.exports_dir / "sft.jsonl")
    assert [r["query"] for r in sft] == [text(200), text(201), text(202)]
    assert {k: sft[1][k] for k in ("query", "response")} == {
        "query": text(201), "response": "```python\nprint(1)\n```"}
    assert sft[1]["completion"] == [{"role": "assistant", "content": sft[1]["response"]}]
    rl = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert [r["extra_info"]["origin"] for r in rl] == ["task", "seed", "seed"]
    assert [r["extra_info"]["index"] for r in rl] == [0, 1, 2]
    assert rl[0]["extra_info"]["task_id"] == tid and rl[0]["extra_info"]["seed_id"] is None
    seed_row = rl[1]
    assert seed_row["prompt"] == [{"role": "user", "content": text(201)}]
    assert (seed_row["data_source"], seed_row["reward_model"]["style"]) == ("synthsmith", "rule")
    assert json.loads(seed_row["reward_model"]["ground_truth"]) == {
        "inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
    extra = seed_row["extra_info"]
    assert (extra["seed_id"], extra["seed_key"], extra["task_id"], extra["n_tests"]) == \
        (first, "seeds.jsonl:1", None, 2)
    assert rl[2]["extra_info"]["seed_id"] == second
    assert summary["seed_problems"] == {
        "checked": 2, "kept": 2, "contaminated": 0, "near_duplicates": 0,
        "without_solution": 0, "without_tests": 0, "exported_sft": 2, "exported_rl": 2}
    assert (summary["kept"], summary["exported_sft"], summary["exported_rl"]) == (1, 3, 3)
    assert events_of(run, "metric")[-1]["curate/seed_problems_kept"] == 2
    assert statuses(run) == {tid: ("accepted", None)}  # seeds never become tasks
    assert events_of(run, "alert") == []  # a task was kept: no seeds-only warning


def test_seed_problems_stay_out_of_the_exports_by_default(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(210))
        add_seed(store, text(211))
    summary = run_curate(run)
    assert [r["query"] for r in read_jsonl(run.exports_dir / "sft.jsonl")] == [text(210)]
    assert pq.read_table(run.exports_dir / "rl.parquet").num_rows == 1
    assert summary["seed_problems"] is None
    assert "curate/seed_problems_kept" not in events_of(run, "metric")[-1]


def test_without_tasks_the_failure_names_include_seed_problems_when_seeds_have_solutions(
        tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_seed(store, text(220))
        add_seed(store, text(221))
        add_seed(store, text(222), solutions=[])
    with pytest.raises(StageError, match=r"include_seed_problems: true to export the 2 seed"):
        run_curate(run)
    bare = make_run(tmp_path, "bare")
    with Store(bare.store_path) as store:
        add_seed(store, text(223), solutions=[])
    with pytest.raises(StageError, match="run verify first") as failed:
        run_curate(bare)
    assert "include_seed_problems" not in str(failed.value)  # no seed it could export


def test_seeds_alone_carry_the_export_with_a_seeds_only_warning(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(230), status="rejected")
        add_seed(store, text(231))
    summary = run_curate(run, include_seed_problems=True)
    assert [r["query"] for r in read_jsonl(run.exports_dir / "sft.jsonl")] == [text(231)]
    assert (summary["kept"], summary["exported_sft"], summary["exported_rl"]) == (0, 1, 1)
    (alert,) = events_of(run, "alert")
    assert (alert["level"], alert["code"]) == ("warning", "curate/seeds_only")
    assert "only the 1 seed problems" in alert["message"]


def test_a_seed_that_near_duplicates_a_task_or_an_earlier_seed_is_left_out(tmp_path):
    run = make_run(tmp_path)
    base, other = text(240, 200), text(241, 200)
    with Store(run.store_path) as store:
        tid = add_verified_task(store, base)
        add_seed(store, edit_words(base, [10, 80]))  # the task's twin: the task stays
        add_seed(store, other)
        add_seed(store, edit_words(other, [30]))  # the kept seed's twin
    summary = run_curate(run, include_seed_problems=True)
    assert [r["query"] for r in read_jsonl(run.exports_dir / "sft.jsonl")] == [base, other]
    assert statuses(run) == {tid: ("accepted", None)}
    assert (summary["seed_problems"]["kept"], summary["seed_problems"]["near_duplicates"]) == \
        (1, 2)
    assert summary["near_duplicates"] == 0  # the tasks' count is the tasks' alone
    logs = [e["message"] for e in events_of(run, "log")]
    assert any(f"seed 1 (seeds.jsonl:1) is a near duplicate of task {tid}" in m for m in logs)
    assert any("seed 3 (seeds.jsonl:3) is a near duplicate of seed 2" in m for m in logs)


def test_a_contaminated_seed_is_left_out_and_the_task_side_is_untouched(tmp_path):
    run = make_run(tmp_path)
    passage = text(250, 60)
    bench = write_benchmark(tmp_path / "lcb.jsonl", [
        {"question_id": "lcb_1", "question_content": f"{text(251, 30)} {passage}"}])
    with Store(run.store_path) as store:
        add_verified_task(store, text(252))
        add_seed(store, f"{text(253, 50)} {passage}")
        add_seed(store, text(254))
    summary = run_curate(run, include_seed_problems=True, decontaminate_file=bench)
    assert [r["query"] for r in read_jsonl(run.exports_dir / "sft.jsonl")] == \
        [text(252), text(254)]
    assert summary["seed_problems"]["contaminated"] == 1
    assert summary["contaminated"] == 0
    assert any("seed 1 (seeds.jsonl:1) is contaminated by benchmark problem lcb_1" in
               e["message"] for e in events_of(run, "log"))


def test_seeds_without_a_solution_or_stdin_tests_are_counted_and_kept_out_of_rl(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_seed(store, text(260), solutions=[])
        add_seed(store, text(261), solutions=["  \n", None])
        late = add_seed(store, text(262), solutions=["", "print(5)"])  # first non-blank one
        add_seed(store, text(263), tests={"inputs": [], "outputs": []})
        add_seed(store, text(264), tests={"inputs": [[1, 2]], "outputs": [3], "fn_name": "f"})
        add_seed(store, text(265), tests={"inputs": ["1\n"], "outputs": ["1\n"],
                                          "fn_name": "solve"})
        add_seed(store, text(266), tests={"inputs": ["1\n", "2\n"], "outputs": ["1\n"]})
    summary = run_curate(run, include_seed_problems=True)
    assert summary["seed_problems"] == {
        "checked": 5, "kept": 5, "contaminated": 0, "near_duplicates": 0,
        "without_solution": 2, "without_tests": 4, "exported_sft": 5, "exported_rl": 1}
    sft = read_jsonl(run.exports_dir / "sft.jsonl")
    assert [r["query"] for r in sft] == [text(s) for s in range(262, 267)]
    assert sft[0]["response"] == "```python\nprint(5)\n```"
    (row,) = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert row["extra_info"]["seed_id"] == late
    assert summary["rl_without_tests"] == 0  # that count is the tasks' own


def test_nothing_left_of_tasks_or_seeds_fails_the_stage_saying_why(tmp_path):
    run = make_run(tmp_path)
    passage = text(270, 60)
    bench = write_benchmark(tmp_path / "lcb.jsonl", [
        {"question_id": "q9", "question_content": passage}])
    with Store(run.store_path) as store:
        add_verified_task(store, f"{text(271)} {passage}")
        add_seed(store, f"{passage} {text(272)}")
        add_seed(store, text(273), solutions=[])
    with pytest.raises(StageError, match=r"all 1 accepted tasks were removed .*no seed problem "
                       r"was kept either \(2 seeds: 1 without a reference solution, 1 "
                       r"contaminated, 0 near duplicates\)"):
        run_curate(run, include_seed_problems=True, decontaminate_file=bench)
    assert not (run.exports_dir / "rl.parquet").exists()


def test_rl_max_tasks_counts_seeds_after_the_tasks(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_verified_task(store, text(280))
        for s in range(3):
            add_seed(store, text(281 + s))
    summary = run_curate(run, include_seed_problems=True, rl_max_tasks=2, rl_val_fraction=0)
    rl = pq.read_table(run.exports_dir / "rl.parquet").to_pylist()
    assert [r["extra_info"]["origin"] for r in rl] == ["task", "seed"]
    assert (summary["exported_sft"], summary["seed_problems"]["exported_rl"]) == (4, 1)


def test_a_rerun_with_seed_problems_rewrites_identical_exports_and_decisions(tmp_path):
    run = make_run(tmp_path)
    base, other = text(290, 200), text(291, 200)
    with Store(run.store_path) as store:
        add_verified_task(store, base)
        add_verified_task(store, edit_words(base, [4, 60]))  # removed in the first run
        add_verified_task(store, text(292, 200))
        add_seed(store, edit_words(base, [90]))
        add_seed(store, other)
        add_seed(store, edit_words(other, [11]))
        add_seed(store, text(293, 200))
    first = run_curate(run, include_seed_problems=True)
    files = {p.name: p.read_bytes() for p in run.exports_dir.iterdir()}
    before = statuses(run)
    second = run_curate(run, include_seed_problems=True)
    assert {p.name: p.read_bytes() for p in run.exports_dir.iterdir()} == files
    assert statuses(run) == before
    assert second["seed_problems"] == first["seed_problems"]
    assert first["seed_problems"]["kept"] == 2 and first["seed_problems"]["near_duplicates"] == 2
    assert (first["exported_sft"], second["exported_sft"]) == (4, 4)


def test_an_interrupted_run_with_seed_problems_leaves_the_previous_exports_whole(tmp_path):
    run = make_run(tmp_path)
    with Store(run.store_path) as store:
        add_seed(store, text(300))
    run_curate(run, include_seed_problems=True)
    files = {p.name: p.read_bytes() for p in run.exports_dir.iterdir()}
    with Store(run.store_path) as store:
        add_seed(store, text(301))
    summary = run_curate(run, stop=True, include_seed_problems=True)
    assert summary["interrupted"] is True
    assert {p.name: p.read_bytes() for p in run.exports_dir.iterdir()} == files


# ---------------------------------------------------------------------------------------------
# End to end through the engine CLI


def test_the_engine_cli_runs_curate_on_a_prepared_run_dir(tmp_path):
    run = make_run(tmp_path, "cli-run")
    base = text(190, 200)
    passage = text(191, 40)
    with Store(run.store_path) as store:
        add_verified_task(store, base)
        add_verified_task(store, edit_words(base, [3, 100]))
        add_verified_task(store, f"{text(192)} {passage}")
        add_verified_task(store, text(193))
    bench = write_benchmark(tmp_path / "lcb.jsonl", [{"question_id": "q1",
                                                      "question_content": passage}])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run",
         "--config", str(ASSETS_DIR / "presets" / "smoke-cpu.yaml"),
         "--run-dir", str(run.root), "--stages", "curate", f"curate.decontaminate_file={bench}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    state = json.loads(run.state_path.read_text())["stages"]["curate"]
    assert state["status"] == "completed", state
    assert (state["summary"]["near_duplicates"], state["summary"]["contaminated"]) == (1, 1)
    assert len(read_jsonl(run.exports_dir / "sft.jsonl")) == 2
    assert [pq.read_table(run.exports_dir / name).num_rows
            for name in ("rl.parquet", "rl_val.parquet")] == [1, 1]
    assert not (run.exports_dir / "sft.parquet").exists()  # the preset exports JSONL only
