"""The verify stage: real sandbox runs of bundled seed solutions, voting, write-back, resume
after SIGTERM, and shards.

Run: .venv/bin/python -m pytest tests/engine/test_verify_stage.py -q

Each test fills a real SQLite store through the Store API with tasks made from the bundled
seeds (assets/seeds/seeds.jsonl): three copies of the seed's correct solution plus one wrong
mutation of it, and the seed's test inputs without their outputs. Then it runs the stage
through ``engine.runner.run_pipeline`` (or the CLI) with ``--stages verify``. Tests skip when
no sandbox (bubblewrap) can start here: the stage never runs generated code outside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from engine.events import read_events
from engine.paths import ASSETS_DIR
from engine.rundir import RunDir
from engine.runner import EXIT_INTERRUPTED, EXIT_OK, PipelineRefused, parse_shard, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.stages import verify
from engine.store import ShardOutbox, Store, shard_file
from engine.verify.sandbox import Sandbox, SandboxUnavailable

REPO = Path(__file__).resolve().parents[2]
VERIFY = {"jobs": 2, "time_limit_s": 5.0, "min_labelled_tests": 2}
# A wrong mutation of a correct program: its answer gains a stray last token.
MUTATION = """import io, sys
_out, sys.stdout = sys.stdout, io.StringIO()
try:
    exec(compile({source!r}, "<solution>", "exec"), {{"__name__": "__main__"}})
except SystemExit:
    pass
_text, sys.stdout = sys.stdout.getvalue(), _out
print(_text.strip() + " x")
"""


@pytest.fixture(scope="module", autouse=True)
def _needs_sandbox():
    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the verify stage needs the sandbox (bubblewrap): {exc}")


# ---------------------------------------------------------------------------------------------
# Helpers


def seeds(n: int) -> list[dict]:
    lines = (ASSETS_DIR / "seeds" / "seeds.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


def add_seed_task(store: Store, seed: dict, *, disagreeing: bool = False) -> int:
    tid = store.add_task(style="codeforces", title=seed["problem"].splitlines()[0],
                         statement=seed["problem"], key=seed["id"])
    if disagreeing:  # four candidates, four different answers everywhere
        codes = [f"print({k})\n" for k in range(4)]
    else:
        codes = [seed["solution"]] * 3 + [MUTATION.format(source=seed["solution"])]
    for k, code in enumerate(codes):
        store.add_solution(tid, k, code=code)
    store.add_solution(tid, len(codes), code=None, status="rejected",
                       reject_reason="no code block")
    for j, test in enumerate(seed["tests"]):
        store.add_test(tid, j, input=test["input"], kind="sample" if j == 0 else "random",
                       source="seed")
    return tid


def make_run(tmp_path: Path, n_tasks: int = 3, disagreeing: int = 0) -> tuple[RunDir, list]:
    run = RunDir(tmp_path / "run")
    run.create()
    chosen = seeds(n_tasks + disagreeing)
    with Store(run.store_path) as store:
        ids = [add_seed_task(store, s) for s in chosen[:n_tasks]]
        ids += [add_seed_task(store, s, disagreeing=True) for s in chosen[n_tasks:]]
    return run, list(zip(ids, chosen, strict=True))


def config(**verify_cfg):
    return config_from_dict({"verify": {**VERIFY, **verify_cfg}})


def run_verify(run: RunDir, **kw) -> int:
    cfg = config()
    return run_pipeline(cfg, dump_config(cfg), run, ["verify"], **kw)


def samples(run: RunDir) -> list[dict]:
    out = []
    for path in sorted(run.events_dir.glob("verify.*.jsonl")):
        out += [e.data.payload for e in read_events(path)
                if e.kind == "sample" and e.data.kind == "verdict_summary"]
    return out


def verdict_rows(run: RunDir) -> int:
    with Store(run.store_path) as store:
        return store.counts()["verdicts"]


# ---------------------------------------------------------------------------------------------
# Deciding tasks


def test_correct_majority_is_accepted_with_a_correct_golden_and_the_seed_outputs_as_labels(
        tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=3)
    assert run_verify(run) == EXIT_OK
    with Store(run.store_path) as store:
        for tid, seed in tasks:
            task = store.get_task(tid)
            assert task.status == "accepted", task.reject_reason
            golden = next(s for s in task.solutions if s.id == task.golden_solution_id)
            assert golden.code == seed["solution"]  # one of the three correct copies
            labels = [t.expected_output for t in task.tests]
            assert labels == [t["output"].strip() for t in seed["tests"]]
            # The statement's samples decide as known outputs; the rest is voted.
            sources = {t.meta["verify"]["label_source"] for t in task.tests}
            assert sources <= {"vote", "known"} and "vote" in sources
            assert task.verify_meta["samples"]["in_statement"] >= 1
            assert all(t.meta["verify"]["votes"] == [3, 1] for t in task.tests)
            per_test = [t.meta["verify"]["agreement"] for t in task.tests]
            assert task.agreement == pytest.approx(sum(per_test) / len(per_test), abs=1e-5)
            assert 0.75 <= task.agreement <= 1.0  # 3 of 4 agree; the exposed one weighs less
            # verdicts: 4 runnable candidates x every test; the rejected one never ran
            assert len(task.verdicts) == 4 * len(task.tests)
            by_solution = Counter((v.solution_id, v.status) for v in task.verdicts)
            wrong = task.solutions[3].id
            assert by_solution[(wrong, "wrong")] == len(task.tests)
            assert all(v.output_hash for v in task.verdicts)
            assert all(v.time_s is not None and v.memory_kb for v in task.verdicts)
    summary = run.read_state().stage("verify").summary
    assert summary["accepted"] == 3 and summary["rejected"] == 0
    assert summary["isolation"]  # which isolation the runs had: bwrap here


def test_task_whose_candidates_all_disagree_is_rejected_with_a_reason_and_no_labels(tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=1, disagreeing=1)
    assert run_verify(run) == EXIT_OK
    with Store(run.store_path) as store:
        good = store.get_task(tasks[0][0])
        bad = store.get_task(tasks[1][0])
    assert good.status == "accepted"
    assert bad.status == "rejected"
    assert bad.reject_reason.startswith("too_few_labelled_tests")
    assert bad.golden_solution_id is None
    # Unlabelled tests keep NULL; a test the statement shows as a sample has its output.
    assert all(t.expected_output is None for t in bad.tests
               if t.meta["verify"]["label_source"] != "known")
    assert any(t.meta["verify"]["label_source"] is None for t in bad.tests)
    assert all(t.meta["verify"]["tie"] for t in bad.tests
               if t.meta["verify"]["label_source"] != "known")
    summary = run.read_state().stage("verify").summary
    assert summary["reasons"] == {"too_few_labelled_tests": 1}


def test_events_carry_progress_rates_and_status_counts(tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=2)
    assert run_verify(run) == EXIT_OK
    events = read_events(run.event_file("verify", 0))
    metrics = [e.data for e in events if e.kind == "metric"]
    last = metrics[-1]
    for key in ("verify/tests_per_s", "verify/accept_rate", "verify/agreement",
                "verify/timeouts", "verify/status/ok", "verify/status/wrong"):
        assert key in last, key
    assert last["verify/accept_rate"] == 1.0
    assert last["verify/timeouts"] == 0.0
    n_cells = sum(4 * len(seed["tests"]) for _, seed in tasks)
    assert last["verify/status/ok"] + last["verify/status/wrong"] == n_cells
    progress = [e.data for e in events if e.kind == "progress"]
    assert (progress[-1].done, progress[-1].total) == (2, 2)


def test_candidate_over_the_time_limit_counts_as_a_timeout_and_does_not_vote(tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=1)
    tid = tasks[0][0]
    with Store(run.store_path) as store:
        store.add_solution(tid, 3, code="while True:\n    pass\n")  # replaces the mutation
    cfg = config(time_limit_s=0.5)
    assert run_pipeline(cfg, dump_config(cfg), run, ["verify"]) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    assert task.status == "accepted"
    slow = task.solutions[3].id
    assert {v.status for v in task.verdicts if v.solution_id == slow} == {"time_limit"}
    assert run.read_state().stage("verify").summary["statuses"]["time_limit"] == len(task.tests)


def test_known_sample_output_stays_the_label_and_verify_labels_are_not_taken_as_known(tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=1)
    tid, seed = tasks[0]
    with Store(run.store_path) as store:  # the statement's sample, with its known output
        store.add_test(tid, 0, input=seed["tests"][0]["input"], kind="sample", source="seed",
                       expected_output=seed["tests"][0]["output"])
    assert run_verify(run) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    assert task.tests[0].meta["verify"]["label_source"] == "known"
    assert [t.meta["verify"]["label_source"] for t in task.tests[1:]] == \
        ["vote"] * (len(task.tests) - 1)
    assert verify._known_outputs(task) == {}  # labels written by verify are marked


# ---------------------------------------------------------------------------------------------
# Resuming and shards


def test_sigterm_after_the_first_task_then_rerun_decides_every_task_exactly_once(
        tmp_path, monkeypatch):
    run, tasks = make_run(tmp_path, n_tasks=3)
    real = verify.verify_one
    calls = []

    def verify_then_sigterm(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # what Slurm sends before the kill; the runner's handler catches it
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(verify, "verify_one", verify_then_sigterm)
    assert run_verify(run) == EXIT_INTERRUPTED
    state = run.read_state().stage("verify")
    assert state.status == "interrupted" and state.summary["decided"] == 1
    with Store(run.store_path) as store:
        assert store.counts()["tasks/pending"] == 2
    first = verdict_rows(run)

    assert run_verify(run) == EXIT_OK
    assert run.read_state().stage("verify").summary["considered"] == 2
    decided = Counter(s["task_id"] for s in samples(run))
    assert decided == Counter({tid: 1 for tid, _ in tasks})
    expected_rows = sum(4 * len(seed["tests"]) for _, seed in tasks)
    assert first < verdict_rows(run) == expected_rows  # no duplicated verdict rows
    with Store(run.store_path) as store:
        assert store.counts()["tasks/accepted"] == 3


def test_two_shards_at_once_decide_every_task_exactly_once_then_mark_the_stage(tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=4)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(dump_config(config()), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "engine", "run", "--config", str(cfg_path),
                               "--run-dir", str(run.root), "--stages", "verify",
                               "--shard", f"{i}/2"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    untouched = file_hash(run.store_path)
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    assert file_hash(run.store_path) != untouched  # the last shard merged both files
    assert outcome(run) == unsharded_outcome(tmp_path, 4)
    with Store(run.store_path) as store:
        assert set(store.merged_shards()) == {"verify.0of2.sqlite", "verify.1of2.sqlite"}
    decided = Counter(s["task_id"] for s in samples(run))
    assert decided == Counter({tid: 1 for tid, _ in tasks})
    for i in range(2):  # shard i wrote its own file and took task_id % 2 == i
        mine = {s["task_id"] for s in samples_of(run, i)}
        assert mine == {tid for tid, _ in tasks if tid % 2 == i}
    state = run.read_state()
    assert state.stage("verify@0of2").status == "completed"
    assert state.stage("verify@1of2").status == "completed"
    assert state.stage("verify").status == "completed"  # the last shard to finish rolled up
    assert set(state.stage("verify").summary["shards"]) == {"verify@0of2", "verify@1of2"}
    with Store(run.store_path) as store:
        assert store.counts()["tasks/accepted"] == 4
    # an unsharded rerun now skips the stage
    assert run_verify(run) == EXIT_OK
    last = read_events(run.event_file("verify", 0))[-1]
    assert last.kind == "stage" and last.data.status == "skipped"


def samples_of(run: RunDir, rank: int) -> list[dict]:
    return [e.data.payload for e in read_events(run.event_file("verify", rank))
            if e.kind == "sample" and e.data.kind == "verdict_summary"]


def test_one_shard_alone_writes_only_its_shard_file_and_the_last_shard_merges(tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=2)
    untouched = file_hash(run.store_path)
    assert run_verify(run, shard_index=1, shard_count=2) == EXIT_OK
    state = run.read_state()
    assert state.stage("verify@1of2").status == "completed"
    assert state.stage("verify").status == "pending"
    assert file_hash(run.store_path) == untouched  # the run's store is not written by a shard
    with ShardOutbox(shard_file(run.data_dir, "verify", 1, 2)) as out:
        assert out.decided_tasks() == {tid for tid, _ in tasks if tid % 2 == 1}
    # rerunning the same shard skips it; the other shard finishes the stage and merges
    assert run_verify(run, shard_index=1, shard_count=2) == EXIT_OK
    assert file_hash(run.store_path) == untouched
    assert run_verify(run, shard_index=0, shard_count=2) == EXIT_OK
    state = run.read_state().stage("verify")
    assert state.status == "completed"
    assert set(state.summary["merged"]) == {"verify.0of2.sqlite", "verify.1of2.sqlite"}
    with Store(run.store_path) as store:
        assert all(store.get_task(tid).status == "accepted" for tid, _ in tasks)
        assert set(store.merged_shards()) == {"verify.0of2.sqlite", "verify.1of2.sqlite"}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outcome(run: RunDir) -> tuple:
    """What verification decided, by natural keys (comparable across runs)."""
    with Store(run.store_path) as store:
        counts = store.counts()
        tasks = []
        for tid in range(1, counts["tasks"] + 1):
            t = store.get_task(tid)
            sol_idx = {s.id: s.idx for s in t.solutions}
            test_idx = {x.id: x.idx for x in t.tests}
            tasks.append((t.key, t.status, t.reject_reason, t.agreement,
                          sol_idx.get(t.golden_solution_id) is not None,
                          tuple((x.idx, x.expected_output) for x in t.tests),
                          tuple(sorted((sol_idx[v.solution_id], test_idx[v.test_id], v.status,
                                        v.output_hash) for v in t.verdicts))))
    return {k: counts[k] for k in ("tasks", "tests", "verdicts", "tasks/accepted",
                                   "tasks/rejected", "tasks/pending")}, tasks


def unsharded_outcome(tmp_path: Path, n_tasks: int, disagreeing: int = 0) -> tuple:
    ref, _ = make_run(tmp_path / "unsharded", n_tasks=n_tasks, disagreeing=disagreeing)
    assert run_verify(ref) == EXIT_OK
    return outcome(ref)


def test_shards_then_merge_give_what_an_unsharded_run_gives_and_merging_again_is_a_no_op(
        tmp_path):
    run, tasks = make_run(tmp_path, n_tasks=3, disagreeing=1)
    for i in range(2):
        assert run_verify(run, shard_index=i, shard_count=2) == EXIT_OK
    got = outcome(run)
    assert got == unsharded_outcome(tmp_path, 3, 1)
    files = [shard_file(run.data_dir, "verify", i, 2) for i in range(2)]
    with Store(run.store_path) as store:
        assert all(store.merge_from(f)["skipped"] == 1 for f in files)
        store._conn.execute("DELETE FROM merged_shards")  # forget them: a real second merge
        assert all(store.merge_from(f)["skipped"] == 0 for f in files)
    assert outcome(run) == got


def test_killed_shard_rerun_then_merge_gives_the_same_result(tmp_path, monkeypatch):
    run, tasks = make_run(tmp_path, n_tasks=4)  # shard 0 of 2 takes two tasks (ids 2 and 4)
    real = verify.verify_one
    calls = []

    def verify_then_sigterm(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(verify, "verify_one", verify_then_sigterm)
    untouched = file_hash(run.store_path)
    assert run_verify(run, shard_index=0, shard_count=2) == EXIT_INTERRUPTED
    monkeypatch.setattr(verify, "verify_one", real)
    assert file_hash(run.store_path) == untouched
    with ShardOutbox(shard_file(run.data_dir, "verify", 0, 2)) as out:
        assert len(out.decided_tasks()) == 1
    assert run_verify(run, shard_index=0, shard_count=2) == EXIT_OK
    summary = run.read_state().stage("verify@0of2").summary
    assert (summary["considered"], summary["already_decided"]) == (1, 1)
    assert run_verify(run, shard_index=1, shard_count=2) == EXIT_OK
    assert outcome(run) == unsharded_outcome(tmp_path, 4)
    decided = Counter(s["task_id"] for s in samples(run))
    assert decided == Counter({tid: 1 for tid, _ in tasks})


def test_a_crash_mid_merge_keeps_merged_files_and_a_shard_rerun_finishes_the_merge(
        tmp_path, monkeypatch):
    run, tasks = make_run(tmp_path, n_tasks=2)
    real = Store.merge_from
    merged = []

    def merge_once_then_crash(self, path):
        if merged:
            raise OSError("node lost")
        merged.append(path)
        return real(self, path)

    monkeypatch.setattr(Store, "merge_from", merge_once_then_crash)
    assert run_verify(run, shard_index=0, shard_count=2) == EXIT_OK
    assert run_verify(run, shard_index=1, shard_count=2) == 1  # EXIT_STAGE_FAILED
    state = run.read_state()
    assert state.stage("verify@1of2").status == "completed"
    assert state.stage("verify").status == "failed" and "engine merge" in \
        state.stage("verify").reason
    with Store(run.store_path) as store:
        assert list(store.merged_shards()) == ["verify.0of2.sqlite"]
        assert store.counts()["tasks/pending"] == 1  # shard 1's task is not merged yet
    monkeypatch.setattr(Store, "merge_from", real)
    assert run_verify(run, shard_index=1, shard_count=2) == EXIT_OK  # skipped, merges the rest
    assert run.read_state().stage("verify").status == "completed"
    assert outcome(run) == unsharded_outcome(tmp_path, 2)


def test_engine_merge_cli_folds_the_shards_in_and_refuses_while_a_shard_is_unfinished(
        tmp_path, monkeypatch):
    import engine.runner

    run, tasks = make_run(tmp_path, n_tasks=2)
    monkeypatch.setattr(engine.runner, "roll_up", lambda *a, **k: None)  # the shards don't merge
    assert run_verify(run, shard_index=0, shard_count=2) == EXIT_OK

    def merge_cli():
        return subprocess.run([sys.executable, "-m", "engine", "merge", "--run-dir",
                               str(run.root), "--stage", "verify"], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    out = merge_cli()
    assert out.returncode == 2 and "verify@1of2 (pending)" in out.stderr, out.stderr
    assert run_verify(run, shard_index=1, shard_count=2) == EXIT_OK
    assert run.read_state().stage("verify").status == "pending"
    with Store(run.store_path) as store:
        assert store.counts()["tasks/pending"] == 2
    out = merge_cli()
    assert out.returncode == 0, out.stderr
    assert set(json.loads(out.stdout)["merged"]) == {"verify.0of2.sqlite", "verify.1of2.sqlite"}
    assert run.read_state().stage("verify").status == "completed"
    assert outcome(run) == unsharded_outcome(tmp_path, 2)
    assert merge_cli().returncode == 0  # again: nothing changes
    assert outcome(run) == unsharded_outcome(tmp_path / "again", 2)


def test_shards_are_refused_for_stages_that_cannot_be_sharded(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = config()
    with pytest.raises(PipelineRefused, match="seeds cannot run as shards"):
        run_pipeline(cfg, dump_config(cfg), run, ["seeds", "verify"], shard_index=0,
                     shard_count=2)
    assert not run.state_path.exists()


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_text_is_refused_with_the_form_to_write(text):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(text)


def test_parse_shard_reads_index_and_count():
    assert parse_shard("1/4") == (1, 4)


def test_cli_refuses_a_bad_shard_before_writing_anything(tmp_path):
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(dump_config(config()), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "engine", "run", "--config", str(cfg_path),
                          "--run-dir", str(tmp_path / "run"), "--stages", "verify",
                          "--shard", "2/2"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 2 and "--shard" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Samples as tests, compile errors, big outputs (issue 13)

ISQRT_STATEMENT = """\
For each of t numbers n print the largest x with x * x <= n.

Sample Input 1
```
3
10
16
999999999999999999
```

Sample Output 1
```
3
4
999999999
```
"""


def test_a_statement_sample_no_stored_test_equals_still_decides_and_is_counted(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    float_sqrt = ("import math\nfor _ in range(int(input())):\n"
                  "    print(int(math.sqrt(int(input()))))\n")
    exact = "import math\nfor _ in range(int(input())):\n    print(math.isqrt(int(input())))\n"
    with Store(run.store_path) as store:
        tid = store.add_task(style="codeforces", title="isqrt", statement=ISQRT_STATEMENT)
        for k, code in enumerate([float_sqrt] * 3 + [exact, exact + "# copy\n",
                                                     "int main( {"]):
            store.add_solution(tid, k, code=code, language="cpp" if k == 5 else "python")
        for j, n in enumerate((1, 2, 99, 12345, 10**6)):
            store.add_test(tid, j, input=f"1\n{n}\n", kind="random", source="direct")
    assert run_verify(run) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    assert task.status == "accepted", task.reject_reason
    golden = next(s for s in task.solutions if s.id == task.golden_solution_id)
    assert "isqrt" in golden.code
    assert len(task.tests) == 5  # the sample ran, but is not written as a test
    meta = task.verify_meta
    assert meta["samples"] == {"in_statement": 1, "as_tests": 1, "added": 1}
    by_id = {s.idx: str(s.id) for s in task.solutions}
    assert [meta["candidates"][by_id[k]]["eligible"] for k in range(3)] == [False] * 3
    assert "error" in meta["compile_errors"][by_id[5]]
    (summary,) = samples(run)
    assert (summary["samples"], summary["samples_added"], summary["compile_errors"]) == (1, 1, 1)


def test_outputs_of_megabytes_are_voted_by_digest_and_stored_whole(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    big = "n = int(input())\nprint('\\n'.join(str(i * 7) for i in range(n)))\n"
    with Store(run.store_path) as store:
        tid = store.add_task(style="codeforces", title="sevens", statement="Print 7i.")
        for k in range(3):
            store.add_solution(tid, k, code=big + f"# copy {k}\n")
        for j, n in enumerate((3, 5, 300_000, 2)):
            store.add_test(tid, j, input=f"{n}\n", kind="stress" if n > 10 else "random",
                           source="direct")
    assert run_verify(run) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    assert task.status == "accepted", task.reject_reason
    label = task.tests[2].expected_output
    assert len(label) > (1 << 20)  # over the in-memory size: voted by digest, stored whole
    assert label.splitlines()[-1] == str(7 * 299_999)
