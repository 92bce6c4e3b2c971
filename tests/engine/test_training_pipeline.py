"""The smoke preset end to end on CPU: synthesis on the scripted LLM, then SFT, RL and eval
on the tiny random model, every stage's metrics in the event stream.

Run: .venv/bin/python -m pytest tests/engine/test_training_pipeline.py -q
"""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("trl")

from engine.events import EventReader  # noqa: E402
from engine.paths import ASSETS_DIR  # noqa: E402
from engine.rundir import RunDir  # noqa: E402
from engine.runner import EXIT_OK, run_pipeline  # noqa: E402
from engine.schema import dump_config, parse_config  # noqa: E402

SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"


@pytest.mark.slow
def test_smoke_preset_synthesis_then_sft_rl_eval(openai_stub, tmp_path):
    from synth_responder import SynthResponder

    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"needs the sandbox (bubblewrap): {exc}")
    openai_stub.rule = SynthResponder(seed=1)
    data = yaml.safe_load(SMOKE.read_text())
    # Synthesis answers from the scripted server (the random model's noise would leave SFT
    # nothing to train on); SFT, RL and eval stay on the preset's tiny random model.
    data["llms"] = {name: {"backend": "openai", "base_url": openai_stub.url,
                           "model": "stub-model", "timeout_s": 10.0}
                    for name in ("generator", "solver")}
    config = parse_config(yaml.safe_dump(data))
    run = RunDir(tmp_path / "run")
    run.create()
    assert run_pipeline(config, dump_config(config), run) == EXIT_OK
    state = run.read_state().stages
    assert all(state[s].status == "completed" for s in
               ("seeds", "features", "evolve", "tasks", "solutions", "tests", "verify",
                "curate", "sft", "rl", "eval"))
    for stage in ("sft", "rl"):
        assert (run.root / "checkpoints" / stage / "final" / "config.json").exists()
    assert (run.root / "exports" / "eval" / "summary.csv").exists()
    keys = {}
    for stage, key in (("sft", "sft/loss"), ("rl", "rl/reward/mean"), ("eval", "eval/avg_at_k")):
        events = EventReader(run.events_dir / f"{stage}.0.jsonl").read_new()
        keys[stage] = {k for e in events if e.kind == "metric" for k in e.data}
        assert key in keys[stage], (stage, sorted(keys[stage])[:20])
