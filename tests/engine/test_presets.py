"""Every preset in assets/presets/ validates and round-trips; the paper preset keeps its numbers.

Run: .venv/bin/python -m pytest tests/engine/test_presets.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.schema import STAGE_ORDER, dump_config, load_config, parse_config

PRESET_DIR = Path(__file__).resolve().parents[2] / "assets" / "presets"
PRESETS = sorted(PRESET_DIR.glob("*.yaml"))


def test_the_presets_folder_has_the_paper_and_smoke_presets():
    names = {p.name for p in PRESETS}
    assert {"xcoder-7b.yaml", "smoke-cpu.yaml"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_validates(path):
    cfg = load_config(path)
    assert cfg.run.name


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_round_trips_through_dump(path):
    cfg = load_config(path)
    text = dump_config(cfg)
    assert parse_config(text) == cfg
    assert dump_config(parse_config(text)) == text


def test_xcoder_preset_keeps_the_papers_numbers():
    cfg = load_config(PRESET_DIR / "xcoder-7b.yaml")
    sft, rl = cfg.sft, cfg.rl
    assert sft.base_model == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert (sft.epochs, sft.lr, sft.lr_scheduler, sft.warmup_ratio) == (8, 5e-5, "cosine", 0.03)
    assert (sft.weight_decay, sft.grad_clip, sft.global_batch_size) == (0.1, 1.0, 128)
    assert (sft.zero_stage, sft.max_seq_len, sft.bf16) == (3, 32768, True)
    assert sft.resources.nodes * sft.resources.gpus_per_node == 128  # 128 H20
    assert rl.resources.nodes * rl.resources.gpus_per_node == 32  # 32 H200
    assert (rl.group_size, rl.prompts_per_step, rl.mini_batch_size) == (8, 512, 128)
    assert (rl.lr, rl.lr_scheduler, rl.epochs) == (4e-7, "constant", 3)
    assert (rl.clip_low, rl.clip_high, rl.kl_coef, rl.entropy_coef) == (0.2, 0.28, 0.0, 0.001)
    assert (rl.reward_scale, rl.no_code_reward, rl.reward_tests_per_call) == (5.0, -2.0, 10)
    assert (rl.vllm_tp, rl.vllm_gpu_memory_utilization, rl.temperature) == (1, 0.85, 1.0)
    assert (cfg.solutions.temperature, cfg.solutions.top_p) == (0.6, 0.95)
    assert cfg.tasks.style_weights.model_dump() == {
        "codeforces": 0.7, "leetcode": 0.15, "atcoder": 0.15}
    assert (cfg.evolve.steps, cfg.eval.k) == (100, 8)
    assert cfg.curate.include_seed_problems is False  # the recipe is fully synthetic


def test_xcoder_preset_places_stages_on_three_clusters():
    cfg = load_config(PRESET_DIR / "xcoder-7b.yaml")
    assert cfg.sft.placement == "h20-cluster" and cfg.rl.placement == "h200-cluster"
    assert {cfg.stage(s).placement for s in STAGE_ORDER[:8]} == {"cpu-cluster"}


def test_smoke_preset_runs_everything_on_this_computer_without_gpus_or_downloads():
    cfg = load_config(PRESET_DIR / "smoke-cpu.yaml")
    assert cfg.enabled_stages() == list(STAGE_ORDER)
    for name in STAGE_ORDER:
        assert cfg.stage(name).placement == "This computer", name
        assert cfg.stage(name).resources.gpus_per_node == 0, name
    assert {(e.backend, e.model) for e in cfg.llms.values()} == {("transformers", "tiny-random")}
    assert cfg.sft.base_model == "tiny-random" and cfg.rl.rollout == "transformers"
    assert cfg.seeds.sources[0].path == "assets://seeds/seeds.jsonl"
