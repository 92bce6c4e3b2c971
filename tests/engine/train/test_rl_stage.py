"""The rl stage on CPU: a tiny model "SFT'd" here (plain torch) to always answer one correct
program runs GRPO through TRL with the real sandbox reward and logs a positive reward.

Run: .venv/bin/python -m pytest tests/engine/train/test_rl_stage.py -q
Skips without the sandbox (bubblewrap) or the training packages (torch, transformers, trl).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.context import StageError
from engine.events import read_events
from engine.rundir import RunDir
from engine.runner import EXIT_OK, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.stages import rl as rl_stage
from engine.verify.sandbox import Sandbox, SandboxUnavailable

STATEMENT = "Read integers from standard input and print their sum."
ANSWER = "```python\nprint(sum(map(int, open(0).read().split())))\n```"
TESTS = {"inputs": ["1 2\n", "3 4 5\n", "10\n", "-1 1\n"], "outputs": ["3", "12", "10", "0"]}
RL_CFG = {"resources": {"gpus_per_node": 0, "cpus_per_task": 2}, "group_size": 2,
          "prompts_per_step": 2, "mini_batch_size": 1, "micro_batch_size": 1, "max_steps": 3,
          "max_prompt_tokens": 256, "max_response_tokens": 48, "reward_tests_per_call": 2,
          "rollout": "transformers", "save_every_steps": 0, "lr": 1e-5, "kl_coef": 0.0}


@pytest.fixture(scope="module", autouse=True)
def _needs_sandbox_and_trl():
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the rl reward needs the sandbox (bubblewrap): {exc}")


def sft_tiny_model(folder: Path, steps: int = 300) -> Path:
    """tiny-random trained (plain torch) to answer STATEMENT with ANSWER, saved HF-style."""
    import torch

    from engine.llm.transformers_local import build_tiny_random

    model, tok = build_tiny_random(0)
    prompt = tok.apply_chat_template([{"role": "user", "content": STATEMENT}],
                                     add_generation_prompt=True, tokenize=False)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tok(ANSWER, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p_ids + r_ids])
    labels = torch.tensor([[-100] * len(p_ids) + r_ids])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_rl_parquet(path: Path, n: int = 4) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.curate.exports import RL_SCHEMA

    rows = [{"data_source": "synthsmith", "prompt": [{"role": "user", "content": STATEMENT}],
             "ability": "code",
             "reward_model": {"style": "rule", "ground_truth": json.dumps(TESTS)},
             "extra_info": {"index": i, "split": "train", "task_id": 100 + i, "task_key": f"k{i}",
                            "style": "stdio", "title": "sum", "n_tests": 4, "agreement": 1.0,
                            "pass_rate": 1.0 - i / n}} for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=RL_SCHEMA), path)
    return path


def events_of(run: RunDir, kind: str) -> list:
    return [e for p in sorted(run.events_dir.glob("rl.*.jsonl")) for e in read_events(p)
            if e.kind == kind]


@pytest.mark.slow
def test_grpo_after_sft_logs_positive_reward_and_saves_final(tmp_path):
    import transformers

    run = RunDir(tmp_path / "run")
    model_dir = sft_tiny_model(tmp_path / "sft_model")
    write_rl_parquet(run.exports_dir / "rl.parquet")
    cfg = config_from_dict({"rl": {**RL_CFG, "model": str(model_dir),
                                   "drop_zero_variance_groups": True}})
    assert run_pipeline(cfg, dump_config(cfg), run, ["rl"]) == EXIT_OK, \
        (run.root / "logs").glob("*")

    metrics = events_of(run, "metric")
    assert [m.step for m in metrics] == [1, 2, 3]
    keys = set().union(*(m.data for m in metrics))
    for key in ("rl/reward/mean", "rl/reward/std", "rl/pass_rate", "rl/groups/all_fail",
                "rl/groups/all_pass", "rl/response_length/mean", "rl/response_length/max",
                "rl/truncation_rate", "rl/entropy", "rl/clip_frac/low", "rl/clip_frac/high",
                "rl/clip_frac/region", "rl/grad_norm", "rl/lr", "rl/time/generate_s",
                "rl/time/reward_s", "rl/time/train_s", "rl/rollout_tokens_per_s",
                "rl/sandbox_timeouts"):
        assert key in keys, (key, sorted(keys))
    values = [m.data for m in metrics]
    assert max(v["rl/reward/mean"] for v in values) > 0, values
    samples = events_of(run, "sample")
    assert samples and {"task_id", "reward", "statuses", "code"} <= set(samples[0].data.payload)

    final = run.checkpoint_dir("rl") / "final"
    assert [e.data.path for e in events_of(run, "artifact")] == [str(final)]
    model = transformers.AutoModelForCausalLM.from_pretrained(final)
    tok = transformers.AutoTokenizer.from_pretrained(final)
    assert model.config.vocab_size == len(tok)
    summary = run.read_state().stage("rl").summary
    assert summary["steps"] == 3 and summary["tasks"] == 4


def test_model_sft_without_checkpoint_says_run_sft_first(tmp_path):
    run = RunDir(tmp_path / "run")
    write_rl_parquet(run.exports_dir / "rl.parquet")
    cfg = config_from_dict({"rl": {**RL_CFG, "model": "sft"}})
    assert run_pipeline(cfg, dump_config(cfg), run, ["rl"]) != EXIT_OK
    reason = run.read_state().stage("rl").reason
    assert "run the sft stage first" in reason, reason


def test_batching_maps_verl_sizes_onto_trl():
    cfg = config_from_dict({"rl": {**RL_CFG, "prompts_per_step": 8, "mini_batch_size": 2,
                                   "group_size": 4, "micro_batch_size": 2}}).rl
    b = rl_stage.batching(cfg, world_size=2)
    # 2 prompts x 4 = 8 responses per update = 2 per pass x 2 ranks x 2 accumulation steps.
    assert (b.per_device, b.grad_accum, b.steps_per_generation, b.updates_per_step) == \
        (2, 2, 8, 4)
    with pytest.raises(StageError):
        rl_stage.batching(cfg, world_size=3)


def test_grpo_args_map_clip_loss_kl_and_curriculum(tmp_path):
    cfg = config_from_dict({"rl": {**RL_CFG, "kl_coef": 0.01, "clip_low": 0.2,
                                   "clip_high": 0.28, "entropy_coef": 0.001}}).rl
    args = rl_stage.grpo_args(cfg, tmp_path, 3, 1, use_cpu=True)
    assert (args.epsilon, args.epsilon_high, args.beta, args.entropy_coef) == \
        (0.2, 0.28, 0.01, 0.001)
    assert args.loss_type == "dapo" and args.num_generations == 2
    assert args.shuffle_dataset is False and args.max_steps == 3 * 2
    bad = config_from_dict({"rl": {**RL_CFG, "kl_coef": 0.01, "kl_type": "k1"}}).rl
    with pytest.raises(StageError, match="k3"):
        rl_stage.grpo_args(bad, tmp_path, 3, 1, use_cpu=True)


def test_curriculum_orders_easy_to_hard():
    from engine.train.rl_data import order_rows

    rows = [{"task_id": i, "pass_rate": p} for i, p in enumerate([0.2, None, 0.9, 0.5])]
    assert [r["task_id"] for r in order_rows(rows, "easy_to_hard")] == [2, 3, 0, 1]
    assert [r["task_id"] for r in order_rows(rows, "none")] == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_stopped_rl_run_saves_and_the_rerun_resumes_to_the_end(tmp_path, monkeypatch):
    """SIGTERM during step 1 (the runner's handler sets the stop flag): the stage saves a
    checkpoint and says interrupted; the rerun starts from it, runs the remaining steps and
    writes the final model."""

    run = RunDir(tmp_path / "run")
    model_dir = sft_tiny_model(tmp_path / "sft_model", steps=150)
    write_rl_parquet(run.exports_dir / "rl.parquet")
    cfg = config_from_dict({"rl": {**RL_CFG, "model": str(model_dir), "max_steps": 3}})
    original = rl_stage.make_reward_fn
    monkeypatch.setattr(rl_stage, "make_reward_fn", sigterm_on_first_reward(original))
    assert run_pipeline(cfg, dump_config(cfg), run, ["rl"]) == 143
    monkeypatch.undo()
    assert run.read_state().stage("rl").status == "interrupted"
    assert list(run.checkpoint_dir("rl").glob("checkpoint-*"))
    assert not (run.checkpoint_dir("rl") / "final").exists()
    first = [m.step for m in events_of(run, "metric")]
    assert first and max(first) < 3
    assert run_pipeline(cfg, dump_config(cfg), run, ["rl"]) == EXIT_OK
    steps = [m.step for m in events_of(run, "metric")]
    assert max(steps) == 3 and steps.count(first[0]) == 1  # no step trained twice
    assert (run.checkpoint_dir("rl") / "final" / "config.json").exists()


def test_flat_rows_keep_task_ids_and_give_seed_problems_minus_their_seed_id():
    from engine.train.rl_data import flatten_row

    truth = {"ground_truth": '{"inputs": ["1\\n"], "outputs": ["1\\n"]}'}
    task = flatten_row({"prompt": "p", "reward_model": truth,
                        "extra_info": {"origin": "task", "task_id": 7, "pass_rate": 0.5}})
    seed = flatten_row({"prompt": "p", "reward_model": truth,
                        "extra_info": {"origin": "seed", "task_id": None, "seed_id": 3}})
    assert (task["task_id"], task["pass_rate"]) == (7, 0.5)
    assert seed["task_id"] == -3 and seed["prompt"] == [{"role": "user", "content": "p"}]


def sigterm_on_first_reward(original):
    """A ``make_reward_fn`` whose reward function sends this process SIGTERM once, right after
    its first scoring: the stage then saves at the end of that step and exits 143."""
    sent: list[int] = []

    def make(*args, **kwargs):
        fn = original(*args, **kwargs)

        def wrapped(*a, **k):
            out = fn(*a, **k)
            if not sent:
                sent.append(1)
                os.kill(os.getpid(), signal.SIGTERM)
            return out

        wrapped.__name__ = getattr(fn, "__name__", "reward")
        return wrapped

    return make
