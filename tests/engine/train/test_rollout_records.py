"""engine/rollouts.py and the rl stage's rollout records.

Run: .venv/bin/python -m pytest tests/engine/train/test_rollout_records.py -q

The unit tests write and read real files. The stage test runs GRPO through TRL on CPU (a tiny
model "SFT'd" to answer one program, as tests/engine/train/test_rl_stage.py does) on a task
whose last test expects a wrong output: the program passes the tests it samples except that
one, so rewards differ inside a group and the advantages are not all zero. It is stopped by
SIGTERM during step 1, its checkpoint is deleted (what a crash before the save leaves), and
the rerun trains steps 1-3 again: step 1's file is replaced, never appended to.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from sample_run import RolloutStandIn, ScoreStandIn

from engine.rollouts import (
    MAX_CODE_CHARS,
    RolloutRecord,
    RolloutWriter,
    build_step_records,
    group_advantages,
    group_records,
    groups,
    read_rollouts,
    rollout_steps,
    rollouts_dir,
    step_file,
)


def scored_batch(rewards_by_group: list[list[float]]):
    rollouts, scores = [], []
    for g, rewards in enumerate(rewards_by_group):
        for r in rewards:
            passed = int(r // 2.5)
            rollouts.append(RolloutStandIn(task_id=100 + g, text=f"```python\nprint({r})\n```"))
            scores.append(ScoreStandIn(r, passed, 2, ("ok",) * passed + ("wrong",) * (2 - passed),
                                 f"print({r})\n"))
    return rollouts, scores


def test_group_advantages_match_trl_group_scaling():
    torch = pytest.importorskip("torch")
    from trl.trainer.utils import nanstd

    rewards = [5.0, 2.5, 2.5, 0.0]
    mean, std, adv = group_advantages(rewards)
    t = torch.tensor(rewards)
    want = ((t - t.mean()) / (nanstd(t) + 1e-4)).tolist()  # TRL 1.16, scale_rewards="group"
    assert mean == pytest.approx(2.5) and std == pytest.approx(float(nanstd(t)))
    assert adv == pytest.approx(want, abs=1e-6)
    assert sum(adv) == pytest.approx(0.0, abs=1e-9)
    assert group_advantages([3.0, 3.0])[2] == [0.0, 0.0]  # zero variance: no signal


def test_records_of_a_batch_keep_groups_samples_and_the_trainers_advantages(tmp_path):
    rollouts, scores = scored_batch([[5.0, 2.5, 0.0], [2.5, 2.5, 2.5]])
    records = build_step_records(4, 0, rollouts, scores, 3, response_tokens=[7] * 6)
    assert [(r.group, r.sample, r.task_id) for r in records] == [
        (0, 0, 100), (0, 1, 100), (0, 2, 100), (1, 0, 101), (1, 1, 101), (1, 2, 101)]
    assert records[0].advantage > 0 > records[2].advantage and records[1].advantage == 0
    assert [r.advantage for r in records[3:]] == [0.0, 0.0, 0.0]
    assert records[0].group_mean == 2.5 and records[0].statuses == ["ok", "ok"]
    given = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # the trainer's own, used as they are
    assert [r.advantage for r in build_step_records(4, 0, rollouts, scores, 3,
                                                    advantages=given)] == given
    capped = build_step_records(4, 0, rollouts, scores, 3, max_groups=1)
    assert {r.group for r in capped} == {0} and len(capped) == 3


def test_long_code_is_cut_and_the_raw_text_kept_only_without_code():
    rollouts = [RolloutStandIn(1, "x" * 50_000), RolloutStandIn(1, "no code here")]
    scores = [ScoreStandIn(5.0, 1, 1, ("ok",), "y" * 50_000),
              ScoreStandIn(-2.0, 0, 0, (), None, reason="no_code_block: no code")]
    a, b = build_step_records(1, 0, rollouts, scores, 2)
    assert len(a.code) == MAX_CODE_CHARS and a.text is None
    assert b.code is None and b.text == "no code here" and b.reason.startswith("no_code")


def test_writing_a_step_again_replaces_its_file_and_readers_see_each_rollout_once(tmp_path):
    folder = rollouts_dir(tmp_path / "run")
    writer = RolloutWriter(folder, rank=0)
    rollouts, scores = scored_batch([[5.0, 0.0], [2.5, 5.0]])
    writer.write_step(1, build_step_records(1, 0, rollouts, scores, 2))
    writer.write_step(2, build_step_records(2, 0, rollouts, scores, 2))
    again = build_step_records(1, 0, *scored_batch([[0.0, 0.0], [5.0, 5.0]]), 2)
    writer.write_step(1, again)  # step 1 ran again after a resume
    assert step_file(folder, 1, 0).read_text().count("\n") == 4
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp file left
    assert rollout_steps(tmp_path / "run") == [1, 2] == rollout_steps(folder)
    step1 = read_rollouts(tmp_path / "run", step=1)
    assert step1 == again
    assert len(read_rollouts(folder)) == 8
    # A file holding one key twice (a hand-made copy) still reads as one record, the last.
    dup = step_file(folder, 2, 1)
    first, second = (RolloutRecord(2, 1, 0, 0, 7, r, 0.0, r, 0.0, 0, 1, False) for r in (1, 2))
    dup.write_text(first.to_json() + "\n" + second.to_json() + "\n{torn")
    assert read_rollouts(folder, step=2, rank=1) == [second]


def test_group_summaries_mark_all_fail_and_all_pass_groups(tmp_path):
    rollouts, scores = scored_batch([[0.0, 0.0], [5.0, 5.0], [5.0, 0.0]])
    records = build_step_records(3, 0, rollouts, scores, 2)
    summary = groups(records)
    assert [(g.group, g.task_id, g.all_fail, g.all_pass, g.passed_all) for g in summary] == [
        (0, 100, True, False, 0), (1, 101, False, True, 2), (2, 102, False, False, 1)]
    assert summary[2].reward_mean == 2.5 and summary[2].size == 2
    assert [r.sample for r in group_records(records, 0, 2)] == [0, 1]


# ---------------------------------------------------------------------------------------------
# The rl stage writes them


RL_CFG = {"resources": {"gpus_per_node": 0, "cpus_per_task": 2}, "group_size": 3,
          "prompts_per_step": 2, "mini_batch_size": 1, "micro_batch_size": 1, "max_steps": 3,
          "max_prompt_tokens": 256, "max_response_tokens": 48, "reward_tests_per_call": 2,
          "rollout": "transformers", "save_every_steps": 0, "lr": 1e-5, "kl_coef": 0.0}
# The sum program passes the first three, never the last: sampled pairs that include it score
# 2.5, the others 5.0, so groups mix rewards.
TESTS = {"inputs": ["1 2\n", "3 4 5\n", "10\n", "-1 1\n"], "outputs": ["3", "12", "10", "7"]}


@pytest.mark.slow
def test_the_rl_stage_records_every_rollout_once_with_group_relative_advantages(tmp_path,
                                                                                monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the rl reward needs the sandbox (bubblewrap): {exc}")
    import test_rl_stage as helpers  # same folder: its tiny-model and data helpers

    from engine.rundir import RunDir
    from engine.runner import EXIT_OK, run_pipeline
    from engine.schema import config_from_dict, dump_config
    from engine.stages import rl as rl_stage

    monkeypatch.setattr(helpers, "TESTS", TESTS)
    run = RunDir(tmp_path / "run")
    model_dir = helpers.sft_tiny_model(tmp_path / "sft_model")
    helpers.write_rl_parquet(run.exports_dir / "rl.parquet", n=2)
    cfg = config_from_dict({"rl": {**RL_CFG, "model": str(model_dir)}})

    original = rl_stage.make_reward_fn
    monkeypatch.setattr(rl_stage, "make_reward_fn", helpers.sigterm_on_first_reward(original))
    assert run_pipeline(cfg, dump_config(cfg), run, ["rl"]) == 143
    monkeypatch.setattr(rl_stage, "make_reward_fn", original)
    folder = rollouts_dir(run.root)
    assert rollout_steps(folder) == [1]
    for ckpt in run.checkpoint_dir("rl").glob("checkpoint-*"):
        shutil.rmtree(ckpt)  # as if it crashed before saving: the rerun redoes step 1
    assert run_pipeline(cfg, dump_config(cfg), run, ["rl"]) == EXIT_OK

    assert rollout_steps(folder) == [1, 2, 3]
    lines = [json.loads(line) for p in sorted(folder.glob("*.jsonl"))
             for line in p.read_text().splitlines()]
    assert len(lines) == 3 * 2 * 3  # steps x prompts x group_size, step 1 not twice
    records = read_rollouts(run.root)
    assert len(records) == len(lines)
    assert {(r.step, r.group, r.sample) for r in records} == {
        (s, g, k) for s in (1, 2, 3) for g in (0, 1) for k in (0, 1, 2)}
    assert {r.task_id for r in records} == {100, 101}
    mixed = 0
    for g in groups(records):
        recs = group_records([r for r in records if r.step == g.step], g.rank, g.group)
        rewards = [r.reward for r in recs]
        assert sum(r.advantage for r in recs) == pytest.approx(0.0, abs=1e-4)
        # What TRL computed equals the group formula, so the records explain the update.
        assert [r.advantage for r in recs] == pytest.approx(group_advantages(rewards)[2],
                                                            abs=1e-4)
        assert all(r.group_mean == pytest.approx(sum(rewards) / 3) for r in recs)
        mixed += len(set(rewards)) > 1
    assert mixed, "no group with differing rewards: the advantage check proved nothing"
    r0 = records[0]
    assert r0.total == 2 and len(r0.statuses) == 2 and r0.response_tokens > 0
    assert r0.code is None or "print" in r0.code
    summary = run.read_state().stage("rl").summary
    assert summary["rollouts"] == str(folder) and summary["steps"] == 3
    assert math.isfinite(sum(r.reward for r in records))
