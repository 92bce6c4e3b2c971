"""The smoke preset AS SHIPPED, end to end through the engine CLI, as the desktop app's first
Launch runs it: every stage on this computer's CPU with the tiny random model, no LLM server.

The random model writes no usable JSON, so synthesis makes no task; the preset's
``seeds.as_tasks`` makes the seed problems tasks (known test outputs, the reference solution
among the candidates), which verify accepts and curate exports, and SFT, RL and eval then run
on them. This pins that the one-click smoke run completes with real data, training half too.

Run: .venv/bin/python -m pytest tests/engine/test_smoke_preset.py -q   (30-50 s on 2 cores)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.events import EventReader
from engine.paths import ASSETS_DIR
from engine.schema import STAGE_ORDER
from engine.store import Store, TaskQuery

REPO = Path(__file__).resolve().parents[2]
SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"


def isolated_env(root: Path) -> dict[str, str]:
    """The environment of a fresh user whose home, caches and temp files are all under root."""
    dirs = {name: root / name for name in ("home", "cache", "config", "data", "tmp")}
    for d in dirs.values():
        d.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "XDG_", "TRANSFORMERS_", "TORCH", "TRITON"))}
    env.update(HOME=str(dirs["home"]), XDG_CACHE_HOME=str(dirs["cache"]),
               XDG_CONFIG_HOME=str(dirs["config"]), XDG_DATA_HOME=str(dirs["data"]),
               TMPDIR=str(dirs["tmp"]), HF_HOME=str(dirs["cache"] / "huggingface"),
               HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    return env


@pytest.mark.slow
def test_the_smoke_preset_as_shipped_runs_every_stage_on_the_cpu(tmp_path):
    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"needs the sandbox (bubblewrap): {exc}")
    preset = yaml.safe_load(SMOKE.read_text())
    assert {llm["model"] for llm in preset["llms"].values()} == {"tiny-random"}
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", "--config", str(SMOKE), "--run-dir",
         str(run_dir)],
        cwd=tmp_path, env=isolated_env(tmp_path / "user"), capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    stages = json.loads((run_dir / "state.json").read_text())["stages"]
    assert {s: stages[s]["status"] for s in STAGE_ORDER} == dict.fromkeys(STAGE_ORDER,
                                                                           "completed")
    # The seed problems are tasks (seeds.as_tasks): verified against their known outputs,
    # with their reference solution among the random model's candidates, and exported.
    verify = stages["verify"]["summary"]
    assert verify["accepted"] == preset["seeds"]["max_seeds"] and verify["statuses"]["ok"] > 0
    with Store(run_dir / "data" / "store.sqlite", readonly=True) as store:
        page = store.query_tasks(TaskQuery(status="accepted"))
        task = store.get_task(page.rows[0].id)
    assert task.golden_solution_id is not None and task.verdicts
    assert len(task.solutions) == preset["solutions"]["candidates_per_task"] + 1
    curate = stages["curate"]["summary"]
    assert curate["exported_sft"] == preset["seeds"]["max_seeds"]
    assert curate["exported_rl"] >= preset["rl"]["prompts_per_step"]
    sft_rows = (run_dir / "exports" / "sft.jsonl").read_text().splitlines()
    assert len(sft_rows) == curate["exported_sft"]
    assert all(json.loads(r)["response"].startswith("```python\n") for r in sft_rows)

    assert stages["sft"]["summary"]["steps"] >= 1
    assert stages["sft"]["summary"]["dropped_over_max_seq_len"] == 0
    assert stages["rl"]["summary"]["steps"] == preset["rl"]["max_steps"]
    assert stages["rl"]["summary"]["dropped_long_prompts"] == 0
    for stage in ("sft", "rl"):
        final = run_dir / "checkpoints" / stage / "final"
        config = json.loads((final / "config.json").read_text())
        # readable by the transformers 4.x vLLM versions pin (engine/train/portable.py)
        assert "rope_theta" in config and "rope_scaling" in config, stage
        tok = json.loads((final / "tokenizer_config.json").read_text())
        assert tok["tokenizer_class"] != "TokenizersBackend", stage
    assert (run_dir / "exports" / "eval" / "summary.csv").is_file()
    assert stages["eval"]["summary"]["problems"] == preset["eval"]["max_problems"]

    alerts = [e.data for e in EventReader(run_dir / "events" / "curate.0.jsonl").read_new()
              if e.kind == "alert"]
    assert alerts == []
